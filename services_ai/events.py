"""Emitting domain events to plugins once the saving transaction has committed."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

logger = logging.getLogger("services_ai.events")

EVENT_HOOKS = ("lead_created", "booking_created", "booking_updated")


def emit_on_commit(hook: str, **snapshots: Any) -> None:
    """Deliver ``hook`` with the given snapshots after the current transaction commits.

    A rolled-back save emits nothing. The snapshots are taken now, at save time, so later
    changes to the instance do not leak into the event.
    """
    if hook not in EVENT_HOOKS:
        raise ValueError(f"{hook!r} is not an event hook ({', '.join(EVENT_HOOKS)})")
    transaction.on_commit(lambda: deliver(hook, snapshots), robust=True)


def deliver(hook: str, snapshots: dict[str, Any]) -> None:
    """Call ``hook`` on every subscribed plugin now (each isolated by the host)."""
    from services_ai.host.runtime import get_host

    get_host().call(hook, **snapshots)
