"""Finding work abandoned by dead workers and putting it back in line.

The database task backend has no lease: a worker killed mid-task leaves its task RUNNING
forever. Deliveries carry a lease (time budget + grace), so an expired one is known abandoned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from . import conf
from .delivery import fail_attempt
from .models import Delivery

logger = logging.getLogger("services_ai.events")

RUNNING = "RUNNING"
READY = "READY"


@dataclass
class ReapReport:
    deliveries: int = 0
    tasks: int = 0


def reap_stale() -> ReapReport:
    """Fail abandoned deliveries (their retry is scheduled) and requeue abandoned tasks."""
    report = ReapReport()
    now = timezone.now()
    margin = timedelta(seconds=float(conf.get("STALE_MARGIN")))
    abandoned = Delivery.objects.filter(
        status=Delivery.Status.RUNNING, lease_expires_at__lt=now - margin
    ).values_list("pk", flat=True)
    for pk in list(abandoned):
        with transaction.atomic():
            delivery = (
                Delivery.objects.select_for_update()
                .filter(pk=pk, status=Delivery.Status.RUNNING, lease_expires_at__lt=now - margin)
                .first()
            )
            if delivery is None:
                continue
            fail_attempt(
                delivery,
                f"abandoned: worker {delivery.worker_id or '?'} stopped while running it",
                "",
                now,
            )
            report.deliveries += 1
    # Tasks are idempotent (a delivery runs only when due), so an abandoned one can run again.
    report.tasks = DBTaskResult.objects.filter(
        status=RUNNING, started_at__lt=now - conf.stale_after()
    ).update(status=READY, started_at=None)
    if report.deliveries or report.tasks:
        logger.warning(
            "reaped %d abandoned deliveries and %d abandoned tasks",
            report.deliveries,
            report.tasks,
        )
    return report


def abandon_worker(worker_id: str, reason: str) -> int:
    """Record that a worker was killed: fail its running deliveries and tasks. Return count."""
    now = timezone.now()
    count = 0
    with transaction.atomic():
        for delivery in Delivery.objects.select_for_update().filter(
            status=Delivery.Status.RUNNING, worker_id=worker_id
        ):
            fail_attempt(delivery, reason, "", now)
            count += 1
        for task in DBTaskResult.objects.select_for_update().filter(status=RUNNING):
            if task.worker_ids and task.worker_ids[-1] == worker_id:
                task.status = "FAILED"
                task.finished_at = now
                task.exception_class_path = "services_ai.events.delivery.DeliveryTimeout"
                task.traceback = reason
                task.save(
                    update_fields=["status", "finished_at", "exception_class_path", "traceback"]
                )
    return count
