"""Event delivery through the real database task worker, in this process."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from plugin_registry.registry import actions
from plugin_registry.registry.models import PluginData
from services_ai.events import conf
from services_ai.events.delivery import backoff, retry
from services_ai.events.models import Delivery
from services_ai.events.reaper import reap_stale
from services_ai.events.stats import delivery_stats, percentile, prune
from services_ai.leads.models import Lead
from services_ai.testing.worker import run_worker_batch

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = {
    "TIME_BUDGET": {"default": 5.0},
    "KILL_GRACE": 1.0,
    "MAX_ATTEMPTS": 3,
    "BACKOFF_BASE": 0.0,  # retries are due at once, so one worker batch runs them all
    "STALE_MARGIN": 1.0,
    "RETENTION_DAYS": 14,
}


@pytest.fixture(autouse=True)
def quick_retries(settings):
    settings.SERVICES_AI_EVENTS = EVENTS


def data(plugin: str) -> dict:
    return dict(PluginData.objects.filter(plugin_name=plugin).values_list("key", "value"))


def test_retry_then_success(registry):
    registry.enable("flaky-plugin", "read_leads", fail_attempts="2")
    lead = Lead.objects.create(name="Ada")
    run_worker_batch()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("succeeded", 3)
    assert delivery.last_error == "RuntimeError: flaky failure on attempt 2"
    assert data("flaky-plugin") == {f"ok:{delivery.event_id}:flaky-plugin": 3}
    assert delivery.idempotency_key == f"{delivery.event_id}:flaky-plugin"
    assert Lead.objects.get().pk == lead.pk


def test_retry_then_dead_then_manual_retry(registry):
    registry.enable("flaky-plugin", "read_leads", fail_attempts="4")
    Lead.objects.create(name="Ada")
    run_worker_batch()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.max_attempts) == ("dead", 3, 3)
    assert "flaky failure on attempt 3" in delivery.last_error
    assert "Traceback (most recent call last)" in delivery.last_traceback
    assert data("flaky-plugin") == {}

    assert retry([delivery.pk]) == 1  # a fresh set of attempts: 4th fails, 5th succeeds
    run_worker_batch()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.max_attempts) == ("succeeded", 5, 6)


def test_manual_retry_only_takes_dead_failed_or_pending(registry):
    registry.enable("idempotent-counter", "read_leads")
    Lead.objects.create(name="Ada")
    run_worker_batch()
    assert retry(list(Delivery.objects.values_list("pk", flat=True))) == 0  # succeeded


def test_revoked_permission_after_enqueue_skips_with_a_reason(registry):
    registry.enable("idempotent-counter", "read_leads")
    registry.enable("flaky-plugin", "read_leads")
    Lead.objects.create(name="Ada")
    run_worker_batch(queues=("events",))  # fanned out: deliveries exist and are enqueued
    assert set(Delivery.objects.values_list("status", flat=True)) == {"pending"}
    actions.set_grant("idempotent-counter", "read_leads", False)
    actions.disable("flaky-plugin")
    run_worker_batch()
    skipped = dict(Delivery.objects.values_list("plugin_name", "skip_reason"))
    assert skipped == {
        "idempotent-counter": "permission 'read_leads' was revoked after the event",
        "flaky-plugin": "plugin was disabled after the event",
    }
    assert set(Delivery.objects.values_list("status", flat=True)) == {"skipped"}
    assert data("idempotent-counter") == {}


def test_a_slow_delivery_is_interrupted_at_its_time_budget(registry, settings):
    settings.SERVICES_AI_EVENTS = {**EVENTS, "TIME_BUDGET": {"default": 5, "lead_created": 0.3}}
    registry.enable("hang-plugin", "read_leads")  # mode "sleep": sleeps an hour
    registry.enable("idempotent-counter", "read_leads")
    Lead.objects.create(name="Ada")
    run_worker_batch()
    hang = Delivery.objects.get(plugin_name="hang-plugin")
    assert hang.status == "dead" and hang.attempts == 3
    assert hang.last_error == "DeliveryTimeout: exceeded the time budget of this hook"
    assert hang.duration_ms < 3000
    assert Delivery.objects.get(plugin_name="idempotent-counter").status == "succeeded"


def test_recording_cost_does_not_grow_with_subscribed_plugins(registry):
    def queries_for_one_lead() -> int:
        with CaptureQueriesContext(connection) as captured:
            Lead.objects.create(name="Ada")
        return len(captured)

    without = queries_for_one_lead()
    for name in ("idempotent-counter", "flaky-plugin", "lead-scorer"):
        registry.enable(name, "read_leads")
    assert queries_for_one_lead() == without
    run_worker_batch()
    # Subscribers are read when a worker fans an event out, so both leads reach all three.
    assert Delivery.objects.filter(status="succeeded").count() == 6


def test_abandoned_running_delivery_is_reaped_and_rerun_once(registry):
    registry.enable("idempotent-counter", "read_leads")
    Lead.objects.create(name="Ada")
    run_worker_batch()
    delivery = Delivery.objects.get()
    # As a worker killed mid-call leaves it: running, lease long gone, work already done.
    Delivery.objects.filter(pk=delivery.pk).update(
        status="running", lease_expires_at=timezone.now() - timedelta(minutes=1), worker_id="w9"
    )
    assert reap_stale().deliveries == 1
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.last_error == "abandoned: worker w9 stopped while running it"
    run_worker_batch()
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempts == 2
    key = delivery.idempotency_key
    assert data("idempotent-counter") == {
        f"seen:{key}": Lead.objects.get().pk,
        f"rerun:{key}": True,
        f"calls:{key}": 2,
    }


def rerun_as_if_the_worker_died(delivery: Delivery) -> None:
    """Leave ``delivery`` as a worker killed after its plugin's work leaves it, and let the
    reaper and the next worker batch run it again (with the same idempotency key)."""
    Delivery.objects.filter(pk=delivery.pk).update(
        status="running", lease_expires_at=timezone.now() - timedelta(minutes=1), worker_id="w9"
    )
    assert reap_stale().deliveries == 1
    run_worker_batch()
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempts == 2


def test_a_rerun_lead_scorer_delivery_books_no_second_follow_up(registry):
    from services_ai.bookings.models import Booking

    registry.enable("lead-scorer", "read_leads", "create_bookings")
    lead = Lead.objects.create(name="Ada", email="ada@corp.example", source="referral")  # hot
    run_worker_batch()
    delivery = Delivery.objects.get(plugin_name="lead-scorer")
    booking = Booking.objects.get(created_by="lead-scorer")
    rerun_as_if_the_worker_died(delivery)
    assert list(Booking.objects.filter(created_by="lead-scorer")) == [booking]
    followup = data("lead-scorer")[f"followup:{lead.pk}"]
    assert followup["booking_id"] == booking.pk
    assert followup["idempotency_key"] == delivery.idempotency_key


def test_a_rerun_crm_sync_delivery_pushes_once(registry, monkeypatch):
    import crm_sync.main

    registry.enable("crm-sync", "read_leads", api_key="k-12345678")
    sent = []
    send = crm_sync.main.send
    monkeypatch.setattr(
        crm_sync.main, "send", lambda request: sent.append(request) or send(request)
    )
    lead = Lead.objects.create(name="Ada")
    run_worker_batch()
    delivery = Delivery.objects.get(plugin_name="crm-sync")
    rerun_as_if_the_worker_died(delivery)
    assert [r["headers"]["Idempotency-Key"] for r in sent] == [delivery.idempotency_key]
    stored = data("crm-sync")
    assert stored["pushes"] == {delivery.idempotency_key: lead.pk}
    assert stored["outbox"] == stored["synced"] == [lead.pk]


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap(settings):
    settings.SERVICES_AI_EVENTS = {**EVENTS, "BACKOFF_BASE": 2.0, "BACKOFF_MAX": 60.0}
    for attempts, full in ((1, 2), (2, 4), (3, 8), (10, 60)):
        waits = [backoff(attempts).total_seconds() for _ in range(50)]
        assert all(full / 2 <= w <= full for w in waits), (attempts, waits)
        assert len(set(waits)) > 1  # jittered


def test_time_budget_is_configured_per_hook(settings):
    settings.SERVICES_AI_EVENTS = {"TIME_BUDGET": {"default": 30, "booking_updated": 4}}
    assert conf.time_budget("booking_updated") == 4
    assert conf.time_budget("lead_created") == 30
    assert conf.parse_budgets("20,lead_created=3") == {"default": 20.0, "lead_created": 3.0}


def test_stats_and_prune(registry):
    registry.enable("idempotent-counter", "read_leads")
    registry.enable("flaky-plugin", "read_leads", fail_attempts="9")
    for _ in range(3):
        Lead.objects.create(name="Ada")
    run_worker_batch()
    rows = {row["plugin"]: row for row in delivery_stats()}
    assert (rows["idempotent-counter"]["delivered"], rows["flaky-plugin"]["dead"]) == (3, 3)
    assert rows["idempotent-counter"]["p50_ms"] is not None
    assert rows["idempotent-counter"]["p95_ms"] >= rows["idempotent-counter"]["p50_ms"]
    assert prune(days=1) == {"deliveries": 0, "events": 0, "tasks": 0, "failures": 0}
    Delivery.objects.update(finished_at=timezone.now() - timedelta(days=2))
    removed = prune(days=1)
    assert removed["deliveries"] == 3  # the dead ones are kept for the admin
    assert Delivery.objects.filter(status="dead").count() == 3


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile([], 0.5) is None


def test_a_delivery_whose_task_failed_before_claiming_is_requeued(registry):
    from django_tasks_db.models import DBTaskResult

    registry.enable("idempotent-counter", "read_leads")
    Lead.objects.create(name="Ada")
    run_worker_batch(queues=("events",))
    delivery = Delivery.objects.get()
    # As if the task raised before its claim (say "database is locked"): pending, task failed.
    DBTaskResult.objects.filter(pk=delivery.task_id).update(status="FAILED")
    Delivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=1)
    )
    run_worker_batch()
    assert Delivery.objects.get().status == "pending"  # nothing would ever run it
    assert reap_stale().stranded == 1
    run_worker_batch()
    assert Delivery.objects.get().status == "succeeded"


def test_a_fan_out_that_failed_before_recording_its_event_runs_again(registry):
    from django_tasks_db.models import DBTaskResult

    from services_ai.events.models import Event

    registry.enable("idempotent-counter", "read_leads")
    Lead.objects.create(name="Ada")
    DBTaskResult.objects.update(status="FAILED", worker_ids=["w1"])  # it raised mid-way
    assert reap_stale().fan_outs == 1
    DBTaskResult.objects.update(run_after=timezone.now())  # skip the backoff wait
    run_worker_batch()
    assert Event.objects.count() == 1
    assert Delivery.objects.get().status == "succeeded"
    assert reap_stale().fan_outs == 0  # recorded now: nothing to redo


def test_a_killed_workers_fan_out_runs_again_and_its_delivery_is_retried(registry):
    from django_tasks_db.models import DBTaskResult

    from services_ai.events.reaper import abandon_worker

    registry.enable("idempotent-counter", "read_leads")
    Lead.objects.create(name="Ada")
    DBTaskResult.objects.update(status="RUNNING", worker_ids=["w1"], started_at=timezone.now())
    assert abandon_worker("w1", "killed") == 0
    assert list(DBTaskResult.objects.values_list("status", flat=True)) == ["READY"]
    run_worker_batch()
    assert Delivery.objects.get().status == "succeeded"


def test_an_outcome_from_a_superseded_claim_is_dropped(registry):
    from plugin_registry.host.records import HookOutcome
    from services_ai.events.delivery import _claim, record_outcome

    registry.enable("idempotent-counter", "read_leads")
    Lead.objects.create(name="Ada")
    run_worker_batch(queues=("events",))
    first = _claim(Delivery.objects.get().pk, "w1")
    assert _claim(first.pk, "w2") == "running elsewhere"
    stale = Delivery.objects.get()
    stale.claim_token = "from-an-earlier-claim"
    outcome = HookOutcome("idempotent-counter", "lead_created")
    assert record_outcome(stale, outcome, 1.0) == "taken over"
    assert record_outcome(first, outcome, 1.0) == "succeeded"


def test_grants_cannot_be_edited_around_the_registry_in_the_django_admin():
    from plugin_registry.admin import PermissionInline

    assert "granted" in PermissionInline.readonly_fields


def test_a_plugin_cannot_swallow_its_timeout(registry, settings):
    import time as time_module

    from services_ai.events.delivery import DeliveryTimeout, time_limit

    caught_by_plugin = []
    with pytest.raises(DeliveryTimeout), time_limit(0.2):
        try:
            time_module.sleep(5)
        except Exception as exc:  # what a careless plugin writes
            caught_by_plugin.append(exc)
    assert caught_by_plugin == []


def test_a_timeout_caught_by_a_bare_except_still_counts(registry):
    import time as time_module

    from services_ai.events.delivery import time_limit

    limit = time_limit(0.2)
    with limit, contextlib.suppress(BaseException):  # what a careless plugin does
        time_module.sleep(5)
    assert limit.fired


def test_the_supervisor_kills_an_overdue_worker_only_while_it_runs_plugin_code(registry):
    import subprocess

    from plugin_registry.host import marks
    from plugin_registry.registry.models import PluginFailure
    from services_ai.events.supervisor import Child, Supervisor

    registry.enable("idempotent-counter", "read_leads")
    Lead.objects.create(name="Ada")
    run_worker_batch(queues=("events",))
    delivery = Delivery.objects.get()
    Delivery.objects.filter(pk=delivery.pk).update(
        status="running", worker_id="w1", lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    stand_in = subprocess.Popen(["sleep", "60"])  # plays the worker process
    supervisor = Supervisor(1)
    supervisor.children["w1"] = Child("w1", stand_in)
    try:
        marker = marks.marker_path(stand_in.pid)
        marker.write_text("")  # past the plugin: recording, say, behind a lock
        supervisor._kill_overdue()
        assert stand_in.poll() is None and "w1" in supervisor.children

        other_event = marks.Mark(
            "idempotent-counter", "lead_created", f"event {delivery.event_id + 1}"
        )
        marker.write_bytes(other_event.encode())  # the same plugin, another delivery
        supervisor._kill_overdue()
        assert stand_in.poll() is None and "w1" in supervisor.children

        stuck = marks.Mark("idempotent-counter", "lead_created", f"event {delivery.event_id}")
        marker.write_bytes(stuck.encode())  # stuck inside the plugin, in this delivery
        supervisor._kill_overdue()
        assert stand_in.wait(timeout=10) == -9 and "w1" not in supervisor.children
        assert not marker.exists()
        delivery.refresh_from_db()
        assert delivery.status == "failed"
        assert delivery.last_error.startswith(f"DeliveryTimeout: delivery {delivery.pk} exceeded")
        # The kill is a strike against the plugin, towards its quarantine.
        strike = PluginFailure.objects.get(plugin_name="idempotent-counter", hook="<stall>")
        assert f"delivery {delivery.pk}" in strike.message and "killed" in strike.message
    finally:
        if stand_in.poll() is None:
            stand_in.kill()
            stand_in.wait()
