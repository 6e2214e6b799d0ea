from django.contrib import admin

from services_ai.leads.models import Lead


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "company", "source", "created_at")
    list_filter = ("source",)
    search_fields = ("name", "email", "company")
