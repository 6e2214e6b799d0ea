"""The registry generation counter: how every process notices enable/disable/grant changes."""

from __future__ import annotations

from django.db import connection
from django.db.models import F

from plugin_registry.registry.models import RegistryGeneration


def current_generation() -> int:
    """Return the registry generation with one small query (no ORM overhead)."""
    table = RegistryGeneration._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT generation FROM {table} WHERE id = 1")
        row = cursor.fetchone()
    return row[0] if row else 0


def bump_generation() -> None:
    """Advance the generation; call inside the transaction that made the change."""
    updated = RegistryGeneration.objects.filter(pk=1).update(generation=F("generation") + 1)
    if not updated:
        RegistryGeneration.objects.get_or_create(pk=1, defaults={"generation": 1})
