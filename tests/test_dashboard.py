"""The dashboard renders enabled plugins' widgets, sanitised, for staff only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from services_ai.bookings.models import Booking
from services_ai.dashboard.sanitize import sanitize
from services_ai.leads.models import Lead

pytestmark = pytest.mark.django_db


def test_dashboard_shows_the_booking_widget(registry, admin_client):
    registry.enable("booking-widget", "read_bookings")
    lead = Lead.objects.create(name="Ada")
    start = timezone.now() + timedelta(days=1)
    Booking.objects.create(lead=lead, service="Window cleaning", start=start, end=start)
    page = admin_client.get("/").content.decode()
    assert 'data-plugin="booking-widget"' in page
    assert "Upcoming bookings" in page
    assert "Window cleaning" in page


def test_dashboard_needs_a_staff_user(client, django_user_model):
    assert client.get("/").status_code == 302
    django_user_model.objects.create_user("clerk", password="pw-12345678")
    client.login(username="clerk", password="pw-12345678")
    response = client.get("/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_widget_without_permission_shows_its_error_in_its_own_card(registry, admin_client):
    registry.enable("booking-widget")  # read_bookings not granted: the data API refuses
    page = admin_client.get("/").content.decode()
    assert "This widget failed: PluginPermissionDenied" in page


def test_sanitize_removes_scripts_handlers_and_javascript_urls():
    dirty = (
        '<p class="x" onclick="steal()">hi</p><script>alert(1)</script>'
        '<img src=x onerror="alert(2)"><a href="javascript:alert(3)">a</a>'
        '<a href="https://example.com">ok</a>'
    )
    clean = sanitize(dirty)
    assert "script" not in clean and "onerror" not in clean and "onclick" not in clean
    assert "javascript:" not in clean
    assert '<p class="x">hi</p>' in clean
    assert 'href="https://example.com"' in clean and 'rel="noopener noreferrer"' in clean
