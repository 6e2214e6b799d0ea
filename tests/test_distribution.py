"""Plugin distribution against a real devpi-server: catalogue, locks, managed environment."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services_ai.testing.databases import Rows
from services_ai.testing.wheels import free_port
from tests.conftest import SAI
from tests.databases import postgres_database
from tests.plugin_projects import GREETER_V1, build_wheel, write_plugin_project

pytestmark = pytest.mark.subprocess


def rows(sai: SAI) -> Rows:
    return Rows("", sai.home)


def history(sai: SAI) -> list[dict]:
    return json.loads(sai("plugins", "history", "--json").stdout)


def installed(sai: SAI) -> dict[str, str]:
    return {p["name"]: p["version"] for p in json.loads(sai("plugins", "list", "--json").stdout)
            if p["installed"]}  # fmt: skip


def active_link(sai: SAI) -> str:
    return os.readlink(sai.home / "env" / "active")


def state(sai: SAI) -> tuple:
    """Everything a refused change must leave as it was."""
    active = [g for g in history(sai) if g["status"] == "active"]
    link = active_link(sai) if (sai.home / "env" / "active").is_symlink() else None
    perms = rows(sai).all(
        "SELECT p.name, q.name, q.granted FROM plugin_registry_plugin p "
        "JOIN plugin_registry_pluginpermission q ON q.plugin_id = p.id ORDER BY 1, 2"
    )
    return installed(sai), active, link, perms


def fails(sai: SAI, *args: str) -> str:
    result = sai(*args, check=False)
    assert result.returncode != 0, f"services-ai {' '.join(args)} succeeded:\n{result.stdout}"
    return result.stderr


# -- the index ---------------------------------------------------------------------------------


def test_index_serves_the_published_plugins_and_never_replaces_a_version(plugin_index, tmp_path):
    runner = plugin_index.runner
    status = runner("index", "status").stdout
    assert "running (pid" in status
    assert re.search(r"/services-ai/stable: \d+ project", status)

    project = write_plugin_project(
        tmp_path / "src", "greeter", GREETER_V1 + "\n# other content\n",
        {"hook_specs": ["lead_created"], "permissions": ["read_leads"], "settings": []},
    )  # fmt: skip
    wheel = build_wheel(project, tmp_path / "w")
    error = fails(runner, "index", "publish", str(wheel))
    assert f"{wheel.name} is already on {plugin_index.url} with other content" in error
    assert "a published version is never replaced" in error

    # The dev index is volatile and sees the stable one; promotion copies a release.
    out = runner("index", "publish", "--index", "dev", str(wheel)).stdout
    assert "uploaded" in out and "/services-ai/dev" in out
    error = fails(runner, "plugin", "promote", "greeter==1.0.0")
    assert "promoting greeter==1.0.0 to stable failed" in error


# -- the catalogue ------------------------------------------------------------------------------


def test_catalogue_lists_versions_with_compatibility_manifest_and_withdrawn_flag(platform):
    catalogue = {
        p["name"]: p for p in json.loads(platform("plugins", "catalogue", "--json").stdout)
    }
    assert {"lead-scorer", "booking-widget", "crm-sync", "greeter"} <= set(catalogue)
    assert "helper-lib" not in catalogue  # a library, not a plugin

    greeter = catalogue["greeter"]
    assert [v["version"] for v in greeter["versions"]] == ["2.0.0", "1.0.0"]
    assert greeter["versions"][0]["permissions"] == ["read_leads", "read_bookings"]
    assert greeter["versions"][1]["permissions"] == ["read_leads"]
    assert all(v["installable"] for v in greeter["versions"])
    crm = catalogue["crm-sync"]["versions"][0]
    assert "api_key" in crm["settings"]

    future = catalogue["future-plugin"]["versions"][0]
    assert not future["compatible"] and not future["installable"]
    assert future["compatibility"].startswith("requires services-ai>=9; this platform is 0.")

    platform("plugins", "withdraw", "greeter==1.0.0", "--reason", "leaks lead emails")
    catalogue = {
        p["name"]: p for p in json.loads(platform("plugins", "catalogue", "--json").stdout)
    }
    old = catalogue["greeter"]["versions"][1]
    assert old["withdrawn"] and not old["installable"]
    assert old["withdrawn_reason"] == "leaks lead emails"
    text = platform("plugins", "catalogue", "--offline").stdout
    assert "1.0.0        withdrawn (leaks lead emails)" in text

    error = fails(platform, "plugins", "install", "greeter==1.0.0")
    assert "greeter==1.0.0 cannot be installed: withdrawn (leaks lead emails)" in error
    platform("plugins", "restore", "greeter==1.0.0")
    platform("plugins", "install", "greeter==1.0.0")
    assert installed(platform) == {"greeter": "1.0.0"}


# -- install, upgrade, rollback, uninstall ------------------------------------------------------


HOOK_CALL = """
import django, json
django.setup()
from plugin_registry.runtime import get_host
from plugin_registry.registry.models import PluginData
host = get_host()
host.call("lead_created", lead={"id": 41, "name": "Ada"})
print(json.dumps({"plugins": host.plugin_names(),
                  "data": dict(PluginData.objects.values_list("key", "value"))}))
"""


def call_lead_created(sai: SAI) -> dict:
    child = sai.python(HOOK_CALL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_install_upgrade_rollback_uninstall(platform):
    out = platform("plugins", "install", "greeter==1.0.0").stdout
    assert "+ greeter 1.0.0" in out
    assert "asks for permission read_leads: not granted until an admin runs" in out
    assert installed(platform) == {"greeter": "1.0.0"}
    site = platform.home / "env" / "active" / "lib"
    assert list(site.glob("python3.*/site-packages/greeter-1.0.0.dist-info"))
    # The platform's own packages are never installed into the environment.
    assert not list(site.glob("python3.*/site-packages/[dD]jango*"))
    assert not list(site.glob("python3.*/site-packages/services_ai*"))

    platform("plugins", "grant", "greeter", "read_leads")
    platform("plugins", "enable", "greeter")
    # A fresh process loads the plugin from the managed environment, and the hook fires.
    assert call_lead_created(platform) == {"plugins": ["greeter"], "data": {"greeted": 41}}

    out = platform("plugins", "upgrade", "greeter").stdout
    assert "~ greeter 1.0.0 -> 2.0.0" in out
    assert (
        "asks for permission read_bookings: not granted until an admin runs "
        "`services-ai plugins grant greeter read_bookings`" in out
    )
    grants = dict(rows(platform).all(
        "SELECT q.name, q.granted FROM plugin_registry_pluginpermission q "
        "JOIN plugin_registry_plugin p ON q.plugin_id = p.id WHERE p.name = 'greeter'"
    ))  # fmt: skip
    assert grants == {"read_leads": 1, "read_bookings": 0}  # consent kept, nothing new granted
    # The enabled plugin's plugin_installed hook ran once, in the new version.
    data = dict(rows(platform).all("SELECT key, value FROM plugin_registry_plugindata"))
    assert data["installed"] == '"2.0.0"'

    out = platform("plugins", "upgrade", "greeter").stdout
    assert "nothing to change: generation 2 already has that set" in out
    generations = history(platform)
    assert [(g["generation"], g["status"]) for g in generations] == [
        (2, "active"),
        (1, "inactive"),
    ]
    assert generations[0]["plugins"] == {"greeter": "2.0.0"}

    out = platform("plugins", "rollback").stdout
    assert "rolling back from generation 2 to 1" in out
    assert installed(platform) == {"greeter": "1.0.0"}
    assert active_link(platform) == "generations/0001"
    grants = dict(rows(platform).all("SELECT name, granted FROM plugin_registry_pluginpermission"))
    assert grants == {"read_leads": 1, "read_bookings": 0}

    platform("plugins", "rollback", "--to", "2")
    assert installed(platform) == {"greeter": "2.0.0"}
    out = platform("plugins", "uninstall", "greeter").stdout
    assert "- greeter 2.0.0" in out
    assert installed(platform) == {}
    data = dict(rows(platform).all("SELECT key, value FROM plugin_registry_plugindata"))
    assert data["uninstalled"] == '"2.0.0"'  # called on the plugin before its code went away
    active = platform.home / "env" / "active" / "lib"
    assert not list(active.glob("python3.*/site-packages/greeter*"))
    assert call_lead_created(platform)["plugins"] == []


def test_dependencies_of_a_plugin_are_installed_with_it(platform):
    platform("plugins", "install", "with-helper")
    lock = (platform.home / "env" / "plugins.lock").read_text()
    assert re.search(r"^helper-lib==1\.2\.0 \\\n    --hash=sha256:[0-9a-f]{64}$", lock, re.M)
    assert re.search(r"^with-helper==1\.0\.0 \\$", lock, re.M)
    assert not re.search(r"^django==", lock, re.M | re.I)
    assert "provided by the platform, not installed:" in lock and "services-ai==" in lock


RUNNING_PROCESS = """
import django, sys, importlib.metadata
django.setup()
from plugin_registry.runtime import get_host
for line in sys.stdin:
    host = get_host()
    version = importlib.metadata.version("greeter") if host.plugin_names() else "-"
    print(",".join(host.plugin_names()) or "-", version, flush=True)
"""


def test_a_running_process_follows_a_new_generation_without_restart(platform):
    platform("plugins", "install", "greeter==1.0.0")
    platform("plugins", "grant", "greeter", "read_leads")
    platform("plugins", "enable", "greeter")
    child = platform.python(
        RUNNING_PROCESS, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().split() == ["greeter", "1.0.0"]
        platform("plugins", "upgrade", "greeter")
        # Outside a request or task a process looks again at most once a second
        # (registry.generation.CHECK_EVERY); an upgrade can take less than that.
        deadline = time.monotonic() + 10
        while True:
            child.stdin.write("go\n")
            child.stdin.flush()
            seen = child.stdout.readline().split()
            if seen != ["greeter", "1.0.0"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert seen == ["greeter", "2.0.0"]
    finally:
        child.kill()
        child.communicate(timeout=30)


# -- locks -------------------------------------------------------------------------------------


def test_lock_sync_and_drift_detection(platform, tmp_path, plugin_index):
    platform("plugins", "install", "greeter==1.0.0", "with-helper")
    lock = tmp_path / "ci" / "plugins.lock"
    lock.parent.mkdir()
    platform("plugins", "lock", "-o", str(lock))
    assert (tmp_path / "ci" / "plugins.in").read_text().splitlines()[1:] == [
        "greeter==1.0.0",
        "with-helper==1.0.0",
    ]
    assert "the plugin environment matches" in platform("plugins", "check", str(lock)).stdout

    # A second platform (CI, another node) installs exactly that set.
    other = SAI(tmp_path / "other", [], **plugin_index.env())
    other("migrate", "--no-input", "-v0")
    other("plugins", "install", "lead-scorer")
    other("plugins", "sync", str(lock))
    assert installed(other) == {"greeter": "1.0.0", "with-helper": "1.0.0"}
    other("plugins", "check", str(lock))

    other("plugins", "upgrade", "greeter")
    result = other("plugins", "check", str(lock), check=False)
    assert result.returncode == 1
    assert "version: greeter is 2.0.0 here, " in result.stdout
    assert "drifts from" in result.stderr

    other("plugins", "sync", str(lock))
    other("plugins", "install", "lead-scorer")
    result = other("plugins", "check", str(lock), check=False)
    assert result.returncode == 1
    assert "extra: lead-scorer==1.1.0 is installed but not in" in result.stdout


def test_sync_refuses_unpinned_and_tampered_locks_and_changes_nothing(platform, tmp_path):
    platform("plugins", "install", "lead-scorer")
    before = state(platform)

    unhashed = tmp_path / "unhashed.lock"
    unhashed.write_text("greeter==1.0.0\n")
    error = fails(platform, "plugins", "sync", str(unhashed))
    assert (
        "line 1: greeter==1.0.0 has no --hash; a plugin lock must pin every file by hash" in error
    )

    loose = tmp_path / "loose.lock"
    loose.write_text("greeter>=1.0 --hash=sha256:" + "0" * 64 + "\n")
    assert "'greeter>=1.0' is not pinned" in fails(platform, "plugins", "sync", str(loose))

    platform("plugins", "lock", "-o", str(tmp_path / "good.lock"))
    good = (tmp_path / "good.lock").read_text()
    platform("plugins", "uninstall", "lead-scorer")
    platform("plugins", "install", "greeter==1.0.0")
    before = state(platform)
    digest = re.search(r"sha256:([0-9a-f]{64})", good).group(1)
    tampered = tmp_path / "tampered.lock"
    tampered.write_text(good.replace(digest, digest[::-1]))
    error = fails(platform, "plugins", "sync", str(tampered))
    assert "does not match the hash in the lock" in error
    assert state(platform) == before
    assert history(platform)[0]["status"] == "failed"
    assert not list((platform.home / "env" / "generations").glob("*.tmp"))

    django_lock = tmp_path / "django.lock"
    django_lock.write_text(good + "django==4.2.0 \\\n    --hash=sha256:" + "1" * 64 + "\n")
    error = fails(platform, "plugins", "sync", str(django_lock))
    assert "pins django==4.2.0, but the platform provides django 5.2" in error
    assert state(platform) == before


def test_pip_compile_lock_is_accepted_and_ours_installs_with_pip(platform, tmp_path, plugin_index):
    platform("plugins", "install", "greeter==1.0.0")  # builds the platform's metadata wheels
    host_wheels = platform("plugins", "host-wheels").stdout.strip()
    assert list(Path(host_wheels).glob("services_ai-*.whl"))
    (tmp_path / "plugins.in").write_text("greeter==2.0.0\nwith-helper==1.0.0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    compiled = tmp_path / "pip-tools.lock"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "pip-compile"), "--quiet", "--generate-hashes",
            "--strip-extras", "--no-emit-find-links", "--index-url", plugin_index.simple_url,
            "--find-links", host_wheels, "--output-file", str(compiled),
            str(tmp_path / "plugins.in"),
        ],
        check=True, env=env, cwd=tmp_path, capture_output=True, timeout=300,
    )  # fmt: skip
    text = compiled.read_text()
    assert "services-ai==0.1.0" in text and "--hash=sha256:" in text
    platform("plugins", "sync", str(compiled))
    assert installed(platform) == {"greeter": "2.0.0", "with-helper": "1.0.0"}
    platform("plugins", "check", str(compiled))

    # Our lock installs with plain pip next to the platform's packages.
    ours = tmp_path / "ours.lock"
    platform("plugins", "lock", "-o", str(ours))
    venv = tmp_path / "pip-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3.*/site-packages"))
    # The platform's packages, seen the way a .pth file shows them (editable installs too).
    host_site = Path(sys.executable).parent.parent / site.relative_to(venv)
    (site / "platform.pth").write_text(f"import site; site.addsitedir({str(host_site)!r})\n")
    subprocess.run(
        [
            sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
            "--quiet", "--require-hashes", "--index-url", plugin_index.simple_url,
            "-r", str(ours),
        ],
        check=True, env=env, capture_output=True, timeout=300,
    )  # fmt: skip
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import greeter.main, helper_lib.main; print('ok')"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert probe.stdout.strip() == "ok"


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requirement", "message"),
    [
        ("no-such-plugin", "no plugin named 'no-such-plugin' in the catalogue of the index"),
        ("greeter==9.9", "greeter has no version '9.9' on the index; available: 2.0.0, 1.0.0"),
        (
            "future-plugin",
            "no installable version of future-plugin: 1.0.0: incompatible: requires services-ai>=9",
        ),
        ("future-plugin==1.0.0", "future-plugin==1.0.0 cannot be installed: incompatible"),
        (
            "old-django-plugin",
            "cannot install lead-scorer==1.1.0, old-django-plugin==1.0.0; it conflicts with the "
            "platform's own django",
        ),
        ("import-fails", "import-fails: import failed: importing 'import_fails.main' raised"),
        ("bad name!", "give NAME or NAME==VERSION"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(platform, requirement, message):
    platform("plugins", "install", "lead-scorer")
    before = state(platform)
    error = fails(platform, "plugins", "install", requirement)
    assert message in error
    assert state(platform) == before
    assert not list((platform.home / "env" / "generations").glob("*.tmp"))
    if requirement == "import-fails":
        assert "the new environment was not activated" in error
        assert history(platform)[0]["status"] == "failed"
        assert not (platform.home / "env" / "generations" / "0002").exists()


def test_index_down_is_a_clear_error(tmp_path):
    port = free_port()
    sai = SAI(
        tmp_path / "home",
        [],
        SERVICES_AI_INDEX_URL=f"http://127.0.0.1:{port}/services-ai/stable",
        SERVICES_AI_INDEX_PASSWORD="x",
    )
    sai("migrate", "--no-input", "-v0")
    error = fails(sai, "plugins", "install", "greeter")
    assert f"the plugin index at http://127.0.0.1:{port} is not reachable" in error
    assert "check SERVICES_AI_INDEX_URL" in error
    assert history(sai) == []
    assert not (sai.home / "env" / "active").exists()


def test_an_install_killed_midway_is_recovered_by_the_next_run(platform):
    platform("plugins", "install", "greeter==1.0.0")
    before = state(platform)
    child = subprocess.Popen(
        [platform.executable, "plugins", "install", "slow-import"],
        env=platform.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    building = platform.home / "env" / "generations" / "0002"
    deadline = time.monotonic() + 60
    while not building.exists() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.01)
    assert building.exists(), "the install never reached its check"
    os.killpg(child.pid, signal.SIGKILL)  # the install and the child checking the generation
    child.communicate(timeout=30)

    assert [g["status"] for g in history(platform)] == ["building", "active"]
    assert state(platform) == before  # the active generation was never touched
    out = platform("plugins", "recover").stdout
    assert "environment consistent: generation 1 active" in out
    assert [g["status"] for g in history(platform)] == ["failed", "active"]
    assert history(platform)[0]["error"] == "interrupted before it was activated"
    assert not building.exists()
    platform("plugins", "install", "lead-scorer")
    assert installed(platform) == {"greeter": "1.0.0", "lead-scorer": "1.1.0"}


def test_a_node_behind_the_database_converges_on_the_active_generation(platform):
    platform("plugins", "install", "greeter==1.0.0")
    platform("plugins", "install", "lead-scorer")
    # What a crash between the database commit and the symlink switch leaves, or what another
    # node that has never built generation 2 sees: the database is ahead of this folder.
    generations = platform.home / "env" / "generations"
    link = platform.home / "env" / "active"
    link.unlink()
    link.symlink_to("generations/0001")
    subprocess.run(["rm", "-rf", str(generations / "0002")], check=True)

    warning = platform("check", "--database", "default").stderr
    assert "plugin_registry.W005" in warning
    assert (
        "this node runs plugin environment 0001, but the database's active generation is 2"
        in warning
    )

    out = platform("plugins", "recover").stdout
    assert "generation 2 is not built on this node; building it" in out
    assert "switching this node to generation 2" in out
    assert active_link(platform) == "generations/0002"
    assert call_lead_created(platform)["plugins"] == []  # installed, but none enabled
    assert list((generations / "0002" / "lib").glob("python3.*/site-packages/lead_scorer"))
    assert "W005" not in platform("check", "--database", "default").stderr

    # A registry action on a lagging node first brings the node up to date, instead of
    # marking the plugins it lacks as uninstalled for everyone.
    link.unlink()
    link.symlink_to("generations/0001")
    out = platform("plugins", "enable", "lead-scorer").stdout
    assert "switching this node to generation 2" in out
    assert installed(platform) == {"greeter": "1.0.0", "lead-scorer": "1.1.0"}
    assert call_lead_created(platform)["plugins"] == ["lead-scorer"]


def test_two_nodes_sharing_postgresql_serialise_their_changes(tmp_path, plugin_index):
    with postgres_database() as url:
        nodes = [SAI(tmp_path / name, [], url, **plugin_index.env()) for name in ("a", "b")]
        nodes[0]("migrate", "--no-input", "-v0")
        children = [
            subprocess.Popen(
                [node.executable, "plugins", "install", plugin],
                env=node.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for node, plugin in zip(nodes, ("greeter==1.0.0", "lead-scorer"), strict=True)
        ]  # fmt: skip
        outputs = [child.communicate(timeout=120) for child in children]
        assert [child.returncode for child in children] == [0, 0], outputs
        # Neither change was lost: the second one started from the first one's result.
        generations = history(nodes[0])
        assert [g["status"] for g in generations] == ["active", "inactive"]
        assert generations[0]["plugins"] == {"greeter": "1.0.0", "lead-scorer": "1.1.0"}
        # The node that made the first change converges on the second one.
        behind = next(node for node in nodes if active_link(node) != "generations/0002")
        assert "switching this node to generation 2" in behind("plugins", "recover").stdout
        for node in nodes:
            assert active_link(node) == "generations/0002"
            assert installed(node) == {"greeter": "1.0.0", "lead-scorer": "1.1.0"}
