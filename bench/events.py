"""Benchmark: the cost of events on the request path, and worker throughput.

1. Request path: saving a lead with 0, 1 and 10 subscribed plugins, as a ratio against saving
   the same lead with the plugin system switched off (its signal receivers disconnected), in
   the same run. Recording an event must not cost more with more plugins: fan-out is the
   worker's job.
2. Worker throughput: deliveries per second to one subscribed no-op plugin with 1 and 2 worker
   processes (`services-ai worker`), on SQLite and on PostgreSQL (127.0.0.1:5432), measured from
   the first delivery's start to the last one's end as recorded in the database.

Run: ``python bench/events.py`` (``--saves`` and ``--deliveries`` change the sizes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from services_ai.testing.databases import Rows, throwaway_postgres  # noqa: E402
from services_ai.testing.wheels import (  # noqa: E402
    NOOP_MANIFEST,
    NOOP_PLUGIN,
    build_wheel,
    install_wheels,
    write_plugin_project,
)

NOOP, MANIFEST = NOOP_PLUGIN, NOOP_MANIFEST
PG_ADMIN = os.environ.get("SERVICES_AI_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SAI = str(Path(sys.executable).parent / "services-ai")


def build_noop_plugins(root: Path, count: int) -> Path:
    wheels = root / "wheels"
    wheels.mkdir()
    built = [
        build_wheel(write_plugin_project(root / "src", f"noop-{i:02d}", NOOP, MANIFEST), wheels)
        for i in range(count)
    ]
    return install_wheels(built, root / "site")


def request_path(root: Path, site: Path, saves: int) -> list[tuple[str, float, float]]:
    """Time Lead saves in this process; return (label, us per save, ratio) rows."""
    os.environ.update(
        SERVICES_AI_HOME=str(root / "home-request"),
        SERVICES_AI_PLUGIN_PATH=str(site),
        DJANGO_SETTINGS_MODULE="services_ai.settings",
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.db.models.signals import post_save

    from plugin_registry.registry import actions
    from plugin_registry.registry.sync import sync_registry
    from services_ai.leads.models import Lead
    from services_ai.leads.signals import lead_saved

    call_command("migrate", verbosity=0)
    sync_registry()

    def per_save_us() -> float:
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            for index in range(saves):
                Lead.objects.create(name=f"Lead {index}", source="bench")
            runs.append((time.perf_counter() - start) / saves * 1e6)
        return statistics.median(runs)

    post_save.disconnect(lead_saved, sender=Lead, dispatch_uid="services_ai.lead_created")
    anchor = per_save_us()
    post_save.connect(lead_saved, sender=Lead, dispatch_uid="services_ai.lead_created")
    rows = [("no plugin system (anchor)", anchor, 1.0)]
    enabled = 0
    for wanted in (0, 1, 10):
        while enabled < wanted:
            name = f"noop-{enabled:02d}"
            actions.set_grant(name, "read_leads", True)
            actions.enable(name)
            enabled += 1
        cost = per_save_us()
        rows.append((f"{wanted} subscribed plugin(s)", cost, cost / anchor))
    return rows


CREATE = """
import sys, django
django.setup()
from services_ai.leads.models import Lead
for i in range(int(sys.argv[1])):
    Lead.objects.create(name=f"Lead {i}", source="bench")
"""


def throughput(root: Path, site: Path, database_url: str, processes: int, count: int) -> float:
    """Return deliveries per second for ``count`` deliveries with ``processes`` workers."""
    home = root / f"home-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "SERVICES_AI_HOME": str(home),
        "SERVICES_AI_PLUGIN_PATH": str(site),
        "DJANGO_SETTINGS_MODULE": "services_ai.settings",
        "SERVICES_AI_LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url

    def sai(*args: str) -> None:
        result = subprocess.run([SAI, *args], env=env, capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(f"services-ai {' '.join(args)} failed:\n{result.stderr}")

    sai("migrate", "-v0")
    sai("plugins", "grant", "noop-00", "read_leads")
    sai("plugins", "enable", "noop-00")
    subprocess.run([sys.executable, "-c", CREATE, str(count)], env=env, check=True)
    worker = subprocess.Popen(
        [SAI, "worker", "--processes", str(processes)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rows = Rows(database_url, home)
    try:
        deadline = time.monotonic() + 600
        done = 0
        while time.monotonic() < deadline:
            done = rows.one("SELECT COUNT(*) FROM events_delivery WHERE status = 'succeeded'")
            if done >= count:
                break
            time.sleep(0.5)
        if done < count:
            raise RuntimeError(f"only {done} of {count} deliveries succeeded in time")
        first, last = rows.row("SELECT MIN(started_at), MAX(finished_at) FROM events_delivery")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    if isinstance(first, str):  # SQLite returns text
        from datetime import datetime

        first, last = datetime.fromisoformat(first), datetime.fromisoformat(last)
    return count / (last - first).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=300, help="lead saves per timing run")
    parser.add_argument("--deliveries", type=int, default=1000, help="deliveries per worker run")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="services-ai-bench-"))
    try:
        site = build_noop_plugins(root, 10)
        print("Request path: saving one lead (SQLite, in-process)")
        print(f"{'':<28}{'us/save':>10}{'ratio':>8}")
        for label, cost, ratio in request_path(root, site, args.saves):
            print(f"{label:<28}{cost:>10.0f}{ratio:>8.2f}")

        print(f"\nWorker throughput: {args.deliveries} deliveries to one no-op plugin")
        print(f"{'database':<12}{'processes':>10}{'deliveries/s':>14}")
        for processes in (1, 2):
            rate = throughput(root, site, "", processes, args.deliveries)
            print(f"{'sqlite':<12}{processes:>10}{rate:>14.0f}")
        for processes in () if args.no_postgres else (1, 2):
            with ExitStack() as stack:
                try:  # a fresh database for each run
                    url = stack.enter_context(throwaway_postgres(PG_ADMIN, "sai_bench"))
                except psycopg.OperationalError as exc:  # report it; the SQLite rows stand
                    print(f"(PostgreSQL skipped: {exc})")
                    break
                rate = throughput(root, site, url, processes, args.deliveries)
            print(f"{'postgresql':<12}{processes:>10}{rate:>14.0f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
