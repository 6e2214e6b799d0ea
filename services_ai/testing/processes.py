"""Stopping the child processes tests and benchmarks start, by their process group."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """Stop a child started with ``start_new_session=True`` and everything it started.

    SIGTERM first (a supervisor or server stops gracefully), SIGKILL if it is not gone within
    ``timeout`` seconds. A child that already exited is left alone.
    """
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
