"""System checks of the managed environment (``plugin_registry.W005``)."""

from __future__ import annotations

from django.core.checks import Tags, Warning, register

from plugin_registry.distribution.reconcile import node_is_behind
from plugin_registry.registry.models import EnvironmentGeneration
from services_ai import conf


@register(Tags.database)
def check_environment_generation(app_configs=None, databases=None, **kwargs) -> list:
    """W005: this node's managed environment is not the generation the database names."""
    from django.db import connections

    if not databases or "default" not in databases:
        return []
    table = EnvironmentGeneration._meta.db_table
    if table not in connections["default"].introspection.table_names():
        return []
    if not node_is_behind():
        return []
    active = EnvironmentGeneration.objects.get(status="active")
    here = conf.active_generation_dir()
    return [
        Warning(
            f"this node runs plugin environment {here.name if here else 'none'}, but the "
            f"database's active generation is {active.number}.",
            hint="Run `services-ai plugins recover` on this node (it builds the generation from "
            "its lock if needed and switches to it).",
            id="plugin_registry.W005",
        )
    ]
