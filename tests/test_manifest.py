"""Manifest validation: errors name the plugin and the field, and say how to fix it."""

from __future__ import annotations

import json

import pytest

from plugin_registry.registry.manifest import SCHEMA_PATH, validate_manifest
from plugin_registry.registry.metadata import DistMetadata
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
            {"settings": [{"name": "c", "type": "colour"}]},
            "settings[0].type",
            "settings[0].type: 'colour' is not allowed; use one of text, textarea, number",
        ),
        (
            {"settings": [{"name": "mode", "type": "select"}]},
            "settings[0].options",
            "settings[0].options: missing; add it",
        ),
        (
            {"settings": [{"name": "Bad Key", "type": "text"}]},
            "settings[0].name",
            "settings[0].name: 'Bad Key' does not match",
        ),
        (
            {"settings": [{"name": "n", "type": "number", "default": "ten"}]},
            "settings[0].default",
            "settings[0].default: 'ten' is not a number",
        ),
        (
            {"settings": [{"name": "a", "type": "text"}, {"name": "a", "type": "url"}]},
            "settings[1].name",
            "settings[1].name: duplicate name 'a'; rename one",
        ),
        (
            {"settings": [{"name": "k", "type": "secret", "default": "x"}]},
            "settings[0].default",
            "a secret cannot have a default",
        ),
        ({"colour": "red"}, "colour", "colour: is not a manifest field; remove it or use one of"),
        ({"is_pluggy_plugin": False}, "is_pluggy_plugin", "is_pluggy_plugin: must be True"),
        ({"entry_point": "../main.py"}, "entry_point", "entry_point: '../main.py' does not match"),
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


#: The manifest of the specification (shared/SPEC.txt, section 2.1), verbatim.
SPEC_MANIFEST = """
{
  "name": "example-plugin",
  "version": "1.0.0",
  "description": "Example plugin for Services AI",
  "author": "Developer Name",
  "email": "dev@example.com",
  "is_pluggy_plugin": true,
  "entry_point": "main.py",
  "hook_specs": [
    "lead_created",
    "booking_created",
    "dashboard_widget"
  ],
  "permissions": [
    "read_leads",
    "read_bookings",
    "create_bookings"
  ],
  "settings": [
    {
      "name": "api_key",
      "type": "text",
      "label": "API Key",
      "required": true,
      "description": "Your API key for the service"
    },
    {
      "name": "auto_sync",
      "type": "checkbox",
      "label": "Auto Sync",
      "default": true,
      "description": "Automatically sync data"
    }
  ]
}
"""
SPEC_META = DistMetadata(
    "example-plugin", "1.0.0", "Example", "Developer Name", "dev@example.com", "example_plugin.main"
)


def test_the_specification_manifest_is_valid_as_written():
    data = json.loads(SPEC_MANIFEST)
    assert validate_manifest(data, plugin="example-plugin", metadata=SPEC_META) == data


@pytest.mark.parametrize(
    ("entry_point", "wheel", "agrees"),
    [
        ("main.py", "example_plugin.main", True),
        ("main", "example_plugin.main", True),
        (".main", "example_plugin.main", True),
        ("example_plugin.main", "example_plugin.main", True),
        ("jobs/run.py", "example_plugin.jobs.run", True),
        ("example_plugin.main:plugin", "example_plugin.main:plugin", True),
        ("main.py", "example_plugin.hooks", False),
        ("other.main", "example_plugin.main", False),
        ("example_plugin.main:other", "example_plugin.main:plugin", False),
    ],
)
def test_entry_point_names_a_file_or_module_of_the_package(entry_point, wheel, agrees):
    from plugin_registry.registry.manifest import entry_point_agrees

    assert entry_point_agrees(entry_point, wheel) is agrees


def test_an_entry_point_that_disagrees_with_the_wheel_is_refused_with_the_fix():
    data = {**json.loads(SPEC_MANIFEST), "entry_point": "hooks.py"}
    error = error_of(data, SPEC_META)
    assert error.field == "entry_point"
    assert (
        "entry_point: 'hooks.py' does not name the wheel's 'example_plugin.main' entry point; "
        "name its module file (e.g. 'main.py') or module path, or remove the field"
    ) in str(error)


def test_earlier_spellings_are_aliases_normalised_in_one_place():
    from plugin_registry.registry.manifest import normalise_manifest

    old = {
        "hook_specs": ["lead_created"],
        "permissions": ["read_leads", "write_bookings"],
        "settings": [{"key": "api_key", "type": "secret", "help": "The key."}],
    }
    normalised, renames = normalise_manifest(old)
    assert normalised == {
        "hook_specs": ["lead_created"],
        "permissions": ["read_leads", "create_bookings"],
        "settings": [{"name": "api_key", "type": "secret", "description": "The key."}],
    }
    assert list(map(str, renames)) == [
        "permissions[1]: 'write_bookings' is now called 'create_bookings'; rename it",
        "settings[0].key: is now called 'name'; rename it",
        "settings[0].help: is now called 'description'; rename it",
    ]
    assert old["settings"][0]["key"] == "api_key"  # the input is left as it was
    assert validate_manifest(old, plugin="acme") == normalised


def test_each_schema_problem_is_counted_once_with_its_own_fix():
    data = {"hook_specs": ["lead_created"], "colour": 1, "size": 2}
    error = error_of(data)
    fields = "author, description, email, entry_point, hook_specs, is_pluggy_plugin, name"
    unknown = f"remove it or use one of {fields}, permissions, settings, version"
    assert sorted((p.field, p.message, p.fix) for p in error.problems) == [
        ("colour", "is not a manifest field", unknown),
        ("permissions", "missing", "add it"),
        ("settings", "missing", "add it"),
        ("size", "is not a manifest field", unknown),
    ]
