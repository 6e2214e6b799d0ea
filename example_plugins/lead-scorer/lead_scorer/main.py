"""Hook implementations of the lead-scorer plugin: score every new lead, follow up hot ones."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from services_ai.plugins import LeadSnapshot, PluginPermissionDenied, api, hookimpl

logger = logging.getLogger(__name__)

FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "aol.com",
        "icloud.com",
    }
)
FOLLOW_UP_SERVICE = "Follow-up call"
FOLLOW_UP_MINUTES = 30


def _sources(value: str) -> set[str]:
    """Split a comma separated setting into lower-case source names."""
    return {part.strip().lower() for part in value.split(",") if part.strip()}


def score_lead(lead: Mapping[str, Any], settings: Mapping[str, Any]) -> int:
    """Return a deterministic 0..100 score for a lead snapshot."""
    score = 30
    if (lead.get("source") or "").strip().lower() in _sources(
        settings.get("priority_sources", "referral,website")
    ):
        score += 30
    if (lead.get("company") or "").strip():
        score += 20
    if (lead.get("phone") or "").strip():
        score += 10
    if (lead.get("notes") or "").strip():
        score += 10
    domain = (lead.get("email") or "").rpartition("@")[2].strip().lower()
    if settings.get("free_mail_penalty", True) and domain in FREE_MAIL_DOMAINS:
        score -= 20
    return max(0, min(100, score))


def follow_up_window(lead: Mapping[str, Any], hours: float) -> tuple[str, str]:
    """Return the follow-up's ISO start and end: ``hours`` after the lead was created (to the
    minute), ``FOLLOW_UP_MINUTES`` long.

    Counted from the lead's ``created_at``, not from now, so every attempt of a delivery asks
    for the same slot.
    """
    try:
        created = datetime.fromisoformat(lead.get("created_at") or "")
    except ValueError:
        created = datetime.now(UTC)
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    start = (created + timedelta(hours=hours)).replace(second=0, microsecond=0)
    return start.isoformat(), (start + timedelta(minutes=FOLLOW_UP_MINUTES)).isoformat()


def _booked(record: Any) -> bool:
    return isinstance(record, dict) and record.get("status") == "booked"


def book_follow_up(lead: LeadSnapshot, score: int, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Book one follow-up for a hot lead; return the record stored under ``followup:<id>``.

    The record is ``{"status": "booked", "booking_id", "start", "idempotency_key"}``, or
    ``{"status": "skipped", "reason", "idempotency_key"}`` when the booking cannot be made (the
    ``create_bookings`` permission is not granted, the lead is gone). ``idempotency_key`` is
    the key of the delivery that wrote the record (``None`` outside a worker).

    Safe when the delivery runs again (a retry, a worker killed mid-way, an admin's retry): the
    booking is created inside ``api.update_data``'s ``change``, in the same database transaction
    that stores the ``booked`` record (``create_booking`` joins the open transaction), so the
    two are committed together or not at all; attempts running at the same time wait for the
    row lock, and an attempt that finds ``booked`` creates nothing. A lead gets at most one
    follow-up, whichever delivery gets there first.
    """
    key = f"followup:{lead['id']}"
    delivery = api.current_delivery()
    idempotency_key = delivery.idempotency_key if delivery else None
    start, end = follow_up_window(lead, float(settings.get("follow_up_hours") or 24))
    service = (settings.get("follow_up_service") or "").strip() or FOLLOW_UP_SERVICE

    def book(current: Any) -> Any:
        if _booked(current):
            return current  # an earlier attempt booked it: nothing more to do
        booking = api.create_booking(
            lead_id=lead["id"],
            service=service,
            start=start,
            end=end,
            notes=f"Hot lead (score {score}): follow up. Booked by lead-scorer.",
        )
        return {
            "status": "booked",
            "booking_id": booking["id"],
            "start": booking["start"],
            "idempotency_key": idempotency_key,
        }

    try:
        return api.update_data(key, book)
    except PluginPermissionDenied as exc:  # nothing was stored: the transaction rolled back
        reason = f"permission '{exc.permission}' is not granted"
    except ValueError as exc:  # the lead was deleted meanwhile, or the slot is invalid
        reason = str(exc)
    logger.info("lead-scorer: no follow-up for lead %s: %s", lead["id"], reason)
    skipped = {"status": "skipped", "reason": reason, "idempotency_key": idempotency_key}
    return api.update_data(key, lambda current: current if _booked(current) else skipped)


@hookimpl
def lead_created(lead: LeadSnapshot) -> None:
    """Score the new lead under ``score:<id>``; book a follow-up if it is hot."""
    settings = api.get_settings()
    score = score_lead(lead, settings)
    hot = score >= float(settings.get("threshold", 60))
    api.set_data(f"score:{lead['id']}", {"score": score, "hot": hot})  # first: never lost
    if hot and settings.get("create_follow_up", True):
        book_follow_up(lead, score, settings)
