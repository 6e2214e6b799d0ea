"""Secret settings: encrypted at rest, keys apart from the database, rotation, and who reads them."""

from __future__ import annotations

import inspect
import json
import logging
import os
import stat
from io import StringIO

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from plugin_registry.errors import RegistryError
from plugin_registry.host import RegistryState, create_host
from plugin_registry.registry import actions, secrets, settings_store
from plugin_registry.registry.audit import REDACTED, redact_settings
from plugin_registry.registry.models import AuditEntry, Plugin, PluginData, PluginSetting
from plugin_registry.registry.secrets import new_key
from plugin_registry.registry.settings_store import effective_settings, missing_required
from services_ai import conf
from services_ai.plugins import PluginError, api, hookimpl
from services_ai.plugins.backend import backend
from services_ai.testing.plugins import as_plugin

PLAINTEXT = "sk-live-0123456789"


@pytest.fixture(autouse=True)
def key(monkeypatch) -> str:
    """Every test starts with one known key in SERVICES_AI_SECRET_KEYS and no error logged yet."""
    value = new_key()
    monkeypatch.setenv(conf.SECRET_KEYS_ENV, value)
    monkeypatch.setattr(settings_store, "_reported", set())
    return value


def raw_value(plugin: str, key: str) -> str:
    """The setting's value column as the database holds it (what a dump or a backup shows)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT s.value FROM {PluginSetting._meta.db_table} s "
            f"JOIN {Plugin._meta.db_table} p ON p.id = s.plugin_id "
            "WHERE p.name = %s AND s.key = %s",
            [plugin, key],
        )
        (value,) = cursor.fetchone()
    return value if isinstance(value, str) else json.dumps(value)


def token(plugin: str, key: str) -> bytes:
    return json.loads(raw_value(plugin, key))["fernet"].encode()


@pytest.fixture
def admin_client(registry) -> Client:
    User.objects.create_superuser("admin", "a@example.com", "pw")
    client = Client()
    client.login(username="admin", password="pw")
    return client


# -- at rest ------------------------------------------------------------------------------------


def test_a_secret_is_stored_encrypted_and_read_back_in_plaintext(registry, key):
    actions.configure("crm-sync", {"api_key": PLAINTEXT, "endpoint": "https://crm.test/api"})
    raw = raw_value("crm-sync", "api_key")
    assert PLAINTEXT not in raw and json.loads(raw).keys() == {"fernet"}
    assert json.loads(Fernet(key).decrypt(token("crm-sync", "api_key"))) == PLAINTEXT
    # Other settings stay plain JSON; reading decrypts.
    assert json.loads(raw_value("crm-sync", "endpoint")) == "https://crm.test/api"
    assert effective_settings("crm-sync") == {
        "api_key": PLAINTEXT,
        "endpoint": "https://crm.test/api",
        "sync_mode": "realtime",
    }
    assert missing_required(Plugin.objects.get(name="crm-sync")) == []


def test_the_audit_log_stores_neither_the_secret_nor_its_token(registry):
    actions.configure("crm-sync", {"api_key": PLAINTEXT}, actor="cli")
    stored_token = token("crm-sync", "api_key").decode()
    actions.configure("crm-sync", {"api_key": "sk-second"}, actor="cli")
    entries = json.dumps(
        list(AuditEntry.objects.filter(action="configure").values("before", "after"))
    )
    for leaked in (PLAINTEXT, "sk-second", stored_token, "fernet"):
        assert leaked not in entries
    last = AuditEntry.objects.filter(action="configure").latest("id")
    assert last.before == {"api_key": REDACTED} and last.after == {"api_key": REDACTED}
    # A token is redacted even under a setting no longer declared secret (a plugin upgrade).
    assert redact_settings({"api_key": {"fernet": stored_token}}, [{"name": "api_key"}]) == {
        "api_key": REDACTED
    }


def test_the_key_file_is_made_on_first_use_with_mode_0600(registry, tmp_path, monkeypatch):
    monkeypatch.delenv(conf.SECRET_KEYS_ENV)
    monkeypatch.setenv(conf.HOME_ENV, str(tmp_path / "home"))
    path = tmp_path / "home" / "secret-settings.key"
    assert conf.secret_settings_key_file() == path
    with pytest.raises(RegistryError, match="does not exist: restore the key file"):
        secrets.keys()  # reading never makes a key: it could not open anything stored
    assert not path.exists()
    old_umask = os.umask(0)  # even with a permissive umask, never readable by others
    try:
        actions.configure("crm-sync", {"api_key": PLAINTEXT})
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    file_key = path.read_text().strip()
    assert json.loads(Fernet(file_key).decrypt(token("crm-sync", "api_key"))) == PLAINTEXT
    actions.configure("crm-sync", {"api_key": "sk-second"})
    assert path.read_text().strip() == file_key  # made once, then kept
    assert effective_settings("crm-sync")["api_key"] == "sk-second"


def test_a_bad_key_is_refused_without_showing_it(registry, monkeypatch):
    monkeypatch.setenv(conf.SECRET_KEYS_ENV, f"{new_key()},bogus-key-material")
    with pytest.raises(RegistryError) as refused:
        actions.configure("crm-sync", {"api_key": PLAINTEXT})
    assert "SERVICES_AI_SECRET_KEYS: key 2 of 2 is not a Fernet key" in str(refused.value)
    assert "services-ai plugins rotate-secrets --new-key" in str(refused.value)
    assert "bogus" not in str(refused.value)
    assert not PluginSetting.objects.filter(key="api_key").exists()


# -- rotation -----------------------------------------------------------------------------------


def test_rotation_with_two_keys_lets_the_old_key_be_dropped(registry, key, monkeypatch):
    old = key
    actions.configure("crm-sync", {"api_key": PLAINTEXT})
    before = token("crm-sync", "api_key")

    out = StringIO()
    call_command("plugins", "rotate-secrets", "--new-key", stdout=out)
    new = out.getvalue().strip()
    Fernet(new)  # a valid key, printed alone so it can be captured

    monkeypatch.setenv(conf.SECRET_KEYS_ENV, f"{new},{old}")
    assert effective_settings("crm-sync")["api_key"] == PLAINTEXT  # old tokens still open
    out = StringIO()
    call_command("plugins", "rotate-secrets", stdout=out)
    assert "re-encrypted 1 secret setting(s) with the first of the 2 key(s) of " in out.getvalue()
    assert "the other key(s) can be removed" in out.getvalue()

    after = token("crm-sync", "api_key")
    assert after != before
    assert json.loads(Fernet(new).decrypt(after)) == PLAINTEXT
    with pytest.raises(InvalidToken):
        Fernet(old).decrypt(after)
    monkeypatch.setenv(conf.SECRET_KEYS_ENV, new)  # the old key dropped
    assert effective_settings("crm-sync")["api_key"] == PLAINTEXT
    entry = AuditEntry.objects.get(action="rotate-secrets")
    assert entry.actor == "cli" and entry.after == {"re-encrypted": 1, "encrypted": 0, "keys": 2}


def test_rotation_encrypts_plaintext_left_from_before(registry):
    actions.configure("crm-sync", {"endpoint": "https://crm.test/api"})
    plugin = Plugin.objects.get(name="crm-sync")
    PluginSetting.objects.create(plugin=plugin, key="api_key", value=PLAINTEXT)  # legacy row
    assert effective_settings("crm-sync")["api_key"] == PLAINTEXT  # plaintext is still read
    out = StringIO()
    call_command("plugins", "rotate-secrets", stdout=out)
    assert "encrypted 1 plaintext one(s)" in out.getvalue()
    assert PLAINTEXT not in raw_value("crm-sync", "api_key")
    assert json.loads(raw_value("crm-sync", "endpoint")) == "https://crm.test/api"
    assert effective_settings("crm-sync")["api_key"] == PLAINTEXT


def test_rotation_without_the_old_key_changes_nothing_and_names_the_secret(registry, monkeypatch):
    actions.configure("crm-sync", {"api_key": PLAINTEXT})
    before = raw_value("crm-sync", "api_key")
    monkeypatch.setenv(conf.SECRET_KEYS_ENV, new_key())  # the old key was dropped too early
    with pytest.raises(CommandError) as refused:
        call_command("plugins", "rotate-secrets")
    message = str(refused.value)
    assert message.startswith("nothing was re-encrypted: plugin 'crm-sync': secret setting")
    assert "'api_key' cannot be decrypted" in message
    assert "Set SERVICES_AI_SECRET_KEYS to include the key it was encrypted with" in message
    assert raw_value("crm-sync", "api_key") == before
    assert not AuditEntry.objects.filter(action="rotate-secrets").exists()


# -- a key that is gone -------------------------------------------------------------------------


def test_an_undecryptable_secret_is_named_and_treated_as_unset(admin_client, monkeypatch, caplog):
    actions.configure("crm-sync", {"api_key": PLAINTEXT})
    stored = token("crm-sync", "api_key").decode()
    monkeypatch.setenv(conf.SECRET_KEYS_ENV, new_key())
    caplog.set_level(logging.ERROR, logger=settings_store.logger.name)

    assert effective_settings("crm-sync")["api_key"] is None
    assert effective_settings("crm-sync")["api_key"] is None
    # Logged once per process, not on every read.
    (logged,) = [r for r in caplog.records if r.name == settings_store.logger.name]
    message = logged.getMessage()
    assert message.startswith("plugin 'crm-sync': secret setting 'api_key' cannot be decrypted")
    assert (
        "SERVICES_AI_SECRET_KEYS" in message and "plugins configure crm-sync api_key=-" in message
    )
    assert logged.exc_info is None  # a message, not a traceback
    with as_plugin("crm-sync"):
        assert api.get_settings()["api_key"] is None

    plugin = Plugin.objects.get(name="crm-sync")
    assert missing_required(plugin) == ["api_key"]
    with pytest.raises(RegistryError, match="required setting\\(s\\) not set: api_key"):
        actions.enable("crm-sync")

    page = admin_client.get("/console/plugins/crm-sync/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "secret setting &#x27;api_key&#x27; cannot be decrypted" in html
    assert "SERVICES_AI_SECRET_KEYS" in html and stored not in html and PLAINTEXT not in html

    # Setting it again (the fix when the old key is lost for good) makes it readable.
    actions.configure("crm-sync", {"api_key": "sk-new"})
    assert effective_settings("crm-sync")["api_key"] == "sk-new"


def test_a_missing_key_file_is_named(registry, tmp_path, monkeypatch):
    actions.configure("crm-sync", {"api_key": PLAINTEXT})  # with the variable's key
    monkeypatch.delenv(conf.SECRET_KEYS_ENV)
    monkeypatch.setenv(conf.HOME_ENV, str(tmp_path / "empty-home"))
    (problem,) = settings_store.unreadable_secrets(Plugin.objects.get(name="crm-sync"))
    assert (problem.plugin, problem.key) == ("crm-sync", "api_key")
    assert "the key file" in str(problem) and "does not exist" in str(problem)
    assert effective_settings("crm-sync")["api_key"] is None
    assert not (tmp_path / "empty-home" / "secret-settings.key").exists()


# -- the data migration -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_legacy_plaintext_and_reverses(key):
    before, target = (
        ("plugin_registry", "0006_quarantine"),
        ("plugin_registry", "0007_encrypt_secrets"),
    )
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    try:
        old = executor.loader.project_state([before]).apps
        manifest = {
            "settings": [
                {"name": "api_key", "type": "secret", "required": True},
                {"name": "endpoint", "type": "url"},
            ]
        }
        plugin = old.get_model("plugin_registry", "Plugin").objects.create(
            name="legacy", version="1.0", manifest=manifest
        )
        Setting = old.get_model("plugin_registry", "PluginSetting")
        Setting.objects.create(plugin=plugin, key="api_key", value=PLAINTEXT)
        Setting.objects.create(plugin=plugin, key="endpoint", value="https://crm.test")

        executor = MigrationExecutor(connection)
        executor.migrate([target])
        assert PLAINTEXT not in raw_value("legacy", "api_key")
        assert json.loads(Fernet(key).decrypt(token("legacy", "api_key"))) == PLAINTEXT
        assert json.loads(raw_value("legacy", "endpoint")) == "https://crm.test"
        assert effective_settings("legacy") == {
            "api_key": PLAINTEXT,
            "endpoint": "https://crm.test",
        }

        executor = MigrationExecutor(connection)
        executor.migrate([before])  # reversed: plaintext again
        assert json.loads(raw_value("legacy", "api_key")) == PLAINTEXT
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes("plugin_registry"))


# -- one plugin, its own settings -------------------------------------------------------------


class Snoop:
    """A plugin that tries to read another plugin's secret through every door the API has."""

    @hookimpl
    def lead_created(self, lead):
        seen = {"own": api.get_settings()}
        attempts = {
            "get_settings": lambda: backend().get_settings("crm-sync"),
            "get_data": lambda: backend().get_data("crm-sync", "token", None),
            "set_data": lambda: backend().set_data("crm-sync", "token", "mine now"),
            "update_data": lambda: backend().update_data("crm-sync", "token", str, None),
            "delete_data": lambda: backend().delete_data("crm-sync", None),
            "render_template": lambda: backend().render_template("crm-sync", "x.html", {}),
        }
        for name, attempt in attempts.items():
            try:
                seen[name] = attempt()
            except PluginError as exc:
                seen[name] = f"refused: {exc}"
        return seen


def test_a_plugin_cannot_read_another_plugins_settings_or_data(registry):
    actions.configure("crm-sync", {"api_key": PLAINTEXT})
    actions.configure("lead-scorer", {"threshold": "75"})
    with as_plugin("crm-sync"):
        api.set_data("token", "crm-private")
        assert api.get_settings()["api_key"] == PLAINTEXT  # its own secret, decrypted

    state = RegistryState(
        generation=1,
        enabled=frozenset({"lead-scorer"}),
        grants={"lead-scorer": frozenset({"read_leads"})},
    )
    host = create_host(state, load_entrypoints=False, plugins=[("lead-scorer", Snoop())])
    [(name, seen)] = host.call("lead_created", lead={"id": 1, "name": "Ada"})
    assert name == "lead-scorer"
    assert seen.pop("own") == effective_settings("lead-scorer")
    assert "api_key" not in effective_settings("lead-scorer")
    for door, outcome in seen.items():
        assert outcome == (
            "refused: plugin 'lead-scorer': the data API serves the running plugin only, "
            "not plugin 'crm-sync'"
        ), door
    assert PLAINTEXT not in json.dumps(seen)
    assert PluginData.objects.get(plugin_name="crm-sync", key="token").value == "crm-private"
    # The public API has no way to name another plugin at all.
    for function in api.__all__:
        assert "plugin" not in inspect.signature(getattr(api, function)).parameters, function


def test_an_unreadable_key_file_is_named_not_a_traceback(registry, tmp_path, monkeypatch):
    actions.configure("crm-sync", {"api_key": PLAINTEXT})
    monkeypatch.delenv(conf.SECRET_KEYS_ENV)
    monkeypatch.setenv(conf.HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setattr(conf.time, "sleep", lambda seconds: None)  # no wait for a writer
    path = conf.secret_settings_key_file()
    path.touch(mode=0o600)  # a crash between creating the file and writing the key
    (problem,) = settings_store.unreadable_secrets(Plugin.objects.get(name="crm-sync"))
    assert f"cannot read the key file {path}: {path} is empty" in str(problem)
    with pytest.raises(RegistryError, match="is empty: delete it"):
        actions.configure("crm-sync", {"api_key": "sk-second"})
