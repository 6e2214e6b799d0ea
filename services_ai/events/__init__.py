"""Durable event delivery: events recorded with the change, delivered per plugin by workers.

The request path only records an :class:`~services_ai.events.models.Event` and enqueues one
fan-out task, inside the transaction that saved the lead or booking: its cost does not grow with
the number of plugins, and a rolled-back save leaves nothing behind. A worker then creates one
:class:`~services_ai.events.models.Delivery` per subscribed plugin and runs each on its own,
with retries, a time budget, and a record of every outcome.
"""

from __future__ import annotations

from typing import Any

EVENT_HOOKS = ("lead_created", "booking_created", "booking_updated")


def record_event(hook: str, **snapshots: Any) -> int:
    """Record an event and enqueue its fan-out in the current transaction; return its id."""
    from django.db import transaction

    from .models import Event
    from .tasks import fan_out

    if hook not in EVENT_HOOKS:
        raise ValueError(f"{hook!r} is not an event hook ({', '.join(EVENT_HOOKS)})")
    with transaction.atomic():
        event = Event.objects.create(hook=hook, payload=snapshots)
        fan_out.enqueue(event.pk)
    return event.pk
