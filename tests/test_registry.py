"""The registry mirror and the admin actions on it."""

from __future__ import annotations

import pytest

from plugin_registry import services
from plugin_registry.generation import current_generation
from plugin_registry.models import Plugin, PluginPermission, PluginSetting
from plugin_registry.settings_store import effective_settings
from plugin_registry.sync import sync_registry

pytestmark = pytest.mark.django_db


def test_sync_mirrors_the_installed_distributions(registry):
    plugin = Plugin.objects.get(name="crm-sync")
    assert plugin.version == "1.1.0"
    assert plugin.summary.startswith("Queues new leads")
    assert plugin.author == "Services AI Examples"
    assert plugin.author_email == "plugins@example.com"
    assert plugin.entry_point == "crm_sync.main"
    assert plugin.installed and not plugin.enabled
    assert set(plugin.hooks) >= {"lead_created", "data_export", "settings_page"}
    assert [s["name"] for s in plugin.setting_specs] == ["api_key", "endpoint", "sync_mode"]


def test_requested_permissions_start_not_granted(registry):
    perms = PluginPermission.objects.filter(plugin__name="lead-scorer")
    assert [(p.name, p.requested, p.granted) for p in perms] == [("read_leads", True, False)]


def test_sync_is_idempotent_and_bumps_the_generation_only_on_change(registry):
    before = current_generation()
    report = sync_registry()
    assert (report.added, report.updated, report.removed) == ([], [], [])
    assert current_generation() == before


def test_enable_needs_required_settings(registry):
    with pytest.raises(services.RegistryError) as exc:
        services.enable("crm-sync")
    assert str(exc.value) == (
        "cannot enable 'crm-sync': required setting(s) not set: api_key; set them with "
        "`services-ai plugins configure crm-sync api_key=VALUE`"
    )
    assert not Plugin.objects.get(name="crm-sync").enabled
    services.configure("crm-sync", {"api_key": "sk-live-1234"})
    assert services.enable("crm-sync").enabled


def test_enable_unknown_plugin_lists_the_installed_ones(registry):
    with pytest.raises(
        services.RegistryError,
        match="unknown plugin 'crm-synk'; installed plugins: booking-widget, crm-sync, "
        "flaky-plugin, hang-plugin, idempotent-counter, lead-scorer",
    ):
        services.enable("crm-synk")


def test_enable_disable_grant_revoke_bump_the_generation(registry):
    generation = current_generation()
    services.enable("lead-scorer")
    services.set_grant("lead-scorer", "read_leads", True)
    services.set_grant("lead-scorer", "read_leads", False)
    services.disable("lead-scorer")
    assert current_generation() == generation + 4
    services.disable("lead-scorer")  # no change, no bump
    assert current_generation() == generation + 4


def test_grant_refuses_unknown_and_unrequested_permissions(registry):
    with pytest.raises(
        services.RegistryError,
        match="unknown permission 'read_everything'; known: "
        "read_leads, read_bookings, create_bookings",
    ):
        services.set_grant("lead-scorer", "read_everything", True)
    with pytest.raises(
        services.RegistryError,
        match="plugin 'lead-scorer' does not request 'create_bookings'; it requests: read_leads",
    ):
        services.set_grant("lead-scorer", "create_bookings", True)


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
    with pytest.raises(services.RegistryError) as exc:
        services.configure(
            plugin, {"threshold": "70", **values} if plugin == "lead-scorer" else values
        )
    assert message in str(exc.value)
    assert list(PluginSetting.objects.values_list("plugin__name", "key", "value")) == before


def test_configure_stores_typed_values_and_defaults_fill_the_rest(registry):
    services.configure("lead-scorer", {"threshold": "75", "free_mail_penalty": "off"})
    assert effective_settings("lead-scorer") == {
        "threshold": 75,
        "priority_sources": "referral,website",
        "free_mail_penalty": False,
    }
    services.configure("crm-sync", {"api_key": "k", "endpoint": "https://crm.test/api"})
    assert effective_settings("crm-sync")["endpoint"] == "https://crm.test/api"


def test_email_setting_is_validated():
    from plugin_registry.setting_types import coerce_setting
    from services_ai.plugins import SettingsError

    spec = {"name": "notify", "type": "email"}
    assert coerce_setting(spec, " ops@example.com ") == "ops@example.com"
    with pytest.raises(SettingsError, match="'ops-at-example' is not a valid email address"):
        coerce_setting(spec, "ops-at-example")
