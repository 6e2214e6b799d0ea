"""Where the platform keeps its state, read from the environment once per process."""

from __future__ import annotations

import math
import os
import secrets
import site
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")

HOME_ENV = "SERVICES_AI_HOME"
PLUGIN_PATH_ENV = "SERVICES_AI_PLUGIN_PATH"


def home() -> Path:
    """Return ``SERVICES_AI_HOME`` (default ``./var``), created if missing."""
    path = Path(os.environ.get(HOME_ENV, "var")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def local_plugin_dir() -> Path:
    """Return the folder that locally installed plugins live in (a ``--target`` install)."""
    return home() / "plugins" / "site-packages"


def plugin_site_dirs() -> list[Path]:
    """Return the folders whose distributions are offered as plugins, in priority order."""
    dirs = [Path(p) for p in os.environ.get(PLUGIN_PATH_ENV, "").split(os.pathsep) if p]
    dirs.append(local_plugin_dir())
    return dirs


def add_plugin_site_dirs() -> None:
    """Put the plugin folders on ``sys.path`` once, after the host's own packages.

    Appending means the host's packages always win over a plugin folder's copy. Folders are
    added even while empty or missing, so plugins installed later are found without a restart.
    """
    local_plugin_dir().mkdir(parents=True, exist_ok=True)
    for path in plugin_site_dirs():
        if str(path) not in sys.path:
            site.addsitedir(str(path))
            if str(path) not in sys.path:  # addsitedir skips a folder that does not exist yet
                sys.path.append(str(path))


def seconds(text: str) -> float:
    """Parse a finite, non-negative number."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a finite, non-negative number")
    return value


def from_env(name: str, default: str, parse: Callable[[str], T]) -> T:
    """Parse an environment variable; a bad value stops the start with the variable named."""
    text = os.environ.get(name, default)
    try:
        return parse(text)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={text!r} is not valid: {exc}") from None


def secret_key() -> str:
    """Return ``DJANGO_SECRET_KEY`` or a key generated once and kept in the home folder."""
    if key := os.environ.get("DJANGO_SECRET_KEY"):
        return key
    path = home() / "secret_key"
    try:  # created once, readable by the owner only, even when two processes start together
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            if key := path.read_text().strip():
                return key
            time.sleep(0.1)  # the other process is writing it
        raise RuntimeError(f"{path} is empty: delete it to have a new key generated") from None
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_urlsafe(50))
    return path.read_text().strip()
