"""Several nodes, one index: a devpi replica per host, following the primary, outliving it.

The session's index is the primary (the embedded index always runs with devpi's
``--role primary``). A second home sets up a replica of it with ``services-ai index replica``;
a node whose ``SERVICES_AI_INDEX_URL`` names the replica reads its catalogue and installs from
it, gets the very files the primary holds, sees a new version published on the primary within
seconds, publishes through the replica (devpi relays writes to the primary), and still installs
while the primary is down.
"""

from __future__ import annotations

import re
import time

import pytest

from plugin_registry.distribution.index import IndexClient, IndexConfig, UnknownProject
from services_ai.testing.wheels import build_wheel, free_port, write_plugin_project
from tests.conftest import SAI, TEST_DEVPI_ARGS

pytestmark = pytest.mark.subprocess

PROPAGATION = 15.0  # seconds a change on the primary may take to reach the replica


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def reader(port: int) -> IndexClient:
    return IndexClient(
        IndexConfig(server=f"http://127.0.0.1:{port}", user="services-ai", password="")
    )


def versions(client: IndexClient, project: str, index: str = "stable") -> dict[str, str]:
    """{version: sha256} of a project's wheels, {} if the index has none."""
    try:
        return {f.version: f.sha256 for f in client.files(project, index)}
    except UnknownProject:
        return {}


def locked(node: SAI, project: str) -> tuple[str, str]:
    """(version, sha256) of ``project`` in the node's active lock."""
    lock = (node.home / "env" / "plugins.lock").read_text()
    found = re.search(rf"^{project}==(\S+) \\\n\s+--hash=sha256:([0-9a-f]{{64}})", lock, re.M)
    assert found, f"{project} is not pinned in the lock:\n{lock}"
    return found[1], found[2]


def library(tmp_path, version: str):
    project = write_plugin_project(
        tmp_path / "src", "replica-probe", "VALUE = 1\n", {}, version=version,
        dependencies=(), entry_point=False,
    )  # fmt: skip
    return build_wheel(project, tmp_path / "wheels")


def test_a_replica_serves_a_node_follows_the_primary_relays_writes_and_outlives_it(
    tmp_path, plugin_index
):
    primary = plugin_index.runner
    primary_url = f"http://127.0.0.1:{plugin_index.port}"
    port = free_port()
    replica = SAI(tmp_path / "replica", [], SERVICES_AI_INDEX_SERVER_ARGS=TEST_DEVPI_ARGS)
    replica_url = f"http://127.0.0.1:{port}/services-ai/stable"
    upstream, local = reader(plugin_index.port), reader(port)
    stopped = False
    try:
        out = replica(
            "index", "replica", "--primary-url", primary_url, "--port", str(port),
            "--secret-file", str(primary.home / "index" / "secret"),
        ).stdout  # fmt: skip
        assert re.search(r"replicated the primary up to serial \d+, files included", out)
        assert f"SERVICES_AI_INDEX_URL={replica_url}" in out
        assert not (replica.home / "index" / "password").exists()  # no credentials of its own
        wait_for(
            lambda: local.projects() == upstream.projects(), PROPAGATION, "the primary's projects"
        )
        status = replica("index", "status").stdout
        assert re.search(
            rf"a replica of {primary_url}: at serial (\d+), the primary at \1 \(in sync\)", status
        ), status
        assert re.search(r"devpi primary at serial \d+: [1-9]\d* replica\(s\) following it",
                         primary("index", "status").stdout)  # fmt: skip

        # A node that reads from the replica: the catalogue and an install, the primary's files.
        node = SAI(tmp_path / "node", [], SERVICES_AI_INDEX_URL=replica_url)
        node("migrate", "--no-input", "-v0")
        catalogue = node("plugins", "catalogue").stdout
        assert "lead-scorer" in catalogue and "crm-sync" in catalogue
        node("plugins", "install", "lead-scorer")
        version, digest = locked(node, "lead-scorer")
        assert versions(upstream, "lead-scorer")[version] == digest

        # A version published on the primary reaches the replica within seconds.
        started = time.monotonic()
        primary(
            "index", "publish", "--dependency", "--index", "dev", str(library(tmp_path, "1.0.0"))
        )
        wait_for(lambda: "1.0.0" in versions(local, "replica-probe", "dev"), PROPAGATION,
                 "the new version on the replica")  # fmt: skip
        assert time.monotonic() - started < PROPAGATION
        # Publishing through the replica: devpi relays the write to the primary and answers
        # once the change has come back, so both hold it at once.
        publisher = SAI(
            tmp_path / "node", [], SERVICES_AI_INDEX_URL=replica_url,
            SERVICES_AI_INDEX_PASSWORD=plugin_index.password,
        )  # fmt: skip
        wheel = library(tmp_path, "1.1.0")
        out = publisher("index", "publish", "--dependency", "--index", "dev", str(wheel)).stdout
        assert f"uploaded, as a dependency (http://127.0.0.1:{port}/services-ai/dev)" in out
        assert "1.1.0" in versions(upstream, "replica-probe", "dev")
        assert "1.1.0" in versions(local, "replica-probe", "dev")

        # The primary goes down: the replica still serves what it has.
        primary("index", "stop")
        stopped = True
        status = replica("index", "status").stdout
        assert f"a replica of {primary_url}: at serial" in status
        assert "the primary is not reachable" in status
        file = next(f for f in local.files("lead-scorer") if f.version == version)
        assert local.download(file)  # checked against the listed sha256
        # A new node, with an empty installer cache, installs from the replica alone.
        offline = SAI(
            tmp_path / "node-2", [], SERVICES_AI_INDEX_URL=replica_url,
            XDG_CACHE_HOME=str(tmp_path / "cache-2"),
        )  # fmt: skip
        offline("migrate", "--no-input", "-v0")
        offline("plugins", "install", f"lead-scorer=={version}")
        assert locked(offline, "lead-scorer") == (version, digest)
        # Writes need the primary: refused with the reason, nothing changed.
        error = publisher(
            "index", "publish", "--dependency", "--index", "dev", str(library(tmp_path, "1.2.0")),
            check=False,
        ).stderr  # fmt: skip
        assert "a devpi replica does so while its primary is unreachable" in error
    finally:
        replica("index", "stop", check=False)
        if stopped:
            primary("index", "start")  # the session's index serves the tests that follow


def test_a_replica_is_refused_a_wrong_secret_and_an_index_url(tmp_path, plugin_index):
    primary_url = f"http://127.0.0.1:{plugin_index.port}"
    replica = SAI(tmp_path / "replica", [], SERVICES_AI_INDEX_SERVER_ARGS=TEST_DEVPI_ARGS)
    error = replica("index", "replica", "--primary-url", plugin_index.url, check=False).stderr
    assert f"give the primary server's root URL ({primary_url}), not an index's" in error
    error = replica("index", "replica", "--primary-url", primary_url, check=False).stderr
    assert "a replica needs its primary's secret file" in error

    wrong = tmp_path / "wrong-secret"
    wrong.write_text("not-the-primary-secret-but-long-enough-0123456789\n")
    wrong.chmod(0o600)
    try:
        error = replica(
            "index", "replica", "--primary-url", primary_url, "--port", str(free_port()),
            "--secret-file", str(wrong), check=False,
        ).stderr  # fmt: skip
        assert f"the primary at {primary_url} refused this replica (HTTP 403)" in error
        assert "not running" in replica("index", "status").stdout
    finally:
        replica("index", "stop", check=False)
    # A home with an index of its own is no replica, and a replica is not initialised.
    error = plugin_index.runner(
        "index", "replica", "--primary-url", primary_url, check=False
    ).stderr
    assert "this home already holds an index of its own" in error
    error = replica("index", "init", check=False).stderr
    assert f"this home's index is a replica of {primary_url}" in error
