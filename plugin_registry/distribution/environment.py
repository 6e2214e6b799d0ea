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

(Over 400 lines on purpose: the one ``Environment`` class is the change's state machine, resolve,
build, check, activate, roll back, recover; its steps share the rows and folders of one change.
The parts with their own seams live beside it: ``uv``, ``host_wheels``, ``changes``,
``generation_check``, ``reconcile``.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from packaging.utils import canonicalize_name

from plugin_registry.distribution.catalogue import choose, sync_catalogue, why_not
from plugin_registry.distribution.changes import (
    ChangeResult,
    _diff,
    _registry_snapshot,
    change_lock,
)
from plugin_registry.distribution.generation_check import _check_in_child, _check_in_fork
from plugin_registry.distribution.host_wheels import host_distributions, host_wheels
from plugin_registry.distribution.index import IndexClient
from plugin_registry.distribution.lockfile import (
    LockError,
    format_in,
    format_lock,
    parse_lock,
    split_host,
)
from plugin_registry.distribution.uv import installer_env, uv
from plugin_registry.errors import RegistryError
from plugin_registry.registry.audit import record
from plugin_registry.registry.models import (
    CatalogueVersion,
    EnvironmentGeneration,
    RegistryGeneration,
)
from plugin_registry.registry.sync import sync_registry
from plugin_registry.runtime import call_lifecycle_hook, mark_installed, switching_environment
from services_ai import conf

logger = logging.getLogger("plugin_registry.distribution.environment")

Say = Callable[[str], None]
Status = EnvironmentGeneration.Status
T = TypeVar("T")


def keep_generations() -> int:
    return conf.from_env("SERVICES_AI_KEEP_GENERATIONS", "5", int)


def generations_dir() -> Path:
    return conf.environment_dir() / "generations"


def generation_dir(number: int) -> Path:
    return generations_dir() / f"{number:04d}"


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
                call_lifecycle_hook(hook_uninstalled, "plugin_uninstalled", self.say)
            result = self.activate(row, folder)
            for name in hook_installed:
                mark_installed(canonicalize_name(name), self.say)
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


def switch_link(folder: Path) -> None:
    """Point ``env/active`` at ``folder`` with one atomic rename."""
    link = conf.active_link()
    tmp = link.with_name(f".active.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(folder.relative_to(link.parent))
    os.replace(tmp, link)
