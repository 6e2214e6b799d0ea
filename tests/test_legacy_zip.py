"""Legacy plugin ZIPs become proper wheels; hostile or broken archives are refused, writing nothing."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import stat
import struct
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest

from plugin_registry.authoring.legacy_zip import LegacyZipError, ZipLimits, convert_legacy_zip
from plugin_registry.distribution.catalogue import inspect_wheel
from plugin_registry.errors import RegistryError
from services_ai.testing.wheels import install_wheels

REPO = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).parent / "uv"
PACKAGE = "legacy_greeter"
WHEEL = "legacy_greeter-1.2.0-py3-none-any.whl"
MAIN_PY = """\
from services_ai.plugins import hookimpl

GREETING = "hello"


@hookimpl
def lead_created(lead):
    return None
"""
HELPERS_PY = "def shout(text):\n    return text.upper()\n"
LEGACY_MANIFEST = {
    "name": "legacy-greeter",
    "version": "1.2.0",
    "author": "Ann Author",
    "email": "ann@example.com",
    "entry_point": "main",
    "description": "Greets every new lead.",
    "hook_specs": ["lead_created"],
    "permissions": ["read_leads"],
    "settings": [{"name": "greeting", "type": "text", "label": "Greeting", "default": "Hi"}],
}


def legacy_entries(prefix: str = f"{PACKAGE}/", **manifest_changes) -> dict[str, bytes | str]:
    manifest = {**LEGACY_MANIFEST, **manifest_changes}
    manifest = {key: value for key, value in manifest.items() if value is not None}
    return {
        f"{prefix}__init__.py": "",
        f"{prefix}main.py": MAIN_PY,
        f"{prefix}helpers.py": HELPERS_PY,
        f"{prefix}manifest.json": json.dumps(manifest, indent=2),
        f"{prefix}static/css/greeter.css": "body { color: teal; }\n",
        f"{prefix}templates/{PACKAGE}/widget.html": "<p>{{ greeting }}</p>\n",
    }


def make_zip(path: Path, entries, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """Write ``entries`` (a dict or (name | ZipInfo, content) pairs) into a ZIP at ``path``."""
    items = entries.items() if isinstance(entries, dict) else entries
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", compression) as archive:
        warnings.simplefilter("ignore")  # duplicate names, on purpose
        for name, content in items:
            archive.writestr(name, content)
    return path


@pytest.fixture
def outdir(tmp_path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


def refused(zip_path: Path, outdir: Path, limits: ZipLimits | None = None) -> str:
    """Convert, expect a refusal, check nothing was written; return the message."""
    with pytest.raises(LegacyZipError) as exc:
        if limits is None:
            convert_legacy_zip(zip_path, outdir)
        else:
            convert_legacy_zip(zip_path, outdir, limits=limits)
    assert list(outdir.iterdir()) == []
    message = str(exc.value)
    assert message.startswith(f"{zip_path.name}: ")
    return message


def patch_central(path: Path, name: str, offset: int, fmt: str, value: int) -> None:
    """Overwrite one field of ``name``'s central directory record (headers that lie)."""
    data = bytearray(path.read_bytes())
    start = 0
    while (start := data.find(b"PK\x01\x02", start)) >= 0:
        (name_length,) = struct.unpack_from("<H", data, start + 28)
        if data[start + 46 : start + 46 + name_length].decode() == name:
            struct.pack_into(fmt, data, start + offset, value)
            path.write_bytes(bytes(data))
            return
        start += 4
    raise AssertionError(f"no central directory record for {name}")


# -- conversion ------------------------------------------------------------------------------


def test_a_legacy_zip_becomes_a_wheel_the_catalogue_reads(tmp_path, outdir):
    wheel = convert_legacy_zip(make_zip(tmp_path / "greeter.zip", legacy_entries()), outdir)

    assert wheel == outdir / WHEEL
    assert list(outdir.iterdir()) == [wheel]
    info = inspect_wheel(wheel.read_bytes(), wheel.name)
    assert info.is_plugin
    assert info.manifest_error == ""
    assert info.metadata.name == "legacy-greeter"
    assert info.metadata.version == "1.2.0"
    assert info.metadata.summary == "Greets every new lead."
    assert (info.metadata.author, info.metadata.author_email) == ("Ann Author", "ann@example.com")
    assert info.metadata.entry_point == "legacy_greeter.main"
    assert info.manifest["permissions"] == ["read_leads"]
    assert info.manifest["hook_specs"] == ["lead_created"]
    assert info.manifest["entry_point"] == "legacy_greeter.main"
    assert info.manifest["settings"][0]["name"] == "greeting"
    assert info.requires_dist == ["services-ai>=0.1,<1"]
    assert info.requires_python == ">=3.11"


def test_the_wheel_has_the_expected_files_and_a_true_record(tmp_path, outdir):
    wheel = convert_legacy_zip(make_zip(tmp_path / "greeter.zip", legacy_entries()), outdir)
    dist_info = "legacy_greeter-1.2.0.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert sorted(names) == sorted(
            [
                f"{PACKAGE}/__init__.py",
                f"{PACKAGE}/helpers.py",
                f"{PACKAGE}/main.py",
                f"{PACKAGE}/manifest.json",
                f"{PACKAGE}/static/css/greeter.css",
                f"{PACKAGE}/templates/{PACKAGE}/widget.html",
                f"{dist_info}/METADATA",
                f"{dist_info}/WHEEL",
                f"{dist_info}/entry_points.txt",
                f"{dist_info}/RECORD",
            ]
        )
        assert names[-1] == f"{dist_info}/RECORD"
        assert archive.read(f"{PACKAGE}/main.py").decode() == MAIN_PY
        wheel_file = archive.read(f"{dist_info}/WHEEL").decode()
        assert wheel_file == (
            "Wheel-Version: 1.0\nGenerator: services-ai legacy-zip\n"
            "Root-Is-Purelib: true\nTag: py3-none-any\n"
        )
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        assert "Metadata-Version: 2.1\nName: legacy-greeter\nVersion: 1.2.0\n" in metadata
        assert "Author-email: Ann Author <ann@example.com>\n" in metadata
        assert "Requires-Dist: services-ai>=0.1,<1\n" in metadata
        assert archive.read(f"{dist_info}/entry_points.txt").decode() == (
            "[services_ai]\nlegacy-greeter = legacy_greeter.main\n"
        )
        manifest = json.loads(archive.read(f"{PACKAGE}/manifest.json"))
        assert manifest == {**LEGACY_MANIFEST, "entry_point": "legacy_greeter.main"}
        rows = list(csv.reader(io.StringIO(archive.read(f"{dist_info}/RECORD").decode())))
        assert rows[-1] == [f"{dist_info}/RECORD", "", ""]
        assert sorted(row[0] for row in rows) == sorted(names)
        for path, digest, size in rows[:-1]:
            data = archive.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == f"sha256={expected.decode()}", path
            assert int(size) == len(data), path
    # The same ZIP gives the same bytes.
    again = convert_legacy_zip(tmp_path / "greeter.zip", tmp_path / "again")
    assert again.read_bytes() == wheel.read_bytes()


def test_the_wheel_installs_with_uv_and_its_entry_point_loads(tmp_path, outdir):
    wheel = convert_legacy_zip(make_zip(tmp_path / "greeter.zip", legacy_entries()), outdir)
    target = install_wheels([wheel], tmp_path / "site")
    assert (target / PACKAGE / "main.py").read_text() == MAIN_PY
    assert (target / PACKAGE / "static" / "css" / "greeter.css").is_file()
    assert (target / PACKAGE / "templates" / PACKAGE / "widget.html").is_file()
    entry_points = target / "legacy_greeter-1.2.0.dist-info" / "entry_points.txt"
    assert "legacy-greeter = legacy_greeter.main" in entry_points.read_text()
    script = (
        "import importlib.metadata as m\n"
        "(ep,) = [e for e in m.entry_points(group='services_ai') if e.name == 'legacy-greeter']\n"
        "print(ep.load().GREETING, ep.dist.version)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(REPO)])}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["hello", "1.2.0"]


def test_names_versions_and_entry_points_are_normalised(tmp_path, outdir):
    entries = legacy_entries(
        name="Legacy_Greeter", version="1.2.0-beta1", entry_point="legacy_greeter.main"
    )
    wheel = convert_legacy_zip(make_zip(tmp_path / "greeter.zip", entries), outdir)
    assert wheel.name == "legacy_greeter-1.2.0b1-py3-none-any.whl"
    info = inspect_wheel(wheel.read_bytes())
    assert info.manifest_error == ""
    assert (info.metadata.name, info.metadata.version) == ("legacy-greeter", "1.2.0b1")
    assert info.manifest["name"] == "legacy-greeter"
    assert info.manifest["entry_point"] == "legacy_greeter.main"


@pytest.mark.parametrize(
    ("entry_point", "expected"),
    [
        ("helpers", "legacy_greeter.helpers"),
        (".main", "legacy_greeter.main"),
        ("main:lead_created", "legacy_greeter.main:lead_created"),
        ("main.py", "legacy_greeter.main"),
        ("helpers.py", "legacy_greeter.helpers"),
    ],
)
def test_other_entry_point_spellings(tmp_path, outdir, entry_point, expected):
    entries = legacy_entries(entry_point=entry_point)
    wheel = convert_legacy_zip(make_zip(tmp_path / "greeter.zip", entries), outdir)
    info = inspect_wheel(wheel.read_bytes())
    assert (info.metadata.entry_point, info.manifest_error) == (expected, "")


def test_one_wrapping_folder_and_archiver_junk_are_accepted(tmp_path, outdir):
    entries = {
        **legacy_entries(prefix=f"legacy-greeter-1.2.0/{PACKAGE}/"),
        "legacy-greeter-1.2.0/": b"",
        "__MACOSX/legacy-greeter-1.2.0/._main.py": b"\0\5\26\7",
        f"legacy-greeter-1.2.0/{PACKAGE}/.DS_Store": b"\0\0\0\1Bud1",
        f"legacy-greeter-1.2.0/{PACKAGE}/__pycache__/main.cpython-311.pyc": b"\xa7\r\r\n",
        f"legacy-greeter-1.2.0/{PACKAGE}/static/": b"",
    }
    wheel = convert_legacy_zip(make_zip(tmp_path / "wrapped.zip", entries), outdir)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert f"{PACKAGE}/main.py" in names
    assert not [n for n in names if "MACOSX" in n or "DS_Store" in n or "pycache" in n]
    assert inspect_wheel(wheel.read_bytes()).manifest_error == ""


def test_backslash_names_from_old_windows_tools_are_read_as_folders(tmp_path, outdir):
    entries = {name.replace("/", "\\"): data for name, data in legacy_entries().items()}
    wheel = convert_legacy_zip(make_zip(tmp_path / "windows.zip", entries), outdir)
    with zipfile.ZipFile(wheel) as archive:
        assert f"{PACKAGE}/static/css/greeter.css" in archive.namelist()


def test_a_failed_write_leaves_nothing(tmp_path, outdir, monkeypatch):
    zip_path = make_zip(tmp_path / "greeter.zip", legacy_entries())

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", full_disk)
    message = refused(zip_path, outdir)
    assert f"cannot write {outdir / WHEEL} (No space left on device)" in message


def test_the_error_is_a_registry_error(tmp_path, outdir):
    with pytest.raises(RegistryError):
        convert_legacy_zip(tmp_path / "missing.zip", outdir)


# -- refusals: the archive ---------------------------------------------------------------------


def test_not_a_zip(tmp_path, outdir):
    path = tmp_path / "plugin.zip"
    path.write_bytes(b"this is not a zip archive at all")
    assert "plugin.zip: not a ZIP archive, or a corrupt one (File is not a zip file)" in refused(
        path, outdir
    )


def test_a_missing_file(tmp_path, outdir):
    assert refused(tmp_path / "nope.zip", outdir) == "nope.zip: no such file; check the path"


def test_a_corrupt_entry(tmp_path, outdir):
    path = make_zip(tmp_path / "corrupt.zip", legacy_entries(), zipfile.ZIP_STORED)
    data = path.read_bytes().replace(b'"hello"', b'"HELLO"')
    path.write_bytes(data)
    message = refused(path, outdir)
    assert f"entry '{PACKAGE}/main.py' is corrupt (Bad CRC-32" in message
    assert message.endswith("; re-create the ZIP")


def test_a_header_that_declares_less_than_the_entry_holds(tmp_path, outdir):
    path = make_zip(tmp_path / "lying.zip", legacy_entries())
    patch_central(path, f"{PACKAGE}/main.py", 24, "<I", 10)  # uncompressed size
    assert f"entry '{PACKAGE}/main.py' is corrupt (Bad CRC-32" in refused(path, outdir)


def test_reading_stops_when_an_entry_holds_more_than_declared(tmp_path, outdir, monkeypatch):
    path = make_zip(tmp_path / "greeter.zip", legacy_entries())
    real_open = zipfile.ZipFile.open

    def endless(self, info, *args, **kwargs):
        if info.filename.endswith("helpers.py"):
            return io.BytesIO(b"x" * (10 * 1024 * 1024))
        return real_open(self, info, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", endless)
    assert (
        f"entry '{PACKAGE}/helpers.py' holds more data than its header declares "
        f"({len(HELPERS_PY)} bytes); "
        "the ZIP is corrupt or crafted: re-create it"
    ) in refused(path, outdir)


def test_an_encrypted_entry(tmp_path, outdir):
    path = make_zip(tmp_path / "secret.zip", legacy_entries())
    patch_central(path, f"{PACKAGE}/main.py", 8, "<H", 0x1)  # general purpose flags
    assert refused(path, outdir) == (
        f"secret.zip: entry '{PACKAGE}/main.py' is encrypted; re-create the ZIP without a password"
    )


@pytest.mark.parametrize(
    "name",
    [f"{PACKAGE}/../../evil.py", f"{PACKAGE}\\..\\..\\evil.py", f"{PACKAGE}/static/../../x.css"],
)
def test_zip_slip(tmp_path, outdir, name):
    path = make_zip(tmp_path / "slip.zip", {**legacy_entries(), name: "boom"})
    assert refused(path, outdir) == (
        f"slip.zip: entry {name!r} points outside the archive ('..' in its path, a zip-slip); "
        "re-create the ZIP from the plugin folder"
    )


@pytest.mark.parametrize("name", ["/etc/cron.d/evil", "C:/Windows/evil.dll", "C:\\evil.py"])
def test_absolute_paths(tmp_path, outdir, name):
    path = make_zip(tmp_path / "absolute.zip", {**legacy_entries(), name: "boom"})
    assert refused(path, outdir) == (
        f"absolute.zip: entry {name!r} has an absolute path; re-create the ZIP with paths "
        "relative to the folder that holds the plugin package"
    )


def test_symlinks(tmp_path, outdir):
    link = zipfile.ZipInfo(f"{PACKAGE}/static/passwd")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = make_zip(tmp_path / "link.zip", [*legacy_entries().items(), (link, "/etc/passwd")])
    assert refused(path, outdir) == (
        f"link.zip: entry '{PACKAGE}/static/passwd' is a symbolic link; replace it with the "
        "file it points to and re-create the ZIP"
    )


@pytest.mark.parametrize(
    ("second", "also"),
    [(f"{PACKAGE}/main.py", ""), (f"{PACKAGE}/Main.py", f" (as '{PACKAGE}/main.py')")],
)
def test_duplicate_entries(tmp_path, outdir, second, also):
    path = make_zip(tmp_path / "dup.zip", [*legacy_entries().items(), (second, "x = 1\n")])
    assert refused(path, outdir) == (
        f"dup.zip: entry {second!r} appears more than once{also}; re-create the ZIP so that "
        "every file appears once"
    )


# -- refusals: zip bombs -----------------------------------------------------------------------


def test_a_highly_compressed_entry_is_a_bomb(tmp_path, outdir):
    bomb = f"{PACKAGE}/static/zeros.bin"
    path = make_zip(tmp_path / "bomb.zip", {**legacy_entries(), bomb: b"\0" * (5 * 1024 * 1024)})
    message = refused(path, outdir)
    assert f"entry '{bomb}' expands " in message
    assert message.endswith(
        "-> 5242880 bytes); the limit is 100:1 (ZipLimits.max_ratio): refusing a likely ZIP bomb"
    )


def test_a_huge_entry_is_refused_by_its_declared_size(tmp_path, outdir):
    big = f"{PACKAGE}/static/big.bin"
    path = make_zip(tmp_path / "big.zip", {**legacy_entries(), big: b"\0" * (11 * 1024 * 1024)})
    assert refused(path, outdir) == (
        f"big.zip: entry '{big}' declares 11534336 bytes uncompressed; the limit per file is "
        "10485760 bytes (ZipLimits.max_file_size)"
    )


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        (
            ZipLimits(max_files=5),
            "holds 6 entries; at most 5 are allowed (ZipLimits.max_files)",
        ),
        (
            ZipLimits(max_file_size=100),
            f"entry '{PACKAGE}/main.py' declares {len(MAIN_PY)} bytes uncompressed; the limit "
            "per file is "
            "100 bytes (ZipLimits.max_file_size)",
        ),
        (
            ZipLimits(max_total_size=500),
            "entries declare {total} bytes uncompressed in total; the limit is 500 bytes "
            "(ZipLimits.max_total_size)",
        ),
        (
            ZipLimits(max_ratio=5, ratio_min_size=0),
            f"entry '{PACKAGE}/static/css/greeter.css' expands",
        ),
    ],
)
def test_lowered_limits(tmp_path, outdir, limits, expected):
    entries = legacy_entries()
    entries[f"{PACKAGE}/static/css/greeter.css"] = "body { color: teal; }\n" * 10
    path = make_zip(tmp_path / "small.zip", entries)
    total = sum(len(content.encode()) for content in entries.values())
    assert expected.replace("{total}", str(total)) in refused(path, outdir, limits)


# -- refusals: the layout ----------------------------------------------------------------------


def test_files_at_the_top_level_are_no_package(tmp_path, outdir):
    path = make_zip(tmp_path / "flat.zip", legacy_entries(prefix=""))
    assert refused(path, outdir) == (
        "flat.zip: the plugin files lie at the top level of the ZIP, not in a package folder; "
        "put them in one folder named after the package (e.g. my_plugin/ with __init__.py, "
        "main.py and manifest.json) and zip that folder"
    )


def test_an_empty_zip(tmp_path, outdir):
    path = make_zip(tmp_path / "empty.zip", {"__MACOSX/._x": b"", "folder/": b""})
    assert refused(path, outdir) == (
        "empty.zip: holds no files; it must hold one folder, the plugin package (e.g. "
        "my_plugin/ with __init__.py, main.py and manifest.json)"
    )


def test_several_plugin_folders(tmp_path, outdir):
    entries = {**legacy_entries(), **legacy_entries(prefix="other_plugin/")}
    path = make_zip(tmp_path / "two.zip", entries)
    assert refused(path, outdir) == (
        f"two.zip: holds several plugin package folders ({PACKAGE}/, other_plugin/); "
        "convert one plugin per ZIP"
    )


def test_several_top_level_folders_without_a_manifest(tmp_path, outdir):
    entries = {"one/__init__.py": "", "two/__init__.py": ""}
    path = make_zip(tmp_path / "none.zip", entries)
    assert refused(path, outdir) == (
        "none.zip: no top-level folder holds a manifest.json (found one/, two/); the ZIP must "
        "hold one folder, the plugin package (e.g. my_plugin/ with __init__.py, main.py and "
        "manifest.json)"
    )


def test_a_file_outside_the_package(tmp_path, outdir):
    path = make_zip(tmp_path / "stray.zip", {**legacy_entries(), "README.md": "# Greeter\n"})
    assert refused(path, outdir) == (
        f"stray.zip: entry 'README.md' is outside the package folder '{PACKAGE}/'; move it "
        "into the package folder or remove it from the ZIP"
    )


def test_two_wrapping_folders_are_refused(tmp_path, outdir):
    path = make_zip(tmp_path / "deep.zip", legacy_entries(prefix=f"a/b/{PACKAGE}/"))
    assert refused(path, outdir) == (
        "deep.zip: missing a/manifest.json; add the legacy manifest to the plugin package "
        "folder (one extra wrapping folder is accepted, no more)"
    )


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        (
            "__init__.py",
            f"missing {PACKAGE}/__init__.py; add an empty __init__.py to the package folder",
        ),
        (
            "main.py",
            f"missing {PACKAGE}/main.py, the entry-point module named by entry_point 'main' in "
            f"{PACKAGE}/manifest.json; add it or fix entry_point",
        ),
        (
            "manifest.json",
            f"missing {PACKAGE}/manifest.json; add the legacy manifest to the plugin package folder "
            "(one extra wrapping folder is accepted, no more)",
        ),
    ],
)
def test_missing_files(tmp_path, outdir, missing, expected):
    entries = legacy_entries()
    del entries[f"{PACKAGE}/{missing}"]
    path = make_zip(tmp_path / "missing.zip", entries)
    assert refused(path, outdir) == f"missing.zip: {expected}"


def test_the_package_folder_must_be_a_python_name(tmp_path, outdir):
    path = make_zip(tmp_path / "dash.zip", legacy_entries(prefix="legacy-greeter/"))
    assert refused(path, outdir) == (
        "dash.zip: package folder 'legacy-greeter/' is not a valid Python package name; rename "
        "it, e.g. to 'legacy_greeter', and use that name in entry_point"
    )


def test_the_package_must_not_shadow_python_or_the_platform(tmp_path, outdir):
    path = make_zip(tmp_path / "json.zip", legacy_entries(prefix="json/"))
    assert refused(path, outdir) == (
        "json.zip: package folder 'json/' would shadow the module 'json' of Python or the "
        "platform; rename the package"
    )


def test_compiled_extensions_are_refused(tmp_path, outdir):
    path = make_zip(
        tmp_path / "native.zip", {**legacy_entries(), f"{PACKAGE}/_fast.so": b"\x7fELF"}
    )
    assert refused(path, outdir) == (
        f"native.zip: entry '{PACKAGE}/_fast.so' is a compiled extension; a legacy plugin is "
        "pure Python: remove it"
    )


# -- refusals: the manifest --------------------------------------------------------------------


def with_manifest(tmp_path: Path, manifest: str | dict) -> Path:
    entries = legacy_entries()
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    entries[f"{PACKAGE}/manifest.json"] = text
    return make_zip(tmp_path / "manifest.zip", entries)


def test_a_manifest_that_is_not_json(tmp_path, outdir):
    message = refused(with_manifest(tmp_path, '{"name": "legacy-greeter",'), outdir)
    assert message.startswith(f"manifest.zip: {PACKAGE}/manifest.json is not valid JSON (")
    assert message.endswith("); fix the syntax")


def test_a_manifest_that_is_not_an_object(tmp_path, outdir):
    assert refused(with_manifest(tmp_path, "[1, 2]"), outdir) == (
        f"manifest.zip: {PACKAGE}/manifest.json must hold a JSON object, not a list"
    )


def test_a_manifest_without_name_or_version(tmp_path, outdir):
    manifest = {k: v for k, v in LEGACY_MANIFEST.items() if k not in ("name", "version")}
    assert refused(with_manifest(tmp_path, manifest), outdir) == (
        f"manifest.zip: {PACKAGE}/manifest.json: missing name, version; a legacy manifest "
        "gives the plugin's name and version"
    )


def test_entry_point_defaults_to_main_py(tmp_path, outdir):
    manifest = {k: v for k, v in LEGACY_MANIFEST.items() if k != "entry_point"}
    wheel = convert_legacy_zip(with_manifest(tmp_path, manifest), outdir)
    info = inspect_wheel(wheel.read_bytes())
    assert (info.metadata.entry_point, info.manifest_error) == ("legacy_greeter.main", "")


def test_a_manifest_field_of_the_wrong_type(tmp_path, outdir):
    assert refused(with_manifest(tmp_path, {**LEGACY_MANIFEST, "version": 1.2}), outdir) == (
        f"manifest.zip: {PACKAGE}/manifest.json: version must be a string, not a number"
    )


def test_a_manifest_the_schema_refuses(tmp_path, outdir):
    manifest = {**LEGACY_MANIFEST, "hook_specs": ["lead_deleted"], "homepage": "https://x"}
    message = refused(with_manifest(tmp_path, manifest), outdir)
    assert message.startswith(
        f"manifest.zip: {PACKAGE}/manifest.json: plugin 'legacy-greeter': invalid manifest.json: "
    )
    assert "hook_specs[0]: 'lead_deleted' is not allowed; use one of lead_created" in message
    assert "homepage: is not a manifest field; remove it or use one of" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"name": "legacy greeter!"},
            "name 'legacy greeter!' is not a valid distribution name; use ASCII letters, "
            "digits, '-', '_' and '.', starting and ending with a letter or digit",
        ),
        (
            {"version": "one point two"},
            "version 'one point two' is not a valid version (PEP 440); use e.g. '1.0.0'",
        ),
        (
            {"email": "Ann at example"},
            "email 'Ann at example' is not a plain e-mail address; use e.g. 'ann@example.com'",
        ),
        (
            {"entry_point": "other_plugin.main"},
            f"entry_point 'other_plugin.main' points outside the package '{PACKAGE}'; name a "
            f"module inside it, e.g. 'main.py' or '{PACKAGE}.main'",
        ),
        (
            {"entry_point": "..main"},
            f"entry_point '..main' points outside the package '{PACKAGE}'; name a module inside "
            f"it, e.g. 'main.py' or '{PACKAGE}.main'",
        ),
        (
            {"entry_point": "../main.py"},
            f"entry_point '../main.py' points outside the package '{PACKAGE}'; name a module "
            f"inside it, e.g. 'main.py' or '{PACKAGE}.main'",
        ),
        (
            {"entry_point": "plugins/main"},
            f"entry_point 'plugins/main' is not a module path; use e.g. 'main.py' or '{PACKAGE}.main'",
        ),
    ],
)
def test_bad_manifest_values(tmp_path, outdir, change, expected):
    message = refused(with_manifest(tmp_path, {**LEGACY_MANIFEST, **change}), outdir)
    assert message.startswith("manifest.zip: ")
    assert message.endswith(expected)
