"""Finding work abandoned by dead workers or failed tasks, and putting it back in line.

The database task backend has no lease and no retry: a worker killed mid-task leaves its task
RUNNING forever, and a task that raised stays FAILED. Deliveries carry a lease (time budget +
grace) and remember the task meant to run them, so every kind of loss can be found:

- a delivery still running long after its lease: the attempt failed, a retry is scheduled;
- a pending or failed delivery whose task is gone (it failed before claiming): enqueued again;
- a fan-out task running for too long, or failed before it recorded its event: run again
  (fan-out is idempotent: one event per task);
- a delivery task running for too long: marked failed (its delivery is handled above).
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from plugin_registry.registry.operations import recover_operations
from services_ai.events import conf
from services_ai.events.delivery import backoff, enqueue_delivery, fail_attempt
from services_ai.events.models import Delivery, Event

logger = logging.getLogger("services_ai.events")

FAN_OUT = "services_ai.events.tasks.fan_out"
DELIVER = "services_ai.events.tasks.deliver"
BATCH = 500


@dataclass
class ReapReport:
    deliveries: int = 0
    stranded: int = 0
    tasks: int = 0
    fan_outs: int = 0

    def __bool__(self) -> bool:
        return bool(self.deliveries or self.stranded or self.tasks or self.fan_outs)


def reap_stale() -> ReapReport:
    """Recover everything that dead workers or failed tasks left behind; report what."""
    now = timezone.now()
    margin = timedelta(seconds=float(conf.get("STALE_MARGIN")))
    report = ReapReport(
        deliveries=_fail_orphaned_deliveries(now) + _fail_abandoned_deliveries(now, margin),
        tasks=_fail_stale_delivery_tasks(now),
        fan_outs=_rerun_fan_outs(now),
    )
    report.stranded = _requeue_stranded_deliveries(now, margin)
    recover_operations(now)  # console operations whose task or worker is gone: failed, logged
    if report:
        logger.warning(
            "recovered %d abandoned and %d stranded deliveries, %d stale delivery tasks and "
            "%d fan-outs",
            report.deliveries,
            report.stranded,
            report.tasks,
            report.fan_outs,
        )
    return report


def _fail_abandoned_deliveries(now, margin: timedelta) -> int:
    count = 0
    abandoned = Delivery.objects.filter(
        status=Delivery.Status.RUNNING, lease_expires_at__lt=now - margin
    ).values_list("pk", flat=True)
    for pk in list(abandoned[:BATCH]):
        with transaction.atomic():
            delivery = (
                Delivery.objects.select_for_update()
                .filter(pk=pk, status=Delivery.Status.RUNNING, lease_expires_at__lt=now - margin)
                .first()
            )
            if delivery is not None:
                reason = f"abandoned: worker {delivery.worker_id or '?'} stopped while running it"
                fail_attempt(delivery, reason, "", now)
                count += 1
    return count


def _supervisor_gone(worker_id: str) -> bool:
    """Is the worker's supervisor a process of this host that no longer runs?

    Worker ids are ``HOST-PID-NONCE-SERIAL`` with the supervisor's host name and pid; its
    workers die with it. Only this host can tell; other hosts' workers wait for their lease.
    """
    parts = worker_id.rsplit("-", 3)
    if len(parts) != 4 or parts[0] != socket.gethostname()[:24] or not parts[1].isdigit():
        return False
    try:
        cmdline = Path(f"/proc/{parts[1]}/cmdline").read_bytes()
    except OSError:
        return True  # no such process
    return b"services" not in cmdline  # the pid was reused by something else


def _fail_orphaned_deliveries(now) -> int:
    """Recover at once the running deliveries of this host's dead supervisors (a restart after
    a crash, ``kill -9``), instead of waiting for their lease and margin."""
    count = 0
    running = Delivery.objects.filter(status=Delivery.Status.RUNNING).values_list("pk", "worker_id")
    gone = {worker for _, worker in running[:BATCH] if worker and _supervisor_gone(worker)}
    for pk, worker_id in running[:BATCH]:
        if worker_id not in gone:
            continue
        with transaction.atomic():
            delivery = (
                Delivery.objects.select_for_update()
                .filter(pk=pk, status=Delivery.Status.RUNNING, worker_id=worker_id)
                .first()
            )
            if delivery is not None:
                reason = f"abandoned: worker {worker_id} stopped with its supervisor on this host"
                fail_attempt(delivery, reason, "", now)
                count += 1
    return count


def _fail_stale_delivery_tasks(now) -> int:
    return DBTaskResult.objects.filter(
        status="RUNNING", task_path=DELIVER, started_at__lt=now - conf.stale_after()
    ).update(
        status="FAILED",
        finished_at=now,
        exception_class_path="services_ai.events.reaper.Abandoned",
        traceback="abandoned by its worker; the delivery is recovered separately",
    )


def _rerun_fan_outs(now) -> int:
    stale = DBTaskResult.objects.filter(
        status="RUNNING", task_path=FAN_OUT, started_at__lt=now - conf.stale_after()
    )
    count = stale.update(status="READY", started_at=None, run_after=now)
    running = DBTaskResult.objects.filter(status="RUNNING", task_path=FAN_OUT).values_list(
        "id", "worker_ids"
    )
    orphaned = [pk for pk, workers in running[:BATCH] if workers and _supervisor_gone(workers[-1])]
    count += DBTaskResult.objects.filter(id__in=orphaned, status="RUNNING").update(
        status="READY", started_at=None, run_after=now
    )
    recorded = Event.objects.exclude(task_id=None).values("task_id")
    failed = DBTaskResult.objects.filter(status="FAILED", task_path=FAN_OUT).exclude(
        id__in=recorded
    )
    for task in failed[:BATCH]:
        # The event was never recorded: run it again, backing off by how often it has failed.
        task.status = "READY"
        task.run_after = now + backoff(len(task.worker_ids))
        task.finished_at = None
        task.save(update_fields=["status", "run_after", "finished_at"])
        logger.error("fan-out task %s failed before recording its event; retrying", task.id)
        count += 1
    return count


def _requeue_stranded_deliveries(now, margin: timedelta) -> int:
    queued = DBTaskResult.objects.filter(status__in=["READY", "RUNNING"], task_path=DELIVER).values(
        "id"
    )
    stranded = (
        Delivery.objects.filter(
            status__in=[Delivery.Status.PENDING, Delivery.Status.FAILED],
            next_attempt_at__lt=now - margin,
        )
        .exclude(task_id__in=queued)
        .order_by("next_attempt_at")
    )
    count = 0
    for delivery in stranded[:BATCH]:
        with transaction.atomic():
            enqueue_delivery(delivery)
        count += 1
    return count


def abandon_worker(worker_id: str, reason: str, *, overdue: int | None = None) -> int:
    """Record that a worker died or was killed; recover what it was running. Return count.

    The delivery it overran (``overdue``) gets ``reason``; anything else it held is recorded as
    abandoned. Its fan-out task runs again; its delivery task is failed (the delivery retries).
    """
    now = timezone.now()
    count = 0
    with transaction.atomic():
        for delivery in Delivery.objects.select_for_update().filter(
            status=Delivery.Status.RUNNING, worker_id=worker_id
        ):
            message = (
                reason
                if delivery.pk == overdue or overdue is None
                else (f"abandoned: worker {worker_id} was killed while running it")
            )
            fail_attempt(delivery, message, "", now)
            count += 1
        for task in DBTaskResult.objects.select_for_update().filter(status="RUNNING"):
            if not task.worker_ids or task.worker_ids[-1] != worker_id:
                continue
            if task.task_path == FAN_OUT:
                task.status, task.started_at, task.run_after = "READY", None, now
                task.save(update_fields=["status", "started_at", "run_after"])
                continue
            task.status = "FAILED"
            task.finished_at = now
            task.exception_class_path = "services_ai.events.reaper.Abandoned"
            task.traceback = reason
            task.save(update_fields=["status", "finished_at", "exception_class_path", "traceback"])
    return count
