"""Console operations on the task queue: where they run, and recovering the orphaned ones.

The console records an ``Operation`` and enqueues one task on the ``operations`` queue in the
same transaction; a worker (``services-ai worker``) runs it (``plugin_registry.console.tasks``)
and writes its progress and outcome to the row, beating ``heartbeat_at`` while it works. The web
process never changes its own environment for an operation.

The database task backend has no lease and no retry, so an operation can be orphaned: its task
failed around it (the worker was killed, and the supervisor failed its task), its task row is
gone, or its worker fell silent without anyone noticing (the whole host or supervisor died).
The supervisor's reaper calls ``recover_operations`` every few seconds: each such operation is
failed with a message that says it was interrupted and what to do (``services-ai plugins
recover`` cleans up what an interrupted environment change left, as it does after the command
line was interrupted).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from plugin_registry.registry.models import Operation

logger = logging.getLogger("plugin_registry.operations")

QUEUE = "operations"
TASK_PATH = "plugin_registry.console.tasks.run_operation"
HEARTBEAT_EVERY = 5.0  # seconds between two heartbeats of a running operation
SILENT_AFTER = 60.0  # seconds without a heartbeat before its worker counts as gone
UNFINISHED = (Operation.Status.QUEUED, Operation.Status.RUNNING)
BATCH = 100


def interrupted(reason: str) -> str:
    """Return the result of an operation that was cut short: what happened, what to do."""
    return f"interrupted: {reason}; run `services-ai plugins recover` then try again"


def recover_operations(now: datetime | None = None) -> int:
    """Fail every unfinished operation whose task or worker is gone; return how many."""
    now = now or timezone.now()
    count = 0
    unfinished = list(Operation.objects.filter(status__in=UNFINISHED).order_by("pk")[:BATCH])
    ids = [op.task_id for op in unfinished if op.task_id]
    tasks = {str(task.pk): task for task in DBTaskResult.objects.filter(pk__in=ids)}
    for op in unfinished:
        task = tasks.get(op.task_id) if op.task_id else None
        reason = _orphaned(op, task, now)
        if reason is None:
            continue
        with transaction.atomic():
            if task is not None and task.status == TaskResultStatus.RUNNING:
                # Its worker is gone: the task row would stay RUNNING for ever.
                DBTaskResult.objects.filter(pk=task.pk, status=TaskResultStatus.RUNNING).update(
                    status=TaskResultStatus.FAILED,
                    finished_at=now,
                    exception_class_path="plugin_registry.registry.operations.Interrupted",
                    traceback=reason,
                )
            done = Operation.objects.filter(pk=op.pk, status__in=UNFINISHED).update(
                status=Operation.Status.FAILED, result=interrupted(reason), finished_at=now
            )
        if done:
            logger.error("operation %d (%s) %s", op.pk, op.description, interrupted(reason))
            count += done
    return count


def _orphaned(op: Operation, task: DBTaskResult | None, now: datetime) -> str | None:
    """Return why ``op`` can no longer finish, or None while it still can."""
    if task is None:
        return "its task is no longer on the queue"
    if task.status == TaskResultStatus.FAILED and op.status == Operation.Status.QUEUED:
        return f"its task failed before it started ({_last_line(task)})"
    if task.status == TaskResultStatus.FAILED:
        return f"the worker running it stopped ({_last_line(task)})"
    if task.status == TaskResultStatus.SUCCESSFUL:
        return "its task ended without recording the outcome"
    if op.status == Operation.Status.RUNNING and task.status == TaskResultStatus.RUNNING:
        last = op.heartbeat_at or op.picked_up_at or op.started_at
        if now - last > timedelta(seconds=SILENT_AFTER):
            return (
                f"the worker running it stopped (worker {op.worker_id or '?'} on "
                f"{op.host or '?'}, pid {op.pid or '?'}, silent since "
                f"{timezone.localtime(last):%Y-%m-%d %H:%M:%S})"
            )
    return None


def _last_line(task: DBTaskResult) -> str:
    lines = [line.strip() for line in (task.traceback or "").splitlines() if line.strip()]
    if lines:
        return lines[-1][:500]
    return task.exception_class_path or "its task failed"


def waiting_for_worker(op: Operation, now: datetime | None = None, after: float = 5.0) -> bool:
    """Has ``op`` been queued for longer than ``after`` seconds, with no worker taking it?"""
    now = now or timezone.now()
    return op.status == Operation.Status.QUEUED and now - op.started_at > timedelta(seconds=after)


def silent_for(op: Operation, now: datetime | None = None) -> float:
    """Return how many seconds a running operation's worker has been silent (0: not running)."""
    if op.status != Operation.Status.RUNNING:
        return 0.0
    last = op.heartbeat_at or op.picked_up_at or op.started_at
    return max(0.0, ((now or timezone.now()) - last).total_seconds())
