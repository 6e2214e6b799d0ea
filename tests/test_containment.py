"""Hostile and careless wheels: refused before they reach an index, never run where they could hurt.

Each test builds a small wheel with the platform's own wheel writer and shows one way a plugin
could hurt the platform or other plugins, and that the platform refuses it with a clear problem.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from plugin_registry.authoring import check
from plugin_registry.authoring.check import check_path
from plugin_registry.distribution.catalogue import compatibility
from plugin_registry.distribution.wheelfile import wheel_contents, wheel_filename, write_wheel
from services_ai import conf

MANIFEST = {"hook_specs": ["lead_created"], "permissions": ["read_leads"], "settings": []}
MAIN = "from services_ai.plugins import hookimpl\n\n@hookimpl\ndef lead_created(lead):\n    pass\n"


def make_wheel(
    folder: Path,
    name: str = "hostile",
    version: str = "1.0.0",
    main: str = MAIN,
    extra: dict[str, bytes] | None = None,
) -> Path:
    package = name.replace("-", "_")
    files = [
        (f"{package}/__init__.py", b""),
        (f"{package}/main.py", main.encode()),
        (f"{package}/manifest.json", json.dumps(MANIFEST).encode()),
        *sorted((extra or {}).items()),
    ]
    metadata = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        "Requires-Dist: services-ai>=0.1,<1\n"
    )
    members = wheel_contents(
        name,
        version,
        files,
        metadata=metadata,
        generator="tests",
        entry_points=f"[services_ai]\n{name} = {package}.main\n",
    )
    return write_wheel(folder / wheel_filename(name, version), members)


def problems(path: Path) -> list[str]:
    return [str(problem) for problem in check_path(path).problems]


def test_a_wheel_that_ships_a_pth_file_is_refused(tmp_path):
    wheel = make_wheel(tmp_path, extra={"hostile.pth": b"import os; os.system('true')\n"})
    assert problems(wheel) == [
        f"{wheel.name}: hostile.pth: a .pth file: Python runs its import lines at every start of "
        "every process, enabled or not; remove it from the wheel (a plugin needs no start-up hook)"
    ]


def test_plugin_folders_join_sys_path_without_running_their_pth_files(tmp_path):
    marker = tmp_path / "ran"
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "evil.pth").write_text(f"import pathlib; pathlib.Path({str(marker)!r}).touch()\n")
    try:
        conf._append_site(folder)
        assert str(folder) in sys.path
        assert not marker.exists()
    finally:
        while str(folder) in sys.path:
            sys.path.remove(str(folder))


def test_the_code_check_sees_none_of_the_platforms_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://admin:hunter2@db.internal/production")
    monkeypatch.setenv("SERVICES_AI_SECRET_KEY", "production-secret")
    spy = (
        "import os\n"
        "raise RuntimeError(repr((os.environ.get('DATABASE_URL'), "
        "os.environ.get('SERVICES_AI_SECRET_KEY'), 'plugin-check-home-' in "
        "os.environ.get('SERVICES_AI_HOME', ''))))\n"
    )
    found = problems(make_wheel(tmp_path, main=spy))
    assert len(found) == 1, found
    assert "raised RuntimeError: (None, None, True)" in found[0]
    assert "hunter2" not in found[0] and "production-secret" not in found[0]


def test_an_import_that_hangs_is_stopped_and_leaves_no_home_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(check, "CHECK_TIMEOUT", 2)
    # A temporary folder of this test's own: other test runs on the machine make homes too.
    own_tmp = tmp_path / "tmp"
    own_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(own_tmp))
    homes = set(Path(tempfile.gettempdir()).glob("plugin-check-home-*"))
    wheel = make_wheel(tmp_path, main="import time\ntime.sleep(60)\n" + MAIN)
    assert problems(wheel) == [
        f"{wheel.name}: hostile/main.py: importing the plugin's code failed: the child process "
        "did not finish within 2 s and was stopped; make the module import quickly and without "
        "side effects (no work at import time)"
    ]
    assert set(Path(tempfile.gettempdir()).glob("plugin-check-home-*")) == homes == set()


def test_a_wheel_bomb_is_refused_before_it_is_extracted(tmp_path):
    wheel = make_wheel(tmp_path)
    with zipfile.ZipFile(wheel, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("hostile/padding.bin", b"\0" * (8 * 1024 * 1024))
    (found,) = problems(wheel)
    assert found.startswith(f"{wheel.name}: entry 'hostile/padding.bin' expands ")
    assert "the limit is 100:1 (ZipLimits.max_ratio): refusing a likely ZIP bomb" in found


@pytest.mark.parametrize("name", ["django", "pluggy", "services-ai"])
def test_a_plugin_named_like_a_package_of_the_platform_is_refused(tmp_path, name):
    wheel = make_wheel(tmp_path, name=name, version="99.0.0")
    assert problems(wheel) == [
        f"{wheel.name} (METADATA): the name {name!r} is a package of the platform itself; a "
        "plugin can never replace it; choose another distribution name"
    ]
    compatible, why, _ = compatibility(["services-ai>=0.1"], "", name)
    assert (compatible, why) == (
        False,
        f"{name!r} is a package of the platform itself, never a plugin",
    )


@pytest.mark.parametrize(
    "extra", ["sitecustomize.py", "hostile-1.0.0.data/scripts/run", "other_folder/notes.txt"]
)
def test_files_outside_the_plugins_packages_are_refused(tmp_path, extra):
    wheel = make_wheel(tmp_path, extra={extra: b"print('hello')\n"})
    assert problems(wheel) == [
        f"{wheel.name}: {extra}: lies outside the plugin's packages and its .dist-info; a plugin "
        "installs nothing else (no top-level modules, scripts or data files); move it into the "
        "plugin's package folder"
    ]


def test_files_of_the_package_in_purelib_data_are_accepted(tmp_path):
    wheel = make_wheel(tmp_path, extra={"hostile-1.0.0.data/purelib/hostile/extra.py": b"X = 1\n"})
    assert problems(wheel) == []


def test_a_generation_with_a_pth_file_is_refused_at_install(tmp_path, monkeypatch):
    """A wheel that reached the index another way (twine) still never goes live."""
    from plugin_registry.distribution.envcheck import check_generation

    generation = tmp_path / "0001"
    site = conf.site_packages(generation)
    dist_info = site / "hostile-1.0.0.dist-info"
    dist_info.mkdir(parents=True)
    (site / "hostile.pth").write_text("import os\n")
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: hostile\nVersion: 1.0.0\n")
    (dist_info / "RECORD").write_text("hostile.pth,,\nhostile-1.0.0.dist-info/METADATA,,\n")
    loaded = conf.loaded_generation()
    try:
        result = check_generation(generation)
    finally:
        conf.use_generation(loaded)
    assert result["problems"] == [
        "hostile 1.0.0 ships hostile.pth, a .pth file Python would run at every start of every "
        "process; it is refused (remove it from the wheel)"
    ]


def test_the_code_check_runs_under_resource_limits(tmp_path, monkeypatch):
    from plugin_registry.distribution import uv

    monkeypatch.setitem(uv.CHILD_LIMITS, "file_size", 1024 * 1024)
    writer = (
        "import os, tempfile\n"
        "with open(os.path.join(tempfile.gettempdir(), 'plugin-check-big'), 'wb') as out:\n"
        "    out.write(b'x' * (4 * 1024 * 1024))\n"
    )
    (found,) = problems(make_wheel(tmp_path, main=writer + MAIN))
    assert (
        "hostile/main.py:3: importing 'hostile.main' raised OSError: [Errno 27] File too large"
        in (found)
    )
    leftover = Path(tempfile.gettempdir()) / "plugin-check-big"
    assert not leftover.exists() or leftover.stat().st_size <= 1024 * 1024
    leftover.unlink(missing_ok=True)


def test_a_nul_byte_in_a_plugin_static_path_is_not_found(admin_client):
    from plugin_registry.registry.models import Plugin

    Plugin.objects.create(
        name="lead-scorer",
        version="1.1.0",
        entry_point="lead_scorer.main",
        installed=True,
        enabled=True,
    )
    response = admin_client.get("/plugin-static/lead-scorer/a%00b.css")
    assert response.status_code == 404


def test_the_sqlite_database_is_readable_by_its_owner_only(db, tmp_path):
    import sqlite3
    from types import SimpleNamespace

    from services_ai.apps import private_sqlite_files

    path = tmp_path / "services_ai.sqlite3"
    sqlite3.connect(path).close()
    path.chmod(0o644)
    (tmp_path / "services_ai.sqlite3-wal").write_bytes(b"")
    (tmp_path / "services_ai.sqlite3-wal").chmod(0o644)
    private_sqlite_files(None, SimpleNamespace(vendor="sqlite", settings_dict={"NAME": str(path)}))
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "services_ai.sqlite3-wal").stat().st_mode & 0o777 == 0o600


def test_a_new_platform_database_is_created_private(tmp_path):
    import subprocess

    home = tmp_path / "home"
    env = {
        **os.environ,
        "SERVICES_AI_HOME": str(home),
        "DJANGO_SETTINGS_MODULE": "services_ai.settings",
    }
    env.pop("DATABASE_URL", None)
    subprocess.run(
        [str(Path(sys.executable).parent / "services-ai"), "migrate", "-v0"],
        env=env,
        check=True,
        timeout=120,
    )
    assert (home / "services_ai.sqlite3").stat().st_mode & 0o777 == 0o600
