"""The app's models module, where Django looks for them; they live in ``registry.models``."""

from plugin_registry.registry.models import (
    AuditEntry,
    CatalogueVersion,
    EnvironmentGeneration,
    Operation,
    Plugin,
    PluginData,
    PluginFailure,
    PluginPermission,
    PluginSetting,
    RegistryGeneration,
)

__all__ = [
    "AuditEntry",
    "CatalogueVersion",
    "EnvironmentGeneration",
    "Operation",
    "Plugin",
    "PluginData",
    "PluginFailure",
    "PluginPermission",
    "PluginSetting",
    "RegistryGeneration",
]
