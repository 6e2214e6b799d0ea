"""Turning model values into the JSON-serialisable snapshots plugins receive."""

from __future__ import annotations

from datetime import UTC, date, datetime

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime


def iso(value: datetime | None) -> str:
    """Return a datetime as an ISO 8601 string in UTC ('' for ``None``)."""
    if value is None:
        return ""
    return value.astimezone(UTC).isoformat()


def parse_moment(value: str, *, field: str) -> datetime:
    """Parse an ISO 8601 date or datetime filter value; a bare date means its midnight UTC."""
    moment = parse_datetime(value)
    if moment is None:
        day: date | None = parse_date(value)
        if day is None:
            raise ValueError(f"{field}: {value!r} is not an ISO 8601 date or datetime")
        moment = datetime(day.year, day.month, day.day)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    return moment
