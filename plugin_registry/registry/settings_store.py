"""Reading and writing plugin settings with their declared types; secrets encrypted at rest."""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import transaction

from plugin_registry.errors import SecretUnreadable
from plugin_registry.registry.audit import record
from plugin_registry.registry.models import Plugin, PluginSetting
from plugin_registry.registry.secrets import Keys, Reencrypted, decrypt, is_encrypted, keys
from plugin_registry.registry.secrets import reencrypt as reencrypt_settings
from plugin_registry.registry.setting_types import coerce_setting, is_set

logger = logging.getLogger(__name__)

# Unreadable secrets already logged by this process (plugin, key, message): once each, not on
# every hook call that reads the settings.
_reported: set[tuple[str, str, str]] = set()
_reported_lock = threading.Lock()


def stored_settings(plugin: Plugin) -> tuple[dict[str, Any], list[SecretUnreadable]]:
    """Return the plugin's configured values, secrets decrypted, and the secrets that could not be.

    A secret no key decrypts is left out (it counts as unset) and its error is returned, never
    raised: one lost key must not break the pages, commands and hooks that read settings.
    """
    values: dict[str, Any] = {}
    problems: list[SecretUnreadable] = []
    for row in plugin.settings.all():
        value = row.value
        if is_encrypted(value):
            try:
                value = decrypt(value, plugin=plugin.name, key=row.key)
            except SecretUnreadable as exc:
                problems.append(exc)
                continue
        values[row.key] = value
    return values, problems


def unreadable_secrets(plugin: Plugin) -> list[SecretUnreadable]:
    """Return an error for each stored secret of ``plugin`` that no configured key decrypts."""
    return stored_settings(plugin)[1]


def _report(problems: list[SecretUnreadable]) -> None:
    for problem in problems:
        mark = (problem.plugin, problem.key, str(problem))
        with _reported_lock:
            if mark in _reported:
                continue
            _reported.add(mark)
        logger.error("%s", problem)  # the message says it all: no traceback


def effective_settings(plugin_name: str) -> dict[str, Any]:
    """Return every declared setting's value: the configured one, else the default, else None.

    Secrets are decrypted; one that cannot be is logged (once per process) and treated as unset.
    """
    plugin = Plugin.objects.filter(name=plugin_name).first()
    if plugin is None:
        return {}
    stored, problems = stored_settings(plugin)
    _report(problems)
    return {
        spec["name"]: stored[spec["name"]]
        if stored.get(spec["name"]) is not None
        else _default(spec, plugin_name)
        for spec in plugin.setting_specs
    }


def _default(spec: dict, plugin_name: str) -> Any:
    # Defaults were validated with the manifest; coercing gives them the configured values' types.
    default = spec.get("default")
    if default is None:
        return None
    return coerce_setting({**spec, "required": False}, default, plugin=plugin_name)


def missing_required(plugin: Plugin) -> list[str]:
    """Return the keys of required settings that have neither a value nor a default.

    A secret that no configured key decrypts counts as missing.
    """
    stored, _ = stored_settings(plugin)
    return [
        spec["name"]
        for spec in plugin.setting_specs
        if spec.get("required") and not is_set(spec, stored.get(spec["name"]))
    ]


@transaction.atomic
def rotate_secrets(*, actor: str = "") -> tuple[Reencrypted, Keys]:
    """Re-encrypt every stored secret with the first key, and encrypt plaintext ones; audited.

    All or nothing: a secret that none of the keys decrypts stops it, with that secret named.
    """
    configured = keys(create=True)
    done = reencrypt_settings(Plugin, PluginSetting, rotate=True)
    record(
        actor,
        "rotate-secrets",
        "secret settings",
        None,
        {"re-encrypted": done.rotated, "encrypted": done.encrypted, "keys": configured.count},
    )
    logger.info(
        "%s re-encrypted %d secret setting(s) and encrypted %d plaintext one(s) with the first "
        "key of %s",
        actor or "someone",
        done.rotated,
        done.encrypted,
        configured.source,
    )
    return done, configured
