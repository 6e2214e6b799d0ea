"""System checks run by `services-ai check` and before `migrate`, with stable ids."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from plugin_registry.registry.checks import check_enabled_plugins
from plugin_registry.registry.models import Plugin

pytestmark = pytest.mark.django_db


def test_enabled_plugin_without_required_setting_is_reported(registry):
    Plugin.objects.filter(name="crm-sync").update(enabled=True)  # bypassing the admin action
    [warning] = check_enabled_plugins(databases=["default"])
    assert warning.id == "plugin_registry.W004"
    assert warning.msg == "plugin 'crm-sync' is enabled without required setting(s): api_key."
    assert "services-ai plugins configure crm-sync api_key=VALUE" in warning.hint


def test_enabled_plugin_that_is_not_installed_is_reported(registry):
    Plugin.objects.create(name="gone-plugin", version="1.0", enabled=True)
    ids = [w.id for w in check_enabled_plugins(databases=["default"])]
    assert ids == ["plugin_registry.W003"]


def test_the_check_command_runs_the_registry_checks(registry):
    Plugin.objects.filter(name="crm-sync").update(enabled=True)
    with pytest.raises(SystemCheckError, match=r"plugin_registry\.W004"):
        call_command("check", "--database", "default", "--fail-level", "WARNING")


def test_checks_are_quiet_when_all_is_well(registry):
    assert check_enabled_plugins(databases=["default"]) == []
    call_command("check", "--database", "default", "--fail-level", "WARNING")


def test_event_delivery_checks(settings):
    from services_ai.events.checks import check_delivery_settings, check_task_backend

    assert check_task_backend() == [] and check_delivery_settings() == []
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    assert [e.id for e in check_task_backend()] == ["events.E001", "events.E002"]
    settings.SERVICES_AI_EVENTS = {"TIME_BUDGET": {"default": 0}, "MAX_ATTEMPTS": 0}
    assert [e.id for e in check_delivery_settings()] == ["events.E003", "events.E004"]


def test_migrations_match_the_models():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
