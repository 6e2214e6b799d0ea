"""Long changes started from the console run in a thread and report progress in the database.

The page that started one polls ``Operation.log`` and ends with its success or error message.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.db import close_old_connections, connection
from django.utils import timezone

from plugin_registry.errors import RegistryError
from plugin_registry.registry.models import Operation

logger = logging.getLogger("plugin_registry.console.operations")

Work = Callable[[Callable[[str], None]], str]


def start(kind: str, description: str, actor: str, work: Work) -> Operation:
    """Record an operation and run ``work(say)`` in a background thread; return the record."""
    operation = Operation.objects.create(kind=kind, description=description[:300], actor=actor)
    thread = threading.Thread(
        target=_run, args=(operation.pk, work), name=f"operation-{operation.pk}", daemon=True
    )
    thread.start()
    return operation


def _run(pk: int, work: Work) -> None:
    lines: list[str] = []

    def say(message: str) -> None:
        lines.append(message)
        Operation.objects.filter(pk=pk).update(log="\n".join(lines))

    status, result = Operation.Status.FAILED, ""
    try:
        result = work(say)
        status = Operation.Status.SUCCEEDED
    except RegistryError as exc:
        result = str(exc)
    except Exception as exc:  # the admin must hear about it, whatever it was
        logger.exception("operation %s failed", pk)
        result = f"unexpected error: {type(exc).__name__}: {exc}"
    finally:
        try:
            Operation.objects.filter(pk=pk).update(
                status=status, result=result[:20000], finished_at=timezone.now()
            )
        finally:
            close_old_connections()
            connection.close()
