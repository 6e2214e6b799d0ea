"""The hooks a Services AI plugin can implement.

Event hooks (``lead_created``, ``booking_created``, ``booking_updated``) run after the
transaction that saved the object has committed; a rolled-back save emits nothing. The host
calls every implementation in isolation: one plugin raising never stops another, and the failure
is recorded with the plugin, hook and traceback. A plugin only receives an event if it holds the
permission the hook needs (see :mod:`services_ai.plugins.permissions`).
"""

from __future__ import annotations

from services_ai.plugins.markers import hookspec
from services_ai.plugins.types import BookingSnapshot, Export, LeadSnapshot, Widget, WidgetContext


@hookspec
def lead_created(lead: LeadSnapshot) -> None:
    """Called once after a new lead has been committed to the database.

    :param lead: snapshot of the new lead (:class:`~services_ai.plugins.types.LeadSnapshot`).

    Needs the ``read_leads`` permission. The return value is ignored.
    """


@hookspec
def booking_created(booking: BookingSnapshot) -> None:
    """Called once after a new booking has been committed to the database.

    :param booking: snapshot of the new booking
        (:class:`~services_ai.plugins.types.BookingSnapshot`).

    Needs the ``read_bookings`` permission. The return value is ignored.
    """


@hookspec
def booking_updated(booking: BookingSnapshot, previous_state: BookingSnapshot) -> None:
    """Called once after a change to an existing booking has been committed.

    :param booking: snapshot of the booking after the update.
    :param previous_state: snapshot of the same booking as stored before the update, so
        ``previous_state["status"] != booking["status"]`` tells a status change.

    Needs the ``read_bookings`` permission. The return value is ignored.
    """


@hookspec
def dashboard_widget(context: WidgetContext) -> Widget | None:
    """Called on this plugin when the dashboard renders its card.

    :param context: who is looking and when (:class:`~services_ai.plugins.types.WidgetContext`).

    Return a :class:`~services_ai.plugins.types.Widget` (``title``, ``html`` and optionally
    ``refresh_interval`` in seconds), or ``None`` for no card. The HTML is sanitised: scripts,
    event handler attributes and ``javascript:`` URLs are removed.
    """


@hookspec
def plugin_installed() -> None:
    """Called on this plugin only, once, after it has been installed and registered.

    Use it to prepare the plugin's own data. The return value is ignored; an exception is
    recorded as a failure and does not undo the installation.
    """


@hookspec
def plugin_uninstalled() -> None:
    """Called on this plugin only, once, just before it is uninstalled.

    Use it to remove what ``plugin_installed`` created. The return value is ignored.
    """


@hookspec
def data_export(data_type: str, filters: dict[str, str]) -> Export | None:
    """Called when an admin exports data, to offer extra export formats.

    :param data_type: ``"leads"`` or ``"bookings"``.
    :param filters: the admin's filters as strings, e.g. ``{"status": "confirmed",
        "created_after": "2026-01-01"}``; apply them through the data API.

    Needs the read permission of ``data_type`` (``read_leads`` or ``read_bookings``). Return an
    :class:`~services_ai.plugins.types.Export`, or ``None`` when the plugin has no format for
    this data type.
    """


@hookspec
def settings_page(plugin_id: str) -> str | None:
    """Called on this plugin only when an admin opens its settings page.

    :param plugin_id: the plugin's registry name.

    Return an HTML fragment shown under the generated settings form (sanitised like widgets),
    or ``None``.
    """


HOOK_NAMES: tuple[str, ...] = (
    "lead_created",
    "booking_created",
    "booking_updated",
    "dashboard_widget",
    "plugin_installed",
    "plugin_uninstalled",
    "data_export",
    "settings_page",
)

#: Hooks that the host calls on one named plugin only, never broadcast.
SINGLE_PLUGIN_HOOKS: frozenset[str] = frozenset(
    {"plugin_installed", "plugin_uninstalled", "settings_page"}
)
