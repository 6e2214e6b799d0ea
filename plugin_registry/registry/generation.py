"""The registry generation counter: how every process notices enable/disable/grant changes.

Reading the counter costs a database query, too much for every hook call (a hook call over ten
plugins costs a few microseconds, the query a hundred and more), so each process reads it once
per unit of work instead: :data:`check` says when a read is due. A read is due at the first
hook call after :meth:`GenerationCheck.due` (the runtime calls it when a web request or a task
starts; :func:`bump_generation` calls it in the process that made the change) and otherwise
every :data:`CHECK_EVERY` seconds.
"""

from __future__ import annotations

from time import monotonic

from django.db import connection, transaction
from django.db.models import F

from plugin_registry.registry.models import RegistryGeneration

#: The longest a process goes on trusting the generation it read last, in seconds.
CHECK_EVERY = 1.0


def current_generation() -> int:
    """Return the registry generation with one small query (no ORM overhead)."""
    table = RegistryGeneration._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT generation FROM {table} WHERE id = 1")
        row = cursor.fetchone()
    return row[0] if row else 0


class GenerationCheck:
    """When this process must read the registry generation again.

    Each :meth:`due` hands out a new token; a read records the token it started under (taken
    before its query), so a read that raced with a later ``due`` does not count for it.
    Thread-safe without a lock: each step is one attribute assignment.
    """

    __slots__ = ("_due", "_read", "_until", "every")

    def __init__(self, every: float = CHECK_EVERY) -> None:
        self.every = every
        self._due = object()
        self._read: object | None = None
        self._until = 0.0

    def due(self) -> None:
        """Make the next hook call read the generation (a request or task starts, a change)."""
        self._due = object()

    def needed(self) -> bool:
        """Return whether a read is due: asked since the last one, or the last is too old."""
        return self._read is not self._due or monotonic() >= self._until

    def begin(self) -> object:
        """Return the token to hand to :meth:`done` once the read (the query) is over."""
        return self._due

    def done(self, token: object) -> None:
        """Note a read that started under ``token``: none is due for ``every`` seconds."""
        self._until = monotonic() + self.every
        self._read = token


#: This process's check (the runtime's ``get_host`` consults it before every hook call).
check = GenerationCheck()


def bump_generation() -> None:
    """Advance the generation; call inside the transaction that made the change.

    This process sees the change at its next hook call: a read is due at once (the process's
    own transaction sees the new value) and again when the transaction commits (for its other
    threads, which could not see it before).
    """
    updated = RegistryGeneration.objects.filter(pk=1).update(generation=F("generation") + 1)
    if not updated:
        RegistryGeneration.objects.get_or_create(pk=1, defaults={"generation": 1})
    check.due()
    transaction.on_commit(check.due)
