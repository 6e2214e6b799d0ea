"""Reading and writing plugin settings with their declared types."""

from __future__ import annotations

from typing import Any

from plugin_registry.registry.models import Plugin, PluginSetting
from plugin_registry.registry.setting_types import coerce_setting, is_set


def effective_settings(plugin_name: str) -> dict[str, Any]:
    """Return every declared setting's value: the configured one, else the default, else None."""
    plugin = Plugin.objects.filter(name=plugin_name).first()
    if plugin is None:
        return {}
    stored = {row.key: row.value for row in plugin.settings.all()}
    return {
        spec["name"]: stored[spec["name"]]
        if stored.get(spec["name"]) is not None
        else _default(spec, plugin_name)
        for spec in plugin.setting_specs
    }


def _default(spec: dict, plugin_name: str) -> Any:
    # Defaults were validated with the manifest; coercing gives them the configured values' types.
    default = spec.get("default")
    if default is None:
        return None
    return coerce_setting({**spec, "required": False}, default, plugin=plugin_name)


def missing_required(plugin: Plugin) -> list[str]:
    """Return the keys of required settings that have neither a value nor a default."""
    stored = {row.key: row.value for row in PluginSetting.objects.filter(plugin=plugin)}
    return [
        spec["name"]
        for spec in plugin.setting_specs
        if spec.get("required") and not is_set(spec, stored.get(spec["name"]))
    ]
