"""Imports a plugin's entry-point module and checks its hooks; run by `services-ai plugin check`.

Reads ``{"root", "module", "manifest", "meta", "depends"}`` as JSON on standard input and prints
a JSON list of ``[file, message, fix]`` (problems) and ``[file, message, fix, "warning"]``.
It runs in its own process, so the plugin's code never runs inside
the command, and its own ``SERVICES_AI_HOME`` so it leaves nothing behind.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback


def main() -> None:
    payload = json.load(sys.stdin)
    # The parent gives this child a throwaway SERVICES_AI_HOME (and removes it, even when it has
    # to kill the child) and none of its own environment, so no database but a throwaway one.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "services_ai.settings")
    print(json.dumps(probe(payload)))


def probe(payload: dict) -> list[tuple[str, ...]]:
    import django

    django.setup()
    from plugin_registry.authoring.check import hook_problems
    from plugin_registry.registry.manifest import manifest_problems, normalise_manifest
    from plugin_registry.registry.metadata import DistMetadata

    problems: list[tuple[str, ...]] = []
    manifest, _ = normalise_manifest(payload["manifest"])
    meta = payload["meta"]
    if manifest:
        metadata = DistMetadata(
            name=meta["name"],
            version=meta["version"],
            summary=meta["summary"],
            author=meta["author"],
            author_email=meta["email"],
            entry_point=payload["module"],
        )
        for problem in manifest_problems(manifest, plugin=meta["name"], metadata=metadata):
            problems.append(("manifest", f"{problem.field}: {problem.message}", problem.fix))
    sys.path.insert(0, payload["root"])
    module_name = payload["module"].split(":")[0]
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:
        last = traceback.extract_tb(exc.__traceback__)[-1]
        missing = (getattr(exc, "name", None) or "").split(".")[0]
        package = module_name.split(".")[0]
        if isinstance(exc, ModuleNotFoundError) and missing != package and payload["depends"]:
            # A declared dependency is not installed here; the install imports it again with
            # its dependencies in place, so the hooks are checked there.
            problems.append(
                (
                    f"{last.filename}:{last.lineno}",
                    f"importing {module_name!r} needs {missing!r}, which is not installed here, "
                    "so its hooks were not checked",
                    "make sure a declared dependency provides it; the install checks the hooks",
                    "warning",
                )
            )
            return problems
        problems.append(
            (
                f"{last.filename}:{last.lineno}",
                f"importing {module_name!r} raised {type(exc).__name__}: {exc}",
                "fix the error (a missing dependency belongs in the project's dependencies)",
            )
        )
        return problems
    return problems + hook_problems(module, manifest if isinstance(manifest, dict) else {})


if __name__ == "__main__":
    main()
