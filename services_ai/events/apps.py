from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "services_ai.events"
    label = "events"
    verbose_name = "Event delivery"

    def ready(self) -> None:
        from plugin_registry.registry.signals import quarantine_lifted
        from services_ai.events import checks  # noqa: F401  (registers the system checks)
        from services_ai.events.delivery import resume_held

        def _resume(sender: object, name: str, **kwargs: object) -> None:
            resume_held(name)

        quarantine_lifted.connect(_resume, weak=False, dispatch_uid="services_ai.events.resume")
