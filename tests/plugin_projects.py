"""Building real plugin wheels for tests: the example plugins and small broken ones."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "example_plugins"
UV = Path(sys.executable).parent / "uv"


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
) -> Path:
    """Write a minimal plugin project (pyproject, package, main.py, manifest.json)."""
    package = dist.replace("-", "_")
    project = root / dist
    (project / package).mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "{dist}"
            version = "{version}"
            description = "Test plugin {dist}"
            authors = [{{name = "Test Author", email = "test@example.com"}}]
            dependencies = ["services-ai>=0.1"]

            [project.entry-points.services_ai]
            {dist} = "{package}.main"

            [tool.hatch.build.targets.wheel]
            packages = ["{package}"]
            """
        )
    )
    (project / package / "__init__.py").write_text("")
    (project / package / "main.py").write_text(textwrap.dedent(main_py))
    text = manifest if isinstance(manifest, str) else json.dumps(manifest, indent=2)
    (project / package / "manifest.json").write_text(text)
    return project


BROKEN_PLUGINS = {
    # Valid manifest, but importing the entry point fails.
    "broken-import": (
        """
        import missing_dependency_of_broken_import  # noqa: F401
        """,
        {"hook_specs": ["lead_created"], "permissions": ["read_leads"], "settings": []},
    ),
    # Valid manifest, but the hook name is misspelt in the code.
    "misspelt-hook": (
        """
        from services_ai.plugins import hookimpl

        @hookimpl
        def lead_create(lead):
            pass
        """,
        {"hook_specs": ["lead_created"], "permissions": ["read_leads"], "settings": []},
    ),
    # The manifest asks for an unknown setting type and misses "permissions".
    "bad-manifest": (
        """
        from services_ai.plugins import hookimpl

        @hookimpl
        def lead_created(lead):
            pass
        """,
        {"hook_specs": ["lead_created"], "settings": [{"key": "colour", "type": "colour"}]},
    ),
}


# Plugins that exercise event delivery: retries, idempotency and time budgets.
DELIVERY_PLUGINS = {
    # Fails its first `fail_attempts` attempts of every delivery, then succeeds.
    "flaky-plugin": (
        """
        from services_ai.plugins import api, hookimpl

        @hookimpl
        def lead_created(lead):
            delivery = api.current_delivery()
            if delivery.attempt <= api.get_settings()["fail_attempts"]:
                raise RuntimeError(f"flaky failure on attempt {delivery.attempt}")
            api.set_data(f"ok:{delivery.idempotency_key}", delivery.attempt)
        """,
        {
            "hook_specs": ["lead_created"],
            "permissions": ["read_leads"],
            "settings": [{"key": "fail_attempts", "type": "number", "default": 0, "min": 0}],
        },
    ),
    # Does its work once per idempotency key, however often a delivery is re-run.
    "idempotent-counter": (
        """
        from services_ai.plugins import api, hookimpl

        @hookimpl
        def lead_created(lead):
            key = api.current_delivery().idempotency_key
            if api.get_data(f"seen:{key}") is not None:
                api.set_data(f"rerun:{key}", True)
                return
            api.set_data(f"seen:{key}", lead["id"])
        """,
        {"hook_specs": ["lead_created"], "permissions": ["read_leads"], "settings": []},
    ),
    # Never returns: "sleep" can be interrupted, "block-signals" ignores the interruption.
    "hang-plugin": (
        """
        import signal
        import time

        from services_ai.plugins import api, hookimpl

        @hookimpl
        def lead_created(lead):
            if api.get_settings()["mode"] == "block-signals":
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGTERM})
            time.sleep(3600)
        """,
        {
            "hook_specs": ["lead_created"],
            "permissions": ["read_leads"],
            "settings": [
                {
                    "key": "mode",
                    "type": "select",
                    "default": "sleep",
                    "options": [
                        {"value": "sleep", "label": "sleep"},
                        {"value": "block-signals", "label": "block signals and sleep"},
                    ],
                }
            ],
        },
    ),
}
