"""The managed plugin environment: an overlay of the platform, built in generations.

Every change (install, upgrade, uninstall, sync from a lock, rollback) goes the same way:

1. resolve the requested plugins with uv against the plugin index, the platform's own packages
   offered as fixed, metadata-only wheels, so a plugin that conflicts with the platform is
   refused with the resolver's explanation, and nothing the platform has is installed twice;
2. write ``plugins.lock`` (hash-pinned) and install exactly it into a new virtual environment
   ``SERVICES_AI_HOME/env/generations/NNNN`` beside the active one;
3. check the new generation in a child process: every plugin imports, its hooks and manifest
   are valid, and no platform package is shadowed;
4. record it as the active generation and refresh the registry in one transaction, then point
   the ``env/active`` symlink at it (an atomic rename). Processes notice the new target and load
   the new code; the supervisor recycles its workers.

A failure at any step leaves the active generation and the database as they were. A process
killed in the middle leaves at most a ``*.tmp`` folder and a ``building`` row, which the next
change (or ``services-ai plugins recover``) cleans up; if the database already names a newer
generation than the symlink, the symlink is moved forward to it, and a generation the
database names but this node lacks is built from its lock, so every node converges on the
desired state in the database.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone
from packaging.utils import canonicalize_name

from services_ai import conf

from .audit import record
from .catalogue import choose, sync_catalogue
from .index import IndexClient
from .lockfile import (
    LockError,
    Pin,
    format_in,
    format_lock,
    parse_lock,
    split_host,
)
from .models import EnvironmentGeneration, Plugin, RegistryGeneration
from .services import RegistryError
from .sync import SyncReport, sync_registry

logger = logging.getLogger("plugin_registry.environment")

Say = Callable[[str], None]
ADVISORY_LOCK = 0x5A1_E7A1  # PostgreSQL advisory lock key of environment changes
Status = EnvironmentGeneration.Status
T = TypeVar("T")


def keep_generations() -> int:
    return conf.from_env("SERVICES_AI_KEEP_GENERATIONS", "5", int)


def generations_dir() -> Path:
    return conf.environment_dir() / "generations"


def generation_dir(number: int) -> Path:
    return generations_dir() / f"{number:04d}"


def uv() -> str:
    """The uv next to this Python (a dependency of the platform), else the one on PATH."""
    candidate = Path(sys.executable).parent / "uv"
    return str(candidate) if candidate.exists() else "uv"


def installer_env() -> dict[str, str]:
    """The environment for uv and pip: this machine's pip/uv configuration is ignored."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIP_", "UV_")) and key not in ("VIRTUAL_ENV",)
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env["UV_NO_CONFIG"] = "1"
    return env


# -- the platform's own packages ---------------------------------------------------------------


def _host_path() -> tuple[str, ...]:
    plugin_dirs = {str(path) for path in conf.plugin_site_dirs()}
    return tuple(entry for entry in sys.path if entry not in plugin_dirs)


def host_distributions() -> dict[str, str]:
    """Return every distribution of the platform's environment (plugin folders excluded)."""
    return dict(_host_distributions(_host_path()))


@functools.lru_cache(maxsize=4)
def _host_distributions(path: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    # Reading ~60 METADATA files costs ~30 ms; the platform's own packages do not change under
    # a running process (an upgrade of the platform restarts it).
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=list(path)):
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist.version)
    return tuple(sorted(found.items()))


def host_wheels() -> tuple[Path, Path]:
    """Return (a folder of metadata-only wheels of the platform's packages, constraints file).

    uv does not see packages installed outside the environment it resolves for, so the
    platform's packages are offered to it as wheels that carry only their metadata, pinned to
    the installed versions: the resolution treats them as fixed, and they are never installed.
    """
    host = host_distributions()
    digest = hashlib.sha256(repr(sorted(host.items())).encode()).hexdigest()[:16]
    folder = conf.environment_dir() / "host" / digest
    constraints = folder / "constraints.txt"
    if constraints.exists():
        return folder, constraints
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    seen: set[str] = set()
    for dist in importlib.metadata.distributions(path=list(_host_path())):
        name = canonicalize_name(dist.metadata["Name"] or "")
        if not name or name in seen:
            continue
        seen.add(name)
        stem = f"{name.replace('-', '_')}-{dist.version}"
        info = f"{stem}.dist-info"
        metadata = dist.read_text("METADATA") or f"Metadata-Version: 2.1\nName: {name}\n"
        with zipfile.ZipFile(tmp / f"{stem}-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"{info}/METADATA", metadata)
            wheel.writestr(
                f"{info}/WHEEL",
                "Wheel-Version: 1.0\nGenerator: services-ai\nRoot-Is-Purelib: true\n"
                "Tag: py3-none-any\n",
            )
            wheel.writestr(
                f"{info}/RECORD", f"{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n"
            )
    (tmp / "constraints.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(host.items())))
    try:
        tmp.rename(folder)
    except OSError:  # another process built it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return folder, constraints


# -- serialising changes -------------------------------------------------------------------------


@contextlib.contextmanager
def change_lock(say: Say, *, wait: bool = True) -> Iterator[None]:
    """One environment change at a time on this node (a second one waits, and says so).

    With ``wait=False`` a busy lock raises BlockingIOError instead of waiting.
    """
    conf.environment_dir().mkdir(parents=True, exist_ok=True)
    with open(conf.environment_dir() / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise
            say("another plugin environment change is running; waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        if connection.vendor != "postgresql":
            yield  # SQLite: one node, and this node is serialised by the file lock
            return
        # Several nodes share PostgreSQL: a session advisory lock serialises their changes
        # without holding a transaction open; it goes away with the session if a node dies.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK])
            if not cursor.fetchone()[0]:
                say("another node is changing the plugin environment; waiting for it to finish")
                cursor.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK])
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK])


# -- results -------------------------------------------------------------------------------------


@dataclass
class PluginChange:
    name: str
    before: str | None
    after: str | None
    new_permissions: list[str] = field(default_factory=list)
    dropped_permissions: list[str] = field(default_factory=list)
    missing_settings: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        if self.before is None:
            head = f"+ {self.name} {self.after}"
        elif self.after is None:
            head = f"- {self.name} {self.before}"
        else:
            head = f"~ {self.name} {self.before} -> {self.after}"
        lines = [head]
        for perm in self.new_permissions:
            lines.append(
                f"    asks for permission {perm}: not granted until an admin runs "
                f"`services-ai plugins grant {self.name} {perm}`"
            )
        for perm in self.dropped_permissions:
            lines.append(f"    no longer asks for permission {perm}: revoked")
        for key in self.missing_settings:
            lines.append(
                f"    required setting {key} is not set: "
                f"`services-ai plugins configure {self.name} {key}=VALUE`"
            )
        return lines


@dataclass
class ChangeResult:
    generation: int
    changes: list[PluginChange]
    report: SyncReport | None = None


def _registry_snapshot() -> dict[str, tuple[str, set[str], set[str]]]:
    snapshot = {}
    for plugin in Plugin.objects.filter(installed=True).prefetch_related("permissions"):
        requested = {p.name for p in plugin.permissions.all() if p.requested}
        granted = {p.name for p in plugin.permissions.all() if p.granted}
        snapshot[plugin.name] = (plugin.version, requested, granted)
    return snapshot


def _diff(before: dict, after: dict) -> list[PluginChange]:
    from .settings_store import missing_required

    changes = []
    plugins = Plugin.objects.in_bulk(set(after), field_name="name")
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old is not None and new is not None and old[0] == new[0]:
            continue
        change = PluginChange(name, old[0] if old else None, new[0] if new else None)
        if new is not None:
            old_requested = old[1] if old else set()
            change.new_permissions = sorted(new[1] - old_requested - new[2])
            change.dropped_permissions = sorted(old_requested - new[1]) if old else []
            change.missing_settings = missing_required(plugins[name])
        changes.append(change)
    return changes


# -- the environment -----------------------------------------------------------------------------


class Environment:
    """Builds, checks and switches generations of the managed environment."""

    def __init__(self, client: IndexClient | None = None, say: Say | None = None) -> None:
        self.client = client or IndexClient()
        self.say: Say = say or (lambda message: logger.info("%s", message))

    # -- state ---------------------------------------------------------------------------

    @staticmethod
    def active() -> EnvironmentGeneration | None:
        return EnvironmentGeneration.objects.filter(status=Status.ACTIVE).first()

    def requested(self) -> dict[str, str]:
        active = self.active()
        return dict(active.requested) if active else {}

    # -- resolving -----------------------------------------------------------------------

    def resolve(self, requested: dict[str, str]) -> str:
        """Resolve ``requested`` against the index and the platform; return the lock text."""
        if not requested:
            return format_lock([], [], {})
        self.client.ping()
        folder, constraints = host_wheels()
        work = conf.environment_dir() / f"resolve.{os.getpid()}"
        work.mkdir(parents=True, exist_ok=True)
        try:
            (work / "plugins.in").write_text(format_in(requested))
            command = [
                uv(), "pip", "compile", "--no-config", "--quiet", "--generate-hashes",
                "--python", sys.executable, "--no-header", "--no-annotate",
                "--index-url", self.client.config.simple_url(),
                "--find-links", str(folder), "--constraint", str(constraints),
                "--output-file", str(work / "resolved.txt"), str(work / "plugins.in"),
            ]  # fmt: skip
            result = subprocess.run(
                command, env=installer_env(), capture_output=True, text=True, timeout=600
            )
            if result.returncode:
                raise RegistryError(self._explain_resolution(requested, result.stderr))
            pins = parse_lock((work / "resolved.txt").read_text(), "the resolution")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        own, provided = split_host(pins, host_distributions())
        return format_lock(own, provided, requested)

    def _explain_resolution(self, requested: dict[str, str], stderr: str) -> str:
        wanted = ", ".join(f"{n}=={v}" for n, v in sorted(requested.items()))
        text = "\n".join(
            line for line in stderr.strip().splitlines() if not line.startswith("warning:")
        )
        host = host_distributions()
        named = sorted(n for n in host if f" {n}==" in text or f" {n}<" in text or f"{n}>" in text)
        hint = (
            f"; it conflicts with the platform's own {', '.join(named)} "
            "(plugins cannot replace packages the platform provides)"
            if named
            else ""
        )
        return f"cannot install {wanted}{hint}:\n{text}"

    # -- building and checking -------------------------------------------------------------

    def build(self, number: int, lock_text: str) -> Path:
        """Install exactly ``lock_text`` into a new generation folder; return it."""
        own, _ = split_host(parse_lock(lock_text), host_distributions())
        final = generation_dir(number)
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        self._run([uv(), "venv", "--no-config", "--quiet", "--python", sys.executable, str(tmp)])
        lock_path = tmp / "plugins.lock"
        lock_path.write_text(lock_text)
        if own:
            self.client.ping()
            only_own = tmp / "install.txt"
            only_own.write_text("".join(pin.line() for pin in own))
            self._run(
                [
                    uv(),
                    "pip",
                    "install",
                    "--no-config",
                    "--quiet",
                    "--python",
                    str(tmp / "bin" / "python"),
                    "--index-url",
                    self.client.config.simple_url(),
                    "--require-hashes",
                    "--no-deps",
                    "-r",
                    str(only_own),
                ],
                what="installing the lock",
            )
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        return final

    def _run(self, command: list[str], what: str = "creating the environment") -> None:
        result = subprocess.run(
            command, env=installer_env(), capture_output=True, text=True, timeout=600
        )
        if result.returncode:
            text = result.stderr.strip()
            if "hash" in text.lower() and "mismatch" in text.lower():
                raise LockError(
                    f"{what} failed: a downloaded file does not match the hash in the lock "
                    f"(was it replaced on the index?):\n{text}"
                )
            raise RegistryError(f"{what} failed:\n{text}")

    def check(self, generation: Path) -> list[str]:
        """Import every plugin of ``generation`` in a throwaway process; return their names.

        A single-threaded process (the command line) forks: the child already has the platform
        imported, so the check costs little more than importing the plugins. Elsewhere a fresh
        Python process does it. Either way, this process never imports the new code.
        """
        if hasattr(os, "fork") and threading.active_count() == 1:
            report = _check_in_fork(generation)
        else:
            report = _check_in_child(generation)
        if report["problems"]:
            raise RegistryError(
                "the new environment was not activated; it failed its check:\n"
                + "\n".join(f"  {problem}" for problem in report["problems"])
            )
        return list(report["plugins"])

    # -- changing --------------------------------------------------------------------------

    def install(self, wanted: dict[str, str | None], action: str, actor: str = "") -> ChangeResult:
        """Install or upgrade plugins (``name -> version``, None for the newest installable)."""
        sync_catalogue(self.client, [canonicalize_name(n) for n in wanted])
        chosen = {}
        for name, version in wanted.items():
            row = choose(name, version)
            chosen[row.name] = row.version
        return self.change(
            lambda current: {**current, **chosen}, action, actor, hook_installed=list(chosen)
        )

    def uninstall(self, name: str, actor: str = "") -> ChangeResult:
        key = canonicalize_name(name)

        def without(current: dict[str, str]) -> dict[str, str]:
            if key not in current:
                listed = ", ".join(sorted(current)) or "none"
                raise RegistryError(
                    f"{name!r} is not installed in the managed environment; installed: {listed}"
                )
            return {n: v for n, v in current.items() if n != key}

        return self.change(without, f"uninstall {key}", actor, hook_uninstalled=key)

    def sync_lock(self, lock_text: str, source: str, actor: str = "") -> ChangeResult:
        """Install exactly the set a lock names (hashes required), replacing everything else."""
        from .catalogue import why_not
        from .models import CatalogueVersion

        pins = parse_lock(lock_text, source)
        own, _ = split_host(pins, host_distributions(), source)

        def catalogue_rows() -> dict[tuple[str, str], CatalogueVersion]:
            rows = CatalogueVersion.objects.filter(name__in=[pin.name for pin in own])
            return {(row.name, row.version): row for row in rows}

        known = catalogue_rows()
        # The index is asked only about files the catalogue has not seen: the hashes decide.
        unseen = sorted(
            {
                pin.name
                for pin in own
                if (pin.name, pin.version) not in known
                or f"sha256:{known[pin.name, pin.version].sha256}" not in pin.hashes
            }
        )
        if unseen:
            sync_catalogue(self.client, unseen)
            known = catalogue_rows()
        plugin_names = {name for (name, _), row in known.items() if row.is_plugin}
        requested = {}
        for pin in own:
            if pin.name not in plugin_names:
                continue  # a dependency of a plugin
            row = known.get((pin.name, pin.version))
            if row is None or not row.available:
                raise LockError(f"{source}: {pin.name}=={pin.version} is not on the index")
            if row.withdrawn or not row.compatible:
                raise LockError(f"{source}: {pin.name}=={pin.version}: {why_not(row)}")
            requested[pin.name] = pin.version
        lock = format_lock(own, [], requested)
        return self.change(lambda _: requested, f"sync {source}", actor, lock_text=lock)

    def change(
        self,
        desired: Callable[[dict[str, str]], dict[str, str]],
        action: str,
        actor: str = "",
        *,
        lock_text: str | None = None,
        hook_installed: list[str] = (),  # type: ignore[assignment]
        hook_uninstalled: str | None = None,
    ) -> ChangeResult:
        """Build, check and activate the generation for ``desired(currently requested)``."""
        with change_lock(self.say):
            self.recover()
            started = time.monotonic()
            active = self.active()
            requested = desired(dict(active.requested) if active else {})
            self.say(f"resolving {len(requested)} plugin(s)")
            lock = lock_text if lock_text is not None else self.resolve(requested)
            if (
                active is not None
                and active.requested == requested
                and parse_lock(active.lock) == parse_lock(lock)
            ):
                self.say(f"nothing to change: generation {active.number} already has that set")
                return ChangeResult(active.number, [])
            with transaction.atomic():
                list(RegistryGeneration.objects.select_for_update().filter(pk=1))
                number = (EnvironmentGeneration.objects.aggregate(n=Max("number"))["n"] or 0) + 1
                row = EnvironmentGeneration.objects.create(
                    number=number,
                    status=Status.BUILDING,
                    action=action[:500],
                    requested=requested,
                    lock=lock,
                    actor=actor[:150],
                )
            try:
                self.say(f"building generation {number}")
                folder = self.build(number, lock)
                self.say(f"checking generation {number}")
                self.check(folder)
            except BaseException as exc:
                row.status = Status.FAILED
                row.error = str(exc)[:10000]
                row.save(update_fields=["status", "error"])
                shutil.rmtree(generation_dir(number), ignore_errors=True)
                shutil.rmtree(generation_dir(number).with_name(f"{number:04d}.tmp"), True)
                raise
            if hook_uninstalled:
                _call_lifecycle_hook(hook_uninstalled, "plugin_uninstalled", self.say)
            result = self.activate(row, folder)
            for name in hook_installed:
                _mark_installed(canonicalize_name(name), self.say)
            self.say(f"generation {number} active ({time.monotonic() - started:.2f} s)")
            return result

    def activate(
        self,
        row: EnvironmentGeneration,
        folder: Path,
        *,
        rollback: bool = False,
        actor: str = "",
    ) -> ChangeResult:
        """Make ``row`` the active generation: database first, then the symlink."""
        from services_ai.host.runtime import switching_environment

        with switching_environment():
            result = self._activate(row, folder, rollback=rollback, actor=actor)
        for change in result.changes:
            for line in change.describe():
                self.say(line)
        return result

    def _activate(
        self, row: EnvironmentGeneration, folder: Path, *, rollback: bool, actor: str
    ) -> ChangeResult:
        previous = conf.loaded_generation()
        conf.use_generation(folder)  # this process now sees the new generation's plugins
        try:
            with transaction.atomic():
                list(RegistryGeneration.objects.select_for_update().filter(pk=1))
                before = _registry_snapshot()
                EnvironmentGeneration.objects.filter(status=Status.ACTIVE).exclude(
                    pk=row.pk
                ).update(status=Status.INACTIVE)
                row.status = Status.ACTIVE
                row.activated_at = timezone.now()
                row.error = ""
                row.save(update_fields=["status", "activated_at", "error"])
                report = sync_registry()
                changes = _diff(before, _registry_snapshot())
                record(
                    row.actor if not rollback else actor,
                    "rollback" if rollback else "environment",
                    f"generation {row.number}: {row.action}"
                    if not rollback
                    else f"generation {row.number}",
                    {name: version for name, (version, _, _) in before.items()},
                    dict(row.requested),
                )
        except BaseException:
            conf.use_generation(previous)
            raise
        switch_link(folder)
        self._write_current_files(row)
        self.prune()
        return ChangeResult(row.number, changes, report)

    def _write_current_files(self, row: EnvironmentGeneration) -> None:
        (conf.environment_dir() / "plugins.in").write_text(format_in(row.requested))
        (conf.environment_dir() / "plugins.lock").write_text(row.lock)

    def rollback(self, to: int | None = None, actor: str = "") -> ChangeResult:
        """Switch back to the previous generation (or generation ``to``) in one step."""
        with change_lock(self.say):
            self.recover()
            active = self.active()
            candidates = EnvironmentGeneration.objects.filter(status=Status.INACTIVE).order_by(
                "-activated_at", "-number"
            )
            if to is not None:
                candidates = candidates.filter(number=to)
            elif active is not None:
                candidates = candidates.exclude(number=active.number)
            target = candidates.first()
            if target is None:
                what = f"generation {to}" if to is not None else "an earlier generation"
                raise RegistryError(f"no {what} to roll back to: see `services-ai plugins history`")
            folder = generation_dir(target.number)
            if not (folder / "plugins.lock").exists():
                self.say(f"generation {target.number} was pruned here; rebuilding it from its lock")
                folder = self.build(target.number, target.lock)
                self.check(folder)
            self.say(
                f"rolling back from generation {active.number if active else '-'} "
                f"to {target.number}"
            )
            return self.activate(target, folder, rollback=True, actor=actor)

    # -- recovery and housekeeping ---------------------------------------------------------

    def recover(self) -> None:
        """Clean up after an interrupted change and converge on the database's active generation."""
        root = generations_dir()
        if root.exists():
            for leftover in root.glob("*.tmp"):
                self.say(f"removing {leftover.name}, left by an interrupted change")
                shutil.rmtree(leftover, ignore_errors=True)
        interrupted = EnvironmentGeneration.objects.filter(status=Status.BUILDING)
        for row in interrupted:
            shutil.rmtree(generation_dir(row.number), ignore_errors=True)
        interrupted.update(status=Status.FAILED, error="interrupted before it was activated")
        active = self.active()
        if active is None:
            return
        folder = generation_dir(active.number)
        if not (folder / "plugins.lock").exists():
            self.say(f"generation {active.number} is not built on this node; building it")
            folder = self.build(active.number, active.lock)
            self.check(folder)
        from services_ai.host.runtime import switching_environment

        if conf.active_generation_dir() != folder or conf.loaded_generation() != folder:
            with switching_environment():
                if conf.active_generation_dir() != folder:
                    self.say(f"switching this node to generation {active.number}")
                    switch_link(folder)
                    self._write_current_files(active)
                conf.use_generation(folder)

    def prune(self) -> None:
        """Keep the newest generations on disk (``SERVICES_AI_KEEP_GENERATIONS``, default 5)."""
        keep = max(keep_generations(), 2)
        active = conf.active_generation_dir()
        folders = sorted(
            (p for p in generations_dir().iterdir() if p.name.isdigit()),
            key=lambda p: int(p.name),
            reverse=True,
        )
        for folder in folders[keep:]:
            if folder != active:
                shutil.rmtree(folder, ignore_errors=True)


def _check_in_fork(generation: Path, timeout: float = 300.0) -> dict:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: import, report, exit without running any cleanup of the parent's
        status = 0
        try:
            os.close(read_end)
            from .envcheck import check_generation

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
            ["-m", "plugin_registry.envcheck"], env={conf.GENERATION_ENV: str(generation)}
        )
    except RegistryError as exc:
        raise RegistryError(f"checking the new environment failed: {exc}") from None


def json_from_child(
    args: list[str], *, env: dict[str, str] | None = None, input: str | None = None,
    timeout: float = 300,
) -> Any:  # fmt: skip
    """Run this Python with the platform's settings and ``args``; return its last JSON line.

    The child sees no development plugin folders (``SERVICES_AI_PLUGIN_PATH``): only the
    platform and what it is asked to look at.
    """
    child_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "services_ai.settings"),
        **(env or {}),
    }
    child_env.pop(conf.PLUGIN_PATH_ENV, None)
    result = subprocess.run(
        [sys.executable, *args], env=child_env, input=input, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RegistryError(f"the child process printed no result:\n"
                            f"{result.stderr.strip()[-3000:]}") from None  # fmt: skip


def switch_link(folder: Path) -> None:
    """Point ``env/active`` at ``folder`` with one atomic rename."""
    link = conf.active_link()
    tmp = link.with_name(f".active.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(folder.relative_to(link.parent))
    os.replace(tmp, link)


def _call_lifecycle_hook(name: str, hook: str, say: Say) -> None:
    """Call ``plugin_installed``/``plugin_uninstalled`` on one enabled plugin only."""
    from services_ai.host.runtime import get_host

    plugin = Plugin.objects.filter(name=name).first()
    if plugin is None or not plugin.enabled:
        return  # disabled plugins are never imported; it runs at the next enable instead
    host = get_host()
    if name not in host.implementers(hook):
        return  # the plugin does not implement it (or failed to load: recorded by the host)
    outcome = host.call_one(name, hook)
    if outcome.failure is not None:
        say(f"warning: {name}'s {hook} hook failed: {outcome.failure.message}")
    elif outcome.skipped:
        say(f"{name}'s {hook} hook was not called: {outcome.skipped}")


def _mark_installed(name: str, say: Say) -> None:
    Plugin.objects.filter(name=name).update(installed_hook_pending=True)
    plugin = Plugin.objects.filter(name=name).first()
    if plugin is not None and plugin.enabled:
        run_installed_hook(name, say)


def run_installed_hook(name: str, say: Say | None = None) -> None:
    """Call a newly installed or upgraded plugin's ``plugin_installed`` once, when it is enabled."""
    if not Plugin.objects.filter(name=name, installed_hook_pending=True).update(
        installed_hook_pending=False
    ):
        return
    _call_lifecycle_hook(name, "plugin_installed", say or (lambda m: logger.warning("%s", m)))


def node_is_behind() -> bool:
    """Is this node's environment not the generation the database names as active?"""
    active = Environment.active()
    return active is not None and conf.active_generation_dir() != generation_dir(active.number)


def converge(say: Say, *, wait: bool = True) -> None:
    """Bring this node to the database's active generation if it lags behind.

    Run before registry actions (a refresh on a lagging node would mark plugins installed
    elsewhere as missing) and by the worker supervisor every few seconds. With
    ``wait=False`` a change in progress on this node is left to finish this time.
    """
    if not node_is_behind():
        return
    environment = Environment(say=say)
    try:
        with change_lock(say, wait=wait):
            environment.recover()
    except BlockingIOError:
        return


def registry_action(action: Callable[[SyncReport], T], say: Say) -> T:
    """Run an admin action on the registry, its mirror refreshed in the same transaction.

    A refused action rolls the refresh back too, so bad input changes nothing; a node that lags
    behind the database catches up first (the refresh would otherwise mark plugins installed
    elsewhere as missing). The command line and the console both act through here.
    """
    converge(say)
    with transaction.atomic():
        return action(sync_registry())


def history() -> list[EnvironmentGeneration]:
    return list(EnvironmentGeneration.objects.order_by("-number"))


def drift(lock_text: str, source: str) -> list[str]:
    """Return how the active generation differs from a lock (empty: no drift)."""
    want, _ = split_host(parse_lock(lock_text, source), host_distributions(), source)
    active = Environment.active()
    have_pins: list[Pin] = parse_lock(active.lock) if active else []
    have = {pin.name: pin for pin in have_pins}
    wanted = {pin.name: pin for pin in want}
    problems = []
    for name in sorted(set(have) | set(wanted)):
        a, b = have.get(name), wanted.get(name)
        if a is None and b is not None:
            problems.append(f"missing: {b.name}=={b.version} is in {source} but not installed")
        elif b is None and a is not None:
            problems.append(f"extra: {a.name}=={a.version} is installed but not in {source}")
        elif a is not None and b is not None and a.version != b.version:
            problems.append(f"version: {name} is {a.version} here, {source} pins {b.version}")
        elif a is not None and b is not None and not (a.hashes & b.hashes):
            problems.append(f"hash: {name}=={a.version} was installed from another file")
    # What is really on disk must match the active lock too.
    folder = conf.active_generation_dir()
    if folder is not None and active is not None:
        site = conf.site_packages(folder)
        on_disk = {
            canonicalize_name(d.metadata["Name"]): d.version
            for d in importlib.metadata.distributions(path=[str(site)])
        }
        for name, pin in have.items():
            if on_disk.get(name) != pin.version:
                problems.append(
                    f"environment: {name} is {on_disk.get(name, 'missing')} on disk, "
                    f"the active lock says {pin.version}"
                )
    return problems
