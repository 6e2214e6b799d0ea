"""Helpers shared by the platform's management commands."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from plugin_registry.errors import RegistryError

#: Tables that exist once the platform's migrations ran (looked up by name: this module sits
#: below the apps that own them).
MIGRATED_MODELS = (
    ("plugin_registry", "Plugin"),
    ("events", "Delivery"),
    ("django_tasks_database", "DBTaskResult"),
)


def require_migrated() -> None:
    """Refuse to run against a database whose platform tables do not exist yet."""
    needed = {apps.get_model(app, model)._meta.db_table for app, model in MIGRATED_MODELS}
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
        try:
            getattr(self, f"do_{action.replace('-', '_')}")(**options)
        except RegistryError as exc:
            raise CommandError(str(exc)) from None
