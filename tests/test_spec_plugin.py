"""The specification's own example plugin (shared/SPEC.txt, sections 2 and 2.1-2.2), verbatim.

Built as a wheel (a project in the specification's folder layout) and as a legacy ZIP, each is
checked, published, installed, configured, granted and enabled, and a new lead fires its
``lead_created``.
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from plugin_registry.authoring.check import requirement_range
from tests.conftest import SAI, running_index
from tests.test_manifest import SPEC_MANIFEST

#: The specification's main.py (section 2.2), verbatim.
SPEC_MAIN_PY = '''\
from services_ai.plugins import hookimpl

@hookimpl
def lead_created(lead):
    """Hook called when a new lead is created"""
    # Process the lead
    return {"status": "processed"}

@hookimpl
def booking_created(booking):
    """Hook called when a new booking is created"""
    # Process the booking
    return {"status": "processed"}

@hookimpl
def dashboard_widget(context):
    """Hook called when dashboard widgets are rendered"""
    # Return HTML content for the widget
    return {
        "html": "<div class='widget'>Widget Content</div>",
        "title": "Example Widget",
        "refresh_interval": 60  # seconds
    }
'''

PACKAGE_FILES = {
    "__init__.py": "",
    "main.py": SPEC_MAIN_PY,
    "manifest.json": SPEC_MANIFEST,
    "static/widget.css": ".widget { margin: 0; }\n",
    "templates/widget.html": "<div class='widget'>{{ content }}</div>\n",
}


def write_package(root: Path) -> Path:
    """The specification's layout: plugin_name/ with __init__, main, manifest, static, templates."""
    package = root / "example_plugin"
    for name, text in PACKAGE_FILES.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    return package


def write_project(root: Path) -> Path:
    project = root / "example-plugin"
    write_package(project)
    (project / "pyproject.toml").write_text(
        f"""\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "example-plugin"
version = "1.0.0"
description = "Example plugin for Services AI"
authors = [{{ name = "Developer Name", email = "dev@example.com" }}]
dependencies = ["{requirement_range()}"]

[project.entry-points.services_ai]
example-plugin = "example_plugin.main"
"""
    )
    return project


def write_zip(root: Path) -> Path:
    package = write_package(root / "src")
    archive = root / "example-plugin.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(package.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(package.parent).as_posix())
    return archive


FIRE = """
import django, json
django.setup()
from django.db import transaction
from plugin_registry.runtime import get_host
from services_ai.leads.models import Lead
from services_ai.events.models import Delivery
from services_ai.testing.worker import run_worker_batch
with transaction.atomic():
    lead = Lead.objects.create(name="Ada", email="ada@example.com")
run_worker_batch()
deliveries = list(Delivery.objects.filter(plugin_name="example-plugin").values_list("hook", "status"))
called = get_host().call("lead_created", lead=lead.snapshot())
print(json.dumps({"deliveries": deliveries, "called": called}))
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("form", ["wheel", "zip"])
def test_the_specification_example_checks_publishes_installs_and_fires(form, tmp_path):
    with running_index(tmp_path / "index-home") as index:
        sai = SAI(tmp_path / "home", [], **index.env())
        sai("migrate", "--no-input", "-v0")
        if form == "wheel":
            source = write_project(tmp_path)
            assert "example-plugin 1.0.0: ok" in sai("plugin", "check", str(source)).stdout
            published = sai("plugin", "publish", str(source)).stdout
            assert "example_plugin-1.0.0-py2.py3-none-any.whl: uploaded" in published
            sai("plugin", "promote", "example-plugin==1.0.0")
        else:
            source = write_zip(tmp_path)
            assert "example-plugin 1.0.0: ok" in sai("plugin", "check", str(source)).stdout
            published = sai("plugin", "import-zip", str(source), "--publish", "stable").stdout
            assert "converted example-plugin.zip into example_plugin-1.0.0" in published
            assert "example_plugin-1.0.0-py3-none-any.whl: uploaded" in published

        assert "+ example-plugin 1.0.0" in sai("plugins", "install", "example-plugin").stdout
        refused = sai("plugins", "enable", "example-plugin", check=False)
        assert "required setting(s) not set: api_key" in refused.stderr
        sai("plugins", "configure", "example-plugin", "api_key=k-123", "auto_sync=no")
        for permission in ("read_leads", "read_bookings", "create_bookings"):
            sai("plugins", "grant", "example-plugin", permission)
        sai("plugins", "enable", "example-plugin")
        listed = json.loads(sai("plugins", "list", "--json").stdout)
        (plugin,) = [p for p in listed if p["name"] == "example-plugin"]
        assert plugin["enabled"] is True

        child = sai.python(FIRE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        assert result["deliveries"] == [["lead_created", "succeeded"]]
        assert result["called"] == [["example-plugin", {"status": "processed"}]]


@pytest.mark.subprocess
def test_an_invalid_wheel_never_reaches_the_index(tmp_path):
    from services_ai.testing.wheels import build_wheel

    project = write_project(tmp_path)
    manifest = json.loads(SPEC_MANIFEST)
    manifest["permissions"].append("delete_everything")
    (project / "example_plugin" / "manifest.json").write_text(json.dumps(manifest))
    wheel = build_wheel(project, tmp_path / "dist")
    with running_index(tmp_path / "index-home") as index:
        sai = index.runner
        for command in (("index", "publish"), ("plugin", "publish", "--index", "stable")):
            result = sai(*command, str(wheel), check=False)
            assert result.returncode == 1, result.stdout
            assert (
                "manifest.json: permissions[3]: 'delete_everything' is not allowed; use one of "
                "read_leads, read_bookings, create_bookings"
            ) in result.stderr
        status = sai("index", "status").stdout
        assert f"{index.url}: 0 project(s)" in status
        assert f"{index.url[: -len('stable')]}dev: 0 project(s)" in status


def test_the_author_fixture_refuses_what_the_platform_refuses(services_ai_plugin, tmp_path):
    import importlib
    import sys

    write_package(tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        main = importlib.import_module("example_plugin.main")
        grants = ["read_leads", "read_bookings", "create_bookings"]
        with pytest.raises(AssertionError) as refused:
            services_ai_plugin(main, "example-plugin", grants=grants)
        assert str(refused.value) == (
            "cannot enable 'example-plugin': required setting(s) not set: api_key; set them with "
            "`services-ai plugins configure example-plugin api_key=VALUE`"
        )
        plugin = services_ai_plugin(main, "example-plugin", grants=grants, api_key="k-1")
        assert plugin.call("lead_created", lead=plugin.make_lead()) == {"status": "processed"}
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == "example_plugin"]:
            del sys.modules[name]


def test_a_console_upload_is_named_by_its_own_file_name_in_every_message(db, tmp_path):
    from django.contrib.auth.models import User
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    User.objects.create_superuser("admin", "a@example.com", "pw")
    client = Client()
    client.login(username="admin", password="pw")
    package = write_package(tmp_path / "src")
    (package / "manifest.json").unlink()
    archive = tmp_path / "my-crm-plugin.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(package.rglob("*")):
            out.write(path, path.relative_to(package.parent).as_posix())
    upload = SimpleUploadedFile("my-crm-plugin.zip", archive.read_bytes())
    page = client.post("/console/upload/", {"wheel": upload})
    assert page.status_code == 400
    errors = page.context["form"].errors["wheel"]
    assert errors == [
        "my-crm-plugin.zip: missing example_plugin/manifest.json; add the legacy manifest to the "
        "plugin package folder (one extra wrapping folder is accepted, no more)"
    ]
    assert "upload.zip" not in page.content.decode()
