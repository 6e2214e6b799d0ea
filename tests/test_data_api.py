"""The permission-checked data API against the real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from services_ai.bookings.models import Booking
from services_ai.leads.models import Lead
from services_ai.plugins import PluginPermissionDenied, api
from services_ai.testing.plugins import as_plugin as acting_as_plugin
from services_ai.testing.plugins import delivering

pytestmark = pytest.mark.django_db


def as_plugin(*perms: str, name: str = "tester"):
    return acting_as_plugin(name, *perms)


def test_list_leads_needs_read_leads_and_applies_filters():
    Lead.objects.create(name="Ada", source="referral")
    Lead.objects.create(name="Bob", source="website")
    with as_plugin(), pytest.raises(PluginPermissionDenied, match="'read_leads' is not granted"):
        api.list_leads()
    with as_plugin("read_leads"):
        assert [lead["name"] for lead in api.list_leads({"source": "referral"})] == ["Ada"]
        tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
        assert api.list_leads({"created_after": tomorrow}) == []
        with pytest.raises(ValueError, match="unknown lead filter"):
            api.list_leads({"colour": "red"})
        with pytest.raises(ValueError, match="created_after: 'soon' is not an ISO 8601 date"):
            api.list_leads({"created_after": "soon"})


def test_create_booking_needs_create_bookings_and_validates():
    lead = Lead.objects.create(name="Ada")
    start = timezone.now().replace(microsecond=0)
    args = {
        "lead_id": lead.pk,
        "service": "Boiler service",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(),
    }
    with as_plugin("read_bookings"), pytest.raises(PluginPermissionDenied):
        api.create_booking(**args)
    with as_plugin("create_bookings", name="scheduler"):
        created = api.create_booking(**args)
        with pytest.raises(ValueError, match="lead_id: no lead with id 999"):
            api.create_booking(**{**args, "lead_id": 999})
        with pytest.raises(ValueError, match="end: The end must not be before the start"):
            api.create_booking(**{**args, "end": (start - timedelta(hours=1)).isoformat()})
    booking = Booking.objects.get()
    assert created["id"] == booking.pk and created["status"] == "requested"
    assert booking.created_by == "scheduler"


def test_plugin_data_is_private_to_each_plugin():
    with as_plugin(name="a"):
        api.set_data("k", {"n": 1})
    with as_plugin(name="b"):
        assert api.get_data("k") is None
        api.set_data("k", [2])
    with as_plugin(name="a"):
        assert api.get_data("k") == {"n": 1}
        assert api.delete_data() == 1
        assert api.get_data("k", "gone") == "gone"


def test_update_data_changes_a_value_in_one_step():
    with as_plugin(name="a"):
        assert api.update_data("n", lambda n: n + 1, default=0) == 1
        assert api.update_data("n", lambda n: n + 1, default=0) == 2
        assert api.get_data("n") == 2
    with as_plugin(name="b"):
        assert api.update_data("n", lambda n: n + 10, default=0) == 10


def test_a_redelivered_booking_event_is_logged_once_by_the_example_widget():
    import booking_widget.main as widget

    booking = {"id": 7, "created_at": "2026-11-25T10:00:00+00:00"}
    with as_plugin("read_bookings", name="booking-widget"):
        for attempt in (1, 2):  # the same delivery, run twice (say, after a worker died)
            with delivering("41:booking-widget", attempt=attempt, event_id=41):
                widget.booking_created(booking)
        assert [e["booking_id"] for e in api.get_data("activity")] == [7]
