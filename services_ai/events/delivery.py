"""Running deliveries: claim, call the plugin within its time budget, record, retry or die."""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from plugin_registry.host import PluginHost
from plugin_registry.host.records import HookFailure, HookOutcome
from plugin_registry.runtime import get_host
from services_ai import conf as services_ai_conf
from services_ai.events import conf
from services_ai.events.models import Delivery, Event
from services_ai.events.subscribers import subscribers, why_not_deliverable
from services_ai.plugins.context import DeliveryInfo, running

logger = logging.getLogger("services_ai.events")

Status = Delivery.Status
TIMEOUT_MESSAGE = "exceeded the time budget of this hook"
RECORD_ATTEMPTS = 3


class DeliveryTimeout(BaseException):
    """Raised inside plugin code when a delivery exceeds its hook's time budget.

    A ``BaseException``, like ``KeyboardInterrupt``, so a plugin's ``except Exception:`` cannot
    swallow it and have an overrun recorded as a success.
    """


def backoff(attempts: int) -> timedelta:
    """Return the wait before the next attempt: exponential in ``attempts``, with jitter."""
    base, cap = float(conf.get("BACKOFF_BASE")), float(conf.get("BACKOFF_MAX"))
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return timedelta(seconds=delay / 2 + random.uniform(0, delay / 2))


def enqueue_delivery(delivery: Delivery, run_after: datetime | None = None) -> None:
    """Enqueue the task that runs ``delivery`` and remember it (in the caller's transaction)."""
    # The tasks stay in tasks.py, whose functions call into this module: their import paths
    # are stored in every queued row (and the reaper looks rows up by them).
    from services_ai.events.tasks import deliver

    task = deliver.using(run_after=run_after) if run_after else deliver
    delivery.task_id = task.enqueue(delivery.pk).id
    Delivery.objects.filter(pk=delivery.pk).update(task_id=delivery.task_id)


def fan_out_event(
    task_id: str, hook: str, payload: dict, *, occurred_at: datetime | None = None
) -> int:
    """Record the event of one fan-out task and its deliveries, once however often this runs."""
    with transaction.atomic():
        event, created = Event.objects.select_for_update().get_or_create(
            task_id=task_id,
            defaults={
                "hook": hook,
                "payload": payload,
                "occurred_at": occurred_at or timezone.now(),
            },
        )
        if not created and event.fanned_out_at is not None:
            return 0
        names = subscribers(event.hook)
        max_attempts = int(conf.get("MAX_ATTEMPTS"))
        for name in names:
            delivery = Delivery.objects.create(
                event=event, plugin_name=name, hook=event.hook, max_attempts=max_attempts
            )
            enqueue_delivery(delivery)
        event.fanned_out_at = timezone.now()
        event.save(update_fields=["fanned_out_at"])
    return len(names)


def _claim(delivery_id: int, worker_id: str) -> Delivery | str:
    """Mark the delivery running for this worker; return why not if it is not due.

    A running delivery is never taken over here: only the reaper declares one abandoned, once
    its lease is well past, so the supervisor can still find and kill a stuck worker.
    """
    now = timezone.now()
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().filter(pk=delivery_id).first()
        if delivery is None:
            return "missing"
        if delivery.status in (Status.SUCCEEDED, Status.DEAD, Status.SKIPPED):
            return f"already {delivery.status}"
        if delivery.status == Status.RUNNING:
            return "running elsewhere"
        if delivery.next_attempt_at > now:
            return "not due yet"
        reason = why_not_deliverable(delivery.plugin_name, delivery.hook)
        if reason:
            _finish(delivery, Status.SKIPPED, now=now, skip_reason=reason)
            logger.info("skipped %s: %s", delivery, reason)
            return "skipped"
        delivery.status = Status.RUNNING
        delivery.attempts += 1
        delivery.started_at = now
        delivery.lease_expires_at = now + conf.lease(delivery.hook)
        delivery.worker_id = worker_id[:64]
        delivery.claim_token = uuid.uuid4().hex
        delivery.save(
            update_fields=[
                "status",
                "attempts",
                "started_at",
                "lease_expires_at",
                "worker_id",
                "claim_token",
            ]
        )
    return delivery


def run_delivery(delivery_id: int, *, worker_id: str = "") -> str:
    """Run one delivery now, if it is due; record the outcome and schedule a retry."""
    # Build or refresh the host first, outside any delivery's budget: a plugin that imports
    # slowly must not make other plugins' deliveries time out. An import that hangs is caught
    # by the supervisor, which kills a worker whose task runs past ``conf.stale_after()``.
    host = get_host()
    claimed = _claim(delivery_id, worker_id)
    if isinstance(claimed, str):
        return claimed
    delivery = claimed
    info = DeliveryInfo(
        idempotency_key=delivery.idempotency_key,
        attempt=delivery.attempts,
        event_id=delivery.event_id,
    )
    limit = time_limit(conf.time_budget(delivery.hook))
    started = time.perf_counter()
    try:
        with _delivering(info), in_plugin_code(worker_id, delivery.pk), limit:
            outcome = _call_plugin(host, delivery)
        if limit.fired:  # the plugin caught the interruption (a bare except) and went on
            outcome = _failed(delivery, f"DeliveryTimeout: {TIMEOUT_MESSAGE}", "")
    except DeliveryTimeout:  # the traceback shows where the plugin was at the deadline
        _discard_connection()
        outcome = _failed(delivery, f"DeliveryTimeout: {TIMEOUT_MESSAGE}", traceback.format_exc())
    except BaseException as exc:
        # The platform failed around the plugin, or the worker is being stopped: the attempt
        # is recorded either way, so the delivery is retried rather than left running.
        _discard_connection()
        elapsed = (time.perf_counter() - started) * 1000
        message = f"{type(exc).__name__} in the worker: {exc}"
        _record(delivery, _failed(delivery, message, traceback.format_exc()), elapsed)
        if not isinstance(exc, Exception):
            raise
        return "failed"
    return _record(delivery, outcome, (time.perf_counter() - started) * 1000)


def plugin_marker(worker_id: str) -> Path:
    """Return the file that says which delivery's plugin code a worker is running, if any."""
    return services_ai_conf.home() / "run" / f"{worker_id}.plugin"


@contextmanager
def in_plugin_code(worker_id: str, delivery_id: int) -> Iterator[None]:
    """Mark the worker as inside plugin code for the supervisor, which only kills a worker
    overrunning its lease while the plugin runs, never while the platform records the outcome
    (waiting for a database lock, say)."""
    if not worker_id:
        yield
        return
    marker = plugin_marker(worker_id)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(delivery_id))
    try:
        yield
    finally:
        marker.write_text("")


def _discard_connection() -> None:
    """Drop the database connection an interruption may have left mid-query (psycopg does not
    cancel a query for an arbitrary exception); the next query opens a fresh one."""
    if not connection.in_atomic_block:
        connection.close()


def _record(delivery: Delivery, outcome: HookOutcome, duration_ms: float) -> str:
    """Record the outcome, riding out a short database hiccup (a lost connection, a lock)."""
    for attempt in range(1, RECORD_ATTEMPTS + 1):
        try:
            return record_outcome(delivery, outcome, duration_ms)
        except DatabaseError:
            if attempt == RECORD_ATTEMPTS:
                raise
            logger.warning("recording %s failed (attempt %d); retrying", delivery, attempt)
            connection.close()
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


def _call_plugin(host: PluginHost, delivery: Delivery) -> HookOutcome:
    outcome = host.call_one(delivery.plugin_name, delivery.hook, **delivery.event.payload)
    if not outcome.skipped:
        return outcome
    failure = host.load_failures.get(delivery.plugin_name)
    if failure is not None:  # enabled, but it does not load here: retry, maybe it gets fixed
        return _failed(delivery, str(failure), failure.traceback)
    return outcome  # disabled or revoked since the claim


def _failed(delivery: Delivery, message: str, traceback_text: str) -> HookOutcome:
    failure = HookFailure(delivery.plugin_name, delivery.hook, message, traceback_text)
    return HookOutcome(delivery.plugin_name, delivery.hook, failure=failure)


def record_outcome(delivery: Delivery, outcome: HookOutcome, duration_ms: float) -> str:
    """Store what happened to one attempt, unless the delivery was taken over meanwhile."""
    now = timezone.now()
    with transaction.atomic():
        current = (
            Delivery.objects.select_for_update()
            .filter(pk=delivery.pk, status=Status.RUNNING, claim_token=delivery.claim_token)
            .first()
        )
        if current is None:
            logger.warning("%s was taken over while running; its outcome is dropped", delivery)
            return "taken over"
        current.duration_ms = duration_ms
        if outcome.failure is not None:
            return fail_attempt(current, outcome.failure.message, outcome.failure.traceback, now)
        if outcome.skipped:
            _finish(current, Status.SKIPPED, now=now, skip_reason=outcome.skipped[:300])
            return "skipped"
        _finish(current, Status.SUCCEEDED, now=now)
        return "succeeded"


def fail_attempt(delivery: Delivery, message: str, traceback: str, now: datetime) -> str:
    """Record a failed attempt: schedule a retry, or mark the delivery dead."""
    delivery.last_error = message[:5000]
    delivery.last_traceback = traceback[-20000:]
    if delivery.attempts >= delivery.max_attempts:
        _finish(delivery, Status.DEAD, now=now)
        logger.error("%s is dead after %d attempts: %s", delivery, delivery.attempts, message)
        return "dead"
    delivery.next_attempt_at = now + backoff(delivery.attempts)
    _finish(delivery, Status.FAILED, now=now)
    enqueue_delivery(delivery, run_after=delivery.next_attempt_at)
    logger.warning(
        "%s failed (attempt %d of %d), retry at %s: %s",
        delivery,
        delivery.attempts,
        delivery.max_attempts,
        delivery.next_attempt_at.isoformat(timespec="seconds"),
        message,
    )
    return "failed"


def _finish(delivery: Delivery, status: str, *, now: datetime, skip_reason: str = "") -> None:
    delivery.status = status
    delivery.finished_at = now
    delivery.lease_expires_at = None
    if skip_reason:
        delivery.skip_reason = skip_reason
    delivery.save()


@contextmanager
def _delivering(info: DeliveryInfo) -> Iterator[None]:
    outer = running.delivery
    running.delivery = info
    try:
        yield
    finally:
        running.delivery = outer


class time_limit:  # lower case: used like a function, ``with time_limit(3):``
    """Interrupt the block with DeliveryTimeout after ``seconds`` (main thread only).

    ``fired`` tells afterwards whether the deadline passed, even if the code caught the
    interruption. Code that blocks the signal or never returns to Python is not interrupted:
    the worker supervisor kills and replaces such a process once the lease (budget + grace)
    has passed.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._active = False

    def _interrupt(self, signum: int, frame: object) -> None:
        self.fired = True
        raise DeliveryTimeout(TIMEOUT_MESSAGE)

    def __enter__(self) -> time_limit:
        self._active = threading.current_thread() is threading.main_thread() and self.seconds > 0
        if self._active:
            self._previous = signal.signal(signal.SIGALRM, self._interrupt)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._active:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)


RETRYABLE = (Status.DEAD, Status.FAILED, Status.PENDING)


def retry(delivery_ids: list[int]) -> int:
    """Run dead, failed or stuck pending deliveries again now, with a fresh set of attempts for
    dead ones; return how many."""
    count = 0
    now = timezone.now()
    with transaction.atomic():
        for delivery in Delivery.objects.select_for_update().filter(
            pk__in=delivery_ids, status__in=RETRYABLE
        ):
            if delivery.status == Status.DEAD:
                delivery.max_attempts = delivery.attempts + int(conf.get("MAX_ATTEMPTS"))
            delivery.status = Status.PENDING
            delivery.next_attempt_at = now
            delivery.finished_at = None
            delivery.save(
                update_fields=["status", "max_attempts", "next_attempt_at", "finished_at"]
            )
            enqueue_delivery(delivery)
            count += 1
    return count
