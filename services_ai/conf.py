"""Where the platform keeps its state, read from the environment once per process."""

from __future__ import annotations

import os
import secrets
import site
import sys
from pathlib import Path

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

    Appending means the host's packages always win over a plugin folder's copy.
    """
    for path in plugin_site_dirs():
        if path.is_dir() and str(path) not in sys.path:
            site.addsitedir(str(path))


def secret_key() -> str:
    """Return ``DJANGO_SECRET_KEY`` or a key generated once and kept in the home folder."""
    if key := os.environ.get("DJANGO_SECRET_KEY"):
        return key
    path = home() / "secret_key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()
