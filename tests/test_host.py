"""The host on its own: isolation, grants, single-plugin hooks, validation, metrics."""

from __future__ import annotations

import pytest

from plugin_registry.host import RegistryState, create_host
from services_ai.plugins import (
    NoPluginContext,
    PluginPermissionDenied,
    api,
    hookimpl,
)
from services_ai.plugins.context import current_call

LEAD = {"id": 1, "name": "Ada"}


class Recorder:
    def __init__(self):
        self.calls = []

    @hookimpl
    def lead_created(self, lead):
        self.calls.append(("lead_created", lead["id"], current_call().plugin))
        return f"seen {lead['id']}"

    @hookimpl
    def plugin_installed(self):
        self.calls.append(("plugin_installed",))

    @hookimpl
    def data_export(self, data_type, filters):
        return {"format": "x", "filename": "x", "content_type": "text/plain", "content": data_type}


class Raiser:
    @hookimpl(tryfirst=True)
    def lead_created(self, lead):
        raise RuntimeError("scoring service unavailable")


def state(*names: str, grants: dict[str, set[str]] | None = None, generation: int = 1):
    return RegistryState(
        generation=generation,
        enabled=frozenset(names),
        grants={k: frozenset(v) for k, v in (grants or {}).items()},
    )


def host_with(plugins, st):
    return create_host(st, load_entrypoints=False, plugins=plugins)


def test_a_raising_plugin_does_not_stop_the_others_and_is_recorded():
    good = Recorder()
    host = host_with(
        [("good", good), ("bad", Raiser())],
        state("good", "bad", grants={"good": {"read_leads"}, "bad": {"read_leads"}}),
    )
    results = host.call("lead_created", lead=LEAD)
    # The raising plugin runs first (tryfirst) and the other one still runs after it.
    assert results == [("good", "seen 1")]
    assert good.calls == [("lead_created", 1, "good")]
    failure = host.failures[-1]
    assert (failure.plugin, failure.hook) == ("bad", "lead_created")
    assert "RuntimeError: scoring service unavailable" in failure.message
    assert "Traceback" in failure.traceback and "Raiser" not in failure.message
    assert host.stats()[("bad", "lead_created")].errors == 1
    assert host.stats()[("good", "lead_created")].errors == 0


def test_failure_callback_receives_every_failure():
    seen = []
    host = create_host(
        state("bad", grants={"bad": {"read_leads"}}),
        load_entrypoints=False,
        plugins=[("bad", Raiser())],
        on_failure=seen.append,
    )
    host.call("lead_created", lead=LEAD)
    host.call("lead_created", lead=LEAD)
    assert [(f.plugin, f.hook) for f in seen] == [("bad", "lead_created")] * 2


def test_plugin_without_read_leads_gets_no_lead_created():
    granted, ungranted = Recorder(), Recorder()
    host = host_with(
        [("granted", granted), ("ungranted", ungranted)],
        state("granted", "ungranted", grants={"granted": {"read_leads"}}),
    )
    host.call("lead_created", lead=LEAD)
    assert granted.calls and not ungranted.calls
    assert host.implementers("lead_created", "read_leads") == ["granted"]


def test_data_export_needs_the_read_permission_of_its_data_type():
    plugin = Recorder()
    host = host_with([("p", plugin)], state("p", grants={"p": {"read_bookings"}}))
    assert host.call("data_export", data_type="leads", filters={}) == []
    exported = host.call("data_export", data_type="bookings", filters={})
    assert [(name, value["content"]) for name, value in exported] == [("p", "bookings")]
    assert host.call("data_export", data_type="invoices", filters={}) == []


def test_single_plugin_hooks_are_never_broadcast():
    first, second = Recorder(), Recorder()
    host = host_with([("first", first), ("second", second)], state("first", "second"))
    with pytest.raises(ValueError, match="called on one plugin only"):
        host.call("plugin_installed")
    outcome = host.call_one("second", "plugin_installed")
    assert outcome.ok
    assert second.calls == [("plugin_installed",)] and first.calls == []


def test_call_one_reports_failures_and_skips():
    host = host_with(
        [("bad", Raiser()), ("rec", Recorder())],
        state("bad", "rec", grants={"bad": {"read_leads"}}),
    )
    failed = host.call_one("bad", "lead_created", lead=LEAD)
    assert failed.failure is not None and "scoring service unavailable" in failed.failure.message
    skipped = host.call_one("rec", "lead_created", lead=LEAD)
    assert skipped.skipped == "permission 'read_leads' not granted"
    assert host.call_one("nobody", "plugin_installed").skipped.startswith("plugin is not enabled")
    assert "does not implement" in host.call_one("bad", "plugin_installed").skipped


def test_misspelt_hook_is_refused_with_the_plugin_named_and_a_suggestion():
    class Misspelt:
        @hookimpl
        def booking_udpated(self, booking, previous_state):
            pass

    host = host_with([("typo", Misspelt()), ("rec", Recorder())], state("typo", "rec"))
    failure = host.load_failures["typo"]
    assert failure.stage == "validate"
    assert "unknown hook 'booking_udpated'" in failure.message
    assert "did you mean 'booking_updated'?" in failure.message
    assert "typo" in str(failure)
    assert host.plugin_names() == ["rec"]


def test_wrong_hook_arguments_are_refused_naming_the_plugin():
    class WrongArgs:
        @hookimpl
        def lead_created(self, lead, extra):
            pass

    host = host_with([("wrong", WrongArgs())], state("wrong"))
    failure = host.load_failures["wrong"]
    assert failure.stage == "register"
    assert "wrong" in failure.message and "extra" in failure.message
    assert host.plugin_names() == []


def test_unknown_hook_name_in_call_is_an_error():
    host = host_with([], state())
    with pytest.raises(ValueError, match="unknown hook 'lead_deleted'"):
        host.call("lead_deleted", lead=LEAD)


def test_refreshed_host_applies_new_grants_and_keeps_metrics_and_the_old_host_intact():
    plugin = Recorder()
    old = host_with([("p", plugin)], state("p", grants={"p": {"read_leads"}}))
    old.call("lead_created", lead=LEAD)
    new = old.refreshed(state("p", grants={}, generation=2), entry_points={})
    new.call("lead_created", lead=LEAD)
    assert len(plugin.calls) == 1  # the revoked grant applies on the next call
    assert new.stats()[("p", "lead_created")].calls == 1  # carried over
    old.call("lead_created", lead=LEAD)  # a thread still holding the old host is unaffected
    assert len(plugin.calls) == 2
    emptied = new.refreshed(state(generation=3), entry_points={})
    assert emptied.plugin_names() == [] and new.plugin_names() == ["p"]


def test_an_enabled_plugin_missing_from_this_environment_is_a_load_failure():
    host = create_host(state("ghost"), load_entrypoints=False)
    host.load_entrypoints(entry_points={})
    failure = host.load_failures["ghost"]
    assert failure.stage == "missing"
    assert "enabled, but not installed in this environment" in failure.message


def test_a_plugin_calling_sys_exit_is_isolated_like_any_failure():
    class Exiter:
        @hookimpl
        def lead_created(self, lead):
            raise SystemExit(3)

    good = Recorder()
    host = host_with(
        [("exiter", Exiter()), ("good", good)],
        state("exiter", "good", grants={"exiter": {"read_leads"}, "good": {"read_leads"}}),
    )
    host.call("lead_created", lead=LEAD)
    assert good.calls and host.failures[-1].message == "SystemExit: 3"
    assert host.call_one("exiter", "lead_created", lead=LEAD).failure.message == "SystemExit: 3"


def test_metrics_count_calls_per_plugin_and_hook():
    plugin = Recorder()
    host = host_with([("p", plugin)], state("p", grants={"p": {"read_leads"}}))
    for _ in range(5):
        host.call("lead_created", lead=LEAD)
    stats = host.stats()[("p", "lead_created")]
    assert stats.calls == 5 and stats.errors == 0
    assert stats.total_ns > 0
    assert stats.as_dict()["calls"] == 5


def test_data_api_knows_the_calling_plugin_and_checks_its_grants():
    class Reader:
        @hookimpl
        def lead_created(self, lead):
            return api.current_plugin()

    host = host_with([("reader", Reader())], state("reader", grants={"reader": {"read_leads"}}))
    assert host.call("lead_created", lead=LEAD) == [("reader", "reader")]

    class Booker:
        @hookimpl
        def lead_created(self, lead):
            api.create_booking(lead_id=1, service="x", start="2026-01-01", end="2026-01-01")

    host = host_with([("booker", Booker())], state("booker", grants={"booker": {"read_leads"}}))
    host.call("lead_created", lead=LEAD)
    failure = host.failures[-1]
    assert failure.plugin == "booker"
    assert "permission 'create_bookings' is not granted" in failure.message
    assert "services-ai plugins grant booker create_bookings" in failure.message


def test_data_api_outside_a_hook_call_is_refused():
    with pytest.raises(NoPluginContext, match="only be used from inside a hook"):
        api.list_leads()


def test_nested_calls_restore_the_outer_plugin():
    inner_host = None
    seen = []

    class Outer:
        @hookimpl
        def lead_created(self, lead):
            inner_host.call("booking_created", booking={"id": 9})
            seen.append(current_call().plugin)

    class Inner:
        @hookimpl
        def booking_created(self, booking):
            seen.append(current_call().plugin)

    inner_host = host_with(
        [("inner", Inner())], state("inner", grants={"inner": {"read_bookings"}})
    )
    outer_host = host_with([("outer", Outer())], state("outer", grants={"outer": {"read_leads"}}))
    outer_host.call("lead_created", lead=LEAD)
    assert seen == ["inner", "outer"]
    with pytest.raises(NoPluginContext):
        current_call()


def test_permission_denied_names_plugin_and_permission():
    err = PluginPermissionDenied("read_leads", plugin="crm-sync")
    assert str(err) == (
        "plugin 'crm-sync': permission 'read_leads' is not granted; an admin can grant it with "
        "`services-ai plugins grant crm-sync read_leads`"
    )


def test_hooks_must_match_the_manifests_hook_specs():
    declared = RegistryState(
        generation=1,
        enabled=frozenset({"rec", "lazy"}),
        declared_hooks={
            "rec": frozenset({"lead_created"}),  # also implements plugin_installed, data_export
            "lazy": frozenset({"lead_created", "booking_created"}),
        },
    )

    class Lazy:
        @hookimpl
        def lead_created(self, lead):
            pass

    host = create_host(
        declared, load_entrypoints=False, plugins=[("rec", Recorder()), ("lazy", Lazy())]
    )
    assert host.plugin_names() == []
    assert host.load_failures["rec"].message == (
        "hook_specs in manifest.json misses implemented hook(s) data_export, plugin_installed; "
        "add them"
    )
    assert host.load_failures["lazy"].message == (
        "hook_specs in manifest.json lists booking_created, which the entry-point module does "
        "not implement; implement or remove them"
    )
