"""Quarantine: a plugin whose code crashes or stalls platform processes repeatedly is set aside.

Each crash (a process that died inside the plugin's code) or stall (an import past the import
budget, a worker killed past its lease inside the plugin) is a *strike*, kept as a
``PluginFailure`` row. ``STRIKES`` strikes within ``WINDOW`` seconds quarantine the plugin: it
stays enabled in the registry but is imported and called nowhere, its events are held (not
lost), the audit log and every console page say so, and an admin lifts it by enabling it
again, which resumes the held deliveries.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from plugin_registry.registry.audit import record
from plugin_registry.registry.generation import bump_generation
from plugin_registry.registry.models import Plugin, PluginFailure
from plugin_registry.registry.signals import quarantine_lifted

logger = logging.getLogger("plugin_registry.quarantine")

ACTOR = "platform:quarantine"
CRASH, STALL = "<crash>", "<stall>"
STRIKE_HOOKS = (CRASH, STALL)

DEFAULTS: dict[str, Any] = {
    "STRIKES": 3,  # crashes or stalls ...
    "WINDOW": 600.0,  # ... within this many seconds quarantine a plugin
    "IMPORT_BUDGET": 10.0,  # seconds one plugin's import may take (0: no limit)
    # Seconds a hook called while someone waits (a web request, a command) may take.
    "SYNC_BUDGET": {
        "default": 30.0,
        "dashboard_widget": 5.0,
        "settings_page": 5.0,
    },
}


def get(name: str) -> Any:
    """Return one quarantine setting (``settings.SERVICES_AI_QUARANTINE`` over the defaults)."""
    return {**DEFAULTS, **getattr(settings, "SERVICES_AI_QUARANTINE", {})}[name]


def import_budget() -> float:
    return float(get("IMPORT_BUDGET"))


def sync_budget(hook: str) -> float:
    """Return the budget, in seconds, of ``hook`` called while a request or command waits."""
    budgets = {**DEFAULTS["SYNC_BUDGET"], **get("SYNC_BUDGET")}
    return float(budgets.get(hook, budgets["default"]))


def strike(plugin_name: str, kind: str, message: str) -> bool:
    """Record one crash or stall of ``plugin_name``; quarantine it at the threshold.

    Return whether the plugin is quarantined now.
    """
    if kind not in STRIKE_HOOKS:
        raise ValueError(f"a strike is one of {STRIKE_HOOKS}, not {kind!r}")
    now = timezone.now()
    with transaction.atomic():
        PluginFailure.objects.create(plugin_name=plugin_name, hook=kind, message=message[:5000])
        plugin = Plugin.objects.select_for_update().filter(name=plugin_name).first()
        if plugin is None or not plugin.installed:
            return False
        if plugin.quarantined_at is not None:
            return True
        since = now - timedelta(seconds=float(get("WINDOW")))
        if plugin.strikes_since is not None and plugin.strikes_since > since:
            since = plugin.strikes_since
        strikes = PluginFailure.objects.filter(
            plugin_name=plugin_name, hook__in=STRIKE_HOOKS, created_at__gte=since
        ).count()
        logger.error(
            "plugin %s %s (strike %d of %d): %s",
            plugin_name,
            "crashed a process" if kind == CRASH else "stalled a process",
            strikes,
            int(get("STRIKES")),
            message,
        )
        if strikes < int(get("STRIKES")):
            return False
        reason = (
            f"{strikes} crashes or stalls within {float(get('WINDOW')):g}s; the last: {message}"
        )
        plugin.quarantined_at = now
        plugin.quarantine_reason = reason[:2000]
        plugin.save(update_fields=["quarantined_at", "quarantine_reason", "updated_at"])
        bump_generation()
        record(ACTOR, "quarantine", plugin_name, {"quarantined": False}, {"reason": reason})
    logger.critical("plugin %s is quarantined: %s", plugin_name, reason)
    return True


def lift(plugin: Plugin, *, actor: str) -> bool:
    """Lift ``plugin``'s quarantine (inside the caller's transaction); return whether it was.

    Strikes before now stop counting, and the held deliveries are resumed after the commit.
    """
    if plugin.quarantined_at is None:
        return False
    before = {"quarantined": True, "reason": plugin.quarantine_reason}
    plugin.quarantined_at = None
    plugin.quarantine_reason = ""
    plugin.strikes_since = timezone.now()
    plugin.save(
        update_fields=["quarantined_at", "quarantine_reason", "strikes_since", "updated_at"]
    )
    bump_generation()
    record(actor, "lift quarantine", plugin.name, before, {"quarantined": False})
    name = plugin.name
    transaction.on_commit(lambda: quarantine_lifted.send(Plugin, name=name))
    logger.warning("%s lifted the quarantine of plugin %s", actor or "someone", name)
    return True
