"""The console's rules, with Django's test client: who may see what; GET and CSRF change nothing."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from plugin_registry.registry import actions
from plugin_registry.registry.models import (
    AuditEntry,
    EnvironmentGeneration,
    Operation,
    Plugin,
    PluginPermission,
    PluginSetting,
)
from plugin_registry.registry.settings_store import effective_settings
from services_ai.leads.models import Lead

STATE_CHANGING = [
    ("/console/catalogue/refresh/", {}),
    ("/console/plugins/lead-scorer/enable/", {"enabled": "1"}),
    ("/console/plugins/lead-scorer/grant/", {"permission": "read_leads", "granted": "1"}),
    ("/console/plugins/lead-scorer/settings/", {"threshold": "70"}),
    ("/console/plugins/lead-scorer/uninstall/", {"confirm": "lead-scorer"}),
    ("/console/history/1/rollback/", {}),
]
PAGES = [
    "/",
    "/exports/",
    "/console/catalogue/",
    "/console/plugins/",
    "/console/plugins/lead-scorer/",
    "/console/history/",
    "/console/upload/",
    "/console/audit/",
]


def snapshot() -> tuple:
    return (
        list(Plugin.objects.values_list("name", "enabled").order_by("name")),
        list(PluginPermission.objects.values_list("name", "granted").order_by("id")),
        list(PluginSetting.objects.values_list("key", "value").order_by("id")),
        Operation.objects.count(),
        EnvironmentGeneration.objects.count(),
        AuditEntry.objects.count(),
    )


@pytest.fixture
def admin_client(registry) -> Client:
    User.objects.create_superuser("admin", "a@example.com", "pw")
    client = Client()
    client.login(username="admin", password="pw")
    return client


@pytest.mark.parametrize("url", PAGES)
def test_pages_need_a_staff_user(registry, url):
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    User.objects.create_user("clerk", password="pw")
    clerk = Client()
    clerk.login(username="clerk", password="pw")
    assert clerk.get(url).status_code == 403


@pytest.mark.parametrize("url", PAGES)
def test_every_page_renders_for_staff(admin_client, url):
    assert admin_client.get(url).status_code == 200


@pytest.mark.parametrize(("url", "data"), STATE_CHANGING)
def test_get_to_a_state_changing_url_changes_nothing(admin_client, url, data):
    before = snapshot()
    assert admin_client.get(url, data).status_code == 405
    assert snapshot() == before


@pytest.mark.parametrize(("url", "data"), STATE_CHANGING)
def test_a_post_without_csrf_token_is_refused(registry, url, data):
    User.objects.create_superuser("admin", "a@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    client.login(username="admin", password="pw")
    before = snapshot()
    assert client.post(url, data).status_code == 403
    assert snapshot() == before


def test_install_and_upload_show_forms_on_get_and_change_nothing(admin_client):
    from plugin_registry.registry.models import CatalogueVersion

    CatalogueVersion.objects.create(
        name="lead-scorer", version="1.0.0", filename="x.whl", sha256="0" * 64,
        manifest={"hook_specs": ["lead_created"], "permissions": ["read_leads"], "settings": []},
    )  # fmt: skip
    before = snapshot()
    page = admin_client.get("/console/catalogue/lead-scorer/install/", {"version": "1.0.0"})
    assert page.status_code == 200 and b"read_leads" in page.content
    assert admin_client.get("/console/upload/").status_code == 200
    assert snapshot() == before


def test_staff_without_the_manage_permission_can_look_but_not_change(registry):
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    client = Client()
    client.login(username="viewer", password="pw")
    assert client.get("/console/plugins/lead-scorer/").status_code == 200
    before = snapshot()
    response = client.post("/console/plugins/lead-scorer/grant/", STATE_CHANGING[2][1])
    assert response.status_code == 403
    assert snapshot() == before
    user.user_permissions.add(Permission.objects.get(codename="manage_plugins"))
    client = Client()
    client.login(username="viewer", password="pw")
    client.post("/console/plugins/lead-scorer/grant/", STATE_CHANGING[2][1])
    assert PluginPermission.objects.get(plugin__name="lead-scorer", name="read_leads").granted


def test_actions_are_audited_with_secrets_redacted(admin_client):
    response = admin_client.post(
        "/console/plugins/crm-sync/settings/", {"api_key": "s3cret-key", "endpoint": ""}
    )
    assert response.status_code == 302
    page = admin_client.get("/console/plugins/crm-sync/").content.decode()
    assert "s3cret-key" not in page  # secrets are never rendered back
    assert "A value is stored; leave empty to keep it." in page
    admin_client.post("/console/plugins/crm-sync/settings/", {"api_key": ""})
    assert effective_settings("crm-sync")["api_key"] == "s3cret-key"  # empty keeps it
    entry = AuditEntry.objects.filter(action="configure").order_by("id").first()
    assert entry.actor == "console:admin" and entry.target == "crm-sync"
    assert entry.after["api_key"] == "********" and "s3cret-key" not in json.dumps(entry.after)
    admin_client.post(
        "/console/plugins/crm-sync/grant/", {"permission": "read_leads", "granted": "1"}
    )
    grant = AuditEntry.objects.get(action="grant")
    assert (grant.target, grant.before, grant.after) == (
        "crm-sync:read_leads",
        {"granted": False},
        {"granted": True},
    )
    audit = admin_client.get("/console/audit/").content.decode()
    assert "crm-sync:read_leads" in audit and "console:admin" in audit


def test_exports_offer_plugin_formats_only_with_the_permission(admin_client, registry):
    Lead.objects.create(name="=cmd|' /C calc'!A0", email="x@example.com", source="web")
    registry.enable("crm-sync", api_key="k")
    page = admin_client.get("/exports/").content.decode()
    assert "plugin:crm-sync" not in page  # read_leads not granted
    csv_text = admin_client.get(
        "/exports/", {"download": "1", "data_type": "leads", "format": "csv"}
    ).content.decode()
    assert "'=cmd|" in csv_text  # no formula reaches a spreadsheet
    refused = admin_client.get(
        "/exports/", {"download": "1", "data_type": "leads", "format": "plugin:crm-sync"}
    )
    assert refused.status_code == 302
    registry.enable("crm-sync", "read_leads")
    assert "plugin:crm-sync" in admin_client.get("/exports/").content.decode()
    export = admin_client.get(
        "/exports/", {"download": "1", "data_type": "leads", "format": "plugin:crm-sync"}
    )
    assert export.status_code == 200
    assert "x@example.com" in export.content.decode()


def test_plugin_static_files_never_leave_the_static_folder(admin_client, registry):
    registry.enable("booking-widget", "read_bookings")
    assert admin_client.get("/plugin-static/booking-widget/../main.py").status_code == 404
    assert admin_client.get("/plugin-static/booking-widget/%2e%2e/main.py").status_code == 404
    assert admin_client.get("/plugin-static/lead-scorer/x.css").status_code == 404  # disabled


def test_plugin_static_files_and_sanitised_settings_pages_are_served(admin_client, registry):
    registry.enable("booking-widget", "read_bookings")
    css = admin_client.get("/plugin-static/booking-widget/booking_widget/widget.css")
    assert css.status_code == 200 and css["Content-Type"].startswith("text/css")
    assert css["X-Content-Type-Options"] == "nosniff"
    registry.enable("crm-sync", api_key="k")
    page = admin_client.get("/console/plugins/crm-sync/").content.decode()
    assert 'class="plugin-page"' in page and "<script" not in page.split("plugin-page")[1]


def test_the_catalogue_pages_a_thousand_plugins_with_a_fixed_number_of_queries(
    admin_client, django_assert_max_num_queries
):
    from plugin_registry.registry.models import CatalogueVersion

    CatalogueVersion.objects.bulk_create(
        CatalogueVersion(
            name=f"plugin-{i:04d}", version=version, filename=f"p{i}-{version}.whl",
            sha256="0" * 64, summary=f"Plugin number {i}",
            manifest={"hook_specs": ["lead_created"], "permissions": ["read_leads"],
                      "settings": []},
        )
        for i in range(1000)
        for version in ("1.0.0", "1.1.0")
    )  # fmt: skip
    with django_assert_max_num_queries(12):
        page = admin_client.get("/console/catalogue/", {"page": "7"}).content.decode()
    assert page.count('<tr data-plugin="plugin-') == 20
    assert "plugin-0120" in page and "Page 7 of 50" in page
    found = admin_client.get("/console/catalogue/", {"q": "number 999"}).content.decode()
    assert found.count('<tr data-plugin="plugin-') == 1 and "plugin-0999" in found


def test_uploads_over_the_size_limit_or_of_other_kinds_are_refused(admin_client, monkeypatch):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from plugin_registry.console import forms

    monkeypatch.setattr(forms, "MAX_UPLOAD", 1024)
    before = snapshot()
    big = SimpleUploadedFile("big-1.0-py3-none-any.whl", b"x" * 2048)
    page = admin_client.post("/console/upload/", {"wheel": big})
    assert page.status_code == 400
    assert "big-1.0-py3-none-any.whl is 2 KB; the limit is 1 KB" in page.content.decode()
    text = SimpleUploadedFile("notes.txt", b"hello")
    page = admin_client.post("/console/upload/", {"wheel": text})
    assert "notes.txt is not a wheel (.whl) or a legacy plugin ZIP (.zip)" in page.content.decode()
    assert snapshot() == before


def _settings_form_data(page) -> dict:
    """What a browser posts back from the settings form as rendered (secrets left empty)."""
    form = page.context["form"]
    data = {}
    for field in form:
        value = field.value()
        if isinstance(value, bool):
            if value:
                data[field.name] = "on"
        else:
            data[field.name] = "" if value is None else str(value)
    return data


def _tag(page: str, name: str) -> str:
    """The opening tag of the form control named ``name``."""
    match = re.search(rf'<(?:input|select|textarea)\b[^>]*\bname="{name}"[^>]*>', page)
    assert match, name
    return match.group(0)


def test_a_select_setting_offers_its_options_and_shows_the_stored_one(admin_client):
    page = admin_client.get("/console/plugins/crm-sync/").content.decode()
    assert '<option value="nightly">Nightly batch</option>' in page
    assert '<option value="realtime" selected>Real time</option>' in page  # the default
    assert "{'value'" not in page and "{&#x27;value&#x27;" not in page
    actions.configure("crm-sync", {"sync_mode": "nightly"})
    page = admin_client.get("/console/plugins/crm-sync/").content.decode()
    assert '<option value="nightly" selected>Nightly batch</option>' in page
    assert '<option value="realtime">Real time</option>' in page


def test_a_valid_select_choice_is_stored(admin_client):
    response = admin_client.post(
        "/console/plugins/crm-sync/settings/",
        {"api_key": "k", "endpoint": "https://crm.example.com/api", "sync_mode": "nightly"},
    )
    assert response.status_code == 302
    assert PluginSetting.objects.get(plugin__name="crm-sync", key="sync_mode").value == "nightly"


def test_saving_another_setting_keeps_the_stored_select_value(admin_client):
    actions.configure("crm-sync", {"api_key": "k", "sync_mode": "nightly"})
    data = _settings_form_data(admin_client.get("/console/plugins/crm-sync/"))
    assert data["sync_mode"] == "nightly" and data["api_key"] == ""
    data["endpoint"] = "https://crm2.example.com/api"
    response = admin_client.post("/console/plugins/crm-sync/settings/", data)
    assert response.status_code == 302
    stored = effective_settings("crm-sync")
    assert stored == {
        "api_key": "k",  # an empty secret keeps the stored one
        "endpoint": "https://crm2.example.com/api",
        "sync_mode": "nightly",
    }


def test_invalid_values_are_shown_next_to_their_fields_and_nothing_is_stored(admin_client):
    before = snapshot()
    response = admin_client.post("/console/plugins/lead-scorer/settings/", {"threshold": "abc"})
    assert response.status_code == 400
    form = response.context["form"]
    assert form.errors["threshold"] == ["'abc' is not a number"]
    assert not form.non_field_errors()
    page = response.content.decode()
    assert 'aria-invalid="true"' in _tag(page, "threshold")
    assert '<div id="id_threshold_error"><p class="error">&#x27;abc&#x27; is not a number' in page
    response = admin_client.post("/console/plugins/lead-scorer/settings/", {"threshold": "150"})
    assert response.context["form"].errors["threshold"] == ["must be at most 100"]
    response = admin_client.post(
        "/console/plugins/crm-sync/settings/",
        {"api_key": "k", "endpoint": "ftp://crm.example", "sync_mode": "nightly"},
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors == {"endpoint": ["'ftp://crm.example' is not a valid http(s) URL"]}
    assert snapshot() == before


def test_configure_reports_each_invalid_value_with_its_key(registry):
    with pytest.raises(actions.SettingsInvalid) as refused:
        actions.configure("crm-sync", {"api_key": "", "endpoint": "ftp://crm.example"})
    assert [(e.key, e.reason) for e in refused.value.errors] == [
        ("api_key", "setting 'api_key' is required"),
        ("endpoint", "'ftp://crm.example' is not a valid http(s) URL"),
    ]
    assert str(refused.value) == (  # the message the CLI prints, unchanged
        "plugin 'crm-sync': setting 'api_key' is required; plugin 'crm-sync': setting "
        "'endpoint' (url): 'ftp://crm.example' is not a valid http(s) URL"
    )


def test_required_settings_and_secrets_carry_their_attributes(admin_client):
    page = admin_client.get("/console/plugins/crm-sync/").content.decode()
    api_key = _tag(page, "api_key")
    assert 'type="password"' in api_key and 'autocomplete="new-password"' in api_key
    assert re.search(r"\brequired\b", api_key) and 'aria-required="true"' in api_key
    assert "CRM API key *" in page
    for optional in ("endpoint", "sync_mode"):
        assert not re.search(r"\brequired\b", _tag(page, optional).replace("aria-required", ""))
        assert "aria-required" not in _tag(page, optional)
    # Once stored, a required secret may be left empty (it keeps its value).
    actions.configure("crm-sync", {"api_key": "k"})
    page = admin_client.get("/console/plugins/crm-sync/").content.decode()
    api_key = _tag(page, "api_key")
    assert 'autocomplete="new-password"' in api_key and 'value="' not in api_key
    assert not re.search(r"\brequired\b", api_key) and "aria-required" not in api_key
    assert "A value is stored; leave empty to keep it." in page
