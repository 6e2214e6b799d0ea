"""Helpers shared by the platform's management commands."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db import connection


def require_migrated() -> None:
    """Refuse to run against a database whose platform tables do not exist yet."""
    from django_tasks_db.models import DBTaskResult

    from plugin_registry.models import Plugin
    from services_ai.events.models import Delivery

    needed = {model._meta.db_table for model in (Plugin, Delivery, DBTaskResult)}
    missing = needed - set(connection.introspection.table_names())
    if missing:
        raise CommandError(
            f"the database ({connection.settings_dict['NAME']}) is not set up: "
            "run `services-ai migrate` first"
        )
