"""Hook calls: one plugin's call without a scan, the hot loop, and when a process reads the
registry generation (at the first hook call of each request and task, after its own changes,
at most a second apart otherwise), not on every call."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.signals import request_started
from django.db import connection
from django.db.models import F
from django_tasks.signals import task_started

from plugin_registry.host import RegistryState, create_host
from plugin_registry.registry import actions, generation
from plugin_registry.registry.models import Plugin, PluginPermission, RegistryGeneration
from plugin_registry.runtime import get_host
from services_ai import conf
from services_ai.events.models import Delivery
from services_ai.leads.models import Lead
from services_ai.plugins import hookimpl
from services_ai.plugins.context import PluginCall, acting_as, current_call, running
from services_ai.testing.worker import run_worker_batch

LEAD = {"id": 7, "name": "Ada"}
BOOKING = {"id": 3, "service": "Window cleaning"}


class Counter:
    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    @hookimpl
    def lead_created(self, lead):
        self.calls.append(("lead_created", current_call().plugin))
        return lead["id"]


def host_of(plugins, grants=frozenset({"read_leads"})):
    names = frozenset(name for name, _ in plugins)
    state = RegistryState(generation=1, enabled=names, grants={n: grants for n in names})
    return create_host(state, load_entrypoints=False, plugins=plugins)


# -- the host ----------------------------------------------------------------------------------


def test_call_one_on_a_host_of_many_plugins_calls_only_the_named_one():
    plugins = [(f"p-{i:03d}", Counter()) for i in range(200)]
    host = host_of(plugins)
    outcome = host.call_one("p-123", "lead_created", lead=LEAD)
    assert outcome.ok and outcome.value == 7
    assert [name for name, plugin in plugins if plugin.calls] == ["p-123"]
    assert plugins[123][1].calls == [("lead_created", "p-123")]  # as itself, for the data API
    assert host.stats()[("p-123", "lead_created")].calls == 1
    assert len(host.stats()) == 1
    assert host.call_one("nobody", "lead_created", lead=LEAD).skipped == (
        "plugin is not enabled or not loaded"
    )
    assert host.call_one("p-001", "booking_created", booking=BOOKING).skipped == (
        "permission 'read_bookings' not granted"
    )


def test_call_one_skips_a_registered_plugin_that_does_not_implement_the_hook():
    class Other:
        @hookimpl
        def plugin_installed(self):
            pass

    host = host_of([("counter", Counter()), ("other", Other())])
    assert host.call_one("other", "lead_created", lead=LEAD).skipped == (
        "plugin does not implement 'lead_created'"
    )


def test_call_one_runs_inside_the_guard_mark():
    marked = []

    class Guard:
        def __init__(self, plugin, activity):
            self.mark = (plugin, activity)

        def __enter__(self):
            marked.append(("in", *self.mark))

        def __exit__(self, *exc):
            marked.append(("out", *self.mark))

    class Reports:
        @hookimpl
        def lead_created(self, lead):
            marked.append(("hook", current_call().plugin))

    host = create_host(
        RegistryState(generation=1, enabled=frozenset({"r"}), grants={"r": {"read_leads"}}),
        load_entrypoints=False,
        plugins=[("r", Reports())],
        guard=Guard,
    )
    assert host.call_one("r", "lead_created", lead=LEAD).ok
    assert marked == [("in", "r", "lead_created"), ("hook", "r"), ("out", "r", "lead_created")]


def test_the_hot_loop_keeps_isolation_stats_order_and_the_running_plugin():
    class Raiser:
        @hookimpl
        def lead_created(self, lead):
            raise RuntimeError(f"down for {current_call().plugin}")

    class Nested:
        """Calls another hook while it runs: the outer running plugin comes back after."""

        def __init__(self):
            self.host = None
            self.after = None

        @hookimpl
        def lead_created(self, lead):
            self.host.call("booking_created", booking=BOOKING)
            self.after = current_call().plugin

    class Booker:
        @hookimpl
        def booking_created(self, booking):
            return current_call().plugin

    nested = Nested()
    first, last = Counter(), Counter()
    host = host_of(
        [("first", first), ("bad", Raiser()), ("nested", nested), ("booker", Booker()),
         ("last", last)],
        grants=frozenset({"read_leads", "read_bookings"}),
    )  # fmt: skip
    nested.host = host
    outer = PluginCall(plugin="outer", granted=frozenset())
    with acting_as(outer):
        results = host.call("lead_created", lead=LEAD)
        assert running.call is outer
    assert running.call is None
    assert results == [("last", 7), ("first", 7)]  # pluggy's order: the last registered first
    assert nested.after == "nested"
    assert host.failures[-1].plugin == "bad"
    assert host.failures[-1].message == "RuntimeError: down for bad"
    stats = host.stats()
    assert stats[("bad", "lead_created")].errors == 1
    assert {stats[(p, "lead_created")].calls for p in ("first", "bad", "nested", "last")} == {1}
    assert stats[("booker", "booking_created")].calls == 1
    assert all(s.total_ns > 0 for s in stats.values())


def test_implementations_taking_different_arguments_each_get_theirs():
    seen = []

    class New:
        @hookimpl
        def booking_updated(self, booking):
            seen.append(("new", current_call().plugin, booking["id"]))

    class Both:
        @hookimpl
        def booking_updated(self, booking, previous_state):
            seen.append(("both", current_call().plugin, previous_state["id"]))
            raise ValueError("isolated")

    host = host_of([("new", New()), ("both", Both())], grants=frozenset({"read_bookings"}))
    assert host.call("booking_updated", booking=BOOKING, previous_state={"id": 2}) == []
    assert seen == [("both", "both", 2), ("new", "new", 3)]
    assert host.failures[-1].message == "ValueError: isolated"
    assert running.call is None
    assert host.stats()[("both", "booking_updated")].errors == 1


# -- when a process reads the registry generation ---------------------------------------------


@pytest.fixture
def no_reads_by_time(monkeypatch):
    """Only a request, a task or a change in this process makes a read due."""
    monkeypatch.setattr(generation.check, "every", 3600.0)


def enable_elsewhere(name: str, permission: str) -> None:
    """Enable and grant ``name`` in the database as another process would: this one is not
    told (no ``bump_generation`` here)."""
    Plugin.objects.filter(name=name).update(enabled=True)
    PluginPermission.objects.filter(plugin__name=name, name=permission).update(granted=True)
    RegistryGeneration.objects.filter(pk=1).update(generation=F("generation") + 1)


@pytest.mark.django_db
def test_hook_calls_read_the_generation_only_when_a_read_is_due(
    registry, django_assert_num_queries, no_reads_by_time
):
    registry.enable("idempotent-counter", "read_leads")
    host = get_host()
    with django_assert_num_queries(0):
        for _ in range(100):
            assert get_host() is host
    generation.check.due()  # as when a request or a task starts
    with django_assert_num_queries(1):  # the generation; it did not move: the same host
        assert get_host() is host
        assert get_host() is host
    with django_assert_num_queries(1):
        assert get_host(check=True) is host


@pytest.mark.django_db
def test_a_change_made_in_this_process_is_seen_at_its_next_hook_call(registry):
    assert get_host().plugin_names() == []
    registry.enable("idempotent-counter", "read_leads")
    assert get_host().implementers("lead_created") == ["idempotent-counter"]
    actions.disable("idempotent-counter")
    assert get_host().plugin_names() == []


@pytest.mark.django_db(transaction=True)
def test_a_change_made_elsewhere_is_seen_by_the_next_request(
    registry, admin_client, no_reads_by_time
):
    assert get_host().plugin_names() == []
    enable_elsewhere("booking-widget", "read_bookings")
    assert get_host().plugin_names() == []  # no read due: outside any request or task
    page = admin_client.get("/").content.decode()
    assert 'data-plugin="booking-widget"' in page


@pytest.mark.django_db(transaction=True)
def test_a_change_made_elsewhere_is_seen_by_the_next_task(registry, no_reads_by_time):
    assert get_host().plugin_names() == []
    enable_elsewhere("idempotent-counter", "read_leads")
    assert get_host().plugin_names() == []
    Lead.objects.create(name="Ada")
    run_worker_batch()  # each task starts with a read: the delivery finds the plugin loaded
    delivery = Delivery.objects.get()
    assert (delivery.plugin_name, delivery.status) == ("idempotent-counter", "succeeded")


@pytest.mark.django_db(transaction=True)
def test_a_task_or_request_start_makes_a_read_due(
    registry, django_assert_num_queries, no_reads_by_time
):
    task = SimpleNamespace(id="1", task=SimpleNamespace(module_path="t"), status="RUNNING")
    get_host()
    for signal, kwargs in (
        (request_started, {"environ": {}}),
        (task_started, {"task_result": task}),
    ):
        with django_assert_num_queries(0):
            get_host()
        signal.send(sender=object, **kwargs)
        with django_assert_num_queries(1):
            get_host()


@pytest.mark.django_db(transaction=True)
def test_without_a_request_or_task_a_change_elsewhere_is_seen_within_the_interval(
    registry, monkeypatch
):
    monkeypatch.setattr(generation.check, "every", 0.2)
    get_host()
    enable_elsewhere("idempotent-counter", "read_leads")
    time.sleep(0.25)
    assert get_host().implementers("lead_created") == ["idempotent-counter"]


def database_url() -> str:
    """The test database's URL, for a child process."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite://{Path(db['NAME']).resolve()}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgresql://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


ENABLE_IN_A_CHILD = """
import sys, django
django.setup()
from plugin_registry.registry import actions
for name, permission in zip(sys.argv[1::2], sys.argv[2::2]):
    actions.set_grant(name, permission, True)
    actions.enable(name, actor="child")
"""


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_plugins_enabled_by_another_process_reach_the_next_delivery_and_request(
    registry, admin_client, plugins_on_path, no_reads_by_time
):
    assert get_host().plugin_names() == []
    child = subprocess.run(
        [sys.executable, "-c", ENABLE_IN_A_CHILD, "idempotent-counter", "read_leads",
         "booking-widget", "read_bookings"],
        env={
            **os.environ,
            "SERVICES_AI_HOME": str(conf.home()),
            "SERVICES_AI_PLUGIN_PATH": os.pathsep.join(map(str, plugins_on_path)),
            "DATABASE_URL": database_url(),
            "DJANGO_SETTINGS_MODULE": "services_ai.settings",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr
    assert Plugin.objects.filter(enabled=True).count() == 2

    Lead.objects.create(name="Ada")
    run_worker_batch()
    delivery = Delivery.objects.get()
    assert (delivery.plugin_name, delivery.status) == ("idempotent-counter", "succeeded")
    page = admin_client.get("/").content.decode()
    assert 'data-plugin="booking-widget"' in page
