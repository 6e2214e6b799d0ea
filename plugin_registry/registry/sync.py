"""Mirroring the installed plugin distributions into the registry models."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import Distribution, EntryPoint

from django.db import transaction

from plugin_registry.host import discover_entry_points
from plugin_registry.registry.generation import bump_generation
from plugin_registry.registry.manifest import read_manifest
from plugin_registry.registry.metadata import DistMetadata
from plugin_registry.registry.models import Plugin, PluginPermission, RegistryGeneration
from services_ai.plugins.exceptions import ManifestError
from services_ai.plugins.markers import ENTRY_POINT_GROUP

logger = logging.getLogger("plugin_registry.registry.sync")


@dataclass(frozen=True)
class InstalledPlugin:
    """An installed plugin distribution as read from its metadata, never imported."""

    metadata: DistMetadata
    manifest: dict
    error: str = ""


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)


def inspect_plugin(name: str, eps: list[EntryPoint]) -> InstalledPlugin:
    entry_point = eps[0]
    dist: Distribution | None = entry_point.dist
    if dist is None:  # pragma: no cover - only for entry points not from a distribution
        raise LookupError(f"entry point {entry_point} has no distribution")
    metadata = DistMetadata.of(dist, entry_point)
    if not metadata.version:
        return InstalledPlugin(metadata, {}, f"plugin {name!r}: its metadata has no Version")
    if len(eps) > 1:
        error = (
            f"plugin {name!r}: declares {len(eps)} entry points in group {ENTRY_POINT_GROUP!r}; "
            "a plugin distribution declares exactly one"
        )
        return InstalledPlugin(metadata, {}, error)
    try:
        return InstalledPlugin(metadata, read_manifest(dist, entry_point, metadata))
    except ManifestError as exc:
        return InstalledPlugin(metadata, {}, str(exc))


def installed_plugins() -> dict[str, InstalledPlugin]:
    """Return every installed plugin distribution by name, with its validated manifest."""
    return {name: inspect_plugin(name, eps) for name, eps in discover_entry_points().items()}


@transaction.atomic
def sync_registry() -> SyncReport:
    """Mirror installed distributions into the registry; one transaction, one generation bump.

    New plugins start disabled with every requested permission ungranted. A plugin whose new
    version requests a permission gets it ungranted; one it no longer requests is revoked.
    """
    report = SyncReport()
    # One sync at a time, across processes: two would both insert a new plugin's row.
    list(RegistryGeneration.objects.select_for_update().filter(pk=1))
    installed = installed_plugins()
    changed = False
    for name, found in sorted(installed.items()):
        meta = found.metadata
        plugin = Plugin.objects.select_for_update().filter(name=name).first()
        values = {
            "version": meta.version,
            "summary": meta.summary[:500],
            "author": meta.author[:200],
            "author_email": meta.author_email[:200],
            "entry_point": meta.entry_point[:300],
            "manifest": found.manifest,
            "manifest_error": found.error,
            "installed": True,
        }
        if found.error:
            report.invalid[name] = found.error
        if plugin is None:
            plugin = Plugin.objects.create(name=name, **values)
            report.added.append(name)
            changed = True
        elif any(getattr(plugin, key) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(plugin, key, value)
            if found.error and plugin.enabled:
                plugin.enabled = False
                logger.warning("disabled %s: %s", name, found.error)
            plugin.save()
            report.updated.append(name)
            changed = True
        if not found.error:  # a broken manifest says nothing about what was consented to
            changed |= _sync_permissions(plugin, found.manifest.get("permissions", []))
    # A plugin missing here stays enabled: that is the desired state, and it loads again (in
    # every process) once it is installed again. Until then nothing loads it.
    for plugin in Plugin.objects.filter(installed=True).exclude(name__in=installed):
        plugin.installed = False
        plugin.save(update_fields=["installed", "updated_at"])
        report.removed.append(plugin.name)
        changed = True
    if changed:
        bump_generation()
        transaction.on_commit(lambda: _log_sync(report))
    return report


def _log_sync(report: SyncReport) -> None:
    logger.info(
        "registry synced: added %s, updated %s, not installed %s",
        report.added or "-",
        report.updated or "-",
        report.removed or "-",
    )


def _sync_permissions(plugin: Plugin, requested: list[str]) -> bool:
    changed = False
    existing = {perm.name: perm for perm in plugin.permissions.all()}
    for name in requested:
        perm = existing.get(name)
        if perm is None:
            PluginPermission.objects.create(plugin=plugin, name=name, requested=True, granted=False)
            changed = True
        elif not perm.requested:
            perm.requested = True
            perm.save(update_fields=["requested", "changed_at"])
            changed = True
    for name, perm in existing.items():
        if name not in requested and (perm.requested or perm.granted):
            perm.requested = False
            perm.granted = False
            perm.changed_by = "sync: no longer requested"
            perm.save(update_fields=["requested", "granted", "changed_by", "changed_at"])
            changed = True
    return changed
