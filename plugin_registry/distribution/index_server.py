"""The embedded plugin index: a devpi-server in its own virtual environment, on 127.0.0.1.

Everything lives under ``SERVICES_AI_HOME/index``: ``server/`` (devpi's data), ``venv/``
(devpi-server and its ~45 dependencies, kept out of the platform's environment so they never
constrain plugins), ``secret`` (keeps login tokens valid across restarts), ``password`` and
``root-password`` (0600), ``port``, ``server.pid`` and ``devpi.log``.

The embedded index always runs with devpi's ``--role primary``, so other hosts may follow it
with replicas. ``replica`` sets up the other kind of home: ``server/`` then holds a devpi
replica of a primary named in ``primary-url``, with the primary's ``secret`` (devpi signs the
replication requests with a key derived from it) and no passwords of its own; writes sent to a
replica are relayed by devpi to the primary.
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
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    primary_url: str | None = None  # set when this home's index is a replica of that primary


def _pid() -> int | None:
    path = index_dir() / "server.pid"
    try:
        pid = int(path.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"devpi-server" in cmdline else None


def replica_of() -> str | None:
    """Return the primary's URL if this home's index is a replica (``index/primary-url``)."""
    try:
        return (index_dir() / "primary-url").read_text().strip() or None
    except FileNotFoundError:
        return None


def status() -> Status:
    server = index_dir() / "server"
    pid = _pid()
    return Status(
        running=pid is not None,
        pid=pid,
        url=f"http://127.0.0.1:{embedded_port()}",
        initialised=(server / ".serverversion").exists(),
        primary_url=replica_of(),
    )


def init(say: Say, port: int | None = None) -> None:
    """Create the embedded index once: server data, secrets, the platform's user and indexes.

    Safe to run again: what exists is kept. The server is left as it was found (running or not).
    """
    if primary := replica_of():
        raise RegistryError(
            f"this home's index is a replica of {primary}: its users and indexes come from "
            "the primary, so there is nothing to initialise (`services-ai index start` runs it)"
        )
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
    # A replica follows its primary; any other embedded index is a primary, so that replicas
    # may follow it (devpi enables its replication protocol only with an explicit role).
    if current.primary_url:
        role = ["--role", "replica", "--primary-url", current.primary_url]
    else:
        role = ["--role", "primary"]
    command = [
        str(venv / "bin" / "devpi-server"),
        "--serverdir", str(folder / "server"),
        "--host", "127.0.0.1", "--port", str(port),
        "--secretfile", str(folder / "secret"),
        "--restrict-modify", "root",
        *role,
        *server_args(),
    ]  # fmt: skip
    log = open(folder / "devpi.log", "ab")  # noqa: SIM115 - handed to the child
    with log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    (folder / "server.pid").write_text(f"{process.pid}\n")
    client = _local_client(port)
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
    kind = f"a replica of {current.primary_url}, " if current.primary_url else ""
    say(f"the index is running at http://127.0.0.1:{port}/ ({kind}pid {process.pid})")
    return status()


def _local_client(port: int) -> IndexClient:
    """A client of this home's own devpi-server, whatever SERVICES_AI_INDEX_URL names."""
    return IndexClient(IndexConfig(server=f"http://127.0.0.1:{port}", user="", password=""), 2)


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


# -- replicas ------------------------------------------------------------------------------


def _root_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RegistryError(f"--primary-url {url!r}: expected http(s)://HOST[:PORT]")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise RegistryError(
            f"--primary-url {url!r}: give the primary server's root URL "
            f"({parts.scheme}://{parts.netloc}), not an index's: a replica copies every index"
        )
    if parts.username or parts.password:
        raise RegistryError(
            "--primary-url: devpi refuses credentials in the primary's URL; the replica "
            "authenticates with the shared secret file"
        )
    return f"{parts.scheme}://{parts.netloc}"


def _probe_primary(url: str) -> int:
    """Check that ``url`` is a devpi primary that replicas may follow; return its serial."""
    client = IndexClient(IndexConfig(server=url, user="", password=""), timeout=10)
    try:
        code, answer = client._json(f"{url}/+status")
    except IndexUnavailable as exc:
        cause = str(exc).split("; ")[0]  # "the plugin index at URL is not reachable (reason)"
        raise IndexUnavailable(
            f"{cause}: it is the primary; start it (`services-ai index start` on its host) and "
            "make it reachable from here (for TLS with a private authority, see "
            "docs/operations.md, Several hosts, one index)"
        ) from None
    if code != 200 or not isinstance(answer, dict) or "result" not in answer:
        raise IndexRefused(f"{url}/+status answered HTTP {code}: is it a devpi-server?")
    if answer["result"].get("role") == "REPLICA":
        raise RegistryError(
            f"{url} is itself a replica (of {answer['result'].get('primary-url')}): "
            "follow the primary instead"
        )
    # The replication endpoint says whether the protocol is enabled before it asks for the
    # replica's signed token.
    code, body = client._request(
        f"{url}/+changelog/0",
        headers={"Accept": "application/json", "X-DEVPI-EXPECTED-PRIMARY-ID": ""},
    )
    if b"Replication protocol disabled" in body:
        raise RegistryError(
            f"the devpi at {url} does not run as a primary (devpi: 'Replication protocol "
            "disabled'): restart it with `services-ai index stop` and `services-ai index "
            "start` on its host (the embedded index runs with --role primary), or add "
            "--role primary to your own devpi-server"
        )
    return int(answer["result"]["serial"])


def replication(url: str) -> dict[str, Any] | None:
    """Return devpi's ``/+status`` of the server at ``url`` (role, serials), None if it fails."""
    try:
        code, answer = IndexClient(IndexConfig(server=url, user="", password=""), 3)._json(
            f"{url}/+status"
        )
    except IndexUnavailable:
        return None
    if code != 200 or not isinstance(answer, dict):
        return None
    return answer.get("result")


def replica(
    say: Say,
    primary_url: str,
    port: int | None = None,
    secret_file: Path | None = None,
    wait: float = 60.0,
) -> Status:
    """Set up and start a devpi replica of ``primary_url`` in this home; wait until it caught up.

    Safe to run again. The replica keeps running; ``start`` and ``stop`` manage it as they do
    the embedded index.
    """
    url = _root_url(primary_url)
    folder = index_dir()
    server = folder / "server"
    current = status()
    if current.initialised and not current.primary_url:
        raise RegistryError(
            f"this home already holds an index of its own ({server}): a replica needs a home "
            "without one (another SERVICES_AI_HOME)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    if secret_file is not None:
        try:
            value = secret_file.read_bytes()  # verbatim: devpi derives its keys from the bytes
        except OSError as exc:
            raise RegistryError(f"{secret_file}: cannot read it ({exc.strerror})") from None
        fd = os.open(folder / "secret", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(value)
    elif not (folder / "secret").exists():
        raise RegistryError(
            "a replica needs its primary's secret file: copy the primary's "
            "$SERVICES_AI_HOME/index/secret (or its devpi --secretfile) to this host, mode "
            "0600, and pass --secret-file PATH"
        )
    primary_serial = _probe_primary(url)
    if port is not None or not (folder / "port").exists():
        (folder / "port").write_text(f"{port or embedded_port()}\n")
    venv = ensure_venv(say)
    if not current.initialised:
        say(f"initialising a devpi replica of {url} in {server}")
        result = subprocess.run(
            [
                str(venv / "bin" / "devpi-init"),
                "--serverdir", str(server),
                "--role", "replica",
                "--primary-url", url,
            ],
            capture_output=True,
            text=True,
        )  # fmt: skip
        if result.returncode:
            raise RegistryError(f"devpi-init failed:\n{result.stderr.strip()[-2000:]}")
    changed = current.primary_url != url
    (folder / "primary-url").write_text(url + "\n")
    if current.running and changed:
        stop(say)
    state = start(say)
    _wait_for_replication(say, state.url, url, primary_serial, wait)
    return status()


def _wait_for_replication(say: Say, local: str, primary: str, target: int, wait: float) -> None:
    log = index_dir() / "devpi.log"
    offset = log.stat().st_size if log.exists() else 0
    deadline = time.monotonic() + wait
    serial = -1
    while time.monotonic() < deadline:
        state = replication(local) or {}
        serial = state.get("serial", -1)
        # devpi queues the files of every change it replays and downloads them in the
        # background: they are all here once its file queue ran empty after the last change.
        files = state.get("replica-files-in-sync-at") or 0.0
        metadata = state.get("replica-metadata-in-sync-at") or float("inf")
        if state.get("primary-serial") is not None and serial >= target and files >= metadata:
            say(f"replicated the primary up to serial {serial}, files included")
            return
        with contextlib.suppress(OSError), log.open("rb") as file:
            file.seek(offset)
            if b"403 Forbidden: failed fetching" in file.read():
                stop(say)
                raise IndexRefused(
                    f"the primary at {primary} refused this replica (HTTP 403): the secret "
                    "file differs from the primary's, or the two servers hash it with "
                    "different argon2 settings (SERVICES_AI_INDEX_SERVER_ARGS must be the same "
                    "on both); the replica was stopped"
                )
        time.sleep(0.2)
    say(
        f"the replica is still catching up (serial {serial} of {target}) after {wait:.0f} s; "
        f"it keeps going: `services-ai index status` shows how far it is, {log} what it does"
    )


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


__all__ = [
    "DEFAULT_USER", "init", "replica", "replica_of", "replication", "start", "status", "stop",
    "venv_dir",
]  # fmt: skip
