from django.contrib import admin

from services_ai.bookings.models import Booking


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    list_display = ("service", "lead", "status", "start", "end")
    list_filter = ("status", "service")
    search_fields = ("service", "lead__name", "notes")
    raw_id_fields = ("lead",)
