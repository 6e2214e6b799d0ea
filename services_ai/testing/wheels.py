"""Building real plugin wheels: for the platform's tests, benchmarks and plugin authors."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

UV = Path(sys.executable).parent / "uv"

# The smallest useful plugin: subscribes to lead_created and does nothing (benchmarks).
NOOP_PLUGIN = """
from services_ai.plugins import hookimpl

@hookimpl
def lead_created(lead):
    return None
"""
NOOP_MANIFEST = {"hook_specs": ["lead_created"], "permissions": ["read_leads"], "settings": []}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_wheel(project: Path, outdir: Path) -> Path:
    """Build ``project`` into a wheel in ``outdir`` (offline, no build isolation)."""
    before = set(outdir.glob("*.whl"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(outdir),
            str(project),
        ],
        check=True,
        capture_output=True,
    )
    built = set(outdir.glob("*.whl")) - before
    assert len(built) == 1, f"expected one new wheel from {project}, got {built}"
    return built.pop()


def install_wheels(wheels: list[Path], target: Path) -> Path:
    """Install wheels into ``target`` like the platform's local plugin folder (no deps)."""
    subprocess.run(
        [
            str(UV),
            "pip",
            "install",
            "--no-config",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            "--python",
            sys.executable,
            *map(str, wheels),
        ],
        check=True,
        capture_output=True,
    )
    return target


def write_plugin_project(
    root: Path,
    dist: str,
    main_py: str,
    manifest: dict | str,
    *,
    version: str = "1.0.0",
    dependencies: tuple[str, ...] = ("services-ai>=0.1",),
    entry_point: bool = True,
) -> Path:
    """Write a minimal plugin project (pyproject, package, main.py, manifest.json).

    ``entry_point=False`` writes an ordinary library (no ``services_ai`` entry point).
    """
    package = dist.replace("-", "_")
    project = root / f"{dist}-{version}"
    (project / package).mkdir(parents=True)
    lines = [
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "",
        "[project]",
        f'name = "{dist}"',
        f'version = "{version}"',
        f'description = "Test plugin {dist}"',
        'authors = [{name = "Test Author", email = "test@example.com"}]',
        f"dependencies = {json.dumps(list(dependencies))}",
        "",
    ]
    if entry_point:
        lines += ["[project.entry-points.services_ai]", f'{dist} = "{package}.main"', ""]
    lines += ["[tool.hatch.build.targets.wheel]", f'packages = ["{package}"]', ""]
    (project / "pyproject.toml").write_text("\n".join(lines))
    (project / package / "__init__.py").write_text("")
    (project / package / "main.py").write_text(textwrap.dedent(main_py))
    text = manifest if isinstance(manifest, str) else json.dumps(manifest, indent=2)
    (project / package / "manifest.json").write_text(text)
    return project
