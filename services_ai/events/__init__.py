"""Durable event delivery: events recorded with the change, delivered per plugin by workers.

The request path only enqueues one fan-out task carrying the event's snapshots, inside the
transaction that saved the lead or booking: one row, whatever the number of plugins, and a
rolled-back save leaves nothing behind. A worker then records the
:class:`~services_ai.events.models.Event`, creates one
:class:`~services_ai.events.models.Delivery` per subscribed plugin and runs each on its own, with
retries, a time budget, and a record of every outcome.
"""

from __future__ import annotations

from typing import Any

EVENT_HOOKS = ("lead_created", "booking_created", "booking_updated")


def record_event(hook: str, **snapshots: Any) -> str:
    """Enqueue the event's fan-out in the current transaction; return the task id."""
    from .tasks import fan_out

    if hook not in EVENT_HOOKS:
        raise ValueError(f"{hook!r} is not an event hook ({', '.join(EVENT_HOOKS)})")
    return fan_out.enqueue(hook, snapshots).id
