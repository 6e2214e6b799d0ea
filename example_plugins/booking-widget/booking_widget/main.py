"""Hook implementations of the booking-widget plugin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services_ai.plugins import BookingSnapshot, Widget, WidgetContext, api, hookimpl

STATUSES = ("requested", "confirmed", "completed", "cancelled")
ACTIVITY_KEY = "activity"
ACTIVITY_SIZE = 10
UPCOMING_SHOWN = 5


def _parse(value: str) -> datetime:
    """Parse an ISO 8601 timestamp, assuming UTC when it has no offset."""
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _display(value: str) -> str:
    """Format an ISO 8601 timestamp as ``YYYY-MM-DD HH:MM`` UTC."""
    return _parse(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _log(booking_id: int, event: str, at: str) -> None:
    """Append one entry to the activity log, keeping the last ``ACTIVITY_SIZE``.

    A redelivered event (same idempotency key) is logged once; concurrent workers do not lose
    each other's entries.
    """
    delivery = api.current_delivery()
    key = delivery.idempotency_key if delivery else None
    entry = {"booking_id": booking_id, "event": event, "at": at, "key": key}

    def append(entries: list[dict]) -> list[dict]:
        if key is not None and any(e.get("key") == key for e in entries):
            return entries
        return [*entries, entry][-ACTIVITY_SIZE:]

    api.update_data(ACTIVITY_KEY, append, default=[])


@hookimpl
def booking_created(booking: BookingSnapshot) -> None:
    """Record the new booking in the activity log."""
    _log(booking["id"], "created", booking["created_at"])


@hookimpl
def booking_updated(booking: BookingSnapshot, previous_state: BookingSnapshot) -> None:
    """Record a status change (or a plain update) in the activity log."""
    before, after = previous_state["status"], booking["status"]
    event = f"status changed from {before} to {after}" if before != after else "updated"
    _log(booking["id"], event, booking["updated_at"])


@hookimpl
def dashboard_widget(context: WidgetContext) -> Widget:
    """Render the card: upcoming bookings counted by status, and recent activity."""
    settings = api.get_settings()
    now = _parse(context["now"])
    until = now + timedelta(days=int(settings.get("days_ahead", 7)))
    bookings = api.list_bookings(
        {"start_after": now.isoformat(), "start_before": until.isoformat()}, limit=1000
    )
    counts = {status: 0 for status in STATUSES}
    for booking in bookings:
        counts[booking["status"]] = counts.get(booking["status"], 0) + 1
    upcoming: list[dict[str, Any]] = [
        {**booking, "start_display": _display(booking["start"])}
        for booking in bookings[:UPCOMING_SHOWN]
    ]
    activity = [
        {**entry, "at_display": _display(entry["at"])}
        for entry in reversed(api.get_data(ACTIVITY_KEY, []))
    ]
    html = api.render_template(
        "booking_widget/widget.html",
        {
            "counts": [{"status": status, "count": n} for status, n in counts.items()],
            "total": len(bookings),
            "days_ahead": int(settings.get("days_ahead", 7)),
            "upcoming": upcoming,
            "activity": activity,
        },
    )
    return {
        "title": settings.get("title") or "Upcoming bookings",
        "html": html,
        "refresh_interval": int(settings.get("refresh_interval", 30)),
    }
