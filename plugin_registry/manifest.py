"""Reading and validating a plugin's ``manifest.json`` against the published JSON Schema."""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from importlib.metadata import Distribution, EntryPoint
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

from services_ai.plugins.exceptions import ManifestError, SettingsError

from .metadata import DistMetadata
from .setting_types import coerce_setting

SCHEMA_PATH = Path(__file__).parent / "schema" / "manifest.schema.json"
MANIFEST_NAME = "manifest.json"


@cache
def schema() -> dict[str, Any]:
    """Return the manifest JSON Schema shipped with the platform."""
    return json.loads(SCHEMA_PATH.read_text())


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


def _field(error: SchemaError) -> str:
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _describe(error: SchemaError) -> tuple[str, str]:
    """Turn one schema error into (field, 'field: problem; fix')."""
    field = _field(error)
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        field = f"{field}.{missing}" if field != "(top level)" else missing
        return field, f"{field}: missing; add it"
    return field, _problem(error, field)


def _problem(error: SchemaError, field: str) -> str:
    if error.validator == "additionalProperties":
        return f"{field}: {error.message}; remove the unknown field"
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return f"{field}: {error.instance!r} is not allowed; use one of {allowed}"
    if error.validator == "pattern":
        return f"{field}: {error.instance!r} does not match {error.validator_value}"
    if error.validator in ("not", "if", "allOf"):
        return f"{field}: 'options' is only for select, 'min'/'max' only for number settings"
    return f"{field}: {error.message}"


def validate_manifest(data: Any, *, plugin: str, metadata: DistMetadata | None = None) -> dict:
    """Return the manifest if it is valid; raise ManifestError naming every bad field."""
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    problems = [_describe(e) for e in errors]
    if not problems:
        problems = _semantic_problems(data, plugin=plugin, metadata=metadata)
    if problems:
        raise ManifestError(
            f"invalid {MANIFEST_NAME}: " + "; ".join(text for _, text in problems),
            plugin=plugin,
            field=problems[0][0],
        )
    return data


def _semantic_problems(
    data: dict, *, plugin: str, metadata: DistMetadata | None
) -> list[tuple[str, str]]:
    problems = []
    seen: set[str] = set()
    for index, spec in enumerate(data["settings"]):
        field = f"settings[{index}]"
        if spec["key"] in seen:
            problems.append((f"{field}.key", f"{field}.key: duplicate key {spec['key']!r}"))
        seen.add(spec["key"])
        if "default" in spec and spec["default"] is not None:
            try:
                coerce_setting({**spec, "required": False}, spec["default"], plugin=plugin)
            except SettingsError as exc:
                problems.append((f"{field}.default", f"{field}.default: {exc.reason}"))
        if spec["type"] == "secret" and "default" in spec:
            problems.append(
                (f"{field}.default", f"{field}.default: a secret cannot have a default")
            )
    if metadata is not None:
        for field, actual in (
            ("name", metadata.name),
            ("version", metadata.version),
            ("author", metadata.author),
            ("email", metadata.author_email),
            ("entry_point", metadata.entry_point),
        ):
            if field in data and data[field] != actual:
                problems.append(
                    (
                        field,
                        f"{field}: {data[field]!r} disagrees with the wheel's metadata "
                        f"({actual!r}); fix one or remove the field from {MANIFEST_NAME}",
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
