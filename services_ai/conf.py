"""Where the platform keeps its state, read from the environment once per process."""

from __future__ import annotations

import importlib
import math
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")

HOME_ENV = "SERVICES_AI_HOME"
PLUGIN_PATH_ENV = "SERVICES_AI_PLUGIN_PATH"
GENERATION_ENV = "SERVICES_AI_GENERATION"


def home() -> Path:
    """Return ``SERVICES_AI_HOME`` (default ``./var``), created if missing."""
    path = Path(os.environ.get(HOME_ENV, "var")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def environment_dir() -> Path:
    """Return the folder of the managed plugin environment (its generations and lock files)."""
    return home() / "env"


def active_link() -> Path:
    """Return the symlink that names the active generation of the managed environment."""
    return environment_dir() / "active"


def site_packages(venv: Path) -> Path:
    """Return the ``site-packages`` folder of a virtual environment made with this Python."""
    return venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def active_generation_dir() -> Path | None:
    """Return the resolved folder of the active generation, or None before the first install."""
    link = active_link()
    try:
        return link.parent / os.readlink(link)
    except OSError:
        return None


# The generation whose site-packages this process put on sys.path (resolved once, so code
# already imported and code imported later come from the same generation).
_loaded_generation: Path | None = None


def loaded_generation() -> Path | None:
    """Return the generation folder this process loads plugins from."""
    return _loaded_generation


def plugin_site_dirs() -> list[Path]:
    """Return the folders whose distributions are offered as plugins, in priority order."""
    dirs = [Path(p) for p in os.environ.get(PLUGIN_PATH_ENV, "").split(os.pathsep) if p]
    if _loaded_generation is not None:
        dirs.append(site_packages(_loaded_generation))
    return dirs


def _append_site(path: Path) -> None:
    # A plain append, not site.addsitedir(): that would run the ``import`` lines of every
    # ``.pth`` file in the folder, so a plugin's wheel could run code in every platform process
    # without ever being enabled.
    if str(path) not in sys.path:
        sys.path.append(str(path))


def add_plugin_site_dirs() -> None:
    """Put the plugin folders on ``sys.path`` once, after the host's own packages.

    Appending means the host's packages always win over a plugin folder's copy. The active
    generation of the managed environment is resolved now; ``SERVICES_AI_GENERATION`` (set by the
    platform for the child that checks a new generation) names another generation instead.
    """
    global _loaded_generation
    forced = os.environ.get(GENERATION_ENV)
    _loaded_generation = Path(forced) if forced else active_generation_dir()
    for path in plugin_site_dirs():
        _append_site(path)


def use_generation(generation: Path | None) -> None:
    """Make this process load plugins from ``generation`` instead of the one it loaded.

    Modules imported from the old generation are forgotten, so the next import reads the new
    code; objects already holding the old modules keep working until they are dropped.
    """
    global _loaded_generation
    old = _loaded_generation
    if old == generation:
        return
    if old is not None:
        old_site = str(site_packages(old))
        while old_site in sys.path:
            sys.path.remove(old_site)
        prefix = old_site + os.sep
        for name, module in list(sys.modules.items()):
            if (getattr(module, "__file__", None) or "").startswith(prefix):
                del sys.modules[name]
    _loaded_generation = generation
    if generation is not None:
        _append_site(site_packages(generation))
    importlib.invalidate_caches()


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


def generated_secret(path: Path, generate: Callable[[], str]) -> str:
    """Return the text kept in ``path``, written once from ``generate()`` if the file is missing.

    The file is created with ``O_EXCL`` and mode 0600 in one step, so it is never readable by
    anyone but its owner, not even briefly, and two processes starting together agree on one
    value: the loser of the race waits for the winner to finish writing.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            if text := path.read_text().strip():
                return text
            time.sleep(0.1)  # the other process is writing it
        raise RuntimeError(f"{path} is empty: delete it to have a new key generated") from None
    with os.fdopen(fd, "w") as file:
        file.write(generate())
    return path.read_text().strip()


def secret_key() -> str:
    """Return ``DJANGO_SECRET_KEY`` or a key generated once and kept in the home folder."""
    if key := os.environ.get("DJANGO_SECRET_KEY"):
        return key
    return generated_secret(home() / "secret_key", lambda: secrets.token_urlsafe(50))


SECRET_KEYS_ENV = "SERVICES_AI_SECRET_KEYS"


def secret_settings_key_file() -> Path:
    """Return the file that holds the keys of secret plugin settings (``SECRET_KEYS_ENV`` unset)."""
    return home() / "secret-settings.key"
