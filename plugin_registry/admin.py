from django.contrib import admin

from .models import Plugin, PluginFailure, PluginPermission, PluginSetting


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
