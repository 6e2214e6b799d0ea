"""`services-ai worker` in child processes, on SQLite and on PostgreSQL.

A worker killed with SIGKILL in the middle of 500 deliveries loses nothing; a plugin that hangs
and ignores the time budget's interruption is killed with its worker while other deliveries go on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services_ai.testing.processes import stop_group
from tests.conftest import SAI
from tests.databases import Rows, postgres_database

pytestmark = pytest.mark.subprocess

CREATE_LEADS = """
import sys
import django
django.setup()
from services_ai.leads.models import Lead
for index in range(int(sys.argv[1])):
    Lead.objects.create(name=f"Lead {index}", source="referral")
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    if request.param == "sqlite":
        yield ""
    else:
        with postgres_database() as url:
            yield url


class Platform:
    def __init__(self, tmp_path: Path, plugin_path: list[Path], database_url: str, **env: str):
        self.sai = SAI(tmp_path / "home", plugin_path, database_url, **env)
        self.sai("migrate", "--no-input", "-v0")
        self.sai("plugins", "sync")
        self.rows = Rows(database_url, self.sai.home)
        self.logs = tmp_path
        self.workers: list[subprocess.Popen] = []

    def enable(self, name: str, *grants: str, **settings: str) -> None:
        if settings:
            self.sai("plugins", "configure", name, *(f"{k}={v}" for k, v in settings.items()))
        for permission in grants:
            self.sai("plugins", "grant", name, permission)
        self.sai("plugins", "enable", name)

    def create_leads(self, count: int) -> None:
        subprocess.run(
            [sys.executable, "-c", CREATE_LEADS, str(count)],
            env=self.sai.env,
            check=True,
            capture_output=True,
            timeout=300,
        )

    def start_worker(self, processes: int) -> subprocess.Popen:
        log = (self.logs / f"worker-{len(self.workers)}.log").open("w")
        worker = subprocess.Popen(
            [self.sai.executable, "worker", "--processes", str(processes)],
            env=self.sai.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(worker)
        return worker

    def worker_pids(self, worker: subprocess.Popen) -> list[int]:
        """Return the pids of the supervisor's db_worker children."""
        children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
        assert children, "the supervisor has no worker processes"
        return [int(pid) for pid in children]

    def worker_log(self, index: int) -> str:
        return (self.logs / f"worker-{index}.log").read_text()

    def statuses(self, plugin: str) -> dict[str, int]:
        return dict(
            self.rows.all(
                "SELECT status, COUNT(*) FROM events_delivery WHERE plugin_name = ? GROUP BY status",
                (plugin,),
            )
        )

    def wait_for(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def stop_all(self) -> None:
        for worker in self.workers:
            stop_group(worker)


@pytest.fixture
def platform_factory(tmp_path, example_site, delivery_site):
    made = []

    def make(database_url: str, **env: str) -> Platform:
        platform = Platform(tmp_path, [example_site, delivery_site], database_url, **env)
        made.append(platform)
        return platform

    yield make
    for platform in made:
        platform.stop_all()


def test_kill_9_mid_delivery_then_restart_delivers_everything_exactly_once(
    platform_factory, database_url
):
    platform = platform_factory(
        database_url,
        SERVICES_AI_TIME_BUDGET="2",
        SERVICES_AI_KILL_GRACE="1",
        SERVICES_AI_STALE_MARGIN="1",
    )
    platform.enable("idempotent-counter", "read_leads")
    platform.create_leads(500)
    worker = platform.start_worker(processes=2)
    platform.wait_for(
        lambda: platform.statuses("idempotent-counter").get("succeeded", 0) >= 50,
        timeout=120,
        what="the first 50 deliveries",
    )
    # First one worker process dies under a live supervisor, which must notice and recover...
    child = platform.worker_pids(worker)[0]
    os.kill(child, signal.SIGKILL)
    platform.wait_for(
        lambda: "exited with code -9; replacing it" in platform.worker_log(0),
        timeout=30,
        what="the supervisor to replace the killed worker",
    )
    platform.wait_for(
        lambda: platform.statuses("idempotent-counter").get("succeeded", 0) >= 150,
        timeout=120,
        what="150 deliveries",
    )
    # ...then everything dies at once: the supervisor and both workers, mid-delivery.
    for pid in [worker.pid, *platform.worker_pids(worker)]:
        os.kill(pid, signal.SIGKILL)
    worker.wait()
    done_at_kill = platform.statuses("idempotent-counter").get("succeeded", 0)
    assert done_at_kill < 500, "the kill came too late to interrupt anything"

    platform.start_worker(processes=2)
    platform.wait_for(
        lambda: platform.statuses("idempotent-counter") == {"succeeded": 500},
        timeout=240,
        what="all 500 deliveries to succeed after the restart",
    )
    seen = platform.rows.all(
        "SELECT key FROM plugin_registry_plugindata "
        "WHERE plugin_name = 'idempotent-counter' AND key LIKE ?",
        ("seen:%",),
    )
    keys = platform.rows.all(
        "SELECT event_id || ':' || plugin_name FROM events_delivery "
        "WHERE plugin_name = 'idempotent-counter'"
    )
    assert len(seen) == 500
    assert {key for (key,) in seen} == {f"seen:{key}" for (key,) in keys}
    # The plugin may have been called again only for a delivery that had a second attempt.
    calls = dict(
        platform.rows.all(
            "SELECT key, value FROM plugin_registry_plugindata "
            "WHERE plugin_name = 'idempotent-counter' AND key LIKE ?",
            ("calls:%",),
        )
    )
    attempts = dict(
        platform.rows.all(
            "SELECT event_id || ':' || plugin_name, attempts FROM events_delivery "
            "WHERE plugin_name = 'idempotent-counter'"
        )
    )
    assert len(calls) == 500
    for key, count in calls.items():
        assert 1 <= int(str(count)) <= attempts[key.removeprefix("calls:")], key
    assert platform.rows.one("SELECT COUNT(*) FROM events_event") == 500


def test_hanging_plugin_is_killed_while_other_deliveries_keep_flowing(
    platform_factory, database_url
):
    platform = platform_factory(
        database_url,
        SERVICES_AI_TIME_BUDGET="1",
        SERVICES_AI_KILL_GRACE="1",
        SERVICES_AI_MAX_ATTEMPTS="1",
    )
    platform.enable("hang-plugin", "read_leads", mode="block-signals")
    platform.enable("idempotent-counter", "read_leads")
    platform.create_leads(3)
    platform.start_worker(processes=2)
    platform.wait_for(
        lambda: (
            platform.statuses("hang-plugin") == {"dead": 3}
            and platform.statuses("idempotent-counter") == {"succeeded": 3}
        ),
        timeout=120,
        what="3 dead hanging deliveries and 3 delivered ones",
    )
    errors = [
        e
        for (e,) in platform.rows.all(
            "SELECT last_error FROM events_delivery WHERE plugin_name = 'hang-plugin'"
        )
    ]
    assert all(
        "exceeded the 1s time budget of lead_created and ignored the interruption" in e
        and "was killed and replaced" in e
        for e in errors
    ), errors
    last_dead = platform.rows.one(
        "SELECT MAX(finished_at) FROM events_delivery WHERE plugin_name = 'hang-plugin'"
    )
    last_good = platform.rows.one(
        "SELECT MAX(finished_at) FROM events_delivery WHERE plugin_name = 'idempotent-counter'"
    )
    assert str(last_good) < str(last_dead), "the other plugin waited for the hanging one"
    assert platform.worker_log(0).count("killed worker") == 3


HOLD_TRANSACTION = """
import sys
import django
django.setup()
from django.db import transaction
from services_ai.leads.models import Lead
with transaction.atomic():
    Lead.objects.create(name="Uncommitted", source="referral")
    print("created", flush=True)
    sys.stdin.readline()  # commit when the test says so
print("committed", flush=True)
"""


def test_events_are_delivered_only_after_the_saving_transaction_commits(
    platform_factory, database_url
):
    platform = platform_factory(database_url)
    platform.enable("idempotent-counter", "read_leads")
    platform.start_worker(processes=1)
    platform.create_leads(1)  # a committed lead first: proof that the worker is delivering
    platform.wait_for(
        lambda: platform.statuses("idempotent-counter") == {"succeeded": 1},
        timeout=60,
        what="the first lead's delivery",
    )
    saver = platform.sai.python(
        HOLD_TRANSACTION, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert saver.stdout.readline().strip() == "created"
        # Negative evidence, so it needs time: the worker polls 5 times a second, so 3 s is
        # 15 chances to deliver an event whose transaction is still open.
        time.sleep(3)
        assert platform.statuses("idempotent-counter") == {"succeeded": 1}
        assert platform.rows.one("SELECT COUNT(*) FROM events_event") == 1
        saver.stdin.write("commit\n")
        saver.stdin.flush()
        assert saver.stdout.readline().strip() == "committed"
    finally:
        saver.stdin.close()
        saver.wait(timeout=30)
    platform.wait_for(
        lambda: platform.statuses("idempotent-counter") == {"succeeded": 2},
        timeout=60,
        what="the committed lead's delivery",
    )


def test_ctrl_c_stops_the_workers_gracefully_after_the_delivery_in_progress(
    platform_factory, database_url
):
    platform = platform_factory(database_url)
    platform.enable("hang-plugin", "read_leads", mode="slow")
    worker = platform.start_worker(processes=1)
    platform.create_leads(1)
    platform.wait_for(
        lambda: platform.statuses("hang-plugin") == {"running": 1},
        timeout=60,
        what="the slow delivery to start",
    )
    os.killpg(worker.pid, signal.SIGINT)  # what a terminal sends its foreground group
    assert worker.wait(timeout=60) == 0
    assert platform.statuses("hang-plugin") == {"succeeded": 1}
    done = platform.rows.all(
        "SELECT key FROM plugin_registry_plugindata WHERE plugin_name = 'hang-plugin'"
    )
    assert len(done) == 1 and done[0][0].startswith("done:")
    assert "all workers stopped" in platform.worker_log(0)


def test_the_supervisor_survives_losing_its_database_connection(platform_factory):
    with postgres_database() as url:
        platform = platform_factory(url)
        platform.enable("idempotent-counter", "read_leads")
        worker = platform.start_worker(processes=1)
        platform.wait_for(
            lambda: "started (pid" in platform.worker_log(0),
            timeout=60,
            what="the supervisor to start its worker",
        )
        name = url.rsplit("/", 1)[1]
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
        platform.create_leads(3)
        platform.wait_for(
            lambda: platform.statuses("idempotent-counter") == {"succeeded": 3},
            timeout=90,
            what="deliveries after the connections were cut",
        )
        assert worker.poll() is None, platform.worker_log(0)
        assert "supervisor pass failed (1 in a row); retrying" in platform.worker_log(0)
        platform.stop_all()
