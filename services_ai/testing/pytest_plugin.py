"""A pytest plugin for plugin authors: call your hooks through a real plugin host.

Enable it in your plugin project's ``pyproject.toml`` (``services-ai plugin new`` does)::

    [tool.pytest.ini_options]
    DJANGO_SETTINGS_MODULE = "services_ai.settings"
    addopts = "-p services_ai.testing.pytest_plugin"

Then, in a test (pytest-django provides the database)::

    from my_plugin import main

    def test_scores_leads(services_ai_plugin):
        plugin = services_ai_plugin(main, "my-plugin", grants=["read_leads"], threshold=70)
        plugin.call("lead_created", lead=plugin.make_lead(name="Ada", source="referral"))
        assert plugin.get_data("last_score") == 60

The plugin is registered from your module (no devpi, no install) with the manifest shipped next
to it, validated like the platform does; settings are validated against the manifest's types;
hooks run with the permissions you grant, nothing more: a data API call the grants do not
allow raises ``PluginPermissionDenied`` as it would in production. The plugin is enabled the
way an admin enables it, so a required setting left unset fails the test with the platform's
message. The test run gets its own
``SERVICES_AI_HOME``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from services_ai.testing import isolation  # noqa: F401 - a home of its own, set at import

if TYPE_CHECKING:
    from services_ai.plugins.types import BookingSnapshot, LeadSnapshot


class PluginUnderTest:
    """One plugin registered in a real host, with its registry rows, grants and settings."""

    def __init__(self, module: ModuleType, name: str, manifest: dict | None = None) -> None:
        from plugin_registry.registry.manifest import MANIFEST_NAME, validate_manifest

        self.module = module
        self.name = name
        if manifest is None:
            path = Path(module.__file__ or "").parent / MANIFEST_NAME
            try:
                manifest = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise AssertionError(f"no {MANIFEST_NAME} next to {module.__file__}") from None
        self.manifest = validate_manifest(manifest, plugin=name)
        self.host: Any = None

    def setup(self, grants: Iterable[str], settings: dict[str, Any]) -> PluginUnderTest:
        from plugin_registry.registry import actions
        from plugin_registry.registry.generation import bump_generation
        from plugin_registry.registry.models import Plugin, PluginPermission

        plugin, _ = Plugin.objects.update_or_create(
            name=self.name,
            defaults={
                "version": "0.0.0+test",
                "manifest": self.manifest,
                "installed": True,
                "enabled": False,
                "entry_point": self.module.__name__,
            },
        )
        grants = set(grants)
        requested = self.manifest.get("permissions", [])
        if unknown := sorted(grants - set(requested)):
            raise AssertionError(
                f"{self.name} does not request {', '.join(unknown)} in its manifest; "
                "add it to permissions there first"
            )
        for permission in requested:
            PluginPermission.objects.update_or_create(
                plugin=plugin,
                name=permission,
                defaults={"requested": True, "granted": permission in grants},
            )
        if settings:
            actions.configure(self.name, settings, actor="test")
        try:
            actions.enable(self.name, actor="test")  # refused as the platform refuses it
        except actions.RegistryError as exc:
            raise AssertionError(str(exc)) from None
        bump_generation()
        return self._rebuild()

    def _rebuild(self) -> PluginUnderTest:
        from plugin_registry.host import create_host
        from plugin_registry.registry.state import load_state

        self.host = create_host(
            load_state(), load_entrypoints=False, plugins=[(self.name, self.module)]
        )
        if failure := self.host.load_failures.get(self.name):
            raise AssertionError(f"the host refused {self.name}: {failure.message}")
        return self

    # -- calling -------------------------------------------------------------------------

    def call(self, hook: str, /, **kwargs: Any) -> Any:
        """Call one hook of this plugin as the host would; return its value.

        A hook that raises fails the test with the plugin's traceback; a hook the plugin may not
        receive (a permission not granted) or does not implement fails it with the reason.
        """
        outcome = self.host.call_one(self.name, hook, **kwargs)
        if outcome.failure is not None:
            raise AssertionError(
                f"{self.name}.{hook} raised {outcome.failure.message}\n{outcome.failure.traceback}"
            )
        if outcome.skipped:
            raise AssertionError(f"{self.name}.{hook} was not called: {outcome.skipped}")
        return outcome.value

    # -- state ---------------------------------------------------------------------------

    def grant(self, *permissions: str) -> None:
        from plugin_registry.registry import actions

        for permission in permissions:
            actions.set_grant(self.name, permission, True, actor="test")
        self._rebuild()

    def revoke(self, *permissions: str) -> None:
        from plugin_registry.registry import actions

        for permission in permissions:
            actions.set_grant(self.name, permission, False, actor="test")
        self._rebuild()

    def configure(self, **settings: Any) -> None:
        from plugin_registry.registry import actions

        actions.configure(self.name, settings, actor="test")

    def get_data(self, key: str, default: Any = None) -> Any:
        """What the plugin stored with ``api.set_data(key, ...)``."""
        from plugin_registry.registry.models import PluginData

        row = PluginData.objects.filter(plugin_name=self.name, key=key).first()
        return default if row is None else row.value

    # -- test data -----------------------------------------------------------------------

    def make_lead(self, **fields: Any) -> LeadSnapshot:
        """Save a lead (defaults filled in) and return its snapshot, as hooks receive it."""
        from services_ai.leads.models import Lead

        values = {"name": "Test Lead", "email": "lead@example.com", "source": "website"}
        return Lead.objects.create(**{**values, **fields}).snapshot()

    def make_booking(self, lead: Mapping[str, Any] | None = None, **fields: Any) -> BookingSnapshot:
        """Save a booking (for ``lead``, or a new lead) and return its snapshot."""
        from django.utils import timezone

        from services_ai.bookings.models import Booking
        from services_ai.leads.models import Lead

        lead_id = (lead or self.make_lead())["id"]
        start = fields.pop("start", timezone.now() + timedelta(days=1))
        values = {"service": "Consultation", "start": start, "end": start + timedelta(hours=1)}
        booking = Booking.objects.create(lead=Lead.objects.get(pk=lead_id), **{**values, **fields})
        return booking.snapshot()

    def widget_context(self, user: str = "tester") -> dict:
        """What ``dashboard_widget`` receives."""
        from django.utils import timezone

        return {"user": user, "now": timezone.now().isoformat(), "plugin_id": self.name}


@pytest.fixture
def services_ai_plugin(db) -> Callable[..., PluginUnderTest]:
    """Register a plugin module in a real host: ``services_ai_plugin(module, name, grants=[...],
    manifest=None, **settings)``."""

    def make(
        module: ModuleType,
        name: str,
        *,
        grants: Iterable[str] = (),
        manifest: dict | None = None,
        **settings: Any,
    ) -> PluginUnderTest:
        return PluginUnderTest(module, name, manifest).setup(grants, settings)

    return make
