"""Turning a plugin ZIP in the older layout into a proper wheel, offline and without a backend.

The older layout is a ZIP holding one folder, the plugin package::

    my_plugin/__init__.py
    my_plugin/main.py               (or whatever module ``entry_point`` names)
    my_plugin/manifest.json         (legacy: name, version, author, email, entry_point + modern)
    my_plugin/static/...            (optional, any files)
    my_plugin/templates/...         (optional, any files)
    my_plugin/other.py, sub/...     (optional)

Decisions, so that a refusal is never a surprise:

* Wrapping: exactly one extra top folder is accepted (``my-plugin-1.0/my_plugin/...``) when
  it holds nothing but the package folder; deeper nesting is refused.
* Entry names: backslashes are read as separators (old Windows tools wrote them) and ``.`` and
  empty components are dropped *before* any check, so ``pkg\\..\\..\\x`` is a zip-slip and
  ``pkg/./main.py`` duplicates ``pkg/main.py``. Names that differ only in case are duplicates
  too (they collide on macOS and Windows). Components made only of dots (``..``, ``...``) are
  refused as zip-slip; so are absolute names (``/x``, ``C:x``, ``C:\\x``).
* Skipped silently and never read: ``__MACOSX/`` trees, ``.DS_Store``, ``Thumbs.db``,
  ``desktop.ini`` and ``._*`` files anywhere, ``__pycache__/`` folders, ``*.pyc``/``*.pyo``
  bytecode, and folder entries (empty folders are not carried over). Any other file outside
  the package folder is refused.
* Inside the package every regular file is carried over as package data, except compiled
  extensions (``.so``, ``.pyd``, ``.dll``, ``.dylib``): the wheel is tagged ``py3-none-any``.
* ZIP bombs: the central directory is checked first (number of entries, counting folders and
  skipped entries; each entry's and the total declared uncompressed size; the compression
  ratio), then every entry carried over is read in 64 KiB chunks and reading stops as soon as
  the real size passes the declared size or a limit, since headers can lie. The ratio is only
  checked for entries larger than ``ZipLimits.ratio_min_size`` (1 MiB) uncompressed: small
  text files legitimately compress better than 100:1.
* The wheel's ``manifest.json`` keeps the legacy fields, rewritten to what the wheel's metadata
  says: ``name`` becomes the normalised distribution name, ``version`` the normalised PEP 440
  version, ``entry_point`` the module path inside the package (``main`` -> ``my_plugin.main``);
  ``author``, ``email`` and ``description`` are kept as they are (the metadata is made from
  them). An ``entry_point`` may name a file of the package (``main.py``, the default when it is
  left out), ``module`` or ``package.module``, optionally with ``:attribute``; one naming a
  module outside the package is refused. The specification's field names are canonical and the
  earlier spellings are renamed (``plugin_registry.registry.manifest.normalise_manifest``).
* Output: the wheel is written to a temporary file in ``outdir`` and renamed at the end, so a
  refusal or a failed write leaves nothing; an existing wheel of the same name is replaced.
  The wheel is reproducible: the same ZIP gives the same bytes.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import keyword
import os
import re
import stat
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from typing import Any, NoReturn

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from plugin_registry.errors import RegistryError
from plugin_registry.registry.manifest import DEFAULT_ENTRY_POINT, MANIFEST_NAME, validate_manifest
from plugin_registry.registry.metadata import DistMetadata
from services_ai.plugins.exceptions import ManifestError
from services_ai.plugins.markers import ENTRY_POINT_GROUP

MiB = 1024 * 1024
CHUNK_SIZE = 64 * 1024
PLATFORM_REQUIREMENT = "services-ai>=0.1,<1"
REQUIRES_PYTHON = ">=3.11"
GENERATOR = "services-ai legacy-zip"
WHEEL_TAG = "py3-none-any"

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same ZIP gives the same wheel
_DIST_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_DRIVE = re.compile(r"^[A-Za-z]:")
_EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]\\]+@[^@\s<>(),;:\"\[\]\\]+$")
_ADDRESS_SPECIALS = frozenset('()<>@,:;."[]\\')
_JUNK_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
_NATIVE_SUFFIXES = (".so", ".pyd", ".dll", ".dylib")
_RESERVED_PACKAGES = frozenset({"services_ai", "plugin_registry"}) | frozenset(
    sys.stdlib_module_names
)
_REQUIRED_FIELDS = ("name", "version")
_TEXT_FIELDS = ("name", "version", "author", "email", "entry_point", "description")


@dataclass(frozen=True)
class ZipLimits:
    """What a legacy ZIP may hold; sizes are uncompressed bytes."""

    max_files: int = 2000  # entries in the central directory, folders and skipped ones included
    max_total_size: int = 50 * MiB
    max_file_size: int = 10 * MiB
    max_ratio: float = 100  # uncompressed / compressed size of one entry ...
    ratio_min_size: int = 1 * MiB  # ... checked only for entries larger than this


class LegacyZipError(RegistryError):
    """A legacy plugin ZIP was refused; the message names the file, the entry and the fix."""

    def __init__(
        self, zip_path: Path | str, problem: str, *, entry: str = "", label: str = ""
    ) -> None:
        self.zip_path = Path(zip_path)
        self.entry = entry
        self.problem = problem
        super().__init__(f"{label or self.zip_path.name}: {problem}")


@dataclass(frozen=True)
class _Entry:
    path: str  # normalised: forward slashes, no '.' or empty components
    info: zipfile.ZipInfo


def convert_legacy_zip(
    zip_path: Path, outdir: Path, *, limits: ZipLimits = ZipLimits(), label: str = ""
) -> Path:
    """Turn a ZIP in the older plugin layout into a proper wheel in outdir; return the wheel path.

    Raise LegacyZipError (a RegistryError) with a message naming the file (``label``, e.g. the
    name an upload had, else the file's own name) or entry and the fix; nothing is written to
    ``outdir`` on failure. See the module docstring for what is accepted.
    """
    return _Conversion(Path(zip_path), limits, label).run(Path(outdir))


class _Conversion:
    def __init__(self, zip_path: Path, limits: ZipLimits, label: str = "") -> None:
        self.zip_path = zip_path
        self.limits = limits
        self.label = label

    def fail(self, problem: str, entry: str = "") -> NoReturn:
        raise LegacyZipError(self.zip_path, problem, entry=entry, label=self.label)

    # -- the steps -------------------------------------------------------------------------

    def run(self, outdir: Path) -> Path:
        with self._open() as archive:
            entries = self._scan(archive)
            root, files = self._layout(entries)
            package = root.rsplit("/", 1)[-1]
            self._check_package(root, package, files)
            contents = self._read(archive, root, files)
        manifest, metadata, name = self._manifest(package, contents)
        wheel_files = self._wheel_files(package, contents, manifest, metadata, name)
        wheel_name = f"{metadata.name.replace('-', '_')}-{metadata.version}-{WHEEL_TAG}.whl"
        return self._write(outdir, wheel_name, wheel_files)

    def _open(self) -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(self.zip_path)
        except FileNotFoundError:
            self.fail("no such file; check the path")
        except IsADirectoryError:
            self.fail("is a folder, not a ZIP archive; zip the plugin folder first")
        except OSError as exc:
            self.fail(f"cannot read the file ({exc.strerror or exc})")
        except (zipfile.BadZipFile, EOFError, ValueError) as exc:
            self.fail(
                f"not a ZIP archive, or a corrupt one ({exc}); re-create it by zipping the "
                "plugin package folder"
            )

    def _scan(self, archive: zipfile.ZipFile) -> list[_Entry]:
        """Check every entry of the central directory; return the files to consider."""
        limits = self.limits
        infos = archive.infolist()
        if len(infos) > limits.max_files:
            self.fail(
                f"holds {len(infos)} entries; at most {limits.max_files} are allowed "
                "(ZipLimits.max_files)"
            )
        seen: dict[str, str] = {}
        kept: list[_Entry] = []
        for info in infos:
            name = info.filename
            path = self._safe_path(name)
            if info.flag_bits & 0x1:
                self.fail(
                    f"entry {name!r} is encrypted; re-create the ZIP without a password", name
                )
            if stat.S_ISLNK(info.external_attr >> 16):
                self.fail(
                    f"entry {name!r} is a symbolic link; replace it with the file it points "
                    "to and re-create the ZIP",
                    name,
                )
            is_dir = name.replace("\\", "/").endswith("/")
            key = path.casefold() + ("/" if is_dir else "")
            if key in seen:
                other = seen[key]
                also = f" (as {other!r})" if other != name else ""
                self.fail(
                    f"entry {name!r} appears more than once{also}; re-create the ZIP so that "
                    "every file appears once",
                    name,
                )
            seen[key] = name
            self._check_declared(info)
            if not is_dir and not _skipped(path):
                kept.append(_Entry(path, info))
        total = sum(info.file_size for info in infos)
        if total > limits.max_total_size:
            self.fail(
                f"entries declare {total} bytes uncompressed in total; the limit is "
                f"{limits.max_total_size} bytes (ZipLimits.max_total_size)"
            )
        paths = {entry.path for entry in kept}
        for entry in kept:
            parts = entry.path.split("/")
            for depth in range(1, len(parts)):
                parent = "/".join(parts[:depth])
                if parent in paths:
                    self.fail(
                        f"entry {parent!r} is both a file and a folder; re-create the ZIP",
                        parent,
                    )
        return kept

    def _safe_path(self, name: str) -> str:
        if not name:
            self.fail("an entry has an empty name; re-create the ZIP")
        if any(ord(char) < 32 or char == "\x7f" for char in name):
            self.fail(f"entry {name!r} has control characters in its name; rename it", name)
        raw = name.replace("\\", "/")
        if raw.startswith("/") or _DRIVE.match(raw):
            self.fail(
                f"entry {name!r} has an absolute path; re-create the ZIP with paths relative "
                "to the folder that holds the plugin package",
                name,
            )
        parts = [part for part in raw.split("/") if part not in ("", ".")]
        if any(part.rstrip(". ") == "" for part in parts):
            self.fail(
                f"entry {name!r} points outside the archive ('..' in its path, a zip-slip); "
                "re-create the ZIP from the plugin folder",
                name,
            )
        if not parts:
            self.fail(f"entry {name!r} has no file name; re-create the ZIP", name)
        return "/".join(parts)

    def _check_declared(self, info: zipfile.ZipInfo) -> None:
        limits, name = self.limits, info.filename
        if info.file_size > limits.max_file_size:
            self.fail(
                f"entry {name!r} declares {info.file_size} bytes uncompressed; the limit per "
                f"file is {limits.max_file_size} bytes (ZipLimits.max_file_size)",
                name,
            )
        self._check_ratio(info, info.file_size)

    def _check_ratio(self, info: zipfile.ZipInfo, size: int) -> None:
        limits = self.limits
        if size <= limits.ratio_min_size:
            return
        ratio = size / max(info.compress_size, 1)
        if ratio > limits.max_ratio:
            self.fail(
                f"entry {info.filename!r} expands {ratio:.0f}:1 ({info.compress_size} -> "
                f"{size} bytes); the limit is {limits.max_ratio:g}:1 (ZipLimits.max_ratio): "
                "refusing a likely ZIP bomb",
                info.filename,
            )

    def _layout(self, entries: list[_Entry]) -> tuple[str, list[_Entry]]:
        """Return the package folder (with its wrapper folder, if any) and its files."""
        paths = {entry.path for entry in entries}
        example = "e.g. my_plugin/ with __init__.py, main.py and manifest.json"
        if not paths:
            self.fail(f"holds no files; it must hold one folder, the plugin package ({example})")
        if MANIFEST_NAME in paths or all("/" not in path for path in paths):
            self.fail(
                "the plugin files lie at the top level of the ZIP, not in a package folder; "
                f"put them in one folder named after the package ({example}) and zip that folder"
            )
        roots = sorted(
            path.rsplit("/", 1)[0]
            for path in paths
            if path.count("/") == 1 and path.endswith(f"/{MANIFEST_NAME}")
        )
        if not roots:
            tops = sorted({path.split("/")[0] for path in paths})
            if len(tops) == 1:
                top = tops[0]
                subs = {path.split("/")[1] for path in paths if path.count("/") >= 2}
                loose = [path for path in paths if path.count("/") == 1]
                candidate = f"{top}/{next(iter(subs))}" if len(subs) == 1 else ""
                if not loose and f"{candidate}/{MANIFEST_NAME}" in paths:
                    roots = [candidate]
                else:
                    self.fail(
                        f"missing {top}/{MANIFEST_NAME}; add the legacy manifest to the plugin "
                        "package folder (one extra wrapping folder is accepted, no more)"
                    )
            else:
                listed = ", ".join(f"{top}/" for top in tops)
                self.fail(
                    f"no top-level folder holds a {MANIFEST_NAME} (found {listed}); the ZIP "
                    f"must hold one folder, the plugin package ({example})"
                )
        if len(roots) > 1:
            listed = ", ".join(f"{root}/" for root in roots)
            self.fail(
                f"holds several plugin package folders ({listed}); convert one plugin per ZIP"
            )
        root = roots[0]
        for entry in sorted(entries, key=lambda e: e.path):
            if not entry.path.startswith(f"{root}/"):
                self.fail(
                    f"entry {entry.info.filename!r} is outside the package folder {root + '/'!r}"
                    "; move it into the package folder or remove it from the ZIP",
                    entry.info.filename,
                )
        return root, entries

    def _check_package(self, root: str, package: str, files: list[_Entry]) -> None:
        if not (package.isascii() and package.isidentifier()) or keyword.iskeyword(package):
            suggestion = re.sub(r"\W", "_", package.lower(), flags=re.ASCII)
            if not suggestion or suggestion[0].isdigit() or keyword.iskeyword(suggestion):
                suggestion = f"plugin_{suggestion}"
            self.fail(
                f"package folder {root + '/'!r} is not a valid Python package name; rename "
                f"it, e.g. to {suggestion!r}, and use that name in entry_point"
            )
        if package in _RESERVED_PACKAGES:
            self.fail(
                f"package folder {root + '/'!r} would shadow the module {package!r} of Python "
                "or the platform; rename the package"
            )
        paths = {entry.path for entry in files}
        for required, why in (
            ("__init__.py", "add an empty __init__.py to the package folder"),
            (MANIFEST_NAME, "add the legacy manifest to the package folder"),
        ):
            if f"{root}/{required}" not in paths:
                self.fail(f"missing {package}/{required}; {why}", f"{root}/{required}")
        for entry in files:
            if entry.path.lower().endswith(_NATIVE_SUFFIXES):
                self.fail(
                    f"entry {entry.info.filename!r} is a compiled extension; a legacy plugin "
                    "is pure Python: remove it",
                    entry.info.filename,
                )

    def _read(self, archive: zipfile.ZipFile, root: str, files: list[_Entry]) -> dict[str, bytes]:
        """Read the package's files (relative paths) in chunks, enforcing the limits."""
        limits = self.limits
        contents: dict[str, bytes] = {}
        total = 0
        for entry in sorted(files, key=lambda e: e.path):
            info, name = entry.info, entry.info.filename
            data = bytearray()
            try:
                with archive.open(info) as stream:
                    while chunk := stream.read(CHUNK_SIZE):
                        data += chunk
                        total += len(chunk)
                        if len(data) > info.file_size:
                            self.fail(
                                f"entry {name!r} holds more data than its header declares "
                                f"({info.file_size} bytes); the ZIP is corrupt or crafted: "
                                "re-create it",
                                name,
                            )
                        if len(data) > limits.max_file_size:
                            self.fail(
                                f"entry {name!r} is larger than {limits.max_file_size} bytes "
                                "(ZipLimits.max_file_size)",
                                name,
                            )
                        if total > limits.max_total_size:
                            self.fail(
                                f"the files hold more than {limits.max_total_size} bytes "
                                "uncompressed in total (ZipLimits.max_total_size)",
                                name,
                            )
                        self._check_ratio(info, len(data))
            except NotImplementedError as exc:
                self.fail(
                    f"entry {name!r} uses an unsupported compression method ({exc}); "
                    "re-create the ZIP with deflate",
                    name,
                )
            except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
                self.fail(f"entry {name!r} is corrupt ({exc}); re-create the ZIP", name)
            if len(data) != info.file_size:
                self.fail(
                    f"entry {name!r} holds {len(data)} bytes, its header declares "
                    f"{info.file_size}; the ZIP is corrupt: re-create it",
                    name,
                )
            contents[entry.path[len(root) + 1 :]] = bytes(data)
        return contents

    def _manifest(
        self, package: str, contents: dict[str, bytes]
    ) -> tuple[dict[str, Any], DistMetadata, str]:
        """Read the legacy manifest; return the modern one, the metadata and the name as given."""
        where = f"{package}/{MANIFEST_NAME}"
        try:
            data = json.loads(contents[MANIFEST_NAME].decode("utf-8-sig"))
        except UnicodeDecodeError:
            self.fail(f"{where} is not UTF-8 text; save it as UTF-8", where)
        except json.JSONDecodeError as exc:
            self.fail(f"{where} is not valid JSON ({exc}); fix the syntax", where)
        except RecursionError:
            self.fail(f"{where} is nested too deeply; fix its content", where)
        if not isinstance(data, dict):
            self.fail(f"{where} must hold a JSON object, not {_json_type(data)}", where)
        missing = [field for field in _REQUIRED_FIELDS if field not in data]
        if missing:
            self.fail(
                f"{where}: missing {', '.join(missing)}; a legacy manifest gives the plugin's "
                "name and version",
                where,
            )
        for field in _TEXT_FIELDS:
            if field in data and not isinstance(data[field], str):
                self.fail(
                    f"{where}: {field} must be a string, not {_json_type(data[field])}", where
                )
        name, raw_version = data["name"], data["version"]
        if not _DIST_NAME.match(name):
            self.fail(
                f"{where}: name {name!r} is not a valid distribution name; use ASCII letters, "
                "digits, '-', '_' and '.', starting and ending with a letter or digit",
                where,
            )
        try:
            version = str(Version(raw_version))
        except InvalidVersion:
            self.fail(
                f"{where}: version {raw_version!r} is not a valid version (PEP 440); use "
                "e.g. '1.0.0'",
                where,
            )
        author, email = data.get("author", ""), data.get("email", "")
        for field, value in (("author", author), ("email", email)):
            if any(ord(char) < 32 or char == "\x7f" for char in value):
                self.fail(f"{where}: {field} must be a single line of text", where)
        if email and (
            not _EMAIL.match(email) or getaddresses([_author_email(author, email)])[0][1] != email
        ):
            self.fail(
                f"{where}: email {email!r} is not a plain e-mail address; use e.g. "
                "'ann@example.com'",
                where,
            )
        dist_name = canonicalize_name(name)
        modern = dict(data)
        modern["name"] = dist_name
        modern["version"] = version
        modern["entry_point"] = self._entry_point(
            data.get("entry_point", DEFAULT_ENTRY_POINT), package, contents, where
        )
        metadata = DistMetadata(
            name=dist_name,
            version=version,
            summary=" ".join(data.get("description", "").split()),
            author=author,
            author_email=email,
            entry_point=modern["entry_point"],
        )
        try:
            validate_manifest(modern, plugin=dist_name, metadata=metadata)
        except ManifestError as exc:
            self.fail(f"{where}: {exc}", where)
        return modern, metadata, name

    def _entry_point(self, value: str, package: str, contents: dict[str, bytes], where: str) -> str:
        """Normalise ``main``, ``.main`` or ``pkg.main`` (``:attr`` allowed) to ``pkg.main``."""
        module, colon, attribute = value.strip().partition(":")
        example = f"e.g. 'main.py' or '{package}.main'"
        if module.startswith(".."):
            self.fail(
                f"{where}: entry_point {value!r} points outside the package {package!r}; "
                f"name a module inside it, {example}",
                where,
            )
        if module.endswith(".py") and not colon:
            # The specification's form: a file of the package, "main.py" or "jobs/run.py".
            files = module[: -len(".py")].replace("\\", "/").split("/")
            if any(part in ("", ".", "..") for part in files):
                self.fail(
                    f"{where}: entry_point {value!r} points outside the package {package!r}; "
                    f"name a module inside it, {example}",
                    where,
                )
            module = "." + ".".join(files)
        relative = module.startswith(".")
        parts = module[1:].split(".") if relative else module.split(".")
        if parts == [""] and relative:
            parts = []
        names = parts + (attribute.split(".") if colon else [])
        if (not parts and not relative) or any(
            not (p.isidentifier() and p.isascii()) or keyword.iskeyword(p) for p in names
        ):
            self.fail(f"{where}: entry_point {value!r} is not a module path; use {example}", where)
        inside = parts[1:] if parts and parts[0] == package and not relative else parts

        def exists(module_parts: list[str]) -> bool:
            path = "/".join(module_parts)
            return not module_parts or f"{path}.py" in contents or f"{path}/__init__.py" in contents

        if not exists(inside):
            if not relative and parts[0] != package and len(parts) > 1:
                self.fail(
                    f"{where}: entry_point {value!r} points outside the package {package!r}; "
                    f"name a module inside it, {example}",
                    where,
                )
            path = "/".join([package, *inside])
            self.fail(
                f"missing {path}.py, the entry-point module named by entry_point {value!r} in "
                f"{where}; add it or fix entry_point",
                f"{path}.py",
            )
        normalised = ".".join([package, *inside])
        return f"{normalised}:{attribute}" if colon else normalised

    # -- the wheel -------------------------------------------------------------------------

    def _wheel_files(
        self,
        package: str,
        contents: dict[str, bytes],
        manifest: dict[str, Any],
        metadata: DistMetadata,
        name: str,
    ) -> list[tuple[str, bytes]]:
        dist_info = f"{metadata.name.replace('-', '_')}-{metadata.version}.dist-info"
        files = dict(contents)
        files[MANIFEST_NAME] = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
        out = [(f"{package}/{path}", data) for path, data in sorted(files.items())]
        lines = [
            "Metadata-Version: 2.1",
            f"Name: {name}",
            f"Version: {metadata.version}",
        ]
        if metadata.summary:
            lines.append(f"Summary: {metadata.summary}")
        if metadata.author:
            lines.append(f"Author: {metadata.author}")
        if metadata.author_email:
            lines.append(f"Author-email: {_author_email(metadata.author, metadata.author_email)}")
        lines += [f"Requires-Python: {REQUIRES_PYTHON}", f"Requires-Dist: {PLATFORM_REQUIREMENT}"]
        wheel = [
            "Wheel-Version: 1.0",
            f"Generator: {GENERATOR}",
            "Root-Is-Purelib: true",
            f"Tag: {WHEEL_TAG}",
        ]
        entry_points = f"[{ENTRY_POINT_GROUP}]\n{metadata.name} = {metadata.entry_point}\n"
        out += [
            (f"{dist_info}/METADATA", ("\n".join(lines) + "\n").encode()),
            (f"{dist_info}/WHEEL", ("\n".join(wheel) + "\n").encode()),
            (f"{dist_info}/entry_points.txt", entry_points.encode()),
        ]
        record = io.StringIO()
        writer = csv.writer(record, lineterminator="\n")
        for path, data in out:
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            writer.writerow([path, f"sha256={digest.decode()}", len(data)])
        writer.writerow([f"{dist_info}/RECORD", "", ""])
        out.append((f"{dist_info}/RECORD", record.getvalue().encode()))
        return out

    def _write(self, outdir: Path, wheel_name: str, files: list[tuple[str, bytes]]) -> Path:
        target = outdir / wheel_name
        temporary = None
        try:
            outdir.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(
                prefix=f".{wheel_name}.", suffix=".part", dir=outdir
            )
            with os.fdopen(handle, "wb") as stream, zipfile.ZipFile(stream, "w") as wheel:
                for path, data in files:
                    info = zipfile.ZipInfo(path, date_time=_ZIP_EPOCH)
                    info.external_attr = (stat.S_IFREG | 0o644) << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    wheel.writestr(info, data)
            os.chmod(temporary, 0o644)
            os.replace(temporary, target)
        except OSError as exc:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
            self.fail(f"cannot write {target} ({exc.strerror or exc}); check {outdir}")
        except BaseException:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
            raise
        return target


def _skipped(path: str) -> bool:
    """Entries that archivers add and a plugin never needs: skipped, never read."""
    parts = path.split("/")
    last = parts[-1]
    return (
        parts[0] == "__MACOSX"
        or "__pycache__" in parts
        or last in _JUNK_NAMES
        or last.startswith("._")
        or last.endswith((".pyc", ".pyo"))
    )


def _author_email(author: str, email: str) -> str:
    """``Author <email>`` as Author-email, quoting the name when it needs it."""
    if not author:
        return email
    if any(char in _ADDRESS_SPECIALS for char in author):
        author = '"' + author.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{author} <{email}>"


def _json_type(value: object) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), "null")
