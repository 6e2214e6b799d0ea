"""The catalogue: every plugin version on the index, what it needs and what it would ask for.

Each version's wheel is read once (metadata, entry point, ``manifest.json``) without installing
it; compatibility with the running platform is recomputed on every sync, so a platform upgrade
changes the verdicts without downloading anything again.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint
from importlib.metadata import version as installed_version

from django.db import transaction
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from plugin_registry.distribution.host_wheels import host_distributions
from plugin_registry.distribution.index import IndexClient, IndexFile, UnknownProject, open_wheel
from plugin_registry.errors import RegistryError
from plugin_registry.registry.audit import record
from plugin_registry.registry.manifest import MANIFEST_NAME, validate_manifest
from plugin_registry.registry.metadata import DistMetadata, header
from plugin_registry.registry.models import CatalogueVersion
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


def _pick(files: list[IndexFile]) -> dict[str, IndexFile]:
    """One wheel per version (the platform installs pure-Python plugin wheels)."""
    chosen: dict[str, IndexFile] = {}
    for file in sorted(files, key=lambda f: ("none-any" not in f.filename, f.filename)):
        chosen.setdefault(file.version, file)
    return chosen


def sync_catalogue(
    client: IndexClient | None = None,
    projects: list[str] | None = None,
    say: Callable[[str], None] | None = None,
) -> CatalogueReport:
    """Mirror the index (all projects, or the named ones) into CatalogueVersion rows."""
    client = client or IndexClient()
    names = projects if projects is not None else client.projects()
    report = CatalogueReport(projects=len(names))
    for position, name in enumerate(names, 1):
        try:
            files = _pick(client.files(name))
        except UnknownProject:
            files = {}
        existing = {row.version: row for row in CatalogueVersion.objects.filter(name=name)}
        for version, file in files.items():
            row = existing.get(version)
            if row is not None and row.sha256 == file.sha256 and row.available:
                _refresh_compatibility(row)
                continue
            info = inspect_wheel(client.download(file), file.filename)
            compatible, why, spec = compatibility(info.requires_dist, info.requires_python, name)
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
            CatalogueVersion.objects.update_or_create(name=name, version=version, defaults=values)
            (report.changed if row is not None else report.new).append(f"{name}=={version}")
            if row is not None and row.sha256 and row.sha256 != file.sha256:
                logger.warning(
                    "%s==%s changed on the index (sha256 %s -> %s): a locked install refuses it",
                    name, version, row.sha256[:12], file.sha256[:12],
                )  # fmt: skip
        for version, row in existing.items():
            if version not in files and row.available:
                row.available = False
                row.save(update_fields=["available", "synced_at"])
                report.gone.append(f"{name}=={version}")
        if say and (position % 100 == 0 or position == len(names)) and len(names) > 100:
            say(f"catalogue: {position}/{len(names)} projects read")
    return report


def _refresh_compatibility(row: CatalogueVersion) -> None:
    compatible, why, spec = compatibility(row.requires_dist, row.requires_python, row.name)
    if (compatible, why) != (row.compatible, row.compatibility):
        row.compatible, row.compatibility, row.requires_platform = compatible, why, spec
        row.save(update_fields=["compatible", "compatibility", "requires_platform", "synced_at"])


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
