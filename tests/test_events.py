"""Domain events reach the real example plugins after commit, never after a rollback."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from plugin_registry.registry.models import PluginData, PluginFailure
from services_ai.bookings.models import Booking
from services_ai.events.models import Delivery, Event
from services_ai.leads.models import Lead
from services_ai.testing.worker import run_worker_batch

pytestmark = pytest.mark.django_db(transaction=True)


def scores():
    rows = PluginData.objects.filter(plugin_name="lead-scorer", key__startswith="score:")
    return dict(rows.values_list("key", "value"))


def follow_up(lead_id: int):
    row = PluginData.objects.filter(plugin_name="lead-scorer", key=f"followup:{lead_id}").first()
    return row.value if row else None


def activity():
    row = PluginData.objects.filter(plugin_name="booking-widget", key="activity").first()
    return row.value if row else []


def test_lead_created_is_delivered_by_the_worker_with_a_snapshot(registry):
    registry.enable("lead-scorer", "read_leads")
    with transaction.atomic():
        lead = Lead.objects.create(name="Ada", email="ada@corp.example", source="referral")
    assert scores() == {}, "the request path only records the event"
    run_worker_batch()
    assert scores() == {f"score:{lead.pk}": {"score": 60, "hot": True}}


def test_a_hot_lead_gets_a_follow_up_booking_whose_event_reaches_other_plugins(registry):
    registry.enable("lead-scorer", "read_leads", "create_bookings")
    registry.enable("booking-widget", "read_bookings")
    hot = Lead.objects.create(name="Ada", email="ada@corp.example", source="referral")
    cold = Lead.objects.create(name="Bob", email="bob@gmail.com", source="fair")
    run_worker_batch()  # the lead events, then the follow-up's booking_created
    assert scores() == {
        f"score:{hot.pk}": {"score": 60, "hot": True},
        f"score:{cold.pk}": {"score": 10, "hot": False},
    }
    booking = Booking.objects.get(created_by="lead-scorer")
    assert booking.lead_id == hot.pk and booking.status == "requested"
    delivery = Delivery.objects.get(plugin_name="lead-scorer", event__payload__lead__id=hot.pk)
    assert follow_up(hot.pk) == {
        "status": "booked",
        "booking_id": booking.pk,
        "start": booking.snapshot()["start"],
        "idempotency_key": delivery.idempotency_key,
    }
    assert follow_up(cold.pk) is None
    assert [entry["event"] for entry in activity()] == ["created"]


def test_without_create_bookings_leads_are_still_scored(registry):
    registry.enable("lead-scorer", "read_leads")
    lead = Lead.objects.create(name="Ada", email="ada@corp.example", source="referral")
    run_worker_batch()
    assert scores() == {f"score:{lead.pk}": {"score": 60, "hot": True}}
    assert follow_up(lead.pk)["reason"] == "permission 'create_bookings' is not granted"
    assert not Booking.objects.exists()
    assert Delivery.objects.get().status == "succeeded"


def test_rolled_back_lead_emits_nothing(registry):
    registry.enable("lead-scorer", "read_leads")
    with pytest.raises(RuntimeError), transaction.atomic():
        Lead.objects.create(name="Rolled back", source="referral")
        raise RuntimeError("abort")
    run_worker_batch()
    assert scores() == {}
    assert not Lead.objects.exists()
    assert not Event.objects.exists() and not DBTaskResult.objects.exists()


def test_plugin_without_read_leads_receives_no_lead_created(registry):
    registry.enable("lead-scorer")  # enabled, read_leads not granted
    Lead.objects.create(name="Ada")
    run_worker_batch()
    assert scores() == {}
    assert not Delivery.objects.exists()


def test_booking_updated_gets_the_real_previous_state(registry):
    registry.enable("booking-widget", "read_bookings")
    lead = Lead.objects.create(name="Ada")
    start = timezone.now() + timedelta(days=1)
    booking = Booking.objects.create(lead=lead, service="Boiler", start=start, end=start)
    booking.status = Booking.Status.CONFIRMED
    booking.save()
    booking.notes = "bring ladder"
    booking.save()
    booking.save()  # nothing changed: no event
    run_worker_batch()
    events = [entry["event"] for entry in activity()]
    assert events == ["created", "status changed from requested to confirmed", "updated"]


def test_previous_state_snapshot_holds_values_before_the_update(registry):
    registry.enable("booking-widget", "read_bookings")
    lead = Lead.objects.create(name="Ada")
    start = timezone.now()
    booking = Booking.objects.create(lead=lead, service="Boiler", start=start, end=start)
    Booking.objects.filter(pk=booking.pk).update(service="Garden")  # changed behind its back
    booking.status = Booking.Status.CANCELLED
    booking.save()

    run_worker_batch(queues=("events",))
    assert list(Event.objects.order_by("id").values_list("hook", flat=True)) == [
        "lead_created",
        "booking_created",
        "booking_updated",
    ]
    payload = Event.objects.get(hook="booking_updated").payload
    after, before = payload["booking"], payload["previous_state"]
    # previous_state is the row as stored, not the instance's stale in-memory values.
    assert before["service"] == "Garden" and before["status"] == "requested"
    assert after["service"] == "Boiler" and after["status"] == "cancelled"
    assert before["id"] == after["id"] == booking.pk
    assert after["start"].endswith("+00:00")
    json.dumps(payload)  # JSON-serialisable, no model instances
    run_worker_batch()
    assert activity()[-1]["event"] == "status changed from requested to cancelled"


def test_a_raising_plugin_does_not_stop_another_and_is_recorded(registry, monkeypatch):
    registry.enable("lead-scorer", "read_leads")
    registry.enable("crm-sync", "read_leads", api_key="k-12345678")
    import crm_sync.main

    def broken(lead):
        raise ConnectionError("CRM unreachable")

    broken.services_ai_impl = crm_sync.main.lead_created.services_ai_impl
    monkeypatch.setattr(crm_sync.main, "lead_created", broken)
    lead = Lead.objects.create(name="Ada", source="referral")
    run_worker_batch()
    assert f"score:{lead.pk}" in scores()
    failure = PluginFailure.objects.get()
    assert (failure.plugin_name, failure.hook) == ("crm-sync", "lead_created")
    assert "ConnectionError: CRM unreachable" in failure.message
    assert "Traceback (most recent call last)" in failure.traceback
