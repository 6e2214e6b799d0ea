"""Building the host's registry snapshot from the database."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from plugin_registry.host import RegistryState
from plugin_registry.registry.generation import current_generation
from plugin_registry.registry.models import Plugin, PluginPermission


def load_state(
    names: Iterable[str] | None = None, *, with_generation: bool = True
) -> RegistryState:
    """Return which plugins are installed and enabled and what each is granted.

    ``names`` limits the snapshot to those plugins (a delivery re-checks one); without
    ``with_generation`` the snapshot's generation is 0 (it is not for a host).
    A plugin whose manifest is invalid counts as not enabled: it receives nothing. A
    quarantined plugin is not enabled either, but what it would receive is kept (its events
    are held for it).
    """
    generation = current_generation() if with_generation else 0
    plugins = Plugin.objects.filter(installed=True)
    if names is not None:
        plugins = plugins.filter(name__in=list(names))
    installed: set[str] = set()
    declared: dict[str, frozenset[str]] = {}
    quarantined: set[str] = set()
    for plugin in plugins.only("name", "enabled", "manifest", "manifest_error", "quarantined_at"):
        installed.add(plugin.name)
        if plugin.enabled and not plugin.manifest_error:
            declared[plugin.name] = frozenset(plugin.hooks)
            if plugin.quarantined_at is not None:
                quarantined.add(plugin.name)
    grants: dict[str, set[str]] = defaultdict(set)
    for plugin_name, perm in PluginPermission.objects.filter(
        granted=True, requested=True, plugin__name__in=list(declared)
    ).values_list("plugin__name", "name"):
        grants[plugin_name].add(perm)
    return RegistryState(
        generation=generation,
        enabled=frozenset(declared) - quarantined,
        grants={name: frozenset(perms) for name, perms in grants.items()},
        declared_hooks=declared,
        installed=frozenset(installed),
        quarantined=frozenset(quarantined),
    )
