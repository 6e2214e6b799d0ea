"""Imports a plugin's entry-point module and checks its hooks; run by `services-ai plugin check`.

Reads ``{"root", "module", "manifest", "meta"}`` as JSON on standard input and prints a JSON list
of ``[file, message, fix]``. It runs in its own process, so the plugin's code never runs inside
the command, and its own ``SERVICES_AI_HOME`` so it leaves nothing behind.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import tempfile
import traceback


def main() -> None:
    payload = json.load(sys.stdin)
    home = tempfile.mkdtemp(prefix="plugin-check-home-")
    os.environ["SERVICES_AI_HOME"] = home
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "services_ai.settings")
    try:
        print(json.dumps(probe(payload)))
    finally:
        shutil.rmtree(home, ignore_errors=True)


def probe(payload: dict) -> list[tuple[str, str, str]]:
    import django

    django.setup()
    from plugin_registry.authoring import hook_problems
    from plugin_registry.manifest import validate_manifest
    from plugin_registry.metadata import DistMetadata
    from services_ai.plugins.exceptions import ManifestError

    problems: list[tuple[str, str, str]] = []
    manifest = payload["manifest"]
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
        try:
            validate_manifest(manifest, plugin=meta["name"], metadata=metadata)
        except ManifestError as exc:
            message = str(exc).split(": invalid manifest.json: ", 1)[-1]
            problems.append(("manifest", message, "fix the field named; see the manifest schema"))
    sys.path.insert(0, payload["root"])
    module_name = payload["module"].split(":")[0]
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:
        last = traceback.extract_tb(exc.__traceback__)[-1]
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
