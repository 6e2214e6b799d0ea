"""The data API's implementation: plugins' reads and writes go to the database here.

``services_ai.plugins.api`` checks grants and calls this backend, which the project installs
when Django starts (``ServicesAIConfig.ready``); the public API itself imports no model.

A plugin's settings (secrets decrypted), stored data and templates are its own: every method
that takes a plugin's name serves only the plugin whose code is running, so a plugin that
reaches the backend itself (``services_ai.plugins.backend.backend()``) cannot name another one.
Leads and bookings are shared, behind the permissions ``api`` checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction

from plugin_registry.registry.models import PluginData
from plugin_registry.registry.settings_store import effective_settings
from plugin_registry.registry.templates import render_plugin_template
from services_ai.bookings.models import Booking
from services_ai.leads.models import Lead
from services_ai.plugins.context import current_call
from services_ai.plugins.exceptions import PluginError
from services_ai.plugins.types import BookingSnapshot, LeadSnapshot


def _own(plugin: str) -> str:
    """Return ``plugin`` if it is the running plugin; refuse another plugin's name."""
    running = current_call().plugin
    if plugin != running:
        raise PluginError(
            f"the data API serves the running plugin only, not plugin {plugin!r}", plugin=running
        )
    return plugin


class DatabaseBackend:
    """Leads, bookings, settings and plugin data from the platform's database."""

    def list_leads(self, filters: dict[str, str], limit: int) -> list[LeadSnapshot]:
        leads = Lead.objects.filtered(filters).order_by("-created_at", "-id")
        return [lead.snapshot() for lead in leads[:limit]]

    def get_lead(self, lead_id: int) -> LeadSnapshot | None:
        lead = Lead.objects.filter(pk=lead_id).first()
        return lead.snapshot() if lead else None

    def list_bookings(self, filters: dict[str, str], limit: int) -> list[BookingSnapshot]:
        bookings = Booking.objects.filtered(filters).order_by("start", "id")
        return [booking.snapshot() for booking in bookings[:limit]]

    def get_booking(self, booking_id: int) -> BookingSnapshot | None:
        booking = Booking.objects.filter(pk=booking_id).first()
        return booking.snapshot() if booking else None

    def create_booking(
        self, plugin: str, *, lead_id: int, service: str, start: str, end: str, notes: str
    ) -> BookingSnapshot:
        booking = Booking.create_validated(
            lead_id=lead_id,
            service=service,
            start=start,
            end=end,
            notes=notes,
            created_by=_own(plugin),
        )
        return booking.snapshot()

    def get_settings(self, plugin: str) -> dict[str, Any]:
        return effective_settings(_own(plugin))

    def get_data(self, plugin: str, key: str, default: Any) -> Any:
        row = PluginData.objects.filter(plugin_name=_own(plugin), key=key).first()
        return row.value if row else default

    def set_data(self, plugin: str, key: str, value: Any) -> None:
        PluginData.objects.update_or_create(
            plugin_name=_own(plugin), key=key, defaults={"value": value}
        )

    def update_data(self, plugin: str, key: str, change: Callable[[Any], Any], default: Any) -> Any:
        _own(plugin)
        rows = PluginData.objects.select_for_update()
        with transaction.atomic():
            row = rows.filter(plugin_name=plugin, key=key).first()
            if row is None:
                try:
                    with transaction.atomic():
                        row = PluginData.objects.create(plugin_name=plugin, key=key, value=default)
                except IntegrityError:  # created meanwhile by a concurrent update: use that one
                    row = rows.get(plugin_name=plugin, key=key)
            row.value = change(row.value)
            row.save(update_fields=["value", "updated_at"])
            return row.value

    def delete_data(self, plugin: str, key: str | None) -> int:
        rows = PluginData.objects.filter(plugin_name=_own(plugin))
        if key is not None:
            rows = rows.filter(key=key)
        deleted, _ = rows.delete()
        return deleted

    def render_template(self, plugin: str, template_name: str, context: dict[str, Any]) -> str:
        return render_plugin_template(_own(plugin), template_name, context)
