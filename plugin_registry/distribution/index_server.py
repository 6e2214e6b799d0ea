"""The embedded plugin index: a devpi-server in its own virtual environment, on 127.0.0.1.

Everything lives under ``SERVICES_AI_HOME/index``: ``server/`` (devpi's data), ``venv/``
(devpi-server and its ~45 dependencies, kept out of the platform's environment so they never
constrain plugins), ``secret`` (keeps login tokens valid across restarts), ``password`` and
``root-password`` (0600), ``port``, ``server.pid`` and ``devpi.log``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from plugin_registry.distribution.index import (
    DEFAULT_USER,
    IndexClient,
    IndexConfig,
    IndexRefused,
    IndexUnavailable,
    embedded_port,
    index_dir,
)
from plugin_registry.distribution.uv import installer_env, uv
from plugin_registry.errors import RegistryError

logger = logging.getLogger("plugin_registry.distribution.index")

Say = Callable[[str], None]


def _requirements() -> Path:
    here = Path(__file__).resolve().parent
    checkout = here.parent.parent / "index" / "requirements.txt"
    for candidate in (here / "index-requirements.txt", checkout):
        if candidate.exists():
            return candidate
    raise RegistryError("index/requirements.txt is missing from this installation")


def venv_dir() -> Path:
    """Return devpi-server's own virtual environment (``SERVICES_AI_INDEX_VENV`` to share one)."""
    return Path(os.environ.get("SERVICES_AI_INDEX_VENV") or index_dir() / "venv")


def server_args() -> list[str]:
    """Extra devpi-server options from ``SERVICES_AI_INDEX_SERVER_ARGS`` (tests lower argon2)."""
    return os.environ.get("SERVICES_AI_INDEX_SERVER_ARGS", "").split()


def _write_secret(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(value + "\n")


def ensure_venv(say: Say) -> Path:
    """Install devpi-server (hash-pinned by index/requirements.txt) into its own venv."""
    venv = venv_dir()
    if (venv / "bin" / "devpi-server").exists():
        return venv
    say(f"installing devpi-server into {venv}")

    env = installer_env()
    for command in (
        [uv(), "venv", "--no-config", "-q", "--python", sys.executable, str(venv)],
        [
            uv(), "pip", "install", "--no-config", "-q", "--python", str(venv / "bin/python"),
            "--require-hashes", "-r", str(_requirements()),
        ],
    ):  # fmt: skip
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode:
            raise RegistryError(f"installing devpi-server failed:\n{result.stderr.strip()}")
    return venv


@dataclass(frozen=True)
class Status:
    running: bool
    pid: int | None
    url: str
    initialised: bool


def _pid() -> int | None:
    path = index_dir() / "server.pid"
    try:
        pid = int(path.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"devpi-server" in cmdline else None


def status() -> Status:
    server = index_dir() / "server"
    pid = _pid()
    return Status(
        running=pid is not None,
        pid=pid,
        url=f"http://127.0.0.1:{embedded_port()}",
        initialised=(server / ".serverversion").exists(),
    )


def init(say: Say, port: int | None = None) -> None:
    """Create the embedded index once: server data, secrets, the platform's user and indexes.

    Safe to run again: what exists is kept. The server is left as it was found (running or not).
    """
    folder = index_dir()
    folder.mkdir(parents=True, exist_ok=True)
    venv = ensure_venv(say)
    if port is not None or not (folder / "port").exists():
        (folder / "port").write_text(f"{port or embedded_port()}\n")
    for name in ("secret", "password", "root-password"):
        if not (folder / name).exists():
            _write_secret(folder / name, secrets.token_urlsafe(32))
    server = folder / "server"
    if not (server / ".serverversion").exists():
        say(f"initialising devpi-server data in {server}")
        result = subprocess.run(
            [
                str(venv / "bin" / "devpi-init"),
                "--serverdir",
                str(server),
                "--no-root-pypi",
                # One argument: a password that starts with "-" is not read as an option.
                f"--root-passwd={(folder / 'root-password').read_text().strip()}",
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode:
            raise RegistryError(f"devpi-init failed:\n{result.stderr.strip()[-2000:]}")
    started = not status().running
    if started:
        start(say)
    try:
        _configure(say)
    finally:
        if started:
            stop(say)


def _configure(say: Say) -> None:
    folder = index_dir()
    platform = IndexConfig.load()
    root = IndexClient(
        IndexConfig(
            server=platform.server,
            user="root",
            password=(folder / "root-password").read_text().strip(),
        )
    )
    user = platform.user

    def put(path: str, body: dict) -> None:
        status_code, answer = root._request(
            f"{platform.server}/{path}",
            method="PUT",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            auth=True,
        )
        if status_code not in (200, 201, 409):
            raise IndexRefused(f"creating {path} answered HTTP {status_code}: {answer[:300]!r}")
        if status_code != 409:
            say(f"created {path}")

    put(user, {"password": platform.password, "email": "platform@localhost"})
    put(
        f"{user}/{platform.stable}",
        {"type": "stage", "bases": [], "volatile": False, "acl_upload": [user]},
    )
    put(
        f"{user}/{platform.dev}",
        {
            "type": "stage",
            "bases": [f"{user}/{platform.stable}"],
            "volatile": True,
            "acl_upload": [user],
        },
    )


def start(say: Say, wait: float = 90.0) -> Status:
    """Start devpi-server in the background and wait until it answers."""
    current = status()
    if current.running:
        say(f"the index is already running at {current.url} (pid {current.pid})")
        return current
    if not current.initialised:
        raise RegistryError("the embedded index is not set up: run `services-ai index init`")
    folder = index_dir()
    venv = ensure_venv(say)
    port = embedded_port()
    command = [
        str(venv / "bin" / "devpi-server"),
        "--serverdir", str(folder / "server"),
        "--host", "127.0.0.1", "--port", str(port),
        "--secretfile", str(folder / "secret"),
        "--restrict-modify", "root",
        *server_args(),
    ]  # fmt: skip
    log = open(folder / "devpi.log", "ab")  # noqa: SIM115 - handed to the child
    with log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    (folder / "server.pid").write_text(f"{process.pid}\n")
    client = IndexClient(IndexConfig.load(), timeout=2)
    deadline = time.monotonic() + wait
    while True:
        if process.poll() is not None:
            tail = (folder / "devpi.log").read_text(errors="replace")[-2000:]
            raise RegistryError(f"devpi-server exited with {process.returncode}:\n{tail}")
        try:
            client.ping()
            break
        except IndexUnavailable:
            if time.monotonic() > deadline:
                os.kill(process.pid, signal.SIGTERM)
                raise RegistryError(
                    f"devpi-server did not answer on port {port} within {wait:.0f} s; "
                    f"see {folder / 'devpi.log'}"
                ) from None
            time.sleep(0.1)
    say(f"the index is running at http://127.0.0.1:{port}/ (pid {process.pid})")
    return status()


def stop(say: Say, wait: float = 20.0) -> None:
    """Stop the embedded devpi-server (SIGTERM, then SIGKILL after ``wait`` seconds)."""
    pid = _pid()
    if pid is None:
        say("the index is not running")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        (index_dir() / "server.pid").unlink()
    say(f"stopped the index (pid {pid})")


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


__all__ = ["DEFAULT_USER", "init", "start", "status", "stop", "venv_dir"]
