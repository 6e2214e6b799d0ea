"""Benchmark: one plugin that hangs must not hold up the others' deliveries.

Leads arrive at a steady pace while ``services-ai worker --processes 2`` delivers them to a no-op
plugin, once alone and once next to a plugin whose ``lead_created`` hangs until its time budget
(3 s) interrupts it. Reported: the no-op plugin's delivery latency (event recorded -> delivery
finished), p50 and p95, in both runs and their ratio (the goal: p95 within 2x of no hang).

Run: ``python bench/fairness.py`` (``--leads`` and ``--rate`` change the load).
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from services_ai.testing.databases import Rows  # noqa: E402
from services_ai.testing.wheels import (  # noqa: E402
    NOOP_MANIFEST,
    NOOP_PLUGIN,
    build_wheel,
    install_wheels,
    write_plugin_project,
)

SAI = str(Path(sys.executable).parent / "services-ai")
HANG = """
import time

from services_ai.plugins import hookimpl


@hookimpl
def lead_created(lead):
    time.sleep(3600)
"""
CREATE_PACED = """
import sys, time
import django
django.setup()
from services_ai.leads.models import Lead
count, rate = int(sys.argv[1]), float(sys.argv[2])
start = time.monotonic()
for index in range(count):
    time.sleep(max(0.0, start + index / rate - time.monotonic()))
    Lead.objects.create(name=f"Lead {index}", source="referral")
"""


def build_site(root: Path) -> Path:
    wheels = root / "wheels"
    wheels.mkdir()
    projects = [
        write_plugin_project(root / "src", "noop-00", NOOP_PLUGIN, NOOP_MANIFEST),
        write_plugin_project(root / "src", "hang-00", HANG, NOOP_MANIFEST),
    ]
    built = [build_wheel(project, wheels) for project in projects]
    return install_wheels(built, root / "site")


def latencies(root: Path, site: Path, *, with_hang: bool, leads: int, rate: float) -> list[float]:
    home = root / f"home-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "SERVICES_AI_HOME": str(home),
        "SERVICES_AI_PLUGIN_PATH": str(site),
        "DJANGO_SETTINGS_MODULE": "services_ai.settings",
        "SERVICES_AI_LOG_LEVEL": "WARNING",
        "SERVICES_AI_TIME_BUDGET": "3",
        "SERVICES_AI_KILL_GRACE": "1",
        "SERVICES_AI_MAX_ATTEMPTS": "1",
    }
    env.pop("DATABASE_URL", None)

    def sai(*args: str) -> None:
        result = subprocess.run([SAI, *args], env=env, capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(f"services-ai {' '.join(args)} failed:\n{result.stderr}")

    sai("migrate", "-v0")
    for name in ("noop-00", "hang-00") if with_hang else ("noop-00",):
        sai("plugins", "grant", name, "read_leads")
        sai("plugins", "enable", name)
    worker = subprocess.Popen(
        [SAI, "worker", "--processes", "2"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rows = Rows("", home)
    try:
        time.sleep(2)  # let both workers start before the load does
        subprocess.run(
            [sys.executable, "-c", CREATE_PACED, str(leads), str(rate)], env=env, check=True
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            done = rows.one(
                "SELECT COUNT(*) FROM events_delivery WHERE plugin_name = 'noop-00' "
                "AND status = 'succeeded'"
            )
            if done >= leads:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError("the no-op plugin's deliveries did not finish in time")
        return [
            float(seconds)
            for (seconds,) in rows.all(
                "SELECT (julianday(d.finished_at) - julianday(e.occurred_at)) * 86400 "
                "FROM events_delivery d JOIN events_event e ON e.id = d.event_id "
                "WHERE d.plugin_name = 'noop-00'"
            )
        ]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=60, help="leads per run")
    parser.add_argument("--rate", type=float, default=4.0, help="leads per second")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="services-ai-bench-"))
    try:
        site = build_site(root)
        alone = latencies(root, site, with_hang=False, leads=args.leads, rate=args.rate)
        hung = latencies(root, site, with_hang=True, leads=args.leads, rate=args.rate)
        print(f"No-op plugin's delivery latency, {args.leads} leads at {args.rate:g}/s, 2 workers")
        print(f"{'':<28}{'p50 s':>8}{'p95 s':>8}")
        print(f"{'alone':<28}{statistics.median(alone):>8.2f}{p95(alone):>8.2f}")
        print(f"{'next to a hanging plugin':<28}{statistics.median(hung):>8.2f}{p95(hung):>8.2f}")
        print(f"{'ratio':<28}{statistics.median(hung) / statistics.median(alone):>8.2f}"
              f"{p95(hung) / p95(alone):>8.2f}")  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
