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
* Reading the archive (zip-slip, ZIP bombs, links, duplicates, archiver litter that is
  skipped): see :mod:`plugin_registry.authoring.archives`. Any file outside the package folder
  is refused.
* Inside the package every regular file is carried over as package data, except compiled
  extensions (``.so``, ``.pyd``, ``.dll``, ``.dylib``): the wheel is tagged ``py3-none-any``.
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

import json
import keyword
import re
import sys
from email.utils import getaddresses
from pathlib import Path
from typing import Any, NoReturn

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from plugin_registry.authoring.archives import Entry, SafeZip, ZipLimits
from plugin_registry.distribution.wheelfile import wheel_contents, wheel_filename, write_wheel
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


DEFAULT_LIMITS = ZipLimits()


class LegacyZipError(RegistryError):
    """A legacy plugin ZIP was refused; the message names the file, the entry and the fix."""

    def __init__(
        self, zip_path: Path | str, problem: str, *, entry: str = "", label: str = ""
    ) -> None:
        self.zip_path = Path(zip_path)
        self.entry = entry
        self.problem = problem
        super().__init__(f"{label or self.zip_path.name}: {problem}")


def convert_legacy_zip(
    zip_path: Path, outdir: Path, *, limits: ZipLimits = DEFAULT_LIMITS, label: str = ""
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

        self.archive = SafeZip(zip_path, limits, self.fail)

    def fail(self, problem: str, entry: str = "") -> NoReturn:
        raise LegacyZipError(self.zip_path, problem, entry=entry, label=self.label)

    # -- the steps -------------------------------------------------------------------------

    def run(self, outdir: Path) -> Path:
        with self.archive.open() as archive:
            entries = self.archive.scan(archive)
            root, files = self._layout(entries)
            package = root.rsplit("/", 1)[-1]
            self._check_package(root, package, files)
            contents = self.archive.read(archive, root, files)
        manifest, metadata, name = self._manifest(package, contents)
        return self._wheel(outdir, package, contents, manifest, metadata, name)

    def _layout(self, entries: list[Entry]) -> tuple[str, list[Entry]]:
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

    def _check_package(self, root: str, package: str, files: list[Entry]) -> None:
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

    def _wheel(self, outdir: Path, package: str, contents: dict[str, bytes],
               manifest: dict[str, Any], metadata: DistMetadata, name: str) -> Path:  # fmt: skip
        files = dict(contents)
        files[MANIFEST_NAME] = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
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
        members = wheel_contents(
            metadata.name,
            metadata.version,
            [(f"{package}/{path}", data) for path, data in sorted(files.items())],
            metadata="\n".join(lines) + "\n",
            generator=GENERATOR,
            entry_points=f"[{ENTRY_POINT_GROUP}]\n{metadata.name} = {metadata.entry_point}\n",
        )
        target = outdir / wheel_filename(metadata.name, metadata.version)
        try:
            return write_wheel(target, members)
        except OSError as exc:
            self.fail(f"cannot write {target} ({exc.strerror or exc}); check {outdir}")


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
