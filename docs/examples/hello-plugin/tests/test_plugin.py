"""Tests of the Hello Plugin plugin against a real plugin host."""

import pytest

from hello_plugin import main


@pytest.fixture
def plugin(services_ai_plugin):
    return services_ai_plugin(main, "hello-plugin", grants=["read_bookings", "read_leads"])


def test_lead_created(plugin):
    plugin.call("lead_created", lead=plugin.make_lead(name="Ada"))
    assert plugin.get_data("last_lead_id") is not None


def test_booking_created(plugin):
    booking = plugin.make_booking()
    plugin.call("booking_created", booking=booking)
    assert plugin.get_data("last_booking_id") == booking["id"]


def test_booking_updated(plugin):
    booking = plugin.make_booking(status="confirmed")
    before = dict(booking, status="pending")
    plugin.call("booking_updated", booking=booking, previous_state=before)
    assert plugin.get_data("last_status_change") == ["pending", "confirmed"]


def test_dashboard_widget(plugin):
    widget = plugin.call("dashboard_widget", context=plugin.widget_context())
    assert widget["title"] == "Hello Plugin" and "tester" in widget["html"]


def test_plugin_installed(plugin):
    plugin.call("plugin_installed")
    assert plugin.get_data("installed") is True


def test_plugin_uninstalled(plugin):
    plugin.call("plugin_installed")
    plugin.call("plugin_uninstalled")
    assert plugin.get_data("installed") is None


def test_data_export(plugin):
    plugin.make_lead(name="Ada")
    export = plugin.call("data_export", data_type="leads", filters={})
    assert export["format"] == "hello-plugin-json" and "Ada" in export["content"]


def test_settings_page(plugin):
    assert "Hello Plugin" in plugin.call("settings_page", plugin_id="hello-plugin")
