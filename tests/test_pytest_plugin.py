"""The services_ai_plugin fixture plugin authors use, tried on the lead-scorer example."""

from __future__ import annotations

import pytest

from plugin_registry.errors import RegistryError


@pytest.fixture
def scorer_module():
    from lead_scorer import main

    return main


def test_hooks_run_with_the_granted_permissions_and_settings(services_ai_plugin, scorer_module):
    plugin = services_ai_plugin(scorer_module, "lead-scorer", grants=["read_leads"], threshold=50)
    lead = plugin.make_lead(name="Ada", source="referral", company="ACME", email="a@acme.test")
    assert plugin.call("lead_created", lead=lead) is None
    assert plugin.get_data(f"score:{lead['id']}") == {"score": 80, "hot": True}
    plugin.configure(threshold=90)
    plugin.call("lead_created", lead=lead)
    assert plugin.get_data(f"score:{lead['id']}") == {"score": 80, "hot": False}


def test_a_hook_without_its_permission_is_not_called(services_ai_plugin, scorer_module):
    plugin = services_ai_plugin(scorer_module, "lead-scorer")
    with pytest.raises(AssertionError, match="was not called: permission 'read_leads' not granted"):
        plugin.call("lead_created", lead=plugin.make_lead())
    plugin.grant("read_leads")
    plugin.call("lead_created", lead=plugin.make_lead())
    plugin.revoke("read_leads")
    with pytest.raises(AssertionError, match="not granted"):
        plugin.call("lead_created", lead=plugin.make_lead())


def test_settings_and_grants_are_validated_like_the_platform_does(
    services_ai_plugin, scorer_module
):
    with pytest.raises(RegistryError, match="setting 'threshold' \\(number\\): 'very hot' is not"):
        services_ai_plugin(scorer_module, "lead-scorer", threshold="very hot")
    with pytest.raises(AssertionError, match="does not request read_bookings in its manifest"):
        services_ai_plugin(scorer_module, "lead-scorer", grants=["read_bookings"])


def test_a_failing_hook_fails_the_test_with_the_plugins_traceback(services_ai_plugin):
    import types

    module = types.ModuleType("failing_plugin")
    exec(
        "from services_ai.plugins import hookimpl\n"
        "@hookimpl\n"
        "def lead_created(lead):\n"
        "    raise ValueError('no ' + lead['name'])\n",
        module.__dict__,
    )
    manifest = {"hook_specs": ["lead_created"], "permissions": ["read_leads"], "settings": []}
    plugin = services_ai_plugin(module, "failing", grants=["read_leads"], manifest=manifest)
    with pytest.raises(AssertionError, match=r"failing\.lead_created raised ValueError: no Ada"):
        plugin.call("lead_created", lead=plugin.make_lead(name="Ada"))


def test_a_widget_renders_through_the_host(services_ai_plugin):
    from booking_widget import main

    plugin = services_ai_plugin(main, "booking-widget", grants=["read_bookings"])
    plugin.make_booking(service="Roof inspection")
    widget = plugin.call("dashboard_widget", context=plugin.widget_context(user="ada"))
    assert widget["title"] and "Roof inspection" in widget["html"]
