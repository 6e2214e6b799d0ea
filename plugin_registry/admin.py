from django.contrib import admin

from plugin_registry.registry.models import (
    CatalogueVersion,
    EnvironmentGeneration,
    Plugin,
    PluginFailure,
    PluginPermission,
    PluginSetting,
)


class PermissionInline(admin.TabularInline):
    model = PluginPermission
    extra = 0
    fields = ("name", "requested", "granted", "changed_by", "changed_at")
    # Read-only: a grant must go through the registry so every process sees it at once.
    readonly_fields = fields
    can_delete = False


@admin.register(Plugin)
class PluginAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "enabled", "installed", "author")
    list_filter = ("enabled", "installed")
    search_fields = ("name", "summary")
    readonly_fields = (
        "name",
        "version",
        "summary",
        "author",
        "author_email",
        "entry_point",
        "manifest",
        "manifest_error",
        "installed",
        "enabled",
        "load_error",
        "created_at",
        "updated_at",
    )
    inlines = [PermissionInline]

    def has_add_permission(self, request) -> bool:
        return False  # plugins are mirrored from installed distributions


@admin.register(PluginSetting)
class PluginSettingAdmin(admin.ModelAdmin):
    list_display = ("plugin", "key", "updated_at")
    readonly_fields = ("plugin", "key", "updated_at")
    exclude = ("value",)  # secrets are never rendered back; use `services-ai plugins configure`

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(PluginFailure)
class PluginFailureAdmin(admin.ModelAdmin):
    list_display = ("created_at", "plugin_name", "hook", "message")
    list_filter = ("plugin_name", "hook")
    readonly_fields = ("plugin_name", "hook", "message", "traceback", "created_at")


@admin.register(CatalogueVersion)
class CatalogueVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "compatible", "withdrawn", "available", "synced_at")
    list_filter = ("compatible", "withdrawn", "available", "is_plugin")
    search_fields = ("name", "summary")
    fields = (
        "name", "version", "summary", "author", "filename", "sha256", "is_plugin", "available",
        "requires_platform", "requires_python", "requires_dist", "compatible", "compatibility",
        "manifest", "manifest_error", "withdrawn", "withdrawn_reason", "synced_at",
    )  # fmt: skip
    # Mirrored from the index; only the platform-side withdrawal is edited here.
    readonly_fields = tuple(f for f in fields if f not in ("withdrawn", "withdrawn_reason"))

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(EnvironmentGeneration)
class EnvironmentGenerationAdmin(admin.ModelAdmin):
    list_display = ("number", "status", "action", "actor", "created_at", "activated_at")
    list_filter = ("status",)
    readonly_fields = (
        "number", "status", "action", "requested", "lock", "error", "actor", "created_at",
        "activated_at",
    )  # fmt: skip

    def has_add_permission(self, request) -> bool:
        return False  # `services-ai plugins install|upgrade|uninstall|rollback` builds them

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
