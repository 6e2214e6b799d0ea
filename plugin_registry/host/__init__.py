"""The plugin host: loading, validation and isolated, permission-filtered dispatch."""

from plugin_registry.host.manager import (
    PluginHost,
    create_host,
    discover_entry_points,
    plugin_name_of,
)
from plugin_registry.host.records import HookFailure, HookOutcome, HookStats, LoadFailure
from plugin_registry.host.state import RegistryState

__all__ = [
    "HookFailure",
    "HookOutcome",
    "HookStats",
    "LoadFailure",
    "PluginHost",
    "RegistryState",
    "create_host",
    "discover_entry_points",
    "plugin_name_of",
]
