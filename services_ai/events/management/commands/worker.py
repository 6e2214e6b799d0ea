"""``services-ai worker``: run and supervise the event delivery workers."""

from __future__ import annotations

import math

from django.core.management.base import BaseCommand, CommandError

from services_ai.cli import require_migrated
from services_ai.events.supervisor import Supervisor


class Command(BaseCommand):
    help = (
        "Run the event delivery workers (django-tasks-db db_worker processes) under a supervisor "
        "that replaces dead or stuck workers, requeues abandoned work and recycles workers when "
        "the installed plugins change. Stop with SIGTERM or Ctrl-C."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--processes", type=int, default=1, help="worker processes (1)")
        parser.add_argument(
            "--interval", type=float, default=0.2, help="seconds between polls when idle (0.2)"
        )
        parser.add_argument(
            "--max-seconds", type=float, default=None, help="stop after this long (for tests)"
        )

    def handle(self, *args, processes: int, interval: float, max_seconds, verbosity, **options):
        if not 1 <= processes <= 64:
            raise CommandError("--processes must be from 1 to 64")
        if not (math.isfinite(interval) and 0 < interval <= 60):
            raise CommandError("--interval must be more than 0 and at most 60 seconds")
        if max_seconds is not None and not (math.isfinite(max_seconds) and max_seconds > 0):
            raise CommandError("--max-seconds must be a positive number of seconds")
        require_migrated()
        Supervisor(processes, interval=interval, verbosity=verbosity).run(max_seconds=max_seconds)
