"""Delivery statistics per plugin, and pruning of old deliveries."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.db.models import Count
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from plugin_registry.registry.models import PluginFailure
from services_ai.events import conf
from services_ai.events.models import Delivery, Event

SAMPLE = 10_000  # durations per plugin used for the percentiles


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Return the nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def delivery_stats() -> list[dict[str, Any]]:
    """Per plugin: counts by status and p50/p95 duration of the latest succeeded deliveries."""
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for row in Delivery.objects.values("plugin_name", "status").annotate(n=Count("id")):
        counts[row["plugin_name"]][row["status"]] = row["n"]
    rows = []
    for plugin in sorted(counts):
        latest = (
            Delivery.objects.filter(plugin_name=plugin, status=Delivery.Status.SUCCEEDED)
            .exclude(duration_ms=None)
            .order_by("-id")
            .values_list("duration_ms", flat=True)[:SAMPLE]
        )
        durations = sorted(ms for ms in latest if ms is not None)  # excluded above already
        by_status = counts[plugin]
        rows.append(
            {
                "plugin": plugin,
                "delivered": by_status.get("succeeded", 0),
                "failed": by_status.get("failed", 0),
                "dead": by_status.get("dead", 0),
                "skipped": by_status.get("skipped", 0),
                "held": by_status.get("held", 0),
                "pending": by_status.get("pending", 0) + by_status.get("running", 0),
                "p50_ms": percentile(durations, 0.50),
                "p95_ms": percentile(durations, 0.95),
            }
        )
    return rows


def prune(days: float | None = None) -> dict[str, int]:
    """Delete what is past retention: succeeded and skipped deliveries, finished tasks, emptied
    events and recorded plugin failures. Dead deliveries stay until an admin acts on them."""
    cutoff = timezone.now() - timedelta(days=conf.get("RETENTION_DAYS") if days is None else days)
    deliveries, _ = Delivery.objects.filter(
        status__in=[Delivery.Status.SUCCEEDED, Delivery.Status.SKIPPED], finished_at__lt=cutoff
    ).delete()
    events, _ = (
        Event.objects.filter(fanned_out_at__lt=cutoff)
        .annotate(n=Count("deliveries"))
        .filter(n=0)
        .delete()
    )
    tasks, _ = DBTaskResult.objects.filter(
        status__in=["SUCCESSFUL", "FAILED"], finished_at__lt=cutoff
    ).delete()
    failures, _ = PluginFailure.objects.filter(created_at__lt=cutoff).delete()
    return {"deliveries": deliveries, "events": events, "tasks": tasks, "failures": failures}
