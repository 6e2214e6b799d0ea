"""The plugin host: loading, validation and isolated, permission-filtered dispatch."""

from .manager import PluginHost, create_host, discover_entry_points, plugin_name_of
from .records import HookFailure, HookOutcome, HookStats, LoadFailure
from .state import RegistryState

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
