"""The data API for plugins: every function checks the calling plugin's grants.

Call these from inside hook implementations; the host knows which plugin is running.
Plugins are trusted, in-process code: permissions are consent and least data, not a sandbox.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .context import DeliveryInfo, current_call, running
from .exceptions import PluginPermissionDenied
from .types import BookingSnapshot, LeadSnapshot

__all__ = [
    "create_booking",
    "current_delivery",
    "current_plugin",
    "delete_data",
    "get_booking",
    "get_data",
    "get_lead",
    "get_settings",
    "list_bookings",
    "list_leads",
    "render_template",
    "set_data",
    "update_data",
]

MAX_LIMIT = 1000


def _require(permission: str) -> str:
    call = current_call()
    if permission not in call.granted:
        raise PluginPermissionDenied(permission, plugin=call.plugin)
    return call.plugin


def _clamp(limit: int) -> int:
    return max(0, min(int(limit), MAX_LIMIT))


def current_plugin() -> str:
    """Return the registry name of the plugin whose code is running."""
    return current_call().plugin


def current_delivery() -> DeliveryInfo | None:
    """Return the delivery being run (idempotency key, attempt, event id), or ``None``.

    Event hooks run by a worker may run more than once for the same event (a retry after a
    failure, or after a worker died mid-call). A plugin with outside effects should remember
    ``idempotency_key`` and do nothing the second time.
    """
    current_call()
    return running.delivery


def list_leads(filters: dict[str, str] | None = None, limit: int = 100) -> list[LeadSnapshot]:
    """Return leads, newest first, matching ``filters`` (``source``, ``created_after``,
    ``created_before`` as ISO dates). Needs ``read_leads``."""
    _require("read_leads")
    from services_ai.leads.models import Lead

    leads = Lead.objects.filtered(filters or {}).order_by("-created_at", "-id")
    return [lead.snapshot() for lead in leads[: _clamp(limit)]]


def get_lead(lead_id: int) -> LeadSnapshot | None:
    """Return one lead, or ``None`` if it does not exist. Needs ``read_leads``."""
    _require("read_leads")
    from services_ai.leads.models import Lead

    lead = Lead.objects.filter(pk=lead_id).first()
    return lead.snapshot() if lead else None


def list_bookings(filters: dict[str, str] | None = None, limit: int = 100) -> list[BookingSnapshot]:
    """Return bookings, soonest first, matching ``filters`` (``status``, ``service``,
    ``lead_id``, ``start_after``, ``start_before``). Needs ``read_bookings``."""
    _require("read_bookings")
    from services_ai.bookings.models import Booking

    bookings = Booking.objects.filtered(filters or {}).order_by("start", "id")
    return [booking.snapshot() for booking in bookings[: _clamp(limit)]]


def get_booking(booking_id: int) -> BookingSnapshot | None:
    """Return one booking, or ``None`` if it does not exist. Needs ``read_bookings``."""
    _require("read_bookings")
    from services_ai.bookings.models import Booking

    booking = Booking.objects.filter(pk=booking_id).first()
    return booking.snapshot() if booking else None


def create_booking(
    *, lead_id: int, service: str, start: str, end: str, notes: str = ""
) -> BookingSnapshot:
    """Create a booking (status ``requested``) for an existing lead. Needs ``create_bookings``.

    ``start`` and ``end`` are ISO 8601 datetimes (without a timezone: UTC) or dates (midnight
    UTC). Raises ``ValueError`` for an unknown lead or an end before the start. The booking's
    ``booking_created`` event is recorded with it and delivered by a worker as usual.
    """
    plugin = _require("create_bookings")
    from services_ai.bookings.models import Booking

    booking = Booking.create_validated(
        lead_id=lead_id, service=service, start=start, end=end, notes=notes, created_by=plugin
    )
    return booking.snapshot()


def get_settings() -> dict[str, Any]:
    """Return the running plugin's settings as typed values, defaults filled in."""
    from plugin_registry.settings_store import effective_settings

    return effective_settings(current_call().plugin)


def get_data(key: str, default: Any = None) -> Any:
    """Return a JSON value the running plugin stored under ``key``."""
    from plugin_registry.models import PluginData

    row = PluginData.objects.filter(plugin_name=current_call().plugin, key=key).first()
    return row.value if row else default


def set_data(key: str, value: Any) -> None:
    """Store a JSON-serialisable value under ``key``, private to the running plugin."""
    from plugin_registry.models import PluginData

    PluginData.objects.update_or_create(
        plugin_name=current_call().plugin, key=key, defaults={"value": value}
    )


def update_data(key: str, change: Callable[[Any], Any], default: Any = None) -> Any:
    """Replace the value under ``key`` with ``change(current)`` atomically; return the new value.

    ``current`` is ``default`` when nothing is stored yet. Workers updating the same key at the
    same time wait for each other, so nothing is lost (unlike ``get_data`` then ``set_data``).
    ``change`` runs inside a database transaction: keep it quick and free of outside effects.
    """
    from django.db import IntegrityError, transaction

    from plugin_registry.models import PluginData

    plugin = current_call().plugin
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


def delete_data(key: str | None = None) -> int:
    """Delete one stored key, or every key of the running plugin when ``key`` is ``None``."""
    from plugin_registry.models import PluginData

    rows = PluginData.objects.filter(plugin_name=current_call().plugin)
    if key is not None:
        rows = rows.filter(key=key)
    deleted, _ = rows.delete()
    return deleted


def render_template(template_name: str, context: dict[str, Any] | None = None) -> str:
    """Render a Django template from the running plugin's own ``templates/`` folder."""
    from plugin_registry.templates import render_plugin_template

    return render_plugin_template(current_call().plugin, template_name, context or {})
