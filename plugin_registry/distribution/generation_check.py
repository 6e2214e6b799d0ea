"""Checking a new generation before it goes live: in a forked child, or a fresh Python."""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import time
from collections.abc import Callable
from pathlib import Path

from plugin_registry.distribution.envcheck import check_generation
from plugin_registry.distribution.uv import json_from_child
from plugin_registry.errors import RegistryError
from services_ai import conf

logger = logging.getLogger(__name__)
Say = Callable[[str], None]


def _check_in_fork(generation: Path, timeout: float = 300.0) -> dict:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: import, report, exit without running any cleanup of the parent's
        status = 0
        try:
            os.close(read_end)

            data = json.dumps(check_generation(generation)).encode()
        except BaseException as exc:
            data = json.dumps({"plugins": [], "problems": [f"the check failed: {exc!r}"]}).encode()
            status = 1
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(write_end, view) :]
        finally:
            os._exit(status)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([read_end], [], [], remaining)[0]:
                os.kill(pid, signal.SIGKILL)
                raise RegistryError(f"checking the new environment took over {timeout:.0f} s")
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        raise RegistryError("checking the new environment failed: the check died") from None


def _check_in_child(generation: Path) -> dict:
    try:
        return json_from_child(
            ["-m", "plugin_registry.distribution.envcheck"],
            env={conf.GENERATION_ENV: str(generation)},
        )
    except RegistryError as exc:
        raise RegistryError(f"checking the new environment failed: {exc}") from None
