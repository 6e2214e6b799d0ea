"""Delivery settings, read lazily from ``settings.SERVICES_AI_EVENTS`` (override_settings works)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Seconds a delivery may run, per hook ("default" for the others). Past it the delivery is
    # interrupted (soft); past it plus KILL_GRACE the worker process is killed and replaced.
    "TIME_BUDGET": {"default": 30.0},
    "KILL_GRACE": 5.0,
    # Attempts before a delivery is dead; retries back off exponentially with jitter.
    "MAX_ATTEMPTS": 5,
    "BACKOFF_BASE": 2.0,
    "BACKOFF_MAX": 3600.0,
    # A running delivery whose lease ended this long ago is taken as abandoned and re-run.
    "STALE_MARGIN": 10.0,
    # Succeeded and skipped deliveries are pruned after this many days.
    "RETENTION_DAYS": 14,
}


def get(name: str) -> Any:
    """Return one delivery setting."""
    return {**DEFAULTS, **getattr(settings, "SERVICES_AI_EVENTS", {})}[name]


def time_budget(hook: str) -> float:
    """Return the time budget of one hook, in seconds."""
    budgets = get("TIME_BUDGET")
    return float(budgets.get(hook, budgets.get("default", DEFAULTS["TIME_BUDGET"]["default"])))


def lease(hook: str) -> timedelta:
    """Return how long a running delivery of ``hook`` may hold its worker."""
    return timedelta(seconds=time_budget(hook) + float(get("KILL_GRACE")))


def stale_after() -> timedelta:
    """Return the age after which a running task is abandoned, whatever its hook."""
    longest = max(float(v) for v in get("TIME_BUDGET").values())
    return timedelta(seconds=longest + float(get("KILL_GRACE")) + float(get("STALE_MARGIN")))


def parse_budgets(text: str) -> dict[str, float]:
    """Parse ``"30"`` or ``"default=30,lead_created=10"`` (the env variable's format)."""
    budgets: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        hook, sep, seconds = part.rpartition("=")
        budgets[hook if sep else "default"] = float(seconds)
    return budgets
