"""Fair workers: one plugin cannot take every worker, and events are delivered as they fan out."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from services_ai.events import conf
from services_ai.events import delivery as delivery_module
from services_ai.events.delivery import run_delivery
from services_ai.events.models import Delivery, Event
from services_ai.leads.models import Lead
from services_ai.testing.worker import run_worker_batch
from tests.test_worker import Platform

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def one_pending_delivery(registry):
    registry.enable("idempotent-counter", "read_leads")
    Lead.objects.create(name="Ada")
    run_worker_batch(queues=("events",))  # the fan-out only: the delivery waits
    return Delivery.objects.get()


def running_elsewhere(delivery: Delivery, worker_id: str, lease_seconds: float) -> Delivery:
    """A delivery of the same plugin that a worker is running now."""
    other = Event.objects.create(hook="lead_created", payload={"lead": {}})
    return Delivery.objects.create(
        event=other,
        plugin_name=delivery.plugin_name,
        hook=delivery.hook,
        max_attempts=8,
        status=Delivery.Status.RUNNING,
        worker_id=worker_id,
        lease_expires_at=timezone.now() + timedelta(seconds=lease_seconds),
    )


@pytest.fixture
def slow_here(monkeypatch):
    """This worker process saw the plugin's deliveries take seconds."""
    monkeypatch.setitem(delivery_module._durations, "idempotent-counter", 3.0)


def test_a_slow_plugin_at_its_limit_waits_for_its_running_delivery(
    one_pending_delivery, monkeypatch, slow_here
):
    monkeypatch.setenv(conf.PROCESSES_ENV, "2")  # half of two workers: one at a time
    busy = running_elsewhere(one_pending_delivery, "vm-1-abcd-1", lease_seconds=3)

    assert run_delivery(one_pending_delivery.pk, worker_id="vm-1-abcd-2") == "deferred"
    one_pending_delivery.refresh_from_db()
    assert one_pending_delivery.status == "pending" and one_pending_delivery.attempts == 0
    assert one_pending_delivery.next_attempt_at == busy.lease_expires_at
    queued = one_pending_delivery.task_id
    assert queued is not None

    # Another supervisor's workers (another node) have their own share.
    assert run_delivery(one_pending_delivery.pk, worker_id="vm-2-ef01-1") == "not due yet"
    Delivery.objects.filter(pk=one_pending_delivery.pk).update(next_attempt_at=timezone.now())
    assert run_delivery(one_pending_delivery.pk, worker_id="vm-2-ef01-1") == "succeeded"


def test_a_fast_plugin_is_never_held_back(one_pending_delivery, monkeypatch):
    monkeypatch.setenv(conf.PROCESSES_ENV, "2")
    monkeypatch.setitem(delivery_module._durations, "idempotent-counter", 0.01)
    running_elsewhere(one_pending_delivery, "vm-1-abcd-1", lease_seconds=3)
    assert run_delivery(one_pending_delivery.pk, worker_id="vm-1-abcd-2") == "succeeded"


def test_an_abandoned_running_delivery_does_not_count(one_pending_delivery, monkeypatch, slow_here):
    monkeypatch.setenv(conf.PROCESSES_ENV, "2")
    running_elsewhere(one_pending_delivery, "vm-1-abcd-1", lease_seconds=-1)  # lease over
    assert run_delivery(one_pending_delivery.pk, worker_id="vm-1-abcd-2") == "succeeded"


def test_the_limit_is_configurable(one_pending_delivery, monkeypatch, settings, slow_here):
    monkeypatch.setenv(conf.PROCESSES_ENV, "2")
    settings.SERVICES_AI_EVENTS = {"PLUGIN_CONCURRENCY": 2}
    running_elsewhere(one_pending_delivery, "vm-1-abcd-1", lease_seconds=3)
    assert run_delivery(one_pending_delivery.pk, worker_id="vm-1-abcd-2") == "succeeded"


def test_under_a_backlog_events_are_delivered_as_they_fan_out(registry):
    registry.enable("idempotent-counter", "read_leads")
    for index in range(5):
        Lead.objects.create(name=f"Lead {index}")
    run_worker_batch()
    first_delivered = Delivery.objects.order_by("finished_at").first()
    last_fanned_out = Event.objects.order_by("fanned_out_at").last()
    assert Delivery.objects.filter(status="succeeded").count() == 5
    # Deliveries come before the fan-outs still waiting: the first event was delivered before
    # the last one was even fanned out.
    assert first_delivered.finished_at < last_fanned_out.fanned_out_at


@pytest.mark.subprocess
def test_a_hanging_plugin_takes_one_worker_of_two_and_the_others_flow(
    tmp_path, example_site, delivery_site
):
    platform = Platform(
        tmp_path,
        [example_site, delivery_site],
        "",
        SERVICES_AI_TIME_BUDGET="3",
        SERVICES_AI_KILL_GRACE="1",
        SERVICES_AI_MAX_ATTEMPTS="1",
    )
    try:
        platform.enable("hang-plugin", "read_leads", mode="sleep")
        platform.enable("idempotent-counter", "read_leads")
        platform.create_leads(6)
        platform.start_worker(processes=2)
        platform.wait_for(
            lambda: platform.statuses("idempotent-counter") == {"succeeded": 6},
            timeout=120,
            what="the good plugin's 6 deliveries",
        )
        # Six 3-second hangs, one at a time, take 18 s: most are still waiting now.
        hanging = platform.statuses("hang-plugin")
        assert hanging.get("pending", 0) + hanging.get("running", 0) >= 3, hanging
        assert hanging.get("running", 0) <= 1, hanging
        started = time.monotonic()
        platform.wait_for(
            lambda: platform.statuses("hang-plugin") == {"dead": 6},
            timeout=120,
            what="the hanging deliveries to time out, one at a time",
        )
        print(
            f"\nthe hanging plugin's last deliveries finished {time.monotonic() - started:.0f}s later"
        )
        log = platform.worker_log(0)
        assert "killed worker" not in log  # interrupted within budget, never killed
    finally:
        platform.stop_all()


@pytest.mark.subprocess
def test_a_killed_supervisors_delivery_is_recovered_at_its_next_start_not_after_its_lease(
    tmp_path, example_site, delivery_site
):
    platform = Platform(tmp_path, [example_site, delivery_site], "")  # default 30 s budget
    try:
        platform.enable("hang-plugin", "read_leads", mode="slow")  # two seconds, then done
        platform.create_leads(1)
        worker = platform.start_worker(processes=1)
        platform.wait_for(
            lambda: platform.statuses("hang-plugin").get("running", 0) == 1,
            timeout=60,
            what="the delivery to start",
        )
        for pid in [worker.pid, *platform.worker_pids(worker)]:
            os.kill(pid, signal.SIGKILL)
        worker.wait()
        killed = time.monotonic()
        platform.start_worker(processes=1)
        platform.wait_for(
            lambda: platform.statuses("hang-plugin") == {"succeeded": 1},
            timeout=120,
            what="the interrupted delivery to be recovered and delivered",
        )
        error = platform.rows.one(
            "SELECT last_error FROM events_delivery WHERE plugin_name = 'hang-plugin'"
        )
        # Recovered because its supervisor is gone from this host, not because a 35 s lease
        # ran out.
        assert "stopped with its supervisor on this host" in error, error
        print(f"\nrecovered and delivered {time.monotonic() - killed:.1f}s after the kill")
    finally:
        platform.stop_all()
