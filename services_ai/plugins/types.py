"""Typed shapes of the data plugins receive and return.

Every hook argument is a plain, JSON-serialisable snapshot (``dict`` of ``str``, ``int``,
``None`` and ISO 8601 strings), never a model instance: events cross a task queue, and a plugin
never gets hold of the ORM. Each snapshot carries ``snapshot_version``; fields are only ever
added within a version.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

SNAPSHOT_VERSION = 1

#: The statuses a booking can have.
BookingStatus = Literal["requested", "confirmed", "completed", "cancelled"]


class LeadSnapshot(TypedDict):
    """A lead as a plugin sees it (``snapshot_version`` 1)."""

    snapshot_version: int
    id: int
    name: str
    email: str
    phone: str
    company: str
    source: str
    notes: str
    created_at: str  # ISO 8601, UTC


class BookingSnapshot(TypedDict):
    """A booking as a plugin sees it (``snapshot_version`` 1)."""

    snapshot_version: int
    id: int
    lead_id: int
    service: str
    status: BookingStatus
    start: str  # ISO 8601, UTC
    end: str  # ISO 8601, UTC
    notes: str
    created_at: str
    updated_at: str


class WidgetContext(TypedDict):
    """What ``dashboard_widget`` receives about the page being rendered."""

    user: str  # username of the viewer
    now: str  # ISO 8601, UTC
    plugin_id: str


class Widget(TypedDict):
    """What ``dashboard_widget`` returns. ``html`` is sanitised before it is shown."""

    title: str
    html: str
    refresh_interval: NotRequired[int]  # seconds; 0 or missing: never refreshed


class Export(TypedDict):
    """What ``data_export`` returns: one downloadable file."""

    format: str  # short name shown to the admin, e.g. "crm-json"
    filename: str
    content_type: str
    content: str
