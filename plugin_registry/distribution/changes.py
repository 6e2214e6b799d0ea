"""One environment change at a time, and what a change did to the plugins (for its report)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.db import connection

from plugin_registry.registry.models import Plugin
from plugin_registry.registry.settings_store import missing_required
from plugin_registry.registry.sync import SyncReport
from services_ai import conf

logger = logging.getLogger(__name__)
Say = Callable[[str], None]
ADVISORY_LOCK = 0x5A1_E7A1  # PostgreSQL advisory lock key of environment changes


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
