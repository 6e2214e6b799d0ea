"""``services-ai worker``: run and supervise the event delivery workers."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

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
        if processes < 1:
            raise CommandError("--processes must be at least 1")
        if interval <= 0:
            raise CommandError("--interval must be positive")
        Supervisor(processes, interval=interval, verbosity=verbosity).run(max_seconds=max_seconds)
