"""Secret plugin settings, encrypted at rest with Fernet; the keys are kept apart from the database.

The keys come from ``SERVICES_AI_SECRET_KEYS`` (Fernet keys separated by commas), or, when it is
not set, from ``$SERVICES_AI_HOME/secret-settings.key`` (one key per line), which is created with
one new key, mode 0600, the first time a secret is stored. The first key encrypts; every key
decrypts (``MultiFernet``), so keys can be rotated: put a new key first, keep the old ones, run
``services-ai plugins rotate-secrets``, then drop the old ones.

A secret is stored as ``{"fernet": TOKEN}`` in ``PluginSetting.value`` (the token holds the
value's JSON), so a plaintext value stored before encryption existed is told apart, and still
read, until ``migrate`` (migration 0007) or ``rotate-secrets`` encrypts it. The form is decided
by the stored value, not by the setting's declared type: a setting whose type changed in a new
version of its plugin is still read correctly.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from plugin_registry.errors import RegistryError, SecretUnreadable
from services_ai import conf

logger = logging.getLogger(__name__)

MARK = "fernet"  # the stored form: {"fernet": TOKEN}
NEW_KEY_COMMAND = "services-ai plugins rotate-secrets --new-key"


def new_key() -> str:
    """Return a new random Fernet key (url-safe base64 of 32 bytes)."""
    return Fernet.generate_key().decode()


@dataclass(frozen=True)
class Keys:
    """The configured keys: ``fernet`` encrypts with the first and decrypts with any."""

    fernet: MultiFernet
    count: int
    source: str  # the variable's name, or the key file's path

    def describe(self) -> str:
        return f"the {self.count} key(s) of {self.source}"


_cached: tuple[str, str, Keys] | None = None  # (source, text, keys) of the last parse


def keys(*, create: bool = False) -> Keys:
    """Return the configured keys; raise RegistryError (never showing a key) if there are none.

    With ``create``, a missing key file is created with one new key (storing a secret does
    that); reading never creates one, since a new key cannot decrypt anything already stored.
    """
    global _cached
    text = os.environ.get(conf.SECRET_KEYS_ENV, "")
    source = conf.SECRET_KEYS_ENV
    if not text.strip():
        path = conf.secret_settings_key_file()
        source = str(path)
        if not create and not path.exists():
            raise RegistryError(
                f"{conf.SECRET_KEYS_ENV} is not set and the key file {path} does not exist: "
                "restore the key file from your backup, or set the variable to the key(s)"
            )
        try:
            text = conf.generated_secret(path, new_key)
            mode = path.stat().st_mode
        except (OSError, RuntimeError) as exc:  # unreadable, or left empty by a crash
            raise RegistryError(f"cannot read the key file {path}: {exc}") from None
        if mode & 0o077 and (_cached is None or _cached[1] != text):
            logger.warning("%s is readable by other users: run `chmod 600 %s`", path, path)
    if _cached is not None and _cached[:2] == (source, text):
        return _cached[2]
    parsed = _parse(text, source)
    _cached = (source, text, parsed)
    return parsed


def _parse(text: str, source: str) -> Keys:
    parts = [part for part in re.split(r"[\s,]+", text) if part]
    if not parts:
        raise RegistryError(f"{source} holds no key; generate one with `{NEW_KEY_COMMAND}`")
    fernets = []
    for number, part in enumerate(parts, start=1):
        try:
            fernets.append(Fernet(part))
        except (ValueError, TypeError):  # the key itself never goes into the message
            raise RegistryError(
                f"{source}: key {number} of {len(parts)} is not a Fernet key (32 url-safe "
                f"base64-encoded bytes); generate one with `{NEW_KEY_COMMAND}`"
            ) from None
    return Keys(MultiFernet(fernets), len(fernets), source)


def is_encrypted(value: Any) -> TypeGuard[dict[str, str]]:
    """Return whether a stored value is in the encrypted form ``{"fernet": TOKEN}``."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(MARK), str)


def encrypt(value: Any) -> dict[str, str]:
    """Return the stored form of a secret value, encrypted with the first key."""
    token = keys(create=True).fernet.encrypt(json.dumps(value).encode())
    return {MARK: token.decode()}


def _unreadable(plugin: str, key: str, why: str) -> SecretUnreadable:
    return SecretUnreadable(
        f"plugin {plugin!r}: secret setting {key!r} cannot be decrypted: {why}. Set "
        f"{conf.SECRET_KEYS_ENV} to include the key it was encrypted with (comma-separated; the "
        f"first key encrypts, all decrypt), or set the secret again with "
        f"`services-ai plugins configure {plugin} {key}=-`. Until then it is treated as unset.",
        plugin=plugin,
        key=key,
    )


def decrypt(stored: dict[str, str], *, plugin: str, key: str) -> Any:
    """Return the value of an encrypted setting; raise SecretUnreadable naming it and the fix."""
    try:
        configured = keys()
    except RegistryError as exc:
        raise _unreadable(plugin, key, str(exc)) from None
    try:
        return json.loads(configured.fernet.decrypt(stored[MARK].encode()))
    except (InvalidToken, ValueError):
        raise _unreadable(
            plugin, key, f"none of {configured.describe()} opens it (encrypted with another key)"
        ) from None


def _rotated(stored: dict[str, str], *, plugin: str, key: str) -> dict[str, str]:
    decrypt(stored, plugin=plugin, key=key)  # the same error as reading, when it cannot be read
    return {MARK: keys().fernet.rotate(stored[MARK].encode()).decode()}


def secret_names(manifest: dict, manifest_error: str = "") -> set[str]:
    """The names of a manifest's settings of type ``secret``."""
    if manifest_error:
        return set()
    return {spec["name"] for spec in manifest.get("settings", []) if spec.get("type") == "secret"}


@dataclass(frozen=True)
class Reencrypted:
    """What a pass over the stored settings changed."""

    rotated: int = 0  # tokens re-encrypted with the first key
    encrypted: int = 0  # plaintext secrets encrypted
    decrypted: int = 0  # tokens turned back into plaintext


def reencrypt(plugin_model: Any, setting_model: Any, *, rotate: bool) -> Reencrypted:
    """Encrypt every plaintext secret; with ``rotate``, re-encrypt every token with the first key.

    Takes the models as arguments so that migrations pass their historical ones. Everything is
    checked before anything is written: a token no key opens stops the pass, naming each one.
    """
    secret = {
        pk: (name, secret_names(manifest or {}, error))
        for pk, name, manifest, error in plugin_model.objects.values_list(
            "pk", "name", "manifest", "manifest_error"
        )
    }
    changes: list[tuple[int, dict[str, str]]] = []
    problems: list[SecretUnreadable] = []
    rotated = encrypted = 0
    for pk, plugin_id, key, value in (
        setting_model.objects.select_for_update()
        .order_by("pk")
        .values_list("pk", "plugin_id", "key", "value")
    ):
        name, secrets = secret[plugin_id]
        if is_encrypted(value):
            if rotate:
                try:
                    changes.append((pk, _rotated(value, plugin=name, key=key)))
                    rotated += 1
                except SecretUnreadable as exc:
                    problems.append(exc)
        elif key in secrets and value is not None:
            changes.append((pk, encrypt(value)))
            encrypted += 1
    if problems:
        raise RegistryError(
            "nothing was re-encrypted: "
            + " ".join(str(problem) for problem in problems)
            + " Then run the rotation again."
        )
    for pk, stored in changes:  # update(): the value itself did not change, nor its timestamp
        setting_model.objects.filter(pk=pk).update(value=stored)
    return Reencrypted(rotated=rotated, encrypted=encrypted)


def decrypt_all(plugin_model: Any, setting_model: Any) -> Reencrypted:
    """Store every encrypted setting as plaintext again (migration 0007 reversed); all or none."""
    names = dict(plugin_model.objects.values_list("pk", "name"))
    changes: list[tuple[int, Any]] = []
    problems: list[SecretUnreadable] = []
    for pk, plugin_id, key, value in (
        setting_model.objects.select_for_update()
        .order_by("pk")
        .values_list("pk", "plugin_id", "key", "value")
    ):
        if is_encrypted(value):
            try:
                changes.append((pk, decrypt(value, plugin=names[plugin_id], key=key)))
            except SecretUnreadable as exc:
                problems.append(exc)
    if problems:
        raise RegistryError(
            "nothing was decrypted: " + " ".join(str(problem) for problem in problems)
        )
    for pk, value in changes:
        setting_model.objects.filter(pk=pk).update(value=value)
    return Reencrypted(decrypted=len(changes))
