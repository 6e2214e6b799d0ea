"""Delivery settings, read lazily from ``settings.SERVICES_AI_EVENTS`` (override_settings works)."""

from __future__ import annotations

import math
import os
from datetime import timedelta
from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Seconds a delivery may run, per hook ("default" for the others). Past it the delivery is
    # interrupted (soft); past it plus KILL_GRACE the worker process is killed and replaced.
    "TIME_BUDGET": {"default": 30.0},
    "KILL_GRACE": 5.0,
    # Attempts before a delivery is dead; retries back off exponentially with jitter.
    "MAX_ATTEMPTS": 8,
    "BACKOFF_BASE": 5.0,  # 5 s, 10 s, 20 s ... about 10 minutes over 8 attempts
    "BACKOFF_MAX": 3600.0,
    # A running delivery whose lease ended this long ago is taken as abandoned and re-run.
    "STALE_MARGIN": 10.0,
    # Succeeded and skipped deliveries are pruned after this many days.
    "RETENTION_DAYS": 14,
    # Deliveries of one plugin that one supervisor's workers run at once (0: half of them,
    # at least 1), so a plugin that hangs cannot take every worker.
    "PLUGIN_CONCURRENCY": 0,
}

#: Set by the supervisor for its workers: how many it runs.
PROCESSES_ENV = "SERVICES_AI_WORKER_PROCESSES"


def get(name: str) -> Any:
    """Return one delivery setting."""
    return {**DEFAULTS, **getattr(settings, "SERVICES_AI_EVENTS", {})}[name]


def time_budget(hook: str) -> float:
    """Return the time budget of one hook, in seconds."""
    budgets = get("TIME_BUDGET")
    default = budgets.get("default", DEFAULTS["TIME_BUDGET"]["default"])
    return float(budgets.get(hook, default))


def lease(hook: str) -> timedelta:
    """Return how long a running delivery of ``hook`` may hold its worker."""
    return timedelta(seconds=time_budget(hook) + float(get("KILL_GRACE")))


def stale_after() -> timedelta:
    """Return the age after which a running task is abandoned, whatever its hook."""
    budgets = get("TIME_BUDGET")
    longest = max([*(float(v) for v in budgets.values()), time_budget("default")])
    return timedelta(seconds=longest + float(get("KILL_GRACE")) + float(get("STALE_MARGIN")))


def parse_budgets(text: str) -> dict[str, float]:
    """Parse ``"30"`` or ``"default=30,lead_created=10"`` (the env variable's format)."""
    budgets: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        hook, sep, seconds = part.rpartition("=")
        value = float(seconds)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"the budget of {hook or 'default'} must be a positive number")
        budgets[hook.strip() if sep else "default"] = value
    if not budgets:
        raise ValueError("give seconds, e.g. 30 or default=30,lead_created=10")
    return budgets


def supervisor_processes() -> int:
    """Return how many worker processes this worker's supervisor runs (1 outside one)."""
    return max(1, int(os.environ.get(PROCESSES_ENV, "1") or 1))


def plugin_concurrency() -> int:
    """Return how many deliveries of one plugin a supervisor's workers may run at once."""
    configured = int(get("PLUGIN_CONCURRENCY"))
    if configured > 0:
        return configured
    return max(1, supervisor_processes() // 2)


def supervisor_of(worker_id: str) -> str:
    """Return the supervisor part of a worker id (``HOST-PID-NONCE-SERIAL``)."""
    return worker_id.rpartition("-")[0] if worker_id.count("-") >= 3 else worker_id
