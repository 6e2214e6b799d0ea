"""Stored manifests and grants move to the specification's names (settings ``name`` and
``description``, permission ``create_bookings``); a later sync would do the same for installed
plugins, this also covers uninstalled ones and the catalogue."""

from django.db import migrations

SETTING_RENAMES = {"key": "name", "help": "description"}
PERMISSION_RENAMES = {"write_bookings": "create_bookings"}


def _renamed(manifest, forward):
    settings_map = SETTING_RENAMES if forward else {v: k for k, v in SETTING_RENAMES.items()}
    perm_map = PERMISSION_RENAMES if forward else {v: k for k, v in PERMISSION_RENAMES.items()}
    if not isinstance(manifest, dict):
        return manifest
    manifest = dict(manifest)
    if isinstance(manifest.get("permissions"), list):
        manifest["permissions"] = [perm_map.get(p, p) for p in manifest["permissions"]]
    if isinstance(manifest.get("settings"), list):
        manifest["settings"] = [
            {settings_map.get(k, k): v for k, v in spec.items()} if isinstance(spec, dict) else spec
            for spec in manifest["settings"]
        ]
    return manifest


def _migrate(apps, forward):
    perm_map = PERMISSION_RENAMES if forward else {v: k for k, v in PERMISSION_RENAMES.items()}
    for model in ("Plugin", "CatalogueVersion"):
        for row in apps.get_model("plugin_registry", model).objects.all():
            renamed = _renamed(row.manifest, forward)
            if renamed != row.manifest:
                row.manifest = renamed
                row.save(update_fields=["manifest"])
    permissions = apps.get_model("plugin_registry", "PluginPermission").objects
    for old, new in perm_map.items():
        permissions.filter(name=old).update(name=new)


class Migration(migrations.Migration):
    dependencies = [("plugin_registry", "0004_console")]

    operations = [
        migrations.RunPython(
            lambda apps, schema: _migrate(apps, True), lambda apps, schema: _migrate(apps, False)
        )
    ]
