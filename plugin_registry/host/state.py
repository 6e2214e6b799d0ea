"""What the registry allows: which plugins load, which permissions each holds, who gets a hook.

:meth:`RegistryState.why_not` is the one policy for "does plugin P receive hook H now, and if
not, why": the host's dispatch, single-plugin calls, the event fan-out and the delivery-time
re-check all ask it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class Ineligible(enum.Enum):
    """Why a plugin does not receive a hook; callers phrase it for their moment."""

    NOT_INSTALLED = "not installed"
    NOT_ENABLED = "not enabled"
    NOT_SUBSCRIBED = "hook not in its hook_specs"
    NOT_GRANTED = "permission not granted"
    QUARANTINED = "quarantined"  # it would receive the hook: its deliveries are held


@dataclass(frozen=True)
class RegistryState:
    """A snapshot of the registry that the host dispatches by.

    ``generation`` grows with every enable, disable, grant or revoke, so a process can tell
    with one cheap comparison whether its snapshot is stale.
    """

    generation: int = 0
    enabled: frozenset[str] = frozenset()
    grants: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # The hooks each plugin's manifest declares (``hook_specs``); plugins absent here (handed
    # to the host directly, as in tests) are not checked against a manifest.
    declared_hooks: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # The installed plugins, enabled or not; ``None`` when unknown (a host handed its plugins).
    installed: frozenset[str] | None = None
    # Enabled plugins whose code crashed or stalled processes repeatedly: never imported,
    # never called; ``declared_hooks`` and ``grants`` still say what they would receive.
    quarantined: frozenset[str] = frozenset()

    def granted(self, plugin: str) -> frozenset[str]:
        """Return the permissions granted to ``plugin``."""
        return self.grants.get(plugin, frozenset())

    def why_not(self, plugin: str, hook: str, permission: str | None) -> Ineligible | None:
        """Return why ``plugin`` does not receive ``hook`` (needing ``permission``), or None."""
        if self.installed is not None and plugin not in self.installed:
            return Ineligible.NOT_INSTALLED
        if plugin not in self.enabled and plugin not in self.quarantined:
            return Ineligible.NOT_ENABLED
        declared = self.declared_hooks.get(plugin)
        if declared is not None and hook not in declared:
            return Ineligible.NOT_SUBSCRIBED
        if permission is not None and permission not in self.granted(plugin):
            return Ineligible.NOT_GRANTED
        if plugin in self.quarantined:
            return Ineligible.QUARANTINED
        return None
