from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "services_ai.events"
    label = "events"
    verbose_name = "Event delivery"

    def ready(self) -> None:
        from services_ai.events import checks  # noqa: F401  (registers the system checks)
