"""Hooks of the Hello Plugin plugin."""

from __future__ import annotations

import json

from services_ai.plugins import api, hookimpl
from services_ai.plugins.types import BookingSnapshot, Export, LeadSnapshot, Widget, WidgetContext


@hookimpl
def lead_created(lead: LeadSnapshot) -> None:
    """Called once after a new lead has been committed to the database."""
    api.set_data("last_lead_id", lead["id"])


@hookimpl
def booking_created(booking: BookingSnapshot) -> None:
    """Called once after a new booking has been committed to the database."""
    api.set_data("last_booking_id", booking["id"])


@hookimpl
def booking_updated(booking: BookingSnapshot, previous_state: BookingSnapshot) -> None:
    """Called once after a change to an existing booking has been committed."""
    api.set_data("last_status_change", [previous_state["status"], booking["status"]])


@hookimpl
def dashboard_widget(context: WidgetContext) -> Widget | None:
    """Called on this plugin when the dashboard renders its card."""
    return {
        "title": "Hello Plugin",
        "html": api.render_template("hello_plugin/widget.html", {"user": context["user"]}),
        "refresh_interval": 60,
    }


@hookimpl
def plugin_installed() -> None:
    """Called on this plugin only, once, after it has been installed and registered."""
    api.set_data("installed", True)


@hookimpl
def plugin_uninstalled() -> None:
    """Called on this plugin only, once, just before it is uninstalled."""
    api.delete_data("installed")


@hookimpl
def data_export(data_type: str, filters: dict[str, str]) -> Export | None:
    """Called when an admin exports data, to offer extra export formats."""
    if data_type != "leads":
        return None
    leads = api.list_leads(filters)
    return {
        "format": "hello-plugin-json",
        "filename": "leads.json",
        "content_type": "application/json",
        "content": json.dumps(leads),
    }


@hookimpl
def settings_page(plugin_id: str) -> str | None:
    """Called on this plugin only when an admin opens its settings page."""
    return "<p>Hello Plugin has no extra settings page yet.</p>"
