"""Checks a new generation of the managed environment; run by the platform in a child process.

``SERVICES_AI_GENERATION`` names the generation; the child sees the platform's packages and that
generation only. It imports every plugin, validates its hooks against the hookspecs and its
manifest's ``hook_specs``, validates the manifest, and makes sure no package of the platform is
installed again in the generation. It prints one JSON line:
``{"plugins": [...], "problems": [...]}``.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
from pathlib import Path

from services_ai import conf


def check_generation(generation: Path) -> dict:
    """Import and validate every plugin of ``generation``; return plugins and problems.

    Call it in a process that may be thrown away afterwards: plugin code gets imported.
    """
    # Imported here, not at the top: this module is also the child's entry point (``python -m``),
    # which must set Django up before anything imports a model.
    from packaging.utils import canonicalize_name

    from plugin_registry.distribution.host_wheels import host_distributions
    from plugin_registry.host import RegistryState, create_host, discover_entry_points
    from plugin_registry.registry.sync import inspect_plugin

    for extra in conf.plugin_site_dirs():
        while str(extra) in sys.path:
            sys.path.remove(str(extra))
    conf.use_generation(generation)
    problems: list[str] = []
    site = str(conf.site_packages(generation))
    host = host_distributions()
    for dist in importlib.metadata.distributions(path=[site]):
        project = canonicalize_name(dist.metadata["Name"] or "")
        if project in host:
            problems.append(
                f"{project} {dist.version} would shadow the platform's own {project} "
                f"{host[project]}"
            )
        for file in dist.files or []:
            if file.suffix == ".pth" and len(file.parts) == 1:
                problems.append(
                    f"{project} {dist.version} ships {file}, a .pth file Python would run at "
                    "every start of every process; it is refused (remove it from the wheel)"
                )
    entry_points = {
        name: eps
        for name, eps in discover_entry_points().items()
        if eps[0].dist is not None and str(eps[0].dist.locate_file("")).startswith(site)
    }
    declared: dict[str, frozenset[str]] = {}
    for name, eps in sorted(entry_points.items()):
        found = inspect_plugin(name, eps)
        if found.error:
            problems.append(f"{name} {found.metadata.version}: {found.error}")
        else:
            declared[name] = frozenset(found.manifest.get("hook_specs", []))
    state = RegistryState(enabled=frozenset(declared), declared_hooks=declared)
    checker = create_host(state, load_entrypoints=False)
    checker.load_entrypoints(entry_points)
    for name, failure in sorted(checker.load_failures.items()):
        problems.append(f"{name}: {failure.stage} failed: {failure.message}")
    return {"plugins": sorted(entry_points), "problems": problems}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "services_ai.settings")
    import django

    django.setup()

    generation = conf.loaded_generation()
    if generation is None:
        print(json.dumps({"plugins": [], "problems": ["no generation given"]}))
        sys.exit(2)
    print(json.dumps(check_generation(generation)))


if __name__ == "__main__":
    main()
