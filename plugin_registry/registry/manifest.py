"""Reading and validating a plugin's ``manifest.json`` against the published JSON Schema.

The specification's format (``../SPEC.txt`` section 2.1) is canonical: settings have ``name``
and ``description``, the booking permission is ``create_bookings``, ``entry_point`` may name a
file of the package (``"main.py"``). The platform's earlier spellings are read as aliases and
rewritten in one place, :func:`normalise_manifest`, before validation; ``plugin check`` shows
the renames it made as warnings.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import Distribution, EntryPoint
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

from plugin_registry.registry.metadata import DistMetadata
from plugin_registry.registry.setting_types import coerce_setting
from services_ai.plugins.exceptions import ManifestError, SettingsError
from services_ai.plugins.permissions import PERMISSION_ALIASES

SCHEMA_PATH = Path(__file__).parent / "schema" / "manifest.schema.json"
MANIFEST_NAME = "manifest.json"
DEFAULT_ENTRY_POINT = "main.py"
SCHEMA_HINT = "see the manifest schema (docs/manifest.schema.json)"

#: Earlier spellings of setting fields and permissions -> the specification's names.
SETTING_ALIASES = {"key": "name", "help": "description"}


@dataclass(frozen=True)
class ManifestProblem:
    """One thing wrong with a manifest: the field, what is wrong, how to fix it."""

    field: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}; {self.fix}"


@cache
def schema() -> dict[str, Any]:
    """Return the manifest JSON Schema shipped with the platform."""
    return json.loads(SCHEMA_PATH.read_text())


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


def normalise_manifest(data: Any) -> tuple[Any, list[ManifestProblem]]:
    """Return a copy with the earlier spellings renamed, and one warning per rename.

    Anything that is not shaped like a manifest is returned as it is, for the schema to refuse.
    """
    if not isinstance(data, dict):
        return data, []
    data = copy.deepcopy(data)
    renames: list[ManifestProblem] = []
    permissions = data.get("permissions")
    if isinstance(permissions, list):
        for index, permission in enumerate(permissions):
            if isinstance(permission, str) and permission in PERMISSION_ALIASES:
                permissions[index] = PERMISSION_ALIASES[permission]
                renames.append(
                    ManifestProblem(
                        f"permissions[{index}]",
                        f"{permission!r} is now called {PERMISSION_ALIASES[permission]!r}",
                        "rename it",
                    )
                )
    settings = data.get("settings")
    if isinstance(settings, list):
        for index, spec in enumerate(settings):
            if not isinstance(spec, dict):
                continue
            for old, new in SETTING_ALIASES.items():
                # With both spellings present the schema refuses the old one as unknown.
                if old in spec and new not in spec:
                    renamed = {
                        new if field == old else field: value for field, value in spec.items()
                    }
                    spec.clear()
                    spec.update(renamed)
                    renames.append(
                        ManifestProblem(
                            f"settings[{index}].{old}", f"is now called {new!r}", "rename it"
                        )
                    )
    return data, renames


def entry_point_module(value: str, package: str) -> str:
    """Return the dotted path (``:attribute`` kept) that a manifest's ``entry_point`` names.

    ``"main.py"`` and ``"sub/jobs.py"`` are files of the plugin package, ``".main"`` and
    ``"main"`` modules inside it, ``"my_plugin.main"`` a full module path.
    """
    module, colon, attribute = value.strip().partition(":")
    if module.endswith(".py") and not colon:
        module = f"{package}.{module[:-3].replace('/', '.')}"
    elif module.startswith("."):
        module = f"{package}{module}"
    elif module.split(".")[0] != package:
        module = f"{package}.{module}"
    return f"{module}:{attribute}" if colon else module


def entry_point_agrees(value: str, wheel_entry_point: str) -> bool:
    """Return whether the manifest's ``entry_point`` names the wheel's entry point."""
    wheel_module, _, wheel_attribute = wheel_entry_point.partition(":")
    package = wheel_module.split(".")[0]
    named = entry_point_module(value, package)
    module, colon, attribute = named.partition(":")
    if module == wheel_module and (not colon or attribute == wheel_attribute):
        return True
    # "my_plugin.py" or "my_plugin" may name a package's __init__ as the entry point itself.
    return not colon and wheel_module == package and module == f"{package}.__init__"


def _field(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _describe(error: SchemaError) -> list[ManifestProblem]:
    """Turn one schema error into problems, each with its own field and fix."""
    field = _field(error.absolute_path)
    where = f"{field}." if field else ""
    # The stubs allow the Unset sentinel of an error still being built; iter_errors() yields
    # errors with these set, to JSON values of the manifest and the schema.
    instance: Any = error.instance
    value: Any = error.validator_value
    if error.validator == "required":
        missing = [key for key in value if key not in instance]
        return [ManifestProblem(f"{where}{key}", "missing", "add it") for key in missing]
    if error.validator == "additionalProperties":
        # the keyword's own (object) schema; a boolean schema has no keywords to fail
        subschema = error.schema if isinstance(error.schema, Mapping) else {}
        known = set(subschema.get("properties", {}))
        unknown = sorted(key for key in instance if key not in known)
        return [
            ManifestProblem(
                f"{where}{key}",
                "is not a manifest field",
                f"remove it or use one of {_listed(known)}",
            )
            for key in unknown
        ]
    shown = field or "(top level)"
    if error.validator == "enum":
        return [
            ManifestProblem(
                shown,
                f"{instance!r} is not allowed",
                f"use one of {', '.join(map(str, value))}",
            )
        ]
    if error.validator == "const":
        return [ManifestProblem(shown, f"must be {value!r}", "fix or remove it")]
    if error.validator == "pattern":
        return [ManifestProblem(shown, f"{instance!r} does not match {value}", SCHEMA_HINT)]
    if error.validator in ("not", "if", "allOf"):
        return [
            ManifestProblem(
                shown,
                "'options' is only for select, 'min'/'max' only for number settings",
                "remove the field that does not fit the type",
            )
        ]
    return [ManifestProblem(shown, error.message, SCHEMA_HINT)]


def _listed(values: Any) -> str:
    return ", ".join(sorted(map(str, values)))


def manifest_problems(
    data: Any, *, plugin: str, metadata: DistMetadata | None = None
) -> list[ManifestProblem]:
    """Return every problem of an already normalised manifest (schema first, then meaning)."""
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    # jsonschema reports a "required" error once per missing field, each listing all of them.
    problems = list(dict.fromkeys(problem for error in errors for problem in _describe(error)))
    if not problems:
        problems = _semantic_problems(data, plugin=plugin, metadata=metadata)
    return problems


def validate_manifest(data: Any, *, plugin: str, metadata: DistMetadata | None = None) -> dict:
    """Return the normalised manifest if it is valid; raise ManifestError naming every problem."""
    data, _ = normalise_manifest(data)
    problems = manifest_problems(data, plugin=plugin, metadata=metadata)
    if problems:
        raise ManifestError(
            f"invalid {MANIFEST_NAME}: " + "; ".join(map(str, problems)),
            plugin=plugin,
            field=problems[0].field,
            problems=problems,
        )
    return data


def _semantic_problems(
    data: dict, *, plugin: str, metadata: DistMetadata | None
) -> list[ManifestProblem]:
    problems = []
    seen: set[str] = set()
    for index, spec in enumerate(data["settings"]):
        field = f"settings[{index}]"
        if spec["name"] in seen:
            problems.append(
                ManifestProblem(f"{field}.name", f"duplicate name {spec['name']!r}", "rename one")
            )
        seen.add(spec["name"])
        if "default" in spec and spec["default"] is not None:
            try:
                coerce_setting({**spec, "required": False}, spec["default"], plugin=plugin)
            except SettingsError as exc:
                problems.append(ManifestProblem(f"{field}.default", exc.reason, "fix the default"))
        if spec["type"] == "secret" and "default" in spec:
            problems.append(
                ManifestProblem(f"{field}.default", "a secret cannot have a default", "remove it")
            )
    if metadata is None:
        return problems
    disagree = f"fix one or remove the field from {MANIFEST_NAME}"
    for field, actual in (
        ("name", metadata.name),
        ("version", metadata.version),
        ("author", metadata.author),
        ("email", metadata.author_email),
    ):
        if field in data and data[field] != actual:
            problems.append(
                ManifestProblem(
                    field,
                    f"{data[field]!r} disagrees with the wheel's metadata ({actual!r})",
                    disagree,
                )
            )
    if "entry_point" in data and not entry_point_agrees(data["entry_point"], metadata.entry_point):
        problems.append(
            ManifestProblem(
                "entry_point",
                f"{data['entry_point']!r} does not name the wheel's {metadata.entry_point!r} "
                "entry point",
                f"name its module file (e.g. {DEFAULT_ENTRY_POINT!r}) or module path, or remove "
                "the field",
            )
        )
    return problems


def manifest_file_of(dist: Distribution, entry_point: EntryPoint) -> Path | None:
    """Return where the plugin's manifest is installed, without importing the plugin."""
    package = entry_point.module.split(".")[0]
    wanted = f"{package}/{MANIFEST_NAME}"
    for file in dist.files or []:
        if file.as_posix() == wanted:
            return Path(str(dist.locate_file(file)))
    # An editable install lists no package files; locating a top-level package imports nothing.
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))) / MANIFEST_NAME
    return None


def read_manifest(dist: Distribution, entry_point: EntryPoint, metadata: DistMetadata) -> dict:
    """Read and validate the installed plugin's manifest; raise ManifestError."""
    path = manifest_file_of(dist, entry_point)
    package = entry_point.module.split(".")[0]
    if path is None or not path.is_file():
        raise ManifestError(
            f"no {MANIFEST_NAME} in package {package!r}; ship it next to the entry-point module",
            plugin=metadata.name,
            field="(file)",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(
            f"{MANIFEST_NAME} is not valid JSON: {exc}", plugin=metadata.name, field="(file)"
        ) from None
    return validate_manifest(data, plugin=metadata.name, metadata=metadata)
