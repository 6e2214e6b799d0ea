"""Emitting an event: what the domain apps' signal handlers call when a lead or booking changes."""

from __future__ import annotations

from typing import Any

from services_ai.events.tasks import fan_out
from services_ai.plugins.permissions import HOOK_PERMISSIONS

#: The hooks delivered as durable events: exactly the ones a read permission gates.
EVENT_HOOKS = tuple(HOOK_PERMISSIONS)


def record_event(hook: str, **snapshots: Any) -> str:
    """Enqueue the event's fan-out in the current transaction; return the task id."""
    if hook not in EVENT_HOOKS:
        raise ValueError(f"{hook!r} is not an event hook ({', '.join(EVENT_HOOKS)})")
    return fan_out.enqueue(hook, snapshots).id
