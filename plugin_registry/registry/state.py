"""Building the host's registry snapshot from the database."""

from __future__ import annotations

from collections import defaultdict

from plugin_registry.host import RegistryState
from plugin_registry.registry.generation import current_generation
from plugin_registry.registry.models import Plugin, PluginPermission


def load_state() -> RegistryState:
    """Return which plugins are enabled and what each is granted, at the current generation."""
    generation = current_generation()
    plugins = Plugin.objects.filter(enabled=True, installed=True).only("name", "manifest")
    declared = {plugin.name: frozenset(plugin.hooks) for plugin in plugins}
    enabled = frozenset(declared)
    grants: dict[str, set[str]] = defaultdict(set)
    for plugin, perm in PluginPermission.objects.filter(
        granted=True, requested=True, plugin__name__in=enabled
    ).values_list("plugin__name", "name"):
        grants[plugin].add(perm)
    return RegistryState(
        generation=generation,
        enabled=enabled,
        grants={name: frozenset(perms) for name, perms in grants.items()},
        declared_hooks=declared,
    )
