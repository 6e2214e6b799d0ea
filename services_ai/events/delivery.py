"""Running deliveries: claim, call the plugin within its time budget, record, retry or die."""

from __future__ import annotations

import logging
import random
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from plugin_registry.host import PluginHost, budget
from plugin_registry.host.records import HookFailure, HookOutcome
from plugin_registry.host.state import Ineligible
from plugin_registry.registry import nodes
from plugin_registry.registry.models import Plugin
from plugin_registry.runtime import get_host
from services_ai.events import conf
from services_ai.events.models import Delivery, Event
from services_ai.events.subscribers import HELD_REASON, subscribers, why_not_deliverable
from services_ai.plugins.context import DeliveryInfo, running

logger = logging.getLogger("services_ai.events")

Status = Delivery.Status
TIMEOUT_MESSAGE = "exceeded the time budget of this hook"
RECORD_ATTEMPTS = 3


class DeliveryTimeout(budget.TimeBudgetExceeded):
    """Raised inside plugin code when a delivery exceeds its hook's time budget."""


class time_limit(budget.time_limit):  # lower case: used like a function
    """Interrupt the block with DeliveryTimeout after ``seconds`` (main thread only)."""

    error = DeliveryTimeout
    message = TIMEOUT_MESSAGE


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


def _claim(delivery_id: int, worker_id: str, host: PluginHost | None = None) -> Delivery | str:
    """Mark the delivery running for this worker; return why not if it is not due.

    A running delivery is never taken over here: only the reaper declares one abandoned, once
    its lease is well past, so the supervisor can still find and kill a stuck worker.
    """
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(of=("self",))
            .select_related("event")  # its payload is the hook's arguments
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None:
            return "missing"
        if delivery.status in (Status.SUCCEEDED, Status.DEAD, Status.SKIPPED):
            return f"already {delivery.status}"
        if delivery.status == Status.RUNNING:
            return "running elsewhere"
        if delivery.next_attempt_at > now:
            return "not due yet"
        if (busy_until := _plugin_busy_until(delivery, worker_id, now)) is not None:
            # Enough of this supervisor's workers run this plugin already: come back when the
            # earliest of them must be done, and leave the workers to other plugins meanwhile.
            delivery.next_attempt_at = busy_until
            delivery.save(update_fields=["next_attempt_at"])
            enqueue_delivery(delivery, run_after=busy_until)
            logger.info("%s waits: this plugin already runs on its share of workers", delivery)
            return "deferred"
        if host is not None and _node_lacks_plugin(host, delivery.plugin_name):
            # This node has not caught up with the environment that has the plugin yet (its
            # supervisor is building it): try again shortly, without spending an attempt.
            delivery.next_attempt_at = now + SKEW_WAIT
            delivery.save(update_fields=["next_attempt_at"])
            enqueue_delivery(delivery, run_after=delivery.next_attempt_at)
            logger.info("%s waits: this node is catching up with the plugin environment", delivery)
            return "deferred"
        reason, held = why_not_deliverable(
            delivery.plugin_name, delivery.hook, host.state if host is not None else None
        )
        if held:
            _hold(delivery, reason, now=now)
            return "held"
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


SKEW_WAIT = timedelta(seconds=2)


def _node_lacks_plugin(host: PluginHost, plugin: str) -> bool:
    failure = host.load_failures.get(plugin)
    return failure is not None and failure.stage == "missing" and nodes.runs_behind()


# How long each plugin's deliveries took in this worker process lately (seconds, a moving
# average). Plugins that are slow here, or not seen yet, are held to their share of the
# workers; a fast plugin's deliveries never wait for each other, so one busy plugin keeps every
# worker busy.
_durations: dict[str, float] = {}
SLOW_AFTER = 0.5  # seconds


def _note_duration(plugin: str, seconds: float) -> None:
    previous = _durations.get(plugin)
    _durations[plugin] = seconds if previous is None else 0.7 * previous + 0.3 * seconds


def _plugin_busy_until(delivery: Delivery, worker_id: str, now: datetime) -> datetime | None:
    """When this supervisor already runs its limit of a slow plugin's deliveries: when to
    retry."""
    if not worker_id or conf.plugin_concurrency() >= conf.supervisor_processes():
        return None  # (a single worker process never runs two deliveries at once)
    seen = _durations.get(delivery.plugin_name)
    if seen is not None and seen < SLOW_AFTER:
        return None  # fast here: never held back
    # One claim at a time per plugin (the row lock on PostgreSQL; SQLite's IMMEDIATE
    # transactions serialise every claim anyway), so two workers cannot both see room.
    Plugin.objects.select_for_update().filter(name=delivery.plugin_name).first()
    running = list(
        Delivery.objects.filter(
            plugin_name=delivery.plugin_name,
            status=Status.RUNNING,
            lease_expires_at__gt=now,
            worker_id__startswith=conf.supervisor_of(worker_id) + "-",
        )
        .exclude(pk=delivery.pk)
        .values_list("lease_expires_at", flat=True)
    )
    if len(running) < conf.plugin_concurrency():
        return None
    earliest = min(filter(None, running))
    # Not seen here yet: look again soon, it may turn out fast; known slow: wait longer.
    return min(earliest, now + timedelta(seconds=5 if seen is not None else 0.5))


def _hold(delivery: Delivery, reason: str, *, now: datetime) -> None:
    """Keep a delivery for a quarantined plugin, without an attempt, until it is lifted."""
    delivery.status = Status.HELD
    delivery.skip_reason = reason[:300]
    delivery.lease_expires_at = None
    delivery.finished_at = now
    delivery.save(update_fields=["status", "skip_reason", "lease_expires_at", "finished_at"])
    logger.warning("%s is held: %s", delivery, reason)


def run_delivery(delivery_id: int, *, worker_id: str = "") -> str:
    """Run one delivery now, if it is due; record the outcome and schedule a retry."""
    # Build or refresh the host first, outside any delivery's budget: a plugin that imports
    # slowly must not make other plugins' deliveries time out. Each import has its own budget
    # (``SERVICES_AI_QUARANTINE["IMPORT_BUDGET"]``); one that ignores the interruption is
    # caught by the supervisor, which kills a worker whose task runs past ``stale_after()``.
    host = get_host()
    claimed = _claim(delivery_id, worker_id, host)
    if isinstance(claimed, str):
        return claimed
    delivery = claimed
    info = DeliveryInfo(
        idempotency_key=delivery.idempotency_key,
        attempt=delivery.attempts,
        event_id=delivery.event_id,
    )
    if host.state.why_not(delivery.plugin_name, delivery.hook, None) is Ineligible.QUARANTINED:
        with transaction.atomic():  # quarantined between the claim and now
            _hold(delivery, HELD_REASON, now=timezone.now())
        return "held"
    limit = time_limit(conf.time_budget(delivery.hook))
    started = time.perf_counter()
    try:
        with _delivering(info), limit:
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
    elapsed = time.perf_counter() - started
    _note_duration(delivery.plugin_name, elapsed)
    return _record(delivery, outcome, elapsed * 1000)


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
    failure = host.load_failures.get(delivery.plugin_name)
    if failure is not None and failure.stage == "budget":
        # Its import ran out of time in this process: every attempt tries once more (and
        # strikes it again if it overruns), so a plugin too slow to import is quarantined.
        host.retry_load(delivery.plugin_name)
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


RETRYABLE = (Status.DEAD, Status.FAILED, Status.PENDING, Status.HELD)


def retry(delivery_ids: list[int]) -> int:
    """Run dead, failed, held or stuck pending deliveries again now, with a fresh set of
    attempts for dead ones; return how many."""
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
            delivery.skip_reason = ""
            delivery.save(
                update_fields=[
                    "status",
                    "max_attempts",
                    "next_attempt_at",
                    "finished_at",
                    "skip_reason",
                ]
            )
            enqueue_delivery(delivery)
            count += 1
    return count


def resume_held(plugin_name: str) -> int:
    """Run the deliveries held for ``plugin_name`` while it was quarantined; return how many."""
    held = Delivery.objects.filter(plugin_name=plugin_name, status=Status.HELD)
    count = retry(list(held.values_list("pk", flat=True)))
    if count:
        logger.info("resumed %d deliveries held for plugin %s", count, plugin_name)
    return count
