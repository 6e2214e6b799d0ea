"""Console operations are tasks on the queue: the web process enqueues, a worker runs them.

In-process tests drive the console with Django's test client and run the queued task with the
real database worker (``run_worker_batch``); the subprocess tests run ``services-ai worker`` on
the test database, install for real, and kill a worker in the middle of an operation.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from plugin_registry.console import tasks
from plugin_registry.distribution.changes import ChangeResult, PluginChange
from plugin_registry.registry.models import CatalogueVersion, EnvironmentGeneration, Operation
from plugin_registry.registry.operations import TASK_PATH, interrupted
from services_ai import conf
from services_ai.events.reaper import abandon_worker, reap_stale
from services_ai.testing.processes import stop_group
from services_ai.testing.worker import run_worker_batch

RECOVER = "; run `services-ai plugins recover` then try again"
# Committed rows: the worker loop manages its own transactions, and child processes read them.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin() -> Client:
    User.objects.create_superuser("admin", "a@example.com", "pw")
    client = Client()
    client.login(username="admin", password="pw")
    return client


def catalogue_row(name: str = "greeter", version: str = "1.0.0") -> CatalogueVersion:
    return CatalogueVersion.objects.create(
        name=name, version=version, filename=f"{name}-{version}-py3-none-any.whl",
        sha256="0" * 64, manifest={"hook_specs": ["lead_created"], "permissions": [],
                                   "settings": []},
    )  # fmt: skip


def operation_page(client: Client, op: Operation, *, htmx: bool = False) -> str:
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.get(f"/console/operations/{op.pk}/", headers=headers)
    assert response.status_code == 200
    return response.content.decode()


def plugin_modules() -> list[str]:
    """Modules this process imported from a managed environment generation."""
    generations = str(conf.environment_dir())
    return [
        name
        for name, module in list(sys.modules.items())
        if (getattr(module, "__file__", None) or "").startswith(generations)
    ]


# -- in-process: the web side enqueues, the real worker loop runs the task ---------------------


def test_an_install_from_the_console_is_a_queued_task_that_a_worker_runs(admin, monkeypatch):
    catalogue_row()
    admin.get("/console/catalogue/greeter/install/", {"version": "1.0.0"})  # imports warmed up
    path, modules, loaded = list(sys.path), set(sys.modules), conf.loaded_generation()
    threads = threading.active_count()
    installs: list[tuple] = []

    def install(self, wanted, action, actor=""):
        installs.append((wanted, action, actor))
        self.say("resolving 1 plugin(s)")
        self.say("building generation 3")
        return ChangeResult(3, [PluginChange("greeter", None, "1.0.0", ["read_leads"])])

    monkeypatch.setattr(tasks.Environment, "install", install)
    response = admin.post("/console/catalogue/greeter/install/", {"version": "1.0.0"})

    op = Operation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/console/operations/{op.pk}/"
    # The web process only recorded and enqueued it: no thread, no environment change.
    assert sys.path == path and set(sys.modules) == modules and plugin_modules() == []
    assert conf.loaded_generation() == loaded and threading.active_count() == threads
    assert installs == []
    assert (op.kind, op.status, op.description) == ("install", "queued", "install greeter==1.0.0")
    task = DBTaskResult.objects.get(pk=op.task_id)
    assert (task.status, task.queue_name, task.task_path) == ("READY", "operations", TASK_PATH)
    assert task.args_kwargs["args"] == [
        op.pk,
        {"kind": "install", "requirements": ["greeter==1.0.0"]},
    ]
    page = operation_page(admin, op)
    assert "Queued…" in page and "hx-get" in page and "Waiting for a worker" not in page

    run_worker_batch(("operations",), worker_id="test-worker-1")

    op.refresh_from_db()
    assert installs == [({"greeter": "1.0.0"}, "install greeter==1.0.0", "console:admin")]
    assert op.status == "succeeded" and op.finished_at is not None
    assert op.log == "resolving 1 plugin(s)\nbuilding generation 3"
    assert op.result == (
        "Generation 3 is active. + greeter 1.0.0     asks for permission read_leads: not granted "
        "until an admin runs `services-ai plugins grant greeter read_leads`"
    )
    assert (op.worker_id, op.host, op.pid) == ("test-worker-1", socket.gethostname(), os.getpid())
    assert op.picked_up_at is not None and op.heartbeat_at is not None
    assert DBTaskResult.objects.get(pk=op.task_id).status == "SUCCESSFUL"
    page = operation_page(admin, op, htmx=True)
    assert "Done." in page and "Generation 3 is active." in page and "hx-get" not in page
    assert "Run by worker test-worker-1 on" in page


def test_each_console_operation_enqueues_its_kind_of_work(admin):
    EnvironmentGeneration.objects.create(number=1, status="inactive", requested={}, lock="")
    admin.post("/console/plugins/greeter/uninstall/", {"confirm": "greeter"})
    admin.post("/console/history/1/rollback/")
    admin.post("/console/catalogue/refresh/")
    work = [
        (op.kind, op.description, DBTaskResult.objects.get(pk=op.task_id).args_kwargs["args"][1])
        for op in Operation.objects.order_by("pk")
    ]
    assert work == [
        ("uninstall", "uninstall greeter", {"kind": "uninstall", "name": "greeter"}),
        ("rollback", "roll back to generation 1", {"kind": "rollback", "to": 1}),
        ("refresh", "refresh the catalogue", {"kind": "refresh"}),
    ]


def test_a_refused_change_is_recorded_as_the_operations_error(admin):
    """The worker runs the real uninstall; the environment refuses it with its message."""
    admin.post("/console/plugins/nope/uninstall/", {"confirm": "nope"})
    run_worker_batch(("operations",))
    op = Operation.objects.get()
    assert op.status == "failed"
    assert op.result == "'nope' is not installed in the managed environment; installed: none"
    page = operation_page(admin, op)
    assert "Failed." in page and "is not installed in the managed environment" in page


def test_a_worker_stopped_in_the_middle_records_the_interruption(admin, monkeypatch):
    def stopped(op, say):
        say("reading the index")
        raise SystemExit(1)  # what db_worker raises on a second SIGTERM

    monkeypatch.setitem(tasks.KINDS, "refresh", stopped)
    admin.post("/console/catalogue/refresh/")
    run_worker_batch(("operations",))
    op = Operation.objects.get()
    assert op.status == "failed" and op.log == "reading the index"
    assert op.result == interrupted("the worker running it stopped (SystemExit)")
    assert DBTaskResult.objects.get(pk=op.task_id).status == "FAILED"


# -- orphans: recovered by the supervisor's reaper ------------------------------------------------


def queued(admin: Client) -> Operation:
    admin.post("/console/plugins/greeter/uninstall/", {"confirm": "greeter"})
    return Operation.objects.latest("pk")


def claimed(op: Operation, worker_id: str, *, silent_for: float = 0) -> Operation:
    """Make ``op`` look as a worker left it while running it."""
    at = timezone.now() - timedelta(seconds=silent_for)
    DBTaskResult.objects.filter(pk=op.task_id).update(
        status="RUNNING", started_at=at, worker_ids=[worker_id]
    )
    Operation.objects.filter(pk=op.pk).update(
        status="running", worker_id=worker_id, host="web-1", pid=4242, picked_up_at=at,
        heartbeat_at=at,
    )  # fmt: skip
    return Operation.objects.get(pk=op.pk)


def test_an_operation_whose_worker_died_is_failed_by_the_reaper(admin):
    op = claimed(queued(admin), "host-1-abc-1")
    # The supervisor saw its worker exit (kill -9) and failed the task it was running.
    abandon_worker("host-1-abc-1", "abandoned: worker host-1-abc-1 exited with code -9")
    reap_stale()
    op.refresh_from_db()
    assert op.status == "failed" and op.finished_at is not None
    assert op.result == (
        "interrupted: the worker running it stopped (abandoned: worker host-1-abc-1 exited with "
        "code -9)" + RECOVER
    )
    page = operation_page(admin, op)
    assert "Failed." in page and "interrupted: the worker running it stopped" in page
    assert "hx-get" not in page


def test_operations_whose_task_failed_or_is_gone_are_failed_by_the_reaper(admin):
    failed = queued(admin)
    DBTaskResult.objects.filter(pk=failed.task_id).update(
        status="FAILED", traceback="Traceback ...\nImportError: no module named x"
    )
    gone = queued(admin)
    DBTaskResult.objects.filter(pk=gone.task_id).delete()
    started_by_a_thread = Operation.objects.create(  # the web process ran it before, and died
        kind="install", description="install greeter==1.0.0", actor="console:admin",
        status="running",
    )  # fmt: skip
    waiting = queued(admin)
    reap_stale()
    results = dict(Operation.objects.values_list("pk", "result"))
    assert results[failed.pk] == interrupted(
        "its task failed before it started (ImportError: no module named x)"
    )
    assert results[gone.pk] == interrupted("its task is no longer on the queue")
    assert results[started_by_a_thread.pk] == interrupted("its task is no longer on the queue")
    assert Operation.objects.get(pk=waiting.pk).status == "queued"  # waiting is not orphaned


def test_a_running_operation_whose_worker_fell_silent_is_failed(admin):
    silent = claimed(queued(admin), "lost-host-1-abc-1", silent_for=120)
    busy = claimed(queued(admin), "host-2-def-1", silent_for=3)
    page = operation_page(admin, silent)
    assert "No word from its worker for 120 s" in page and "Working…" in page
    reap_stale()
    silent.refresh_from_db()
    assert silent.status == "failed"
    assert silent.result.startswith(
        "interrupted: the worker running it stopped (worker lost-host-1-abc-1 on web-1, pid 4242,"
        " silent since "
    )
    assert silent.result.endswith(RECOVER)
    task = DBTaskResult.objects.get(pk=silent.task_id)
    assert task.status == "FAILED" and task.finished_at is not None
    assert Operation.objects.get(pk=busy.pk).status == "running"
    assert "No word" not in operation_page(admin, busy)


def test_a_running_operation_beats_its_heartbeat():
    op = Operation.objects.create(
        kind="refresh", description="refresh", actor="t", status="running"
    )
    with tasks.heartbeat(op.pk, every=0.05):
        time.sleep(0.5)
    op.refresh_from_db()
    assert op.heartbeat_at is not None and timezone.now() - op.heartbeat_at < timedelta(seconds=5)
    assert not [t for t in threading.enumerate() if t.name.startswith("operation-")]


def test_a_queued_operation_nobody_runs_says_it_waits_for_a_worker(admin):
    op = queued(admin)
    assert "Waiting for a worker" not in operation_page(admin, op)
    Operation.objects.filter(pk=op.pk).update(started_at=timezone.now() - timedelta(seconds=10))
    page = operation_page(admin, op, htmx=True)
    assert "Waiting for a worker: start <code>services-ai worker</code> if none is running." in page
    assert "hx-get" in page  # it keeps polling, and shows the worker's progress once it runs
    reap_stale()
    assert Operation.objects.get(pk=op.pk).status == "queued"


# -- a real `services-ai worker` on the test database ---------------------------------------------


def shared_database_url() -> str:
    """The URL of the test database, for a child process to use."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite://{settings['NAME']}"
    auth = quote(settings["USER"]) + (
        f":{quote(settings['PASSWORD'])}" if settings["PASSWORD"] else ""
    )
    host = f"{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}"
    return f"postgresql://{auth}@{host}/{settings['NAME']}"


class Worker:
    """``services-ai worker`` in a process group of its own, on the test database."""

    def __init__(self, home: Path, **env: str):
        self.home = home
        self.log_path = home.parent / "worker.log"
        self.log = self.log_path.open("w")
        environment = {
            **os.environ,
            "SERVICES_AI_HOME": str(home),
            "DATABASE_URL": shared_database_url(),
            "DJANGO_SETTINGS_MODULE": "services_ai.settings",
            **env,
        }
        environment.pop("SERVICES_AI_TEST_HOME", None)
        environment.pop("SERVICES_AI_PLUGIN_PATH", None)
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "services-ai"), "worker"],
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        stop_group(self.process)
        self.log.close()


@contextlib.contextmanager
def running_worker(home: Path, **env: str) -> Iterator[Worker]:
    worker = Worker(home, **env)
    try:
        yield worker
    finally:
        worker.stop()


def wait_for(op: Operation, condition, timeout: float, worker: Worker) -> Operation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        op.refresh_from_db()
        if condition(op):
            return op
        assert worker.process.poll() is None, worker.log_path.read_text()
        time.sleep(0.2)
    raise AssertionError(
        f"operation {op.pk} is {op.status}:\n{op.log}\n{op.result}\n"
        f"worker log:\n{worker.log_path.read_text()}"
    )


@pytest.mark.subprocess
def test_a_real_worker_installs_what_the_console_queued(admin, tmp_path, plugin_index):
    client = admin
    path, loaded = list(sys.path), conf.loaded_generation()
    with running_worker(tmp_path / "home", **plugin_index.env()) as worker:
        client.post("/console/catalogue/refresh/")
        refresh = wait_for(Operation.objects.get(), lambda op: op.finished, 120, worker)
        assert refresh.status == "succeeded", refresh.result
        assert refresh.result.startswith("Catalogue refreshed:")

        client.post("/console/catalogue/greeter/install/", {"version": "1.0.0"})
        op = Operation.objects.get(kind="install")
        assert "Queued…" in operation_page(client, op) or op.status != "queued"
        op = wait_for(op, lambda op: op.finished, 120, worker)
        assert op.status == "succeeded", op.result
        assert op.result.startswith("Generation 1 is active. + greeter 1.0.0")
        assert "building generation 1" in op.log and "checking generation 1" in op.log
        assert op.worker_id and op.host == socket.gethostname() and op.pid != os.getpid()
        page = operation_page(client, op)
        assert "Done." in page and "Generation 1 is active." in page
    # The worker built the generation in its home; this (web) process never moved.
    assert (tmp_path / "home" / "env" / "generations" / "0001" / "plugins.lock").exists()
    assert sys.path == path and conf.loaded_generation() == loaded and plugin_modules() == []


@pytest.mark.subprocess
def test_killing_the_worker_mid_operation_fails_it_with_the_recovery_advice(admin, tmp_path):
    client = admin
    home = tmp_path / "home"
    (home / "env").mkdir(parents=True)
    with (home / "env" / ".lock").open("w") as lock, running_worker(home) as worker:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another change holds the environment: the op waits
        client.post("/console/plugins/greeter/uninstall/", {"confirm": "greeter"})
        op = wait_for(
            Operation.objects.get(),
            lambda op: "another plugin environment change is running" in op.log,
            60,
            worker,
        )
        assert op.status == "running" and op.pid
        os.kill(op.pid, signal.SIGKILL)
        op = wait_for(op, lambda op: op.finished, 60, worker)
    assert op.status == "failed"
    assert op.result == interrupted(
        f"the worker running it stopped (abandoned: worker {op.worker_id} exited with code -9)"
    )
    page = operation_page(client, op)
    assert "Failed." in page and "run `services-ai plugins recover` then try again" in page
