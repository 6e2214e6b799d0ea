"""The dashboard: one card per enabled widget, each loaded in its own request, sanitised,
for staff only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from plugin_registry.host.sanitize import sanitize
from services_ai.bookings.models import Booking
from services_ai.leads.models import Lead

pytestmark = pytest.mark.django_db


def test_dashboard_shows_the_booking_widget(registry, admin_client):
    registry.enable("booking-widget", "read_bookings")
    lead = Lead.objects.create(name="Ada")
    start = timezone.now() + timedelta(days=1)
    Booking.objects.create(lead=lead, service="Window cleaning", start=start, end=start)
    page = admin_client.get("/").content.decode()
    assert 'data-plugin="booking-widget" hx-get="/widgets/booking-widget/"' in page
    assert "Window cleaning" not in page  # the card loads in a request of its own
    card = admin_client.get("/widgets/booking-widget/").content.decode()
    assert 'hx-trigger="every 30s"' in card  # the widget's refresh_interval
    assert "Upcoming bookings" in card
    assert "Window cleaning" in card
    assert admin_client.get("/widgets/lead-scorer/").status_code == 404  # not a widget


def test_dashboard_needs_a_staff_user(client, django_user_model):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    django_user_model.objects.create_user("clerk", password="pw-12345678")
    client.login(username="clerk", password="pw-12345678")
    assert client.get("/").status_code == 403
    assert client.get("/widgets/booking-widget/").status_code == 403


def test_widget_without_permission_shows_its_error_in_its_own_card(registry, admin_client):
    registry.enable("booking-widget")  # read_bookings not granted: the data API refuses
    card = admin_client.get("/widgets/booking-widget/").content.decode()
    assert "This widget failed: PluginPermissionDenied" in card


def test_sanitize_removes_scripts_handlers_and_javascript_urls():
    dirty = (
        '<p class="x" onclick="steal()">hi</p><script>alert(1)</script>'
        '<img src=x onerror="alert(2)"><a href="javascript:alert(3)">a</a>'
        '<a href="https://example.com">ok</a>'
    )
    clean = sanitize(dirty)
    assert "script" not in clean and "onerror" not in clean and "onclick" not in clean
    assert "javascript:" not in clean
    assert '<p class="plugin-x">hi</p>' in clean  # classes get the prefix plugin-
    assert 'href="https://example.com"' in clean and 'rel="noopener noreferrer"' in clean
