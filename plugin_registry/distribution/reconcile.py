"""Keeping a node on the database's desired state: catching up, drift against a lock."""

from __future__ import annotations

import importlib.metadata
import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import transaction
from packaging.utils import canonicalize_name

from plugin_registry.distribution.changes import change_lock
from plugin_registry.distribution.environment import Environment, generation_dir
from plugin_registry.distribution.host_wheels import host_distributions
from plugin_registry.distribution.lockfile import (
    Pin,
    parse_lock,
    split_host,
)
from plugin_registry.errors import RegistryError
from plugin_registry.registry.models import EnvironmentGeneration
from plugin_registry.registry.sync import SyncReport, sync_registry
from plugin_registry.runtime import follow_active_environment, recycled_by_server
from services_ai import conf

logger = logging.getLogger(__name__)
Say = Callable[[str], None]
T = TypeVar("T")


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


_background = threading.Lock()
RECOVER_TIMEOUT = 900  # seconds a background catch-up may take (a large environment's build)


def converge_in_background(**kwargs: object) -> bool:
    """Bring this node up to date without touching this process; return whether it started.

    A web process must keep answering, and must never swap its modules in place: the catch-up
    runs as a child ``services-ai plugins recover`` (which waits its turn on the change lock),
    watched from a thread. The node's ``env/active`` link then moves, and the web processes
    follow: the app server recycles its workers, the development server switches on the next
    hook call. One at a time per process.
    """
    if not _background.acquire(blocking=False):
        return False

    def run() -> None:
        try:
            result = subprocess.run(
                [sys.executable, "-m", "services_ai", "plugins", "recover"],
                capture_output=True,
                text=True,
                timeout=RECOVER_TIMEOUT,
                start_new_session=True,  # it finishes even if this process is recycled meanwhile
            )
            if result.returncode:
                logger.error(
                    "bringing this node's plugin environment up to date failed:\n%s",
                    result.stderr.strip() or result.stdout.strip(),
                )
            else:
                logger.info("plugin environment: %s", result.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            logger.exception("bringing this node's plugin environment up to date failed")
        finally:
            _background.release()

    threading.Thread(target=run, name="converge", daemon=True).start()
    return True


def registry_action(action: Callable[[SyncReport], T], say: Say) -> T:
    """Run an admin action on the registry, its mirror refreshed in the same transaction.

    A refused action rolls the refresh back too, so bad input changes nothing; a node that lags
    behind the database catches up first (the refresh would otherwise mark plugins installed
    elsewhere as missing), and so does this process when a worker moved the node to a new
    generation since it loaded its plugins. The command line and the console both act through
    here. An app server's worker never switches in place: while it is not on the active
    generation it refuses, asks for the catch-up, and is recycled onto the new generation.
    """
    if recycled_by_server():
        if node_is_behind() or conf.loaded_generation() != conf.active_generation_dir():
            converge_in_background()
            raise RegistryError(
                "this web process is moving to the plugin environment the database names as "
                "active; try again in a few seconds"
            )
    else:
        converge(say)
        follow_active_environment()
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
        on_disk: dict[str, str] = {
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
