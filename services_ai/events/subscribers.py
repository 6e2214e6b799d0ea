"""Which plugins an event goes to, and whether a delivery may still run."""

from __future__ import annotations

from plugin_registry.models import Plugin, PluginPermission
from services_ai.host import RegistryState
from services_ai.plugins.permissions import HOOK_PERMISSIONS


def subscribers(hook: str) -> list[str]:
    """Return the enabled plugins whose manifest lists ``hook`` and that hold its permission."""
    plugins = Plugin.objects.filter(enabled=True, installed=True, manifest_error="")
    names = [p.name for p in plugins.only("name", "manifest") if hook in p.hooks]
    permission = HOOK_PERMISSIONS.get(hook)
    if permission is None or not names:
        return sorted(names)
    granted = PluginPermission.objects.filter(
        plugin__name__in=names, name=permission, granted=True, requested=True
    ).values_list("plugin__name", flat=True)
    return sorted(granted)


def why_not_deliverable(state: RegistryState, plugin_name: str, hook: str) -> str:
    """Return why a delivery must be skipped now (disabled, uninstalled, revoked), or ''.

    ``state`` is the registry snapshot of the process's host, current as of this call.
    """
    if plugin_name not in state.enabled:
        installed = Plugin.objects.filter(name=plugin_name, installed=True).exists()
        return "plugin was disabled after the event" if installed else "plugin is not installed"
    permission = HOOK_PERMISSIONS.get(hook)
    if permission and permission not in state.granted(plugin_name):
        return f"permission {permission!r} was revoked after the event"
    return ""
