"""The `services-ai` command end to end, in child processes with their own home.

The plugins come from real wheels installed in folders on SERVICES_AI_PLUGIN_PATH: the three
examples and three broken ones (an import error, a misspelt hook, an invalid manifest).
"""

from __future__ import annotations

import json
import select
import subprocess
import textwrap
import time

import pytest

pytestmark = pytest.mark.subprocess


def test_list_json_mirrors_every_installed_plugin(sai):
    assert "run `services-ai plugins sync`" in sai("plugins", "list").stdout
    assert json.loads(sai("plugins", "list", "--json").stdout) == []  # list never writes
    synced = sai("plugins", "sync").stdout
    assert (
        "added: bad-manifest, booking-widget, broken-import, crm-sync, lead-scorer, misspelt-hook"
        in synced
    )
    rows = {row["name"]: row for row in json.loads(sai("plugins", "list", "--json").stdout)}
    assert set(rows) == {
        "bad-manifest",
        "booking-widget",
        "broken-import",
        "crm-sync",
        "lead-scorer",
        "misspelt-hook",
    }
    assert rows["crm-sync"]["missing_settings"] == ["api_key"]
    assert rows["lead-scorer"]["permissions"] == {"create_bookings": False, "read_leads": False}
    assert not any(row["enabled"] for row in rows.values())


def test_invalid_manifest_is_reported_naming_plugin_and_field(sai):
    sai("plugins", "sync")
    listing = sai("plugins", "list").stdout
    assert (
        "plugin 'bad-manifest': invalid manifest.json: permissions: missing; add it; "
        "settings[0].type: 'colour' is not allowed" in listing
    )
    refused = sai("plugins", "enable", "bad-manifest", check=False)
    assert refused.returncode == 1
    assert (
        "cannot enable 'bad-manifest': plugin 'bad-manifest': invalid manifest.json"
        in refused.stderr
    )
    check = sai("check", check=False)
    assert "plugin_registry.W001" in check.stderr and "bad-manifest" in check.stderr


def test_a_refused_action_does_not_even_sync(sai):
    refused = sai("plugins", "enable", "crm-synk", check=False)
    assert refused.returncode == 1
    assert "unknown plugin 'crm-synk'; installed plugins: bad-manifest, booking-widget" in (
        refused.stderr
    )
    # The sync that ran with it was rolled back together with the refused action.
    assert json.loads(sai("plugins", "list", "--json").stdout) == []


def test_enable_refusals_are_clear_and_change_nothing(sai):
    sai("plugins", "sync")
    before = sai("plugins", "list", "--json").stdout
    refused = sai("plugins", "enable", "crm-sync", check=False)
    assert refused.returncode == 1
    assert "required setting(s) not set: api_key" in refused.stderr
    bad = sai("plugins", "configure", "crm-sync", "api_key=k-1", "sync_mode=hourly", check=False)
    assert "'hourly' is not one of 'realtime', 'nightly'" in bad.stderr
    rows = {row["name"]: row for row in json.loads(sai("plugins", "list", "--json").stdout)}
    assert rows["crm-sync"]["missing_settings"] == ["api_key"]  # api_key=k-1 was not stored
    assert (
        "expected KEY=VALUE" in sai("plugins", "configure", "crm-sync", "oops", check=False).stderr
    )
    assert sai("plugins", "list", "--json").stdout == before


def test_secret_settings_can_come_from_standard_input(sai):
    sai("plugins", "sync")
    result = subprocess.run(
        [sai.executable, "plugins", "configure", "crm-sync", "api_key=-"],
        env=sai.env,
        input="sk-from-stdin-1234\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "sk-from-stdin" not in result.stdout + result.stderr
    sai("plugins", "enable", "crm-sync")  # the required api_key is set now


PROBE = textwrap.dedent(
    """
    import json, sys
    import django
    django.setup()
    from plugin_registry.registry.models import Plugin, PluginData
    from plugin_registry.runtime import get_host
    from services_ai.leads.models import Lead
    from services_ai.testing.worker import run_worker_batch

    for line in sys.stdin:
        lead = Lead.objects.create(name="Probe", source="referral")
        run_worker_batch()  # this long-running process delivers the event itself
        scored = PluginData.objects.filter(plugin_name="lead-scorer", key=f"score:{lead.pk}")
        host = get_host()
        print("RESULT " + json.dumps({
            "scored": scored.exists(),
            "modules": sorted(m for m in ("lead_scorer", "crm_sync", "booking_widget",
                              "broken_import", "misspelt_hook") if m in sys.modules),
            "plugins": host.plugin_names(),
            "load_failures": {name: str(f) for name, f in host.load_failures.items()},
            "load_errors": dict(Plugin.objects.exclude(load_error="")
                                .values_list("name", "load_error")),
        }), flush=True)
    """
)


class Probe:
    """A long-running platform process that creates and delivers a lead per request."""

    def __init__(self, sai):
        self.proc = sai.python(
            PROBE, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )

    def ask(self, timeout: float = 60) -> dict:
        self.proc.stdin.write("lead\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], deadline - time.monotonic())
            if not ready:
                break
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT ") :])
        raise AssertionError(f"probe gave no answer (exit code {self.proc.poll()})")

    def stop(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def probe(sai):
    sai("plugins", "sync")
    running = Probe(sai)
    yield running
    running.stop()


def test_changes_in_one_process_are_seen_by_another_on_the_next_call(sai, probe):
    sai("plugins", "grant", "lead-scorer", "read_leads")
    first = probe.ask()
    assert first["scored"] is False
    assert "lead_scorer" not in first["modules"], "a disabled plugin must never be imported"

    sai("plugins", "enable", "lead-scorer")
    enabled = probe.ask()
    assert enabled["scored"] is True and enabled["plugins"] == ["lead-scorer"]
    assert "lead_scorer" in enabled["modules"]

    sai("plugins", "revoke", "lead-scorer", "read_leads")
    assert probe.ask()["scored"] is False

    sai("plugins", "grant", "lead-scorer", "read_leads")
    assert probe.ask()["scored"] is True

    sai("plugins", "disable", "lead-scorer")
    disabled = probe.ask()
    assert disabled["scored"] is False and disabled["plugins"] == []


def test_broken_plugins_are_recorded_by_name_and_the_others_still_run(sai, probe):
    for name in ("lead-scorer", "broken-import", "misspelt-hook"):
        sai("plugins", "grant", name, "read_leads")
        sai("plugins", "enable", name)
    answer = probe.ask()
    assert answer["scored"] is True and answer["plugins"] == ["lead-scorer"]
    import_failure = answer["load_failures"]["broken-import"]
    assert import_failure.startswith(
        "plugin 'broken-import' failed to load (import): importing "
        "'broken_import.main' raised ModuleNotFoundError"
    )
    assert "missing_dependency_of_broken_import" in import_failure
    typo = answer["load_failures"]["misspelt-hook"]
    assert "plugin 'misspelt-hook' failed to load (validate)" in typo
    assert "unknown hook 'lead_create' (did you mean 'lead_created'?)" in typo
    assert answer["load_errors"] == answer["load_failures"]  # mirrored for admins
    listing = sai("plugins", "list").stdout
    assert "unknown hook 'lead_create'" in listing and "ModuleNotFoundError" in listing
