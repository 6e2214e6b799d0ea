"""Event delivery through the real database task worker, in this process."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from plugin_registry import services
from plugin_registry.models import PluginData
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

    assert retry([delivery]) == 1  # a fresh set of attempts: 4th fails, 5th succeeds
    run_worker_batch()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.max_attempts) == ("succeeded", 5, 6)


def test_manual_retry_only_takes_dead_or_failed(registry):
    registry.enable("idempotent-counter", "read_leads")
    Lead.objects.create(name="Ada")
    run_worker_batch()
    assert retry(list(Delivery.objects.all())) == 0


def test_revoked_permission_after_enqueue_skips_with_a_reason(registry):
    registry.enable("idempotent-counter", "read_leads")
    registry.enable("flaky-plugin", "read_leads")
    Lead.objects.create(name="Ada")
    run_worker_batch(queues=("events",))  # fanned out: deliveries exist and are enqueued
    assert set(Delivery.objects.values_list("status", flat=True)) == {"pending"}
    services.set_grant("idempotent-counter", "read_leads", False)
    services.disable("flaky-plugin")
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
    }


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
    assert prune(days=1) == {"deliveries": 0, "events": 0, "tasks": 0}
    Delivery.objects.update(finished_at=timezone.now() - timedelta(days=2))
    removed = prune(days=1)
    assert removed["deliveries"] == 3  # the dead ones are kept for the admin
    assert Delivery.objects.filter(status="dead").count() == 3


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile([], 0.5) is None
