"""Which plugins an event goes to, and whether a delivery may still run."""

from __future__ import annotations

from plugin_registry.registry.models import Plugin, PluginPermission
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


def why_not_deliverable(plugin_name: str, hook: str) -> str:
    """Return why a delivery must be skipped now (disabled, uninstalled, revoked), or ''."""
    plugin = Plugin.objects.filter(name=plugin_name).values("installed", "enabled").first()
    if plugin is None or not plugin["installed"]:
        return "plugin is not installed"
    if not plugin["enabled"]:
        return "plugin was disabled after the event"
    permission = HOOK_PERMISSIONS.get(hook)
    granted = PluginPermission.objects.filter(
        plugin__name=plugin_name, name=permission, granted=True, requested=True
    )
    if permission and not granted.exists():
        return f"permission {permission!r} was revoked after the event"
    return ""
