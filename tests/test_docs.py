"""The author documentation stays true: every hook documented and tested, examples verbatim."""

from __future__ import annotations

import inspect
import json
import re

import pytest

from plugin_registry.authoring.check import check_path
from services_ai.plugins import hookspecs
from services_ai.plugins.hookspecs import HOOK_NAMES
from tests.plugin_projects import REPO, run_project_tests

DOCS = REPO / "docs"
REFERENCE = DOCS / "plugin-api.md"
EXAMPLE = DOCS / "examples" / "hello-plugin"


def signature(hook: str) -> str:
    """``lead_created(lead: LeadSnapshot) -> None``, as the hook reference heads its section."""
    spec = inspect.signature(getattr(hookspecs, hook))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in spec.parameters.values())
    return f"{hook}({params}) -> {spec.return_annotation}"


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_has_a_reference_section_headed_by_its_signature(hook):
    headings = re.findall(r"^### `?(.+?)`?$", REFERENCE.read_text(), re.M)
    assert signature(hook) in headings, f"docs/plugin-api.md has no '### {signature(hook)}'"


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_has_a_test(hook):
    example_tests = (EXAMPLE / "tests" / "test_plugin.py").read_text()
    assert f"def test_{hook}(" in example_tests, f"the example plugin does not test {hook}"
    platform_tests = "".join(
        p.read_text() for p in (REPO / "tests").glob("*.py") if p.name != "test_docs.py"
    )
    assert re.search(rf'"{hook}"|def {hook}\(', platform_tests), f"no platform test uses {hook}"


def included_examples() -> list[tuple[str, str, str]]:
    """(markdown file, source path, code) for every block marked ``<!-- example: PATH -->``."""
    found = []
    for md in [*sorted(DOCS.glob("*.md")), REPO / "README.md"]:
        text = md.read_text()
        for path, code in re.findall(r"<!-- example: (\S+) -->\n```[a-z]*\n(.*?)```", text, re.S):
            found.append((md.name, path, code))
    return found


def test_documentation_includes_examples_from_tested_files():
    examples = included_examples()
    assert len(examples) >= len(HOOK_NAMES), "each hook section shows an example from a file"
    for md, path, code in examples:
        source = (REPO / path).read_text()
        assert code in source, f"{md}: the example from {path} no longer matches that file"


def test_the_manifest_schema_is_published_in_the_docs():
    published = json.loads((DOCS / "manifest.schema.json").read_text())
    shipped = json.loads(
        (REPO / "plugin_registry" / "registry" / "schema" / "manifest.schema.json").read_text()
    )
    assert published == shipped, (
        "copy plugin_registry/registry/schema/manifest.schema.json to docs/"
    )
    assert "manifest.schema.json" in REFERENCE.read_text()


@pytest.mark.subprocess
def test_the_documented_example_plugin_passes_check_and_its_tests():
    assert [str(p) for p in check_path(EXAMPLE).problems] == []
    result = run_project_tests(EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(HOOK_NAMES)} passed" in result.stdout


def test_the_documented_example_is_what_plugin_new_writes_today(tmp_path):
    from plugin_registry.authoring.scaffold import scaffold

    fresh = scaffold("hello-plugin", list(HOOK_NAMES), tmp_path)
    files = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    committed = sorted(
        p.relative_to(EXAMPLE)
        for p in EXAMPLE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and ".pytest_cache" not in p.parts
    )
    assert files == committed
    for name in files:
        assert (fresh / name).read_text() == (EXAMPLE / name).read_text(), (
            f"docs/examples/hello-plugin/{name} differs from `services-ai plugin new`: "
            "regenerate the example"
        )
