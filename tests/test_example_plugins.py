"""The lead management (lead-scorer) and CRM integration (crm-sync) examples, in process.

Hooks run through a real host with the ``services_ai_plugin`` fixture; ``delivering`` makes a
call one attempt of an event delivery, so running it twice with one key is a retried delivery.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services_ai.bookings.models import Booking
from services_ai.testing.plugins import delivering

HOT = {"name": "Ada", "source": "referral", "company": "ACME", "email": "ada@acme.test"}  # 80
COLD = {"name": "Bob", "source": "fair", "email": "bob@gmail.com"}  # 10


@pytest.fixture
def scorer_module():
    from lead_scorer import main

    return main


@pytest.fixture
def crm_module():
    from crm_sync import main

    return main


def follow_ups() -> list[Booking]:
    return list(Booking.objects.filter(created_by="lead-scorer").order_by("pk"))


# -- lead-scorer: the lead management example ---------------------------------------------------


def test_a_hot_lead_gets_one_follow_up_however_often_its_delivery_runs(
    services_ai_plugin, scorer_module
):
    plugin = services_ai_plugin(
        scorer_module, "lead-scorer", grants=["read_leads", "create_bookings"]
    )
    lead = plugin.make_lead(**HOT)
    for attempt in (1, 2, 3):  # a failed attempt, a worker killed after booking, a manual retry
        with delivering("41:lead-scorer", attempt=attempt, event_id=41):
            plugin.call("lead_created", lead=lead)

    [booking] = follow_ups()
    assert plugin.get_data(f"score:{lead['id']}") == {"score": 80, "hot": True}
    assert plugin.get_data(f"followup:{lead['id']}") == {
        "status": "booked",
        "booking_id": booking.pk,
        "start": booking.snapshot()["start"],
        "idempotency_key": "41:lead-scorer",
    }
    created = datetime.fromisoformat(lead["created_at"])
    assert booking.start == (created + timedelta(hours=24)).replace(second=0, microsecond=0)
    assert booking.end - booking.start == timedelta(minutes=30)
    assert (booking.lead_id, booking.service, booking.status) == (
        lead["id"],
        "Follow-up call",
        "requested",
    )
    assert "score 80" in booking.notes

    with delivering("42:lead-scorer", event_id=42):  # another delivery for the same lead
        plugin.call("lead_created", lead=lead)
    assert len(follow_ups()) == 1, "a lead gets at most one follow-up"


def test_a_cold_lead_or_a_disabled_follow_up_books_nothing(services_ai_plugin, scorer_module):
    plugin = services_ai_plugin(
        scorer_module, "lead-scorer", grants=["read_leads", "create_bookings"]
    )
    cold = plugin.make_lead(**COLD)
    with delivering("1:lead-scorer"):
        plugin.call("lead_created", lead=cold)
    assert plugin.get_data(f"score:{cold['id']}") == {"score": 10, "hot": False}
    assert plugin.get_data(f"followup:{cold['id']}") is None

    plugin.configure(create_follow_up="off")
    hot = plugin.make_lead(**HOT)
    with delivering("2:lead-scorer"):
        plugin.call("lead_created", lead=hot)
    assert plugin.get_data(f"score:{hot['id']}") == {"score": 80, "hot": True}
    assert plugin.get_data(f"followup:{hot['id']}") is None
    assert follow_ups() == []


def test_without_create_bookings_the_score_is_stored_and_the_follow_up_skipped(
    services_ai_plugin, scorer_module
):
    plugin = services_ai_plugin(scorer_module, "lead-scorer", grants=["read_leads"])
    lead = plugin.make_lead(**HOT)
    with delivering("7:lead-scorer"):
        assert plugin.call("lead_created", lead=lead) is None  # no failure
    assert plugin.get_data(f"score:{lead['id']}") == {"score": 80, "hot": True}
    assert plugin.get_data(f"followup:{lead['id']}") == {
        "status": "skipped",
        "reason": "permission 'create_bookings' is not granted",
        "idempotency_key": "7:lead-scorer",
    }
    assert follow_ups() == []

    plugin.grant("create_bookings")  # an admin grants it, then retries the delivery
    with delivering("7:lead-scorer", attempt=2):
        plugin.call("lead_created", lead=lead)
    assert len(follow_ups()) == 1
    assert plugin.get_data(f"followup:{lead['id']}")["status"] == "booked"


def test_follow_up_settings_are_used_and_validated(services_ai_plugin, scorer_module):
    from plugin_registry.errors import RegistryError

    plugin = services_ai_plugin(
        scorer_module,
        "lead-scorer",
        grants=["read_leads", "create_bookings"],
        follow_up_hours=48,
        follow_up_service="Site visit",
    )
    lead = plugin.make_lead(**HOT)
    plugin.call("lead_created", lead=lead)  # outside a worker: no delivery, no key
    [booking] = follow_ups()
    created = datetime.fromisoformat(lead["created_at"])
    assert booking.start == (created + timedelta(hours=48)).replace(second=0, microsecond=0)
    assert booking.service == "Site visit"
    assert plugin.get_data(f"followup:{lead['id']}")["idempotency_key"] is None
    plugin.call("lead_created", lead=lead)
    assert len(follow_ups()) == 1
    with pytest.raises(RegistryError, match="setting 'follow_up_hours' \\(number\\): must be at"):
        plugin.configure(follow_up_hours=0)


def test_a_lead_gone_before_its_delivery_is_scored_and_its_follow_up_skipped(
    services_ai_plugin, scorer_module
):
    from services_ai.leads.models import Lead

    plugin = services_ai_plugin(
        scorer_module, "lead-scorer", grants=["read_leads", "create_bookings"]
    )
    lead = plugin.make_lead(**HOT)
    Lead.objects.filter(pk=lead["id"]).delete()
    plugin.call("lead_created", lead=lead)
    assert plugin.get_data(f"score:{lead['id']}") == {"score": 80, "hot": True}
    assert plugin.get_data(f"followup:{lead['id']}")["reason"] == (
        f"lead_id: no lead with id {lead['id']}"
    )


# -- crm-sync: the CRM integration example ------------------------------------------------------


@pytest.fixture
def sent(crm_module, monkeypatch) -> list[dict]:
    """Every request crm-sync hands to its (simulated) CRM client."""
    requests: list[dict] = []
    send = crm_module.send

    def spy(request):
        requests.append(request)
        return send(request)

    monkeypatch.setattr(crm_module, "send", spy)
    return requests


def test_crm_sync_pushes_once_per_idempotency_key(services_ai_plugin, crm_module, sent):
    plugin = services_ai_plugin(crm_module, "crm-sync", grants=["read_leads"], api_key="k-12345678")
    lead = plugin.make_lead(name="Ada")
    for attempt in (1, 2):  # the same delivery, retried
        with delivering("5:crm-sync", attempt=attempt, event_id=5):
            plugin.call("lead_created", lead=lead)

    assert len(sent) == 1
    [request] = sent
    assert (request["method"], request["url"]) == ("POST", "https://crm.example.com/api/leads")
    assert request["headers"]["Idempotency-Key"] == "5:crm-sync"
    assert request["json"]["external_id"] == lead["id"]
    assert plugin.get_data("pushes") == {"5:crm-sync": lead["id"]}
    assert plugin.get_data("outbox") == plugin.get_data("synced") == [lead["id"]]

    other = plugin.make_lead(name="Bob")
    with delivering("6:crm-sync", event_id=6):
        plugin.call("lead_created", lead=other)
    assert plugin.get_data("pushes") == {"5:crm-sync": lead["id"], "6:crm-sync": other["id"]}
    assert plugin.get_data("synced") == [lead["id"], other["id"]]
    assert [r["headers"]["Idempotency-Key"] for r in sent] == ["5:crm-sync", "6:crm-sync"]


def test_the_simulated_crm_keeps_the_first_push_per_key(services_ai_plugin, crm_module):
    from services_ai.plugins import api
    from services_ai.testing.plugins import as_plugin

    services_ai_plugin(crm_module, "crm-sync", grants=["read_leads"], api_key="k-12345678")
    request = {"headers": {"Idempotency-Key": "9:crm-sync"}, "json": {"external_id": 3}}
    with as_plugin("crm-sync", "read_leads"):
        assert crm_module.send(request)["external_id"] == 3
        repeat = {**request, "json": {"external_id": 4}}
        assert crm_module.send(repeat)["external_id"] == 3  # answered as the first time
        assert api.get_data("pushes") == {"9:crm-sync": 3}


def test_crm_sync_stores_no_api_key_and_pushes_nothing_in_nightly_mode(
    services_ai_plugin, crm_module, sent
):
    from plugin_registry.registry.models import PluginData

    plugin = services_ai_plugin(
        crm_module, "crm-sync", grants=["read_leads"], api_key="sk-secret-9876", sync_mode="nightly"
    )
    lead = plugin.make_lead(name="Ada")
    with delivering("8:crm-sync"):
        plugin.call("lead_created", lead=lead)
    assert sent == [] and plugin.get_data("pushes") is None
    assert plugin.get_data("outbox") == [lead["id"]] and plugin.get_data("synced") is None

    plugin.configure(sync_mode="realtime", endpoint="https://crm.test/v2/")
    with delivering("9:crm-sync"):
        plugin.call("lead_created", lead=lead)
    assert sent[0]["url"] == "https://crm.test/v2/leads"
    assert sent[0]["headers"]["Authorization"] == "Bearer sk-secret-9876"
    stored = str(list(PluginData.objects.values_list("value", flat=True)))
    assert "sk-secret" not in stored


def test_crm_sync_settings_page_counts_pushes(services_ai_plugin, crm_module):
    plugin = services_ai_plugin(crm_module, "crm-sync", grants=["read_leads"], api_key="k-12345678")
    first, second = plugin.make_lead(), plugin.make_lead()
    for key, lead in (("1:crm-sync", first), ("1:crm-sync", first), ("2:crm-sync", second)):
        with delivering(key):
            plugin.call("lead_created", lead=lead)
    html = plugin.call("settings_page", plugin_id="crm-sync")
    assert "<dt>Pushes (one per idempotency key)</dt><dd>2</dd>" in html
    assert "<dt>Leads synced</dt><dd>2</dd>" in html
    assert "k-12345678" not in html and "••••5678" in html
