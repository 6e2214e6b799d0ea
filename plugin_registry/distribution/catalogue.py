"""The catalogue: every plugin version on the index, what it needs and what it would ask for.

Each version's wheel is read once (metadata, entry point, ``manifest.json``) without installing
it; compatibility with the running platform is recomputed on every sync, so a platform upgrade
changes the verdicts without downloading anything again.

(Over 400 lines on purpose: the refresh, what it reads from a version and what it decides about
it, compatibility and withdrawal, are one model's life cycle; the refresh's parts, threads that
read, one writer, the index's serial, share its rows and report.)
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint
from importlib.metadata import version as installed_version
from pathlib import Path

from django.db import connection, transaction
from django.db.models import Count, Max
from django.utils import timezone
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from plugin_registry.distribution.host_wheels import host_distributions
from plugin_registry.distribution.index import (
    IndexClient,
    IndexFile,
    IndexListing,
    IndexUnavailable,
    UnknownProject,
    open_wheel,
)
from plugin_registry.errors import RegistryError
from plugin_registry.registry.audit import record
from plugin_registry.registry.manifest import MANIFEST_NAME, validate_manifest
from plugin_registry.registry.metadata import DistMetadata, header
from plugin_registry.registry.models import CatalogueVersion
from services_ai import conf
from services_ai.plugins.exceptions import ManifestError
from services_ai.plugins.markers import ENTRY_POINT_GROUP

logger = logging.getLogger("plugin_registry.distribution.catalogue")

PLATFORM = "services-ai"


@functools.cache
def platform_version() -> str:
    """The running platform's version (a platform upgrade restarts every process)."""
    return installed_version(PLATFORM)


@dataclass
class WheelInfo:
    """What a wheel says about itself, read from the archive."""

    metadata: DistMetadata
    is_plugin: bool
    requires_dist: list[str]
    requires_python: str
    manifest: dict = field(default_factory=dict)
    manifest_error: str = ""


def inspect_wheel(data: bytes, filename: str = "wheel") -> WheelInfo:
    """Read a wheel's core metadata, its ``services_ai`` entry point and its manifest."""
    archive, dist = open_wheel(data, filename)
    meta = dist.metadata
    eps = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    entry_point = eps[0] if eps else EntryPoint(meta["Name"] or "", "", ENTRY_POINT_GROUP)
    info = WheelInfo(
        metadata=DistMetadata.of(dist, entry_point),
        is_plugin=bool(eps),
        requires_dist=list(meta.get_all("Requires-Dist") or []),
        requires_python=header(meta, "Requires-Python") or "",
    )
    if not eps:
        return info
    if len(eps) > 1:
        info.manifest_error = f"declares {len(eps)} entry points in group {ENTRY_POINT_GROUP!r}"
        return info
    path = f"{entry_point.module.split('.')[0]}/{MANIFEST_NAME}"
    try:
        raw = json.loads(archive.read(path).decode("utf-8"))
        info.manifest = validate_manifest(raw, plugin=info.metadata.name, metadata=info.metadata)
    except KeyError:
        info.manifest_error = f"no {path} in the wheel; ship it next to the entry-point module"
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        info.manifest_error = f"{MANIFEST_NAME} is not valid JSON: {exc}"
    except ManifestError as exc:
        info.manifest_error = str(exc)
    return info


def platform_owns(name: str) -> bool:
    """Is ``name`` the platform or one of the packages of its own environment (never a plugin)?"""
    name = canonicalize_name(name)
    return name == PLATFORM or name in host_distributions()


def compatibility(
    requires_dist: list[str], requires_python: str, name: str = ""
) -> tuple[bool, str, str]:
    """Return (compatible, why, the services-ai specifier) for the running platform."""
    if name and platform_owns(name):
        return False, f"{name!r} is a package of the platform itself, never a plugin", ""
    platform = Version(platform_version())
    python = ".".join(map(str, sys.version_info[:3]))
    spec_text = ""
    for line in requires_dist:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            return False, f"invalid requirement {line!r}", ""
        if canonicalize_name(requirement.name) != PLATFORM:
            continue
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        spec_text = str(requirement.specifier)
        if not requirement.specifier.contains(platform, prereleases=True):
            return (
                False,
                f"requires services-ai{requirement.specifier}; this platform is {platform}",
                spec_text,
            )
    if requires_python:
        try:
            if not SpecifierSet(requires_python).contains(python, prereleases=True):
                return False, f"requires Python {requires_python}; this is {python}", spec_text
        except InvalidSpecifier:
            return False, f"invalid Requires-Python {requires_python!r}", spec_text
    if not spec_text:
        return True, "declares no services-ai requirement: compatibility is not known", ""
    return True, f"services-ai{spec_text} admits {platform}", spec_text


@dataclass
class CatalogueReport:
    projects: int = 0
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    unchanged_index: bool = False  # the index's serial said that nothing changed


def _pick(files: list[IndexFile]) -> dict[str, IndexFile]:
    """One wheel per version (the platform installs pure-Python plugin wheels)."""
    chosen: dict[str, IndexFile] = {}
    for file in sorted(files, key=lambda f: ("none-any" not in f.filename, f.filename)):
        chosen.setdefault(file.version, file)
    return chosen


WORKERS = 8  # projects read at once (threads; the index does the work, not this process)
SERIAL_FILE = "catalogue-serial.json"
_COMPATIBILITY = ("compatible", "compatibility", "requires_platform")
_FROM_WHEEL = (
    "filename", "sha256", "is_plugin", "available", "summary", "author", "requires_dist",
    "requires_python", "manifest", "manifest_error", *_COMPATIBILITY,
)  # fmt: skip


class _Verdicts:
    """``compatibility()`` once per distinct (requirements, Requires-Python) in one refresh."""

    def __init__(self) -> None:
        self.owned = {PLATFORM, *host_distributions()}
        self.known: dict[tuple[tuple[str, ...], str], tuple[bool, str, str]] = {}

    def __call__(
        self, requires_dist: list[str], requires_python: str, name: str
    ) -> tuple[bool, str, str]:
        if canonicalize_name(name) in self.owned:
            return compatibility(requires_dist, requires_python, name)
        key = (tuple(requires_dist), requires_python)
        if key not in self.known:
            self.known[key] = compatibility(requires_dist, requires_python)
        return self.known[key]


@dataclass
class _Project:
    """One project as the index lists it now, with the wheels the catalogue had not seen."""

    name: str
    files: dict[str, IndexFile] = field(default_factory=dict)
    wheels: dict[str, WheelInfo] = field(default_factory=dict)
    error: Exception | None = None


def _read_project(client: IndexClient, name: str, known: dict[str, tuple[str, str]]) -> _Project:
    """Read one project's page; download only the wheels not mirrored yet (filename + sha256)."""
    project = _Project(name)
    try:
        try:
            project.files = _pick(client.files(name))
        except UnknownProject:
            project.files = {}
        for version, file in project.files.items():
            if known.get(version) != (file.filename, file.sha256):
                project.wheels[version] = inspect_wheel(client.download(file), file.filename)
    except Exception as exc:  # reported by the thread that writes, after the others
        project.error = exc
    return project


def sync_catalogue(
    client: IndexClient | None = None,
    projects: list[str] | None = None,
    say: Callable[[str], None] | None = None,
    *,
    workers: int = WORKERS,
) -> CatalogueReport:
    """Mirror the index (all projects, or the named ones) into CatalogueVersion rows.

    Requests: the project list, then one page per project (``workers`` at once) and one download
    per wheel the catalogue has not mirrored yet (same filename and sha256: never again). A full
    refresh remembers the index's serial: when the server has not changed since (and the
    catalogue is as that refresh left it), the project list is the only request. Compatibility
    is recomputed from the stored metadata on every refresh; withdrawn flags are kept; versions
    and projects no longer on the index are marked unavailable.
    """
    client = client or IndexClient()
    try:
        return _sync(client, projects, say, workers)
    finally:
        client.close()  # the kept-alive connections (reopened if the client is used again)


def _sync(
    client: IndexClient,
    projects: list[str] | None,
    say: Callable[[str], None] | None,
    workers: int,
) -> CatalogueReport:
    full = projects is None
    if projects is None:
        listing = client.listing()
        names = listing.projects
    else:
        names = list(dict.fromkeys(canonicalize_name(name) for name in projects))
    report = CatalogueReport(projects=len(names))
    rows: dict[str, dict[str, CatalogueVersion]] = {}
    queryset = CatalogueVersion.objects.defer("manifest", "summary", "author", "manifest_error")
    for row in queryset if full else queryset.filter(name__in=names):
        rows.setdefault(row.name, {})[row.version] = row
    writes = _Writes()
    verdicts = _Verdicts()
    if full:
        marker = _marker(client, listing)
        if marker is not None and marker == _read_marker():
            report.unchanged_index = True
            for versions in rows.values():
                for row in versions.values():
                    writes.update(row, _recompute(row, verdicts))
            writes.flush()
            if writes.count:
                _write_marker(_marker(client, listing))
            return report

    def known(name: str) -> dict[str, tuple[str, str]]:
        return {v: (row.filename, row.sha256) for v, row in rows.get(name, {}).items()}

    errors: dict[str, Exception] = {}
    results: Iterable[_Project]
    pool = None
    if len(names) > 1 and workers > 1:
        pool = ThreadPoolExecutor(min(workers, len(names)), thread_name_prefix="catalogue")
        futures = [pool.submit(_read_project, client, name, known(name)) for name in names]
        results = (future.result() for future in as_completed(futures))
    else:
        results = (_read_project(client, name, known(name)) for name in names)
    try:
        for position, project in enumerate(results, 1):
            if isinstance(project.error, IndexUnavailable):
                errors[project.name] = project.error
                break  # the others would wait for the same dead server
            if project.error is not None:
                errors[project.name] = project.error
            else:
                _apply(project, rows.get(project.name, {}), report, writes, verdicts)
            if len(writes) >= 500:
                writes.flush()
            if say and len(names) > 100 and (position % 100 == 0 or position == len(names)):
                say(f"catalogue: {position}/{len(names)} projects read")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if full:
        listed = set(names)
        for name in sorted(set(rows) - listed):  # the project is no longer on the index
            _apply(_Project(name), rows[name], report, writes, verdicts)
    writes.flush()
    if errors:
        raise errors[min(errors, key=names.index)]
    if full:
        _write_marker(_marker(client, listing))
    return report


def _apply(
    project: _Project,
    rows: dict[str, CatalogueVersion],
    report: CatalogueReport,
    writes: _Writes,
    verdicts: _Verdicts,
) -> None:
    """Turn what the index lists for one project into row changes."""
    name = project.name
    for version, file in project.files.items():
        row = rows.get(version)
        info = project.wheels.get(version)
        if info is None and row is not None:  # the very file the catalogue has
            changed = _recompute(row, verdicts)
            if not row.available:
                row.available = True
                changed.append("available")
                report.changed.append(f"{name}=={version}")
            writes.update(row, changed)
            continue
        assert info is not None
        compatible, why, spec = verdicts(info.requires_dist, info.requires_python, name)
        values = {
            "filename": file.filename,
            "sha256": file.sha256,
            "is_plugin": info.is_plugin,
            "available": True,
            "summary": info.metadata.summary[:500],
            "author": info.metadata.author[:200],
            "requires_dist": info.requires_dist,
            "requires_python": info.requires_python[:100],
            "requires_platform": spec[:200],
            "compatible": compatible,
            "compatibility": why[:500],
            "manifest": info.manifest,
            "manifest_error": info.manifest_error,
        }
        if row is None:
            writes.create(CatalogueVersion(name=name, version=version, **values))
            report.new.append(f"{name}=={version}")
            continue
        if row.sha256 and row.sha256 != file.sha256:
            logger.warning(
                "%s==%s changed on the index (sha256 %s -> %s): a locked install refuses it",
                name, version, row.sha256[:12], file.sha256[:12],
            )  # fmt: skip
        for key, value in values.items():
            setattr(row, key, value)
        writes.update(row, list(_FROM_WHEEL))
        report.changed.append(f"{name}=={version}")
    for version, row in rows.items():
        if version in project.files:
            continue
        changed = _recompute(row, verdicts)
        if row.available:
            row.available = False
            changed.append("available")
            report.gone.append(f"{name}=={version}")
        writes.update(row, changed)


class _Writes:
    """Row changes collected, then written in few statements, in one transaction per flush."""

    def __init__(self) -> None:
        self.creates: list[CatalogueVersion] = []
        self.updates: dict[tuple[str, ...], list[CatalogueVersion]] = {}
        self.count = 0

    def __len__(self) -> int:
        return len(self.creates) + sum(map(len, self.updates.values()))

    def create(self, row: CatalogueVersion) -> None:
        self.creates.append(row)

    def update(self, row: CatalogueVersion, fields: list[str]) -> None:
        if fields:
            self.updates.setdefault(tuple(sorted(set(fields))), []).append(row)

    def flush(self) -> None:
        if not len(self):
            return
        now = timezone.now()
        with transaction.atomic():
            if self.creates:
                # Another refresh may have created the same version meanwhile: update it then
                # (never its withdrawn flag).
                CatalogueVersion.objects.bulk_create(
                    self.creates,
                    batch_size=500,
                    update_conflicts=True,
                    unique_fields=["name", "version"],
                    update_fields=[*_FROM_WHEEL, "synced_at"],
                )
            for fields, rows in self.updates.items():
                for row in rows:
                    row.synced_at = now
                CatalogueVersion.objects.bulk_update(rows, [*fields, "synced_at"], batch_size=500)
        self.count += len(self)
        self.creates, self.updates = [], {}


def _recompute(row: CatalogueVersion, verdicts: _Verdicts) -> list[str]:
    """Compatibility with the running platform, from the stored metadata; the changed fields."""
    compatible, why, spec = verdicts(row.requires_dist, row.requires_python, row.name)
    why, spec = why[:500], spec[:200]
    if (compatible, why, spec) == (row.compatible, row.compatibility, row.requires_platform):
        return []
    row.compatible, row.compatibility, row.requires_platform = compatible, why, spec
    return list(_COMPATIBILITY)


# -- the serial of the last full refresh ------------------------------------------------------
#
# Kept in a small file in SERVICES_AI_HOME, with what identifies the catalogue it describes (the
# database and its CatalogueVersion rows: count, last id, last change): if anything else changed
# those rows, or this home is used with another database, the next refresh reads every page.


def _serial_file() -> Path:
    return conf.home() / SERIAL_FILE


def _marker(client: IndexClient, listing: IndexListing) -> dict | None:
    if not listing.server or not listing.serial:
        return None  # not a devpi-server: no serial to compare
    database = connection.settings_dict
    rows = CatalogueVersion.objects.aggregate(
        count=Count("id"), last=Max("id"), at=Max("synced_at")
    )
    return {
        "index": client.config.index_url(),
        "server": listing.server,
        "serial": listing.serial,
        "database": f"{connection.vendor}:{database.get('HOST', '')}:{database.get('PORT', '')}:"
        f"{database.get('NAME', '')}",
        "rows": [rows["count"], rows["last"], rows["at"].isoformat() if rows["at"] else None],
    }


def _read_marker() -> dict | None:
    try:
        return json.loads(_serial_file().read_text())
    except (OSError, ValueError):
        return None


def _write_marker(marker: dict | None) -> None:
    path = _serial_file()
    try:
        if marker is None:
            path.unlink(missing_ok=True)
            return
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        temporary.write_text(json.dumps(marker))
        os.replace(temporary, path)
    except OSError as exc:  # only the shortcut is lost: the next refresh reads every page
        logger.warning("cannot write %s: %s", path, exc)


def forget_index_serial() -> None:
    """Make the next full refresh read every project's page (the index changed, as it were)."""
    _write_marker(None)


def sort_key(row: CatalogueVersion) -> tuple:
    try:
        return (0, Version(row.version))
    except InvalidVersion:
        return (-1, row.version)


def by_project(rows: Iterable[CatalogueVersion]) -> dict[str, list[CatalogueVersion]]:
    """Group catalogue rows by project name (sorted), each project's versions newest first."""
    grouped: dict[str, list[CatalogueVersion]] = {}
    for row in rows:
        grouped.setdefault(row.name, []).append(row)
    return {name: sorted(grouped[name], key=sort_key, reverse=True) for name in sorted(grouped)}


def versions_of(name: str) -> list[CatalogueVersion]:
    """Return the known versions of one plugin, newest first."""
    rows = CatalogueVersion.objects.filter(name=canonicalize_name(name), is_plugin=True)
    return by_project(rows).get(canonicalize_name(name), [])


def choose(name: str, version: str | None) -> CatalogueVersion:
    """Return the catalogue row to install for ``name[==version]``, or refuse with the reason."""
    rows = [row for row in versions_of(name) if row.available]
    if not rows:
        raise UnknownProject(f"no plugin named {name!r} in the catalogue of the index")
    if version is None:
        for row in rows:
            if row.installable:
                return row
        reasons = "; ".join(f"{row.version}: {why_not(row)}" for row in rows[:5])
        raise RegistryError(f"no installable version of {name}: {reasons}")
    for row in rows:
        if row.version == version or _same_version(row.version, version):
            if not row.installable:
                raise RegistryError(
                    f"{row.name}=={row.version} cannot be installed: {why_not(row)}"
                )
            return row
    listed = ", ".join(row.version for row in rows[:10])
    raise RegistryError(f"{name} has no version {version!r} on the index; available: {listed}")


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return False


def why_not(row: CatalogueVersion) -> str:
    if row.withdrawn:
        return f"withdrawn ({row.withdrawn_reason or 'no reason given'})"
    if not row.compatible:
        return f"incompatible: {row.compatibility}"
    if row.manifest_error:
        return f"invalid manifest: {row.manifest_error}"
    if not row.available:
        return "no longer on the index"
    return "installable"


@transaction.atomic
def set_withdrawn(
    name: str, version: str, withdrawn: bool, reason: str = "", *, actor: str = ""
) -> CatalogueVersion:
    row = CatalogueVersion.objects.filter(name=canonicalize_name(name), version=version).first()
    if row is None:
        raise RegistryError(f"{name}=={version} is not in the catalogue: run `plugins catalogue`")
    before = {"withdrawn": row.withdrawn, "reason": row.withdrawn_reason}
    row.withdrawn = withdrawn
    row.withdrawn_reason = reason[:500] if withdrawn else ""
    row.save(update_fields=["withdrawn", "withdrawn_reason", "synced_at"])

    after = {"withdrawn": row.withdrawn, "reason": row.withdrawn_reason}
    record(
        actor, "withdraw" if withdrawn else "restore", f"{row.name}=={row.version}", before, after
    )
    return row
