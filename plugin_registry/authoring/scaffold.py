"""``services-ai plugin new``: a ready plugin project, with every chosen hook and its test."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import tempfile
from pathlib import Path

from plugin_registry.authoring.check import requirement_range
from plugin_registry.errors import RegistryError
from plugin_registry.host.manager import closest_hook
from plugin_registry.registry.manifest import MANIFEST_NAME
from services_ai.plugins import hookspecs
from services_ai.plugins.hookspecs import HOOK_NAMES
from services_ai.plugins.markers import ENTRY_POINT_GROUP
from services_ai.plugins.permissions import HOOK_PERMISSIONS

NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


HOOK_BODIES = {
    "lead_created": 'api.set_data("last_lead_id", lead["id"])',
    "booking_created": 'api.set_data("last_booking_id", booking["id"])',
    "booking_updated": (
        'api.set_data("last_status_change", [previous_state["status"], booking["status"]])'
    ),
    "dashboard_widget": (
        'return {\n        "title": "{title}",\n'
        '        "html": api.render_template("{package}/widget.html", {"user": context["user"]}),\n'
        '        "refresh_interval": 60,\n    }'
    ),
    "plugin_installed": 'api.set_data("installed", True)',
    "plugin_uninstalled": 'api.delete_data("installed")',
    "data_export": (
        'if data_type != "leads":\n        return None\n'
        "    leads = api.list_leads(filters)\n"
        '    return {\n        "format": "{name}-json",\n        "filename": "leads.json",\n'
        '        "content_type": "application/json",\n'
        '        "content": json.dumps(leads),\n    }'
    ),
    "settings_page": 'return "<p>{title} has no extra settings page yet.</p>"',
}

TEST_BODIES = {
    "lead_created": (
        'plugin.call("lead_created", lead=plugin.make_lead(name="Ada"))\n'
        '    assert plugin.get_data("last_lead_id") is not None'
    ),
    "booking_created": (
        "booking = plugin.make_booking()\n"
        '    plugin.call("booking_created", booking=booking)\n'
        '    assert plugin.get_data("last_booking_id") == booking["id"]'
    ),
    "booking_updated": (
        'booking = plugin.make_booking(status="confirmed")\n'
        '    before = dict(booking, status="pending")\n'
        '    plugin.call("booking_updated", booking=booking, previous_state=before)\n'
        '    assert plugin.get_data("last_status_change") == ["pending", "confirmed"]'
    ),
    "dashboard_widget": (
        'widget = plugin.call("dashboard_widget", context=plugin.widget_context())\n'
        '    assert widget["title"] == "{title}" and "tester" in widget["html"]'
    ),
    "plugin_installed": (
        'plugin.call("plugin_installed")\n    assert plugin.get_data("installed") is True'
    ),
    "plugin_uninstalled": (
        'plugin.call("plugin_installed")\n    plugin.call("plugin_uninstalled")\n'
        '    assert plugin.get_data("installed") is None'
    ),
    "data_export": (
        'plugin.make_lead(name="Ada")\n'
        '    export = plugin.call("data_export", data_type="leads", filters={})\n'
        '    assert export["format"] == "{name}-json" and "Ada" in export["content"]'
    ),
    "settings_page": ('assert "{title}" in plugin.call("settings_page", plugin_id="{name}")'),
}
TEST_GRANTS = {"data_export": "read_leads"}


def _signature(hook: str) -> str:
    spec = getattr(hookspecs, hook)
    parameters = inspect.signature(spec).parameters.values()
    params = ", ".join(f"{p.name}: {_annotation(p.annotation)}" for p in parameters)
    returns = _annotation(inspect.signature(spec).return_annotation)
    return f"def {hook}({params}) -> {returns}:"


def _annotation(value: object) -> str:
    return value if isinstance(value, str) else getattr(value, "__name__", str(value))


def scaffold(name: str, hooks: list[str], directory: Path) -> Path:
    """Write a ready plugin project ``directory/NAME``; return its folder."""
    name = name.strip()
    if not NAME_RE.match(name):
        raise RegistryError(
            f"{name!r} is not a plugin name: use lower-case letters, digits and single dashes, "
            "starting with a letter (e.g. lead-notifier)"
        )
    unknown = [hook for hook in hooks if hook not in HOOK_NAMES]
    if unknown:
        close = closest_hook(unknown[0])
        hint = f" (did you mean {close!r}?)" if close else ""
        raise RegistryError(f"unknown hook {unknown[0]!r}{hint}; hooks: {', '.join(HOOK_NAMES)}")
    hooks = [hook for hook in HOOK_NAMES if hook in hooks] or ["lead_created"]
    project = directory / name
    if project.exists():
        raise RegistryError(f"{project} already exists; choose another name or folder")
    package = name.replace("-", "_")
    title = name.replace("-", " ").title()
    permissions = sorted({HOOK_PERMISSIONS[h] for h in hooks if h in HOOK_PERMISSIONS}
                         | ({"read_leads"} if "data_export" in hooks else set()))  # fmt: skip
    fill = {"name": name, "package": package, "title": title}
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=directory))
    try:
        pkg = tmp / package
        (pkg / "templates" / package).mkdir(parents=True)
        (pkg / "static" / package).mkdir(parents=True)
        (tmp / "tests").mkdir()
        (tmp / "pyproject.toml").write_text(_pyproject(name, package, title))
        (tmp / "README.md").write_text(_readme(name, package, title, hooks))
        (pkg / "__init__.py").write_text(f'"""The {title} plugin for Services AI."""\n')
        (pkg / "main.py").write_text(_main_py(hooks, fill))
        manifest = {
            "description": f"{title}: a Services AI plugin.",
            "hook_specs": hooks,
            "permissions": permissions,
            "settings": [
                {
                    "name": "greeting",
                    "type": "text",
                    "label": "Greeting",
                    "description": "Shown on the plugin's widget.",
                    "required": False,
                    "default": "Hello",
                }
            ],
        }
        (pkg / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        (pkg / "templates" / package / "widget.html").write_text(
            '<p class="greeting">{{ user }}, welcome to ' + title + ".</p>\n"
        )
        (pkg / "static" / package / f"{package}.css").write_text(".greeting { margin: 0; }\n")
        (tmp / "tests" / "test_plugin.py").write_text(_test_py(hooks, fill, permissions))
        tmp.rename(project)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return project


def _pyproject(name: str, package: str, title: str) -> str:
    return f"""\
[build-system]
requires = ["hatchling>=1.26"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "0.1.0"
description = "{title}: a Services AI plugin."
readme = "README.md"
requires-python = ">=3.11"
authors = [{{ name = "Your Name", email = "you@example.com" }}]
dependencies = ["{requirement_range()}"]

[project.entry-points.{ENTRY_POINT_GROUP}]
{name} = "{package}.main"

[tool.hatch.build.targets.wheel]
packages = ["{package}"]

[tool.pytest.ini_options]
DJANGO_SETTINGS_MODULE = "services_ai.settings"
addopts = "-p services_ai.testing.pytest_plugin"
testpaths = ["tests"]
"""


def _main_py(hooks: list[str], fill: dict[str, str]) -> str:
    imports = ["api", "hookimpl"]
    types = sorted(
        {
            _annotation(p.annotation)
            for hook in hooks
            for p in inspect.signature(getattr(hookspecs, hook)).parameters.values()
        }
        | {
            _annotation(inspect.signature(getattr(hookspecs, hook)).return_annotation)
            for hook in hooks
        }
    )
    types = [t.replace(" | None", "") for t in types]
    types = sorted({t for t in types if t[0].isupper() and t not in ("None",)})
    lines = [f'"""Hooks of the {fill["title"]} plugin."""', ""]
    lines += ["from __future__ import annotations", ""]
    if "data_export" in hooks:
        lines += ["import json", ""]
    lines.append(f"from services_ai.plugins import {', '.join(sorted(imports))}")
    if types:
        lines.append(f"from services_ai.plugins.types import {', '.join(types)}")
    for hook in hooks:
        doc = (inspect.getdoc(getattr(hookspecs, hook)) or "").splitlines()[0]
        body = HOOK_BODIES[hook]
        for key, value in fill.items():
            body = body.replace("{" + key + "}", value)
        lines += ["", "", "@hookimpl", _signature(hook), f'    """{doc}"""', f"    {body}"]
    return "\n".join(lines) + "\n"


def _test_py(hooks: list[str], fill: dict[str, str], permissions: list[str]) -> str:
    lines = [
        f'"""Tests of the {fill["title"]} plugin against a real plugin host."""',
        "",
        "import pytest",
        "",
        f"from {fill['package']} import main",
        "",
        "",
        "@pytest.fixture",
        "def plugin(services_ai_plugin):",
        f'    return services_ai_plugin(main, "{fill["name"]}", grants={json.dumps(permissions)})',
    ]
    for hook in hooks:
        body = TEST_BODIES[hook]
        for key, value in fill.items():
            body = body.replace("{" + key + "}", value)
        lines += ["", "", f"def test_{hook}(plugin):", f"    {body}"]
    return "\n".join(lines) + "\n"


def _readme(name: str, package: str, title: str, hooks: list[str]) -> str:
    return f"""\
# {title}

A Services AI plugin. Hooks: {", ".join(f"`{h}`" for h in hooks)}.

    services-ai plugin check .          # entry point, manifest, hooks, requirement
    python -m pytest                    # the tests in tests/, against a real plugin host
    services-ai plugin publish .        # check, build and upload to the dev index
    services-ai plugin promote {name}==0.1.0   # once tried: copy it to the stable index
    services-ai plugins install {name}  # what admins do: install from the stable index

The code is in `{package}/main.py`, what the plugin asks for in `{package}/manifest.json`,
templates in `{package}/templates/{package}/` and static files in `{package}/static/{package}/`.
"""
