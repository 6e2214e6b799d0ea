"""The session's own safety net: processes the tests start are found if they outlive a test."""

from __future__ import annotations

import os
import subprocess
import time

from tests.conftest import SESSION_MARK, marked_processes


def test_a_process_started_by_the_tests_carries_the_mark_until_it_exits():
    mark = os.environ[SESSION_MARK]
    child = subprocess.Popen(["sleep", "60"])
    try:
        assert child.pid in [pid for pid, _ in marked_processes(mark)]
    finally:
        child.kill()
        child.wait(timeout=10)
    deadline = time.monotonic() + 10
    while child.pid in [pid for pid, _ in marked_processes(mark)]:
        assert time.monotonic() < deadline, "the killed child is still listed"
        time.sleep(0.05)


def test_processes_of_another_session_are_not_ours():
    env = {**os.environ, SESSION_MARK: "another-session"}
    child = subprocess.Popen(["sleep", "60"], env=env)
    try:
        assert child.pid not in [pid for pid, _ in marked_processes(os.environ[SESSION_MARK])]
        assert child.pid in [pid for pid, _ in marked_processes("another-session")]
    finally:
        child.kill()
        child.wait(timeout=10)
