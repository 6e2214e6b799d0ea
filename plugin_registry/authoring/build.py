"""Building a plugin project into a wheel (an isolated ``uv build``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from plugin_registry.distribution.uv import installer_env, uv
from plugin_registry.errors import RegistryError


def build(project: Path, outdir: Path) -> Path:
    """Build a project into a wheel with ``uv build`` (an isolated build); return the wheel."""
    outdir.mkdir(parents=True, exist_ok=True)
    before = set(outdir.glob("*.whl"))
    result = subprocess.run(
        [uv(), "build", "--no-config", "--wheel", "--quiet", "--out-dir", str(outdir),
         str(project)],
        env=installer_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if result.returncode:
        raise RegistryError(f"building {project} failed:\n{result.stderr.strip()[-3000:]}")
    built = sorted(set(outdir.glob("*.whl")) - before) or sorted(outdir.glob("*.whl"))
    if not built:
        raise RegistryError(f"building {project} produced no wheel")
    return built[-1]
