"""``services-ai serve``: run the platform under gunicorn, the production web server."""

from __future__ import annotations

import os
import sys

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from services_ai import serving
from services_ai.cli import require_migrated


class Command(BaseCommand):
    help = (
        "Serve the platform with gunicorn (sync worker processes, static files by WhiteNoise, an "
        "access log on standard output). Collects the static files first, then becomes the "
        "gunicorn master: SIGHUP reloads the workers gracefully, SIGTERM stops gracefully. The "
        "workers are recycled the same way when the active plugin generation changes."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--bind",
            default=None,
            help="HOST:PORT or unix:PATH to listen on (default 127.0.0.1:$PORT, PORT 8000)",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help=f"worker processes, 1 to 64 (default ${serving.WORKERS_ENV}, else 2 per CPU + 1)",
        )
        parser.add_argument(
            "--timeout",
            type=int,
            default=serving.DEFAULT_TIMEOUT,
            help="seconds a request may run before its worker is killed and replaced, and that "
            f"a graceful reload or stop waits for requests in flight ({serving.DEFAULT_TIMEOUT})",
        )
        parser.add_argument(
            "--no-collectstatic",
            action="store_false",
            dest="collectstatic",
            help="do not run collectstatic first (it was run at deployment)",
        )

    def handle(
        self,
        *args,
        bind: str | None,
        workers: int | None,
        timeout: int,
        collectstatic: bool,
        **options,
    ) -> None:
        bind = bind or serving.default_bind()
        workers = serving.default_workers() if workers is None else workers
        if not 1 <= workers <= 64:
            raise CommandError("--workers must be from 1 to 64")
        if not 1 <= timeout <= 3600:
            raise CommandError("--timeout must be from 1 to 3600 seconds")
        require_migrated()
        if collectstatic:
            call_command("collectstatic", interactive=False, verbosity=0)
        argv = [
            sys.executable, "-m", "gunicorn",
            "--config", f"python:{serving.__name__}",
            "--bind", bind,
            "--workers", str(workers),
            "--timeout", str(timeout),
            "--graceful-timeout", str(timeout),
        ]  # fmt: skip
        where = f"http://{bind}/" if not bind.startswith(("unix:", "fd://")) else bind
        self.stdout.write(f"serving on {where} with {workers} worker process(es) (gunicorn)")
        self.stdout.flush()
        sys.stderr.flush()
        connections.close_all()
        # Become the master: its pid is this command's, for service managers and signals.
        os.execv(sys.executable, argv)
