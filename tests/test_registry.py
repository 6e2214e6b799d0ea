"""The registry mirror and the admin actions on it."""

from __future__ import annotations

import pytest

from plugin_registry.registry import actions
from plugin_registry.registry.generation import current_generation
from plugin_registry.registry.models import Plugin, PluginPermission, PluginSetting
from plugin_registry.registry.settings_store import effective_settings
from plugin_registry.registry.sync import sync_registry

pytestmark = pytest.mark.django_db


def test_sync_mirrors_the_installed_distributions(registry):
    plugin = Plugin.objects.get(name="crm-sync")
    assert plugin.version == "1.2.0"
    assert plugin.summary.startswith("Queues new leads")
    assert plugin.author == "Services AI Examples"
    assert plugin.author_email == "plugins@example.com"
    assert plugin.entry_point == "crm_sync.main"
    assert plugin.installed and not plugin.enabled
    assert set(plugin.hooks) >= {"lead_created", "data_export", "settings_page"}
    assert [s["name"] for s in plugin.setting_specs] == ["api_key", "endpoint", "sync_mode"]


def test_requested_permissions_start_not_granted(registry):
    perms = PluginPermission.objects.filter(plugin__name="lead-scorer")
    assert [(p.name, p.requested, p.granted) for p in perms] == [
        ("create_bookings", True, False),
        ("read_leads", True, False),
    ]


def test_sync_is_idempotent_and_bumps_the_generation_only_on_change(registry):
    before = current_generation()
    report = sync_registry()
    assert (report.added, report.updated, report.removed) == ([], [], [])
    assert current_generation() == before


def test_enable_needs_required_settings(registry):
    with pytest.raises(actions.RegistryError) as exc:
        actions.enable("crm-sync")
    assert str(exc.value) == (
        "cannot enable 'crm-sync': required setting(s) not set: api_key; set them with "
        "`services-ai plugins configure crm-sync api_key=VALUE`"
    )
    assert not Plugin.objects.get(name="crm-sync").enabled
    actions.configure("crm-sync", {"api_key": "sk-live-1234"})
    assert actions.enable("crm-sync").enabled


def test_enable_unknown_plugin_lists_the_installed_ones(registry):
    with pytest.raises(
        actions.RegistryError,
        match="unknown plugin 'crm-synk'; installed plugins: booking-widget, crm-sync, "
        "flaky-plugin, hang-plugin, idempotent-counter, lead-scorer",
    ):
        actions.enable("crm-synk")


def test_enable_disable_grant_revoke_bump_the_generation(registry):
    generation = current_generation()
    actions.enable("lead-scorer")
    actions.set_grant("lead-scorer", "read_leads", True)
    actions.set_grant("lead-scorer", "read_leads", False)
    actions.disable("lead-scorer")
    assert current_generation() == generation + 4
    actions.disable("lead-scorer")  # no change, no bump
    assert current_generation() == generation + 4


def test_grant_refuses_unknown_and_unrequested_permissions(registry):
    with pytest.raises(
        actions.RegistryError,
        match="unknown permission 'read_everything'; known: "
        "read_leads, read_bookings, create_bookings",
    ):
        actions.set_grant("lead-scorer", "read_everything", True)
    with pytest.raises(
        actions.RegistryError,
        match="plugin 'lead-scorer' does not request 'read_bookings'; "
        "it requests: create_bookings, read_leads",
    ):
        actions.set_grant("lead-scorer", "read_bookings", True)


@pytest.mark.parametrize(
    ("plugin", "values", "message"),
    [
        (
            "lead-scorer",
            {"threshold": "abc"},
            "setting 'threshold' (number): 'abc' is not a number",
        ),
        ("lead-scorer", {"threshold": "101"}, "setting 'threshold' (number): must be at most 100"),
        ("lead-scorer", {"free_mail_penalty": "maybe"}, "'maybe' is not true or false"),
        (
            "crm-sync",
            {"endpoint": "ftp://crm.example"},
            "'ftp://crm.example' is not a valid http(s) URL",
        ),
        ("crm-sync", {"sync_mode": "hourly"}, "'hourly' is not one of 'realtime', 'nightly'"),
        ("crm-sync", {"api_key": ""}, "setting 'api_key' is required"),
        ("crm-sync", {"colour": "red"}, "plugin 'crm-sync' has no setting(s) colour"),
    ],
)
def test_configure_refuses_invalid_values_and_changes_nothing(registry, plugin, values, message):
    before = list(PluginSetting.objects.values_list("plugin__name", "key", "value"))
    with pytest.raises(actions.RegistryError) as exc:
        actions.configure(
            plugin, {"threshold": "70", **values} if plugin == "lead-scorer" else values
        )
    assert message in str(exc.value)
    assert list(PluginSetting.objects.values_list("plugin__name", "key", "value")) == before


def test_configure_stores_typed_values_and_defaults_fill_the_rest(registry):
    actions.configure("lead-scorer", {"threshold": "75", "free_mail_penalty": "off"})
    assert effective_settings("lead-scorer") == {
        "threshold": 75,
        "priority_sources": "referral,website",
        "free_mail_penalty": False,
        "create_follow_up": True,
        "follow_up_hours": 24,
        "follow_up_service": "Follow-up call",
    }
    actions.configure("crm-sync", {"api_key": "k", "endpoint": "https://crm.test/api"})
    assert effective_settings("crm-sync")["endpoint"] == "https://crm.test/api"


def test_email_setting_is_validated():
    from plugin_registry.registry.setting_types import coerce_setting
    from services_ai.plugins import SettingsError

    spec = {"name": "notify", "type": "email"}
    assert coerce_setting(spec, " ops@example.com ") == "ops@example.com"
    with pytest.raises(SettingsError, match="'ops-at-example' is not a valid email address"):
        coerce_setting(spec, "ops-at-example")
