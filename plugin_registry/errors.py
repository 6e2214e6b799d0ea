"""The platform's exceptions, at the bottom of its layers so every part can raise them.

Each carries the fields a caller needs (plugin, setting, file, entry) so that callers read
fields and never parse messages. Errors raised *to plugins* live in the public API,
``services_ai.plugins.exceptions``.
"""

from __future__ import annotations

from services_ai.plugins.exceptions import SettingsError


class RegistryError(Exception):
    """An admin action that was refused; the message says why and how to fix it."""


class SettingsInvalid(RegistryError):
    """Setting values were refused; ``errors`` holds one SettingsError per bad value."""

    def __init__(self, errors: list[SettingsError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(error) for error in errors))


class SecretUnreadable(RegistryError):
    """A stored secret setting that none of the configured keys decrypts (or no key is there).

    The setting is treated as unset; the message names the plugin, the setting and the fix.
    """

    def __init__(self, message: str, *, plugin: str, key: str) -> None:
        self.plugin = plugin
        self.key = key
        super().__init__(message)
