"""Running uv and child Pythons, isolated from this machine's pip and uv configuration.

Every installer run and every child process the platform starts goes through here, so the
isolation (``--no-config``, ``PIP_CONFIG_FILE=/dev/null``) cannot be forgotten in one place.
"""

from __future__ import annotations

import json
import logging
import os
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


def json_from_child(
    args: list[str], *, env: dict[str, str] | None = None, input: str | None = None,
    timeout: float = 300,
) -> Any:  # fmt: skip
    """Run this Python with the platform's settings and ``args``; return its last JSON line.

    The child sees no development plugin folders (``SERVICES_AI_PLUGIN_PATH``): only the
    platform and what it is asked to look at.
    """
    child_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "services_ai.settings"),
        **(env or {}),
    }
    child_env.pop(conf.PLUGIN_PATH_ENV, None)
    result = subprocess.run(
        [sys.executable, *args], env=child_env, input=input, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RegistryError(f"the child process printed no result:\n"
                            f"{result.stderr.strip()[-3000:]}") from None  # fmt: skip
