"""The author kit: scaffold -> check -> build -> publish -> install -> the hook fires."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from plugin_registry.authoring.check import check_path, requirement_range
from plugin_registry.authoring.scaffold import scaffold
from plugin_registry.errors import RegistryError
from services_ai.plugins.hookspecs import HOOK_NAMES
from tests.conftest import SAI
from tests.plugin_projects import run_project_tests

pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A freshly scaffolded project with every hook, kept pristine for copying."""
    return scaffold("hello-plugin", list(HOOK_NAMES), tmp_path_factory.mktemp("template"))


@pytest.fixture
def project(template, tmp_path) -> Path:
    copy = tmp_path / "hello-plugin"
    shutil.copytree(template, copy)
    return copy


def problems(path: Path) -> list[str]:
    return [str(problem) for problem in check_path(path).problems]


def test_scaffold_writes_a_project_that_passes_check_and_its_own_tests(project):
    assert problems(project) == []
    files = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "hello_plugin/__init__.py",
        "hello_plugin/main.py",
        "hello_plugin/manifest.json",
        "hello_plugin/static/hello_plugin/hello_plugin.css",
        "hello_plugin/templates/hello_plugin/widget.html",
        "pyproject.toml",
        "tests/test_plugin.py",
    ]
    assert f'dependencies = ["{requirement_range()}"]' in (project / "pyproject.toml").read_text()
    manifest = json.loads((project / "hello_plugin" / "manifest.json").read_text())
    assert manifest["hook_specs"] == list(HOOK_NAMES)
    assert manifest["permissions"] == ["read_bookings", "read_leads"]
    # The generated tests run against a real host with the platform's pytest plugin.
    result = run_project_tests(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(HOOK_NAMES)} passed" in result.stdout


def test_scaffold_refuses_bad_names_unknown_hooks_and_existing_folders(tmp_path):
    with pytest.raises(RegistryError, match="'Hello_Plugin' is not a plugin name"):
        scaffold("Hello_Plugin", [], tmp_path)
    with pytest.raises(
        RegistryError, match="unknown hook 'lead_create' \\(did you mean 'lead_created'"
    ):
        scaffold("hello", ["lead_create"], tmp_path)
    scaffold("hello", [], tmp_path)
    with pytest.raises(RegistryError, match="already exists"):
        scaffold("hello", [], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hello"]  # no half-written folders


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def manifest_edit(project: Path, change) -> None:
    path = project / "hello_plugin" / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


MAIN = "hello_plugin/main.py"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda p: (p / "pyproject.toml").unlink(),
            "pyproject.toml: missing; create one (`services-ai plugin new` writes one)",
        ),
        (
            lambda p: edit(p / "pyproject.toml", "[project]", "[project"),
            "pyproject.toml: not valid TOML",
        ),
        (
            lambda p: edit(p / "pyproject.toml", "[project.entry-points.services_ai]", "[x]"),
            "pyproject.toml: no entry point in group 'services_ai'; declare exactly one: "
            '[project.entry-points.services_ai] hello-plugin = "your_plugin.main"',
        ),
        (
            lambda p: edit(
                p / "pyproject.toml", '"hello_plugin.main"', '"hello_plugin.main"\nb = "x.y"'
            ),
            "pyproject.toml: 2 entry points in group 'services_ai'",
        ),
        (
            lambda p: edit(p / "pyproject.toml", '"hello_plugin.main"', '"hello_plugin.hooks"'),
            "hello_plugin: the entry-point module 'hello_plugin.hooks' does not exist; create "
            "hello_plugin/hooks.py or fix the entry point",
        ),
        (
            lambda p: edit(p / "pyproject.toml", f'"{requirement_range()}"', '"requests>=2"'),
            "pyproject.toml: no services-ai requirement: the catalogue cannot tell which platforms "
            f'it runs on; add "{requirement_range()}" to the dependencies',
        ),
        (
            lambda p: edit(p / "pyproject.toml", f'"{requirement_range()}"', '"services-ai>=7"'),
            "pyproject.toml: requires services-ai>=7; this platform is 0.",
        ),
        (
            lambda p: edit(p / "pyproject.toml", 'version = "0.1.0"', 'version = "one"'),
            "pyproject.toml: version 'one' is not a PEP 440 version",
        ),
        (
            lambda p: (p / "hello_plugin" / "manifest.json").unlink(),
            "hello_plugin/manifest.json: missing; ship manifest.json in package 'hello_plugin'",
        ),
        (
            lambda p: (p / "hello_plugin" / "manifest.json").write_text("{"),
            "hello_plugin/manifest.json: not valid JSON",
        ),
        (
            lambda p: manifest_edit(p, lambda m: m["permissions"].append("delete_everything")),
            "hello_plugin/manifest.json: permissions[2]: 'delete_everything' is not allowed",
        ),
        (
            lambda p: manifest_edit(p, lambda m: m["hook_specs"].remove("booking_created")),
            "hello_plugin/manifest.json: hook_specs misses 'booking_created', which the module "
            "implements; add it",
        ),
        (
            lambda p: manifest_edit(p, lambda m: m["permissions"].remove("read_leads")),
            "hello_plugin/manifest.json: permissions lacks 'read_leads', without which "
            "lead_created is never called; add 'read_leads' to permissions",
        ),
        (
            lambda p: edit(p / MAIN, "def lead_created(", "def lead_create("),
            "hello_plugin/manifest.json: hook_specs lists 'lead_created', which the entry-point "
            "module does not implement; implement it with @hookimpl or remove it from hook_specs",
        ),
        (
            lambda p: edit(p / MAIN, "def lead_created(", "def lead_create("),
            "@hookimpl 'lead_create' is not a hook; rename it to 'lead_created'",
        ),
        (
            lambda p: edit(
                p / MAIN,
                "def booking_created(booking: BookingSnapshot)",
                "def booking_created(booking: BookingSnapshot, lead)",
            ),
            "booking_created(booking, lead): 'lead' is not an argument of the hook "
            "booking_created(booking); use only the hook's argument names (booking)",
        ),
        (
            lambda p: edit(p / MAIN, "import json", "import json\nimport not_installed_anywhere"),
            "importing 'hello_plugin.main' raised ModuleNotFoundError: No module named "
            "'not_installed_anywhere'",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 40 else None,
)
def test_each_check_failure_names_the_file_and_the_fix(project, mutate, expected):
    mutate(project)
    found = problems(project)
    assert any(expected in problem for problem in found), "\n".join(found)


def test_the_line_of_a_wrong_hook_is_named(project):
    edit(project / MAIN, "def booking_created(booking: BookingSnapshot)",
         "def booking_created(booking: BookingSnapshot, lead)")  # fmt: skip
    line = next(
        number
        for number, text in enumerate((project / MAIN).read_text().splitlines(), 1)
        if text.startswith("def booking_created(")
    )
    assert any(p.startswith(f"{MAIN}:{line - 1}: booking_created(") for p in problems(project))


def test_check_reads_wheels_too(project, tmp_path):
    from plugin_registry.authoring.build import build

    wheel = build(project, tmp_path / "dist")
    assert problems(wheel) == []
    broken = tmp_path / "broken.whl"
    broken.write_bytes(b"no zip")
    assert problems(broken) == ["broken.whl: broken.whl: not a wheel (not a zip archive); build "
                                "the project into a wheel"]  # fmt: skip
    assert problems(tmp_path / "nothing.txt") == [
        f"{tmp_path / 'nothing.txt'}: not a plugin project folder, a .whl file or a legacy plugin "
        ".zip; give one of those"
    ]


def test_scaffold_check_publish_promote_install_and_the_hook_fires(project, plugin_index, tmp_path):
    sai = SAI(tmp_path / "home", [], **plugin_index.env())
    sai("migrate", "--no-input", "-v0")
    edit(project / "pyproject.toml", 'name = "hello-plugin"', 'name = "hello-author"')
    edit(project / "pyproject.toml", 'hello-plugin = "hello_plugin.main"',
         'hello-author = "hello_plugin.main"')  # fmt: skip
    assert "hello-author 0.1.0: ok" in sai("plugin", "check", str(project)).stdout

    out = sai("plugin", "publish", str(project)).stdout
    assert "built hello_author-0.1.0-py3-none-any.whl" in out
    assert f"hello_author-0.1.0-py3-none-any.whl: uploaded ({plugin_index.url[:-6]}dev)" in out
    error = sai("plugins", "install", "hello-author", check=False).stderr
    assert "no plugin named 'hello-author'" in error  # only on dev until promoted
    sai("plugin", "promote", "hello-author==0.1.0")
    sai("plugins", "install", "hello-author")
    sai("plugins", "grant", "hello-author", "read_leads")
    sai("plugins", "enable", "hello-author")

    child = sai.python(
        """
import django, json
django.setup()
from plugin_registry.runtime import get_host
from services_ai.leads.models import Lead
from plugin_registry.registry.models import PluginData
lead = Lead.objects.create(name="Ada", email="ada@example.com")
get_host().call("lead_created", lead=lead.snapshot())
print(json.dumps({"lead": lead.pk, "data": dict(PluginData.objects.values_list("key", "value"))}))
""",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["data"] == {"installed": True, "last_lead_id": result["lead"]}


def test_publish_refuses_a_project_that_fails_its_check(project, plugin_index, tmp_path):
    sai = SAI(tmp_path / "home", [], **plugin_index.env())
    manifest_edit(project, lambda m: m["hook_specs"].remove("booking_created"))
    result = sai("plugin", "publish", str(project), check=False)
    assert result.returncode == 1
    assert "hook_specs misses 'booking_created'" in result.stderr
    assert re.search(r"1 problem\(s\); nothing was built or published", result.stderr)
    assert not list(project.glob("dist/*"))


def test_import_zip_converts_publishes_and_installs_a_legacy_plugin(plugin_index, tmp_path):
    from tests.test_legacy_zip import legacy_entries, make_zip

    sai = SAI(tmp_path / "home", [], **plugin_index.env())
    sai("migrate", "--no-input", "-v0")
    archive = make_zip(tmp_path / "legacy.zip", legacy_entries())
    out = sai("plugin", "import-zip", str(archive), "--out", str(tmp_path / "w"),
              "--publish", "stable").stdout  # fmt: skip
    assert "converted legacy.zip into" in out and "legacy_greeter-1.2.0-py3-none-any.whl" in out
    assert "legacy_greeter-1.2.0-py3-none-any.whl: uploaded" in out
    assert "+ legacy-greeter 1.2.0" in sai("plugins", "install", "legacy-greeter").stdout

    hostile = make_zip(tmp_path / "slip.zip", {**legacy_entries(), "../evil.py": "x = 1\n"})
    result = sai("plugin", "import-zip", str(hostile), "--out", str(tmp_path / "w2"), check=False)
    assert result.returncode == 1
    assert "slip.zip: entry '../evil.py' points outside the archive" in result.stderr
    assert not list((tmp_path / "w2").glob("*.whl"))


def test_a_dynamic_version_is_read_from_the_built_wheel(project):
    edit(project / "pyproject.toml", 'version = "0.1.0"', 'dynamic = ["version"]')
    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml").read_text()
        + '\n[tool.hatch.version]\npath = "hello_plugin/__init__.py"\n'
    )
    (project / "hello_plugin" / "__init__.py").write_text('__version__ = "0.3.0"\n')
    report = check_path(project)
    assert [str(p) for p in report.problems] == []
    assert (report.name, report.version) == ("hello-plugin", "0.3.0")


def test_earlier_manifest_spellings_pass_with_a_warning_naming_the_rename(project, tmp_path):
    def old_spellings(manifest):
        setting = manifest["settings"][0]
        setting["key"] = setting.pop("name")
        setting["help"] = setting.pop("description")

    manifest_edit(project, old_spellings)
    report = check_path(project)
    assert report.problems == []
    assert [str(w) for w in report.warnings] == [
        "hello_plugin/manifest.json: settings[0].key: is now called 'name'; rename it",
        "hello_plugin/manifest.json: settings[0].help: is now called 'description'; rename it",
    ]
    result = SAI(tmp_path / "home", [])("plugin", "check", str(project))
    assert "warning: hello_plugin/manifest.json: settings[0].key: is now called 'name'" in (
        result.stderr
    )
    assert "hello-plugin 0.1.0: ok" in result.stdout


def test_each_manifest_problem_is_counted_once_with_its_own_fix(project):
    manifest_edit(project, lambda m: m.update({"colour": "red", "size": 2}))
    found = problems(project)
    unknown = [p for p in found if "is not a manifest field" in p]
    assert [p.split(":")[1].strip() for p in unknown] == ["colour", "size"]
    assert all(p.count("; ") == 1 for p in unknown), unknown
