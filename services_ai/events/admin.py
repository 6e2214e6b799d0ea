from django.contrib import admin, messages

from services_ai.events.delivery import retry
from services_ai.events.models import Delivery, Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("id", "hook", "occurred_at", "fanned_out_at")
    list_filter = ("hook",)
    readonly_fields = ("hook", "payload", "task_id", "occurred_at", "fanned_out_at")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "hook", "plugin_name", "status", "attempts", "duration_ms", "created_at")
    list_filter = ("status", "plugin_name", "hook")
    readonly_fields = [f.name for f in Delivery._meta.fields]
    actions = ["retry_now"]

    @admin.action(description="Run the selected dead, failed or pending deliveries again")
    def retry_now(self, request, queryset):
        count = retry(list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"retrying {count} deliveries", messages.SUCCESS)

    def has_add_permission(self, request) -> bool:
        return False
