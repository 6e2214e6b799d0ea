"""Helpers shared by the platform's management commands."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
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


class ActionCommand(BaseCommand):
    """A command with sub-actions: ``do_<action>`` methods; a RegistryError becomes its message."""

    def say(self, message: str) -> None:
        self.stdout.write(message)

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        from plugin_registry.services import RegistryError

        try:
            getattr(self, f"do_{action.replace('-', '_')}")(**options)
        except RegistryError as exc:
            raise CommandError(str(exc)) from None
