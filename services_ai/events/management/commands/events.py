"""``services-ai events``: delivery log, statistics, retries and pruning."""

from __future__ import annotations

import json
import math
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from plugin_registry.registry.models import Plugin
from services_ai.cli import require_migrated
from services_ai.events.delivery import RETRYABLE, retry
from services_ai.events.models import Delivery
from services_ai.events.stats import delivery_stats, prune


class Command(BaseCommand):
    help = "Inspect and operate event deliveries: stats, deliveries, retry, prune."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        stats = actions.add_parser("stats", help="Per plugin: delivered, failed, dead, p50/p95.")
        stats.add_argument("--json", action="store_true")
        listing = actions.add_parser("deliveries", help="List recent deliveries.")
        listing.add_argument("--plugin")
        listing.add_argument("--status", choices=Delivery.Status.values)
        listing.add_argument("--limit", type=int, default=50)
        listing.add_argument("--json", action="store_true")
        again = actions.add_parser(
            "retry", help="Run dead, failed, held or stuck pending deliveries again now."
        )
        again.add_argument("ids", nargs="*", type=int, metavar="ID")
        again.add_argument("--all-dead", action="store_true", help="every dead delivery")
        again.add_argument(
            "--all-held",
            action="store_true",
            help="every delivery held for a quarantined plugin (held again while it still is)",
        )
        again.add_argument("--plugin", help="with --all-dead/--all-held: only this plugin's")
        pruning = actions.add_parser("prune", help="Delete old succeeded deliveries.")
        pruning.add_argument(
            "--days", type=float, help="keep this many days (default: RETENTION_DAYS)"
        )

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        require_migrated()
        getattr(self, f"do_{action}")(**options)

    def do_stats(self, *, json: bool = False, **options: Any) -> None:
        rows = delivery_stats()
        if json:
            self.stdout.write(_dumps(rows))
            return
        if not rows:
            self.stdout.write("no deliveries yet")
            return
        header = f"{'plugin':<24}{'delivered':>10}{'failed':>8}{'dead':>6}{'skipped':>9}{'held':>6}"
        self.stdout.write(header + f"{'pending':>9}{'p50 ms':>9}{'p95 ms':>9}")
        for row in rows:
            p50 = "-" if row["p50_ms"] is None else f"{row['p50_ms']:.1f}"
            p95 = "-" if row["p95_ms"] is None else f"{row['p95_ms']:.1f}"
            self.stdout.write(
                f"{row['plugin']:<24}{row['delivered']:>10}{row['failed']:>8}{row['dead']:>6}"
                f"{row['skipped']:>9}{row['held']:>6}{row['pending']:>9}{p50:>9}{p95:>9}"
            )

    def do_deliveries(self, *, plugin, status, limit: int, json: bool = False, **options) -> None:
        if limit < 1:
            raise CommandError("--limit must be at least 1")
        rows = Delivery.objects.all()
        if plugin:
            _known_plugin(plugin)
            rows = rows.filter(plugin_name=plugin)
        if status:
            rows = rows.filter(status=status)
        data: list[dict[str, Any]] = [  # JSON rows
            {
                "id": d.pk,
                "event": d.event_id,
                "hook": d.hook,
                "plugin": d.plugin_name,
                "status": d.status,
                "attempts": d.attempts,
                "max_attempts": d.max_attempts,
                "idempotency_key": d.idempotency_key,
                "last_error": d.last_error,
                "skip_reason": d.skip_reason,
                "duration_ms": d.duration_ms,
                "next_attempt_at": d.next_attempt_at.isoformat(),
            }
            for d in rows[: max(1, limit)]
        ]
        if json:
            self.stdout.write(_dumps(data))
            return
        if not data:
            self.stdout.write("no deliveries match")
        for d in data:
            detail = {"skipped": d["skip_reason"], "succeeded": ""}.get(
                d["status"], d["last_error"]
            )
            self.stdout.write(
                f"#{d['id']:<6} {d['hook']:<16} {d['plugin']:<20} {d['status']:<10} "
                f"{d['attempts']}/{d['max_attempts']}  {detail[:100]}"
            )

    def do_retry(
        self, *, ids: list[int], all_dead: bool, all_held: bool, plugin: str | None, **options
    ) -> None:
        if [bool(ids), all_dead, all_held].count(True) != 1:
            raise CommandError("give delivery ids, --all-dead or --all-held (one of them)")
        if plugin and not (all_dead or all_held):
            raise CommandError("--plugin only goes with --all-dead or --all-held")
        if all_dead or all_held:
            status = Delivery.Status.DEAD if all_dead else Delivery.Status.HELD
            rows = Delivery.objects.filter(status=status)
            if plugin:
                _known_plugin(plugin)
                rows = rows.filter(plugin_name=plugin)
        else:
            too_big = [i for i in ids if not 0 < i < 2**63]
            if too_big:
                raise CommandError(f"no delivery with id {', '.join(map(str, too_big))}")
            rows = Delivery.objects.filter(pk__in=ids)
            missing = sorted(set(ids) - set(rows.values_list("pk", flat=True)))
            if missing:
                raise CommandError(f"no delivery with id {', '.join(map(str, missing))}")
            not_retryable = [d for d in rows if d.status not in RETRYABLE]
            if not_retryable:
                listed = ", ".join(f"#{d.pk} is {d.status}" for d in not_retryable)
                raise CommandError(
                    f"only dead, failed, held or pending deliveries can be retried: {listed}"
                )
        count = retry(list(rows.values_list("pk", flat=True)))
        self.stdout.write(self.style.SUCCESS(f"retrying {count} deliveries"))

    def do_prune(self, *, days: float | None, **options: Any) -> None:
        if days is not None and not (math.isfinite(days) and 0 <= days <= 36500):
            raise CommandError("--days must be a number of days from 0 to 36500")
        removed = prune(days)
        self.stdout.write(
            self.style.SUCCESS(
                f"pruned {removed['deliveries']} deliveries, {removed['events']} events, "
                f"{removed['tasks']} finished tasks, {removed['failures']} plugin failures"
            )
        )


def _known_plugin(name: str) -> None:
    if not (
        Plugin.objects.filter(name=name).exists()
        or Delivery.objects.filter(plugin_name=name).exists()
    ):
        known = ", ".join(Plugin.objects.values_list("name", flat=True)) or "none"
        raise CommandError(f"unknown plugin {name!r}; plugins: {known}")


def _dumps(rows: Any) -> str:
    return json.dumps(rows, indent=2, default=str)
