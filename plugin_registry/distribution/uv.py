"""Running uv and child Pythons, isolated from this machine's pip and uv configuration.

Every installer run and every child process the platform starts goes through here, so the
isolation (``--no-config``, ``PIP_CONFIG_FILE=/dev/null``) cannot be forgotten in one place.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plugin_registry.errors import RegistryError
from services_ai import conf

logger = logging.getLogger(__name__)
Say = Callable[[str], None]


def uv() -> str:
    """The uv next to this Python (a dependency of the platform), else the one on PATH."""
    candidate = Path(sys.executable).parent / "uv"
    return str(candidate) if candidate.exists() else "uv"


def installer_env() -> dict[str, str]:
    """The environment for uv and pip: this machine's pip/uv configuration is ignored."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIP_", "UV_")) and key not in ("VIRTUAL_ENV",)
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env["UV_NO_CONFIG"] = "1"
    return env


#: Resource limits of a child that runs code not yet trusted: CPU seconds, address space and the
#: largest file it may write (bytes). A breach kills the child (SIGXCPU, MemoryError, SIGXFSZ).
CHILD_LIMITS = {"cpu": 120, "memory": 2 * 1024**3, "file_size": 64 * 1024**2}


def _limit_resources() -> None:
    """Runs in the child between fork and exec."""
    resource.setrlimit(resource.RLIMIT_CPU, (CHILD_LIMITS["cpu"], CHILD_LIMITS["cpu"]))
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_LIMITS["memory"], CHILD_LIMITS["memory"]))
    resource.setrlimit(
        resource.RLIMIT_FSIZE, (CHILD_LIMITS["file_size"], CHILD_LIMITS["file_size"])
    )


#: What a child that runs untrusted code keeps of this process's environment: nothing that
#: names a database, a secret or the platform's home.
NEUTRAL_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")


def json_from_child(
    args: list[str], *, env: dict[str, str] | None = None, input: str | None = None,
    timeout: float = 300, inherit: bool = True, limited: bool = False,
) -> Any:  # fmt: skip
    """Run this Python with the platform's settings and ``args``; return its last JSON line.

    The child sees no development plugin folders (``SERVICES_AI_PLUGIN_PATH``): only the
    platform and what it is asked to look at. With ``inherit=False`` it gets none of this
    process's environment but ``NEUTRAL_ENV`` and ``env`` (for code not yet trusted). A child
    still running after ``timeout`` seconds is killed and a RegistryError raised. With
    ``limited`` the child also runs under ``CHILD_LIMITS`` (CPU seconds, memory, file size).
    """
    base = os.environ if inherit else {k: v for k, v in os.environ.items() if k in NEUTRAL_ENV}
    child_env = {
        **base,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "services_ai.settings"),
        **(env or {}),
    }
    child_env.pop(conf.PLUGIN_PATH_ENV, None)
    try:
        result = subprocess.run(
            [sys.executable, *args], env=child_env, input=input, capture_output=True, text=True,
            timeout=timeout, preexec_fn=_limit_resources if limited else None,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise RegistryError(
            f"the child process did not finish within {timeout:.0f} s and was stopped"
        ) from None
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RegistryError(f"the child process printed no result:\n"
                            f"{result.stderr.strip()[-3000:]}") from None  # fmt: skip
