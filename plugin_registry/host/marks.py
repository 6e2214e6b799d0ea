"""Which plugin's code each process is running, kept where other processes can read it.

Every platform process that runs plugin code (its import, a hook call) writes one line to its
own file, ``$SERVICES_AI_HOME/run/HOST-PID.plugin``, while the code runs, and empties it after.
When a process dies (``os._exit`` in a hook, a kill by the supervisor, an out-of-memory kill)
the line stays: whoever finds it (the worker supervisor, or the next process to build a host)
knows which plugin was running, and strikes it towards quarantine.

The file is opened once per process and rewritten in place (two system calls per mark).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from services_ai import conf
from services_ai.plugins.context import running

SUFFIX = ".plugin"


@dataclass(frozen=True)
class Mark:
    """What a process was running: ``plugin``, ``activity`` ("import" or a hook), detail."""

    plugin: str
    activity: str
    detail: str = ""  # "event 12" for a delivery

    def encode(self) -> bytes:
        return "\t".join((self.plugin, self.activity, self.detail)).encode()

    @classmethod
    def decode(cls, data: bytes) -> Mark | None:
        parts = data.decode(errors="replace").split("\t")
        if len(parts) != 3 or not parts[0]:
            return None
        return cls(*parts)

    def describe(self) -> str:
        what = "importing it" if self.activity == "import" else f"in its {self.activity} hook"
        return f"{what} ({self.detail})" if self.detail else what


def run_dir() -> Path:
    path = conf.home() / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _host_prefix() -> str:
    return socket.gethostname()[:40].replace(os.sep, "_")


def marker_path(pid: int | None = None) -> Path:
    """Return the mark file of process ``pid`` (default: this one) on this host."""
    return run_dir() / f"{_host_prefix()}-{pid or os.getpid()}{SUFFIX}"


_lock = threading.Lock()
_fd: int | None = None
_fd_pid = 0
# Hooks run on several threads of a web process: the file holds one line per thread that is
# inside plugin code (its innermost mark), so a death blames every plugin then running.
_active: dict[int, list[bytes]] = {}


def _write_locked() -> None:
    global _fd, _fd_pid
    if _fd is None or _fd_pid != os.getpid():  # first use, or a forked child
        _fd = os.open(marker_path(), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        _fd_pid = os.getpid()
        # A process that exits normally leaves no file; one that dies (os._exit, a kill)
        # leaves its marks for whoever finds them.
        atexit.register(forget, _fd_pid)
    data = b"\n".join(stack[-1] for stack in _active.values() if stack)
    os.ftruncate(_fd, 0)
    if data:
        os.pwrite(_fd, data, 0)


@contextlib.contextmanager
def in_plugin(plugin: str, activity: str) -> Iterator[None]:
    """Mark this process as running ``plugin``'s ``activity`` for the duration of the block."""
    delivery = running.delivery
    detail = f"event {delivery.event_id}" if delivery is not None else ""
    data = Mark(plugin, activity, detail).encode()
    thread = threading.get_ident()
    with _lock:
        _active.setdefault(thread, []).append(data)
        _write_locked()
    try:
        yield
    finally:
        with _lock:
            stack = _active.get(thread)
            if stack:
                stack.pop()
                if not stack:
                    del _active[thread]
            _write_locked()


def decode_all(data: bytes) -> list[Mark]:
    """Return the marks in a mark file's contents (one per thread in plugin code)."""
    return [mark for line in data.splitlines() if (mark := Mark.decode(line)) is not None]


def read(pid: int) -> list[Mark]:
    """Return what process ``pid`` on this host is (or was, when it died) running."""
    try:
        return decode_all(marker_path(pid).read_bytes())
    except OSError:
        return []


def forget(pid: int) -> None:
    """Remove the mark file of a process that is gone."""
    marker_path(pid).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphans() -> list[tuple[int, list[Mark]]]:
    """Claim the marks of this host's dead processes; return those that died in plugin code.

    Each file is claimed by renaming it first, so when several processes look at once, each
    death is reported exactly once.
    """
    prefix = _host_prefix() + "-"
    found = []
    for path in run_dir().glob(f"{prefix}*{SUFFIX}"):
        pid_text = path.name[len(prefix) : -len(SUFFIX)]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        claimed = path.with_name(f"{path.name}.{os.getpid()}.claimed")
        try:
            path.rename(claimed)
        except OSError:
            continue  # another process claimed it
        try:
            marks = decode_all(claimed.read_bytes())
        finally:
            claimed.unlink(missing_ok=True)
        if marks:
            found.append((int(pid_text), marks))
    return found
