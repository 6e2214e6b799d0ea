"""Which plugins an event goes to, and whether a delivery may still run.

Both ask the registry's one policy (``RegistryState.why_not``); this module only phrases the
answer for the moment of a delivery.
"""

from __future__ import annotations

from plugin_registry.host.state import Ineligible, RegistryState
from plugin_registry.registry.state import load_state
from services_ai.plugins.permissions import HOOK_PERMISSIONS

HELD_REASON = "held: the plugin is quarantined; enable it again to resume"


def subscribers(hook: str) -> list[str]:
    """Return the enabled plugins whose manifest lists ``hook`` and that hold its permission.

    Quarantined plugins are among them: their deliveries are recorded and held for them.
    """
    state = load_state(with_generation=False)
    permission = HOOK_PERMISSIONS.get(hook)
    return sorted(
        name
        for name in state.enabled | state.quarantined
        if state.why_not(name, hook, permission) in (None, Ineligible.QUARANTINED)
    )


def why_not_deliverable(
    plugin_name: str, hook: str, state: RegistryState | None = None
) -> tuple[str, bool]:
    """Return why a delivery must not run now, or '', and whether it is held rather than
    skipped (its plugin is quarantined: it runs once an admin lifts the quarantine).

    ``state`` is a registry snapshot known to be current (the worker's host, just compared
    with the registry generation); without it the registry is read.
    """
    permission = HOOK_PERMISSIONS.get(hook)
    if state is None:
        state = load_state([plugin_name], with_generation=False)
    reason = state.why_not(plugin_name, hook, permission)
    if reason is None:
        return "", False
    if reason is Ineligible.QUARANTINED:
        return HELD_REASON, True
    return {
        Ineligible.NOT_INSTALLED: "plugin is not installed",
        Ineligible.NOT_ENABLED: "plugin was disabled after the event",
        Ineligible.NOT_SUBSCRIBED: f"its hook_specs no longer list {hook!r}",
        Ineligible.NOT_GRANTED: f"permission {permission!r} was revoked after the event",
    }[reason], False
