"""Admin actions on the registry: each validates first, then changes everything or nothing.

Every change advances the registry generation in the same transaction, so every process sees
it at its next request or task (``runtime.get_host``).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from plugin_registry.errors import RegistryError, SettingsInvalid
from plugin_registry.registry.audit import record, redact_settings
from plugin_registry.registry.generation import bump_generation
from plugin_registry.registry.models import Plugin, PluginPermission, PluginSetting
from plugin_registry.registry.quarantine import lift
from plugin_registry.registry.secrets import encrypt
from plugin_registry.registry.setting_types import coerce_setting
from plugin_registry.registry.settings_store import missing_required
from plugin_registry.registry.signals import installed_hook_due
from services_ai.plugins.exceptions import SettingsError
from services_ai.plugins.permissions import PERMISSION_ALIASES, PERMISSIONS

logger = logging.getLogger("plugin_registry.admin")


def get_plugin(name: str, *, for_update: bool = False) -> Plugin:
    from packaging.utils import canonicalize_name

    qs = Plugin.objects.select_for_update() if for_update else Plugin.objects
    plugin = qs.filter(name=canonicalize_name(name)).first()
    if plugin is None:
        known = ", ".join(Plugin.objects.filter(installed=True).values_list("name", flat=True))
        raise RegistryError(f"unknown plugin {name!r}; installed plugins: {known or 'none'}")
    return plugin


@transaction.atomic
def enable(name: str, *, actor: str = "") -> Plugin:
    plugin = get_plugin(name, for_update=True)
    if not plugin.installed:
        raise RegistryError(f"plugin {plugin.name!r} is not installed")
    if plugin.manifest_error:
        raise RegistryError(f"cannot enable {plugin.name!r}: {plugin.manifest_error}")
    missing = missing_required(plugin)
    if missing:
        keys = ", ".join(missing)
        raise RegistryError(
            f"cannot enable {plugin.name!r}: required setting(s) not set: {keys}; set them with "
            f"`services-ai plugins configure {plugin.name} {missing[0]}=VALUE`"
        )
    if not plugin.enabled:
        plugin.enabled = True
        plugin.save(update_fields=["enabled", "updated_at"])
        bump_generation()
        record(actor, "enable", plugin.name, {"enabled": False}, {"enabled": True})
        logger.info("%s enabled plugin %s", actor or "someone", plugin.name)
    lift(plugin, actor=actor)  # enabling a quarantined plugin again is how an admin lifts it
    if plugin.installed_hook_pending:
        transaction.on_commit(lambda: installed_hook_due.send(Plugin, name=plugin.name))
    return plugin


@transaction.atomic
def disable(name: str, *, actor: str = "") -> Plugin:
    plugin = get_plugin(name, for_update=True)
    if plugin.enabled:
        plugin.enabled = False
        plugin.save(update_fields=["enabled", "updated_at"])
        bump_generation()
        record(actor, "disable", plugin.name, {"enabled": True}, {"enabled": False})
        logger.info("%s disabled plugin %s", actor or "someone", plugin.name)
    return plugin


def _requested_permission(plugin: Plugin, permission: str) -> PluginPermission:
    permission = PERMISSION_ALIASES.get(permission, permission)
    if permission not in PERMISSIONS:
        raise RegistryError(f"unknown permission {permission!r}; known: {', '.join(PERMISSIONS)}")
    perm = plugin.permissions.select_for_update().filter(name=permission, requested=True).first()
    if perm is None:
        asked = ", ".join(plugin.permissions.filter(requested=True).values_list("name", flat=True))
        raise RegistryError(
            f"plugin {plugin.name!r} does not request {permission!r}; "
            f"it requests: {asked or 'nothing'}"
        )
    return perm


@transaction.atomic
def set_grant(name: str, permission: str, granted: bool, *, actor: str = "") -> PluginPermission:
    plugin = get_plugin(name, for_update=True)
    perm = _requested_permission(plugin, permission)
    permission = perm.name
    if perm.granted != granted:
        perm.granted = granted
        perm.changed_by = actor
        perm.save(update_fields=["granted", "changed_by", "changed_at"])
        bump_generation()
        record(
            actor,
            "grant" if granted else "revoke",
            f"{plugin.name}:{permission}",
            {"granted": not granted},
            {"granted": granted},
        )
        logger.info(
            "%s %s %s to plugin %s",
            actor or "someone",
            "granted" if granted else "revoked",
            permission,
            plugin.name,
        )
    return perm


@transaction.atomic
def configure(name: str, values: dict[str, Any], *, actor: str = "") -> dict[str, Any]:
    """Validate every value first; store all of them or none. Return the stored values."""
    plugin = get_plugin(name, for_update=True)
    specs = {spec["name"]: spec for spec in plugin.setting_specs}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise RegistryError(
            f"plugin {plugin.name!r} has no setting(s) {', '.join(unknown)}; "
            f"its settings: {', '.join(specs) or 'none'}"
        )
    coerced: dict[str, Any] = {}
    problems: list[SettingsError] = []
    for key, raw in values.items():
        try:
            coerced[key] = coerce_setting(specs[key], raw, plugin=plugin.name)
        except SettingsError as exc:
            problems.append(exc)
    if problems:
        raise SettingsInvalid(problems)
    stored = dict(plugin.settings.filter(key__in=list(coerced)).values_list("key", "value"))
    for key, value in coerced.items():
        if specs[key].get("type") == "secret" and value is not None:
            value = encrypt(value)  # encrypted at rest; the audit entry below is redacted
        PluginSetting.objects.update_or_create(plugin=plugin, key=key, defaults={"value": value})
    spec_list = list(specs.values())
    record(
        actor,
        "configure",
        plugin.name,
        redact_settings({key: stored.get(key) for key in coerced}, spec_list),
        redact_settings(coerced, spec_list),
    )
    if plugin.enabled and missing_required(plugin):
        raise RegistryError(
            f"plugin {plugin.name!r} is enabled and needs: {', '.join(missing_required(plugin))}"
        )
    bump_generation()
    logger.info("%s configured plugin %s: %s", actor or "someone", plugin.name, ", ".join(coerced))
    return coerced
