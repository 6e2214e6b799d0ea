"""System checks for the plugin registry, with stable ids.

Problems of one plugin are warnings, never errors: an error would stop ``migrate`` and
``runserver``, and one broken plugin must not take the platform down with it.
"""

from __future__ import annotations

import os

from django.core.checks import Error, Tags, Warning, register

from plugin_registry.registry.models import Plugin
from plugin_registry.registry.settings_store import missing_required
from plugin_registry.registry.sync import installed_plugins
from services_ai import conf


@register()
def check_home(app_configs=None, **kwargs) -> list:
    home = conf.home()
    if not os.access(home, os.W_OK):
        return [
            Error(
                f"SERVICES_AI_HOME {home} is not writable.",
                hint="Point SERVICES_AI_HOME at a folder the platform's user can write.",
                id="plugin_registry.E001",
            )
        ]
    return []


@register()
def check_installed_manifests(app_configs=None, **kwargs) -> list:
    problems = []
    for name, found in installed_plugins().items():
        if not found.error:
            continue
        several = "entry points" in found.error and "exactly one" in found.error
        problems.append(
            Warning(
                found.error,
                hint="Fix the plugin and publish a new version; it cannot be enabled as it is."
                if not several
                else "Declare exactly one entry point in the services_ai group.",
                obj=name,
                id="plugin_registry.W002" if several else "plugin_registry.W001",
            )
        )
    return problems


@register(Tags.database)
def check_enabled_plugins(app_configs=None, databases=None, **kwargs) -> list:
    from django.db import connections

    if not databases or "default" not in databases:
        return []
    if Plugin._meta.db_table not in connections["default"].introspection.table_names():
        return []  # not migrated yet: `migrate` runs these checks before it creates the tables

    installed = installed_plugins()
    problems = []
    for plugin in Plugin.objects.filter(enabled=True):
        if plugin.name not in installed:
            problems.append(
                Warning(
                    f"plugin {plugin.name!r} is enabled but not installed.",
                    hint=f"Install it again or run `services-ai plugins disable {plugin.name}`.",
                    obj=plugin.name,
                    id="plugin_registry.W003",
                )
            )
        missing = missing_required(plugin)
        if missing:
            problems.append(
                Warning(
                    f"plugin {plugin.name!r} is enabled without required setting(s): "
                    f"{', '.join(missing)}.",
                    hint=f"Run `services-ai plugins configure {plugin.name} {missing[0]}=VALUE`.",
                    obj=plugin.name,
                    id="plugin_registry.W004",
                )
            )
    return problems
