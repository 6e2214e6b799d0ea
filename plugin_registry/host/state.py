"""What the registry allows: which plugins load and which permissions each holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


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

    def granted(self, plugin: str) -> frozenset[str]:
        """Return the permissions granted to ``plugin``."""
        return self.grants.get(plugin, frozenset())
