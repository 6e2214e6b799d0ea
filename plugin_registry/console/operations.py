"""Long changes started from the console are tasks on the queue, run by a worker.

``start`` records the ``Operation`` and enqueues its task in one transaction, and does nothing
else: the web process never changes its own environment for a console operation (it follows the
new generation at its next request, as every process does). The operation's page polls the
row; ``plugin_registry.console.tasks`` runs it; ``plugin_registry.registry.operations`` says
what happens to one nobody runs or whose worker died.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from plugin_registry.console.tasks import KINDS, run_operation
from plugin_registry.registry.models import Operation
from plugin_registry.registry.operations import (
    HEARTBEAT_EVERY,
    SILENT_AFTER,
    silent_for,
    waiting_for_worker,
)

__all__ = ["page_context", "start"]


def start(description: str, actor: str, work: dict[str, Any]) -> Operation:
    """Record an operation and enqueue the task that runs ``work``; return the record.

    ``work`` is JSON: the kind (a key of ``KINDS``) and its parameters, e.g.
    ``{"kind": "uninstall", "name": "greeter"}``.
    """
    if work.get("kind") not in KINDS:
        raise ValueError(f"unknown operation kind {work.get('kind')!r}; known: {sorted(KINDS)}")
    with transaction.atomic():
        operation = Operation.objects.create(
            kind=work["kind"], description=description[:300], actor=actor
        )
        result = run_operation.enqueue(operation.pk, work)
        operation.task_id = str(result.id)
        operation.save(update_fields=["task_id"])
    return operation


def page_context(op: Operation) -> dict[str, Any]:
    """What the operation's page shows beside the row: waiting for a worker, a silent worker."""
    silent = silent_for(op)
    return {
        "op": op,
        "waiting": waiting_for_worker(op),
        "silent": int(silent) if silent > 3 * HEARTBEAT_EVERY else 0,
        "silent_after": int(SILENT_AFTER),
    }
