"""The public API for Services AI plugin authors.

    from services_ai.plugins import hookimpl

    @hookimpl
    def lead_created(lead):
        ...

Everything a plugin may rely on is exported here; other modules of ``services_ai`` are
internal and may change without notice.
"""

from services_ai.plugins import api
from services_ai.plugins.context import DeliveryInfo
from services_ai.plugins.exceptions import (
    ManifestError,
    NoPluginContext,
    PluginError,
    PluginLoadError,
    PluginPermissionDenied,
    SettingsError,
)
from services_ai.plugins.hookspecs import HOOK_NAMES, SINGLE_PLUGIN_HOOKS
from services_ai.plugins.markers import ENTRY_POINT_GROUP, PROJECT_NAME, hookimpl, hookspec
from services_ai.plugins.permissions import EXPORT_DATA_TYPES, HOOK_PERMISSIONS, PERMISSIONS
from services_ai.plugins.types import (
    SNAPSHOT_VERSION,
    BookingSnapshot,
    Export,
    LeadSnapshot,
    Widget,
    WidgetContext,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "EXPORT_DATA_TYPES",
    "HOOK_NAMES",
    "HOOK_PERMISSIONS",
    "PERMISSIONS",
    "PROJECT_NAME",
    "SINGLE_PLUGIN_HOOKS",
    "SNAPSHOT_VERSION",
    "BookingSnapshot",
    "DeliveryInfo",
    "Export",
    "LeadSnapshot",
    "ManifestError",
    "NoPluginContext",
    "PluginError",
    "PluginLoadError",
    "PluginPermissionDenied",
    "SettingsError",
    "Widget",
    "WidgetContext",
    "api",
    "hookimpl",
    "hookspec",
]
