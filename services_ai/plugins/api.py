"""The data API for plugins: every function checks the calling plugin's grants.

Call these from inside hook implementations; the host knows which plugin is running.
Plugins are trusted, in-process code: permissions are consent and least data, not a sandbox.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services_ai.plugins.backend import backend
from services_ai.plugins.context import DeliveryInfo, current_call, running
from services_ai.plugins.exceptions import PluginPermissionDenied
from services_ai.plugins.types import BookingSnapshot, LeadSnapshot

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
    return backend().list_leads(filters or {}, _clamp(limit))


def get_lead(lead_id: int) -> LeadSnapshot | None:
    """Return one lead, or ``None`` if it does not exist. Needs ``read_leads``."""
    _require("read_leads")
    return backend().get_lead(lead_id)


def list_bookings(filters: dict[str, str] | None = None, limit: int = 100) -> list[BookingSnapshot]:
    """Return bookings, soonest first, matching ``filters`` (``status``, ``service``,
    ``lead_id``, ``start_after``, ``start_before``). Needs ``read_bookings``."""
    _require("read_bookings")
    return backend().list_bookings(filters or {}, _clamp(limit))


def get_booking(booking_id: int) -> BookingSnapshot | None:
    """Return one booking, or ``None`` if it does not exist. Needs ``read_bookings``."""
    _require("read_bookings")
    return backend().get_booking(booking_id)


def create_booking(
    *, lead_id: int, service: str, start: str, end: str, notes: str = ""
) -> BookingSnapshot:
    """Create a booking (status ``requested``) for an existing lead. Needs ``create_bookings``.

    ``start`` and ``end`` are ISO 8601 datetimes (without a timezone: UTC) or dates (midnight
    UTC). Raises ``ValueError`` for an unknown lead or an end before the start. The booking's
    ``booking_created`` event is recorded with it and delivered by a worker as usual.
    """
    plugin = _require("create_bookings")
    return backend().create_booking(
        plugin, lead_id=lead_id, service=service, start=start, end=end, notes=notes
    )


def get_settings() -> dict[str, Any]:
    """Return the running plugin's settings as typed values, defaults filled in."""
    return backend().get_settings(current_call().plugin)


def get_data(key: str, default: Any = None) -> Any:
    """Return a JSON value the running plugin stored under ``key``."""
    return backend().get_data(current_call().plugin, key, default)


def set_data(key: str, value: Any) -> None:
    """Store a JSON-serialisable value under ``key``, private to the running plugin."""
    backend().set_data(current_call().plugin, key, value)


def update_data(key: str, change: Callable[[Any], Any], default: Any = None) -> Any:
    """Replace the value under ``key`` with ``change(current)`` atomically; return the new value.

    ``current`` is ``default`` when nothing is stored yet. Workers updating the same key at the
    same time wait for each other, so nothing is lost (unlike ``get_data`` then ``set_data``).
    ``change`` runs inside a database transaction: keep it quick and free of outside effects.
    """
    return backend().update_data(current_call().plugin, key, change, default)


def delete_data(key: str | None = None) -> int:
    """Delete one stored key, or every key of the running plugin when ``key`` is ``None``."""
    return backend().delete_data(current_call().plugin, key)


def render_template(template_name: str, context: dict[str, Any] | None = None) -> str:
    """Render a Django template from the running plugin's own ``templates/`` folder."""
    return backend().render_template(current_call().plugin, template_name, context or {})
