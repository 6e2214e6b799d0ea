"""Exceptions raised to and by plugins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class PluginError(Exception):
    """Base class of every plugin-related error; carries the plugin's name when known."""

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r}: {message}" if plugin else message)


class PluginLoadError(PluginError):
    """A plugin could not be imported or registered (import error, unknown hook, bad signature)."""


class ManifestError(PluginError):
    """A plugin's ``manifest.json`` is missing or does not match the schema.

    ``field`` is the first bad field; ``problems`` holds each problem with its field and fix.
    """

    def __init__(
        self,
        message: str,
        *,
        plugin: str | None = None,
        field: str = "",
        problems: Sequence[Any] = (),
    ) -> None:
        self.field = field
        self.problems = list(problems)
        super().__init__(message, plugin=plugin)


class PluginPermissionDenied(PluginError):
    """A plugin called the data API without the permission it needs."""

    def __init__(self, permission: str, *, plugin: str | None = None) -> None:
        self.permission = permission
        super().__init__(
            f"permission {permission!r} is not granted; an admin can grant it with "
            f"`services-ai plugins grant {plugin or 'NAME'} {permission}`",
            plugin=plugin,
        )


class NoPluginContext(PluginError):
    """The data API was called outside of a hook call, so the calling plugin is unknown."""


class SettingsError(PluginError):
    """A plugin setting value is invalid for its declared type."""

    def __init__(
        self, message: str, *, plugin: str | None = None, key: str = "", reason: str = ""
    ) -> None:
        self.key = key
        self.reason = reason or message
        super().__init__(message, plugin=plugin)
