"""Several nodes on one PostgreSQL database converge by themselves and say so.

Three nodes share one database and one index, each with its own home (its own managed
environment), as three hosts would: node a only runs commands, node b runs a worker, node c
only serves the web. A plugin installed and enabled on a reaches b and c within seconds without
anyone running ``plugins recover``, and no delivery fails while b is behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from services_ai.testing.processes import stop_group
from services_ai.testing.wheels import free_port
from tests.conftest import SAI
from tests.databases import Rows, postgres_database

pytestmark = pytest.mark.subprocess

CREATE_LEADS = """
import django
django.setup()
from services_ai.leads.models import Lead
for index in range(5):
    Lead.objects.create(name=f"Lead {index}", source="referral")
"""


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def node_rows(sai: SAI) -> dict[tuple[str, str], dict]:
    report = json.loads(sai("nodes", "--json").stdout)
    return {
        (row["node"], row["role"]): {**row, "active": report["active"]} for row in report["nodes"]
    }


def test_three_nodes_follow_an_install_by_themselves_and_nothing_fails_during_skew(
    tmp_path, plugin_index
):
    with postgres_database() as url:
        node = {
            name: SAI(tmp_path / name, [], url, SERVICES_AI_NODE=name, **plugin_index.env())
            for name in ("a", "b", "c")
        }
        node["a"]("migrate", "--no-input", "-v0")
        rows = Rows(url, node["a"].home)
        port = free_port()
        logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("b", "c")}
        children = [
            subprocess.Popen(
                [node["b"].executable, "worker", "--processes", "1"],
                env=node["b"].env, stdout=logs["b"], stderr=subprocess.STDOUT,
                start_new_session=True,
            ),
            subprocess.Popen(
                [node["c"].executable, "runserver", "--noreload", f"127.0.0.1:{port}"],
                env=node["c"].env, stdout=logs["c"], stderr=subprocess.STDOUT,
                start_new_session=True,
            ),
        ]  # fmt: skip
        try:
            wait_for(
                lambda: {("b", "worker"), ("c", "web")} <= set(node_rows(node["a"])),
                timeout=60,
                what="nodes b and c to report",
            )
            assert "none" in node["a"]("nodes").stdout

            node["a"]("plugins", "install", "lead-scorer")
            node["a"]("plugins", "grant", "lead-scorer", "read_leads")
            node["a"]("plugins", "grant", "lead-scorer", "create_bookings")
            node["a"]("plugins", "enable", "lead-scorer")
            changed = time.monotonic()
            subprocess.run(
                [node["a"].executable, "shell", "-c", CREATE_LEADS],
                env=node["a"].env, check=True, timeout=120, capture_output=True,
            )  # fmt: skip

            # No one runs `plugins recover` on b or c: both follow within seconds.
            converged: dict[str, float] = {}

            def both_current() -> bool:
                for (name, _), row in node_rows(node["a"]).items():
                    if row["generation"] == row["active"] and name not in converged:
                        converged[name] = time.monotonic() - changed
                return {"b", "c"} <= set(converged)

            wait_for(both_current, timeout=120, what="nodes b and c to run the new generation")
            assert os.readlink(node["c"].home / "env" / "active") == "generations/0001"
            assert os.readlink(node["b"].home / "env" / "active") == "generations/0001"
            print(f"\nconverged after the change: b {converged['b']:.1f}s, c {converged['c']:.1f}s")

            wait_for(
                lambda: rows.one(
                    "SELECT COUNT(*) FROM events_delivery "
                    "WHERE plugin_name = 'lead-scorer' AND status = 'succeeded'"
                ) == 5,
                timeout=120,
                what="the 5 deliveries on node b",
            )  # fmt: skip
            # Node b was behind when the events came: it waited instead of failing attempts.
            attempts = rows.all(
                "SELECT attempts, last_error FROM events_delivery WHERE plugin_name = 'lead-scorer'"
            )
            assert attempts == [(1, "")] * 5, attempts
            table = node["b"]("nodes").stdout
            assert "b (this)" in table and "current" in table and "behind" not in table
            listing = node["c"]("plugins", "list").stdout
            assert "this node (c) runs plugin environment generation 1" in listing
        finally:
            for child in children:
                stop_group(child)
            for log in logs.values():
                log.close()


@pytest.mark.django_db
def test_the_environment_page_lists_each_node_and_its_skew(registry, monkeypatch):
    from django.contrib.auth.models import User
    from django.test import Client

    from plugin_registry.registry import nodes

    monkeypatch.setenv(nodes.NODE_ENV, "web-1")
    nodes.beat("web", 3, force=True)
    monkeypatch.setenv(nodes.NODE_ENV, "worker-2")
    nodes.beat("worker", None, force=True)
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    client = Client()
    client.login(username="admin", password="pw")
    page = client.get("/console/history/").content.decode()
    assert 'data-node="web-1" data-role="web"' in page
    assert 'data-node="worker-2" data-role="worker"' in page
    assert "worker-2 (this one)" in page  # the node this web process runs on
    assert page.count(">current<") == 2  # no generation is active: nothing to lag behind
