"""The platform's own packages, offered to the resolver as fixed, metadata-only wheels."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from packaging.utils import canonicalize_name

from plugin_registry.distribution.wheelfile import wheel_contents, wheel_filename, write_wheel
from services_ai import conf

logger = logging.getLogger(__name__)
Say = Callable[[str], None]


# -- the platform's own packages ---------------------------------------------------------------


def _host_path() -> tuple[str, ...]:
    plugin_dirs = {str(path) for path in conf.plugin_site_dirs()}
    return tuple(entry for entry in sys.path if entry not in plugin_dirs)


def host_distributions() -> dict[str, str]:
    """Return every distribution of the platform's environment (plugin folders excluded)."""
    return dict(_host_distributions(_host_path()))


@functools.lru_cache(maxsize=4)
def _host_distributions(path: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    # Reading ~60 METADATA files costs ~30 ms; the platform's own packages do not change under
    # a running process (an upgrade of the platform restarts it).
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=list(path)):
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist.version)
    return tuple(sorted(found.items()))


def host_wheels() -> tuple[Path, Path]:
    """Return (a folder of metadata-only wheels of the platform's packages, constraints file).

    uv does not see packages installed outside the environment it resolves for, so the
    platform's packages are offered to it as wheels that carry only their metadata, pinned to
    the installed versions: the resolution treats them as fixed, and they are never installed.
    """
    host = host_distributions()
    digest = hashlib.sha256(repr(sorted(host.items())).encode()).hexdigest()[:16]
    folder = conf.environment_dir() / "host" / digest
    constraints = folder / "constraints.txt"
    if constraints.exists():
        return folder, constraints
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    seen: set[str] = set()
    for dist in importlib.metadata.distributions(path=list(_host_path())):
        name = canonicalize_name(dist.metadata["Name"] or "")
        if not name or name in seen:
            continue
        seen.add(name)
        metadata = dist.read_text("METADATA") or f"Metadata-Version: 2.1\nName: {name}\n"
        members = wheel_contents(name, dist.version, [], metadata=metadata, generator="services-ai")
        write_wheel(tmp / wheel_filename(name, dist.version), members)
    (tmp / "constraints.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(host.items())))
    try:
        tmp.rename(folder)
    except OSError:  # another process built it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return folder, constraints
