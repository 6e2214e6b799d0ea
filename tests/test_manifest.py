"""Manifest validation: errors name the plugin and the field, and say how to fix it."""

from __future__ import annotations

import json

import pytest

from plugin_registry.manifest import SCHEMA_PATH, validate_manifest
from plugin_registry.metadata import DistMetadata
from services_ai.plugins import HOOK_NAMES, PERMISSIONS, ManifestError
from services_ai.plugins.hookspecs import SINGLE_PLUGIN_HOOKS  # noqa: F401

VALID = {"hook_specs": ["lead_created"], "permissions": ["read_leads"], "settings": []}
META = DistMetadata("acme", "1.2.0", "Acme", "Ann Author", "ann@example.com", "acme.main")


def error_of(data, metadata=None) -> ManifestError:
    with pytest.raises(ManifestError) as exc:
        validate_manifest(data, plugin="acme", metadata=metadata)
    return exc.value


def test_a_valid_manifest_passes():
    assert validate_manifest(VALID, plugin="acme", metadata=META) == VALID


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"hook_specs": None}, "hook_specs", "hook_specs: missing; add it"),
        (
            {"hook_specs": ["lead_create"]},
            "hook_specs[0]",
            "hook_specs[0]: 'lead_create' is not allowed; use one of lead_created,",
        ),
        (
            {"permissions": ["read_all"]},
            "permissions[0]",
            "permissions[0]: 'read_all' is not allowed; use one of read_leads, read_bookings",
        ),
        (
            {"settings": [{"key": "c", "type": "colour"}]},
            "settings[0].type",
            "settings[0].type: 'colour' is not allowed; use one of text, textarea, number",
        ),
        (
            {"settings": [{"key": "mode", "type": "select"}]},
            "settings[0].options",
            "settings[0].options: missing; add it",
        ),
        (
            {"settings": [{"key": "Bad Key", "type": "text"}]},
            "settings[0].key",
            "settings[0].key: 'Bad Key' does not match",
        ),
        (
            {"settings": [{"key": "n", "type": "number", "default": "ten"}]},
            "settings[0].default",
            "settings[0].default: 'ten' is not a number",
        ),
        (
            {"settings": [{"key": "a", "type": "text"}, {"key": "a", "type": "url"}]},
            "settings[1].key",
            "settings[1].key: duplicate key 'a'",
        ),
        (
            {"settings": [{"key": "k", "type": "secret", "default": "x"}]},
            "settings[0].default",
            "a secret cannot have a default",
        ),
        ({"colour": "red"}, "(top level)", "Additional properties are not allowed ('colour'"),
    ],
)
def test_errors_name_the_plugin_and_the_field(change, field, text):
    data = {**VALID, **change}
    data = {k: v for k, v in data.items() if v is not None}
    error = error_of(data)
    assert error.plugin == "acme"
    assert error.field == field
    assert str(error).startswith("plugin 'acme': invalid manifest.json: ")
    assert text in str(error)


def test_descriptive_fields_must_agree_with_the_wheel_metadata():
    error = error_of({**VALID, "version": "1.3.0", "name": "acme"}, META)
    assert error.field == "version"
    assert "version: '1.3.0' disagrees with the wheel's metadata ('1.2.0')" in str(error)


def test_the_schema_lists_exactly_the_hooks_and_permissions_of_the_api():
    schema = json.loads(SCHEMA_PATH.read_text())
    assert tuple(schema["properties"]["hook_specs"]["items"]["enum"]) == HOOK_NAMES
    assert schema["properties"]["permissions"]["items"]["enum"] == list(PERMISSIONS)


def test_every_example_manifest_is_valid():
    from tests.plugin_projects import EXAMPLES

    manifests = sorted(EXAMPLES.glob("*/*/manifest.json"))
    assert len(manifests) == 3
    for path in manifests:
        validate_manifest(json.loads(path.read_text()), plugin=path.parent.name)
