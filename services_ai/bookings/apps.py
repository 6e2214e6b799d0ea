from django.apps import AppConfig


class BookingsConfig(AppConfig):
    name = "services_ai.bookings"
    label = "bookings"
    verbose_name = "Bookings"

    def ready(self) -> None:
        from services_ai.bookings import signals  # noqa: F401
