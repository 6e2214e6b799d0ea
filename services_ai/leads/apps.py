from django.apps import AppConfig


class LeadsConfig(AppConfig):
    name = "services_ai.leads"
    label = "leads"
    verbose_name = "Leads"

    def ready(self) -> None:
        from services_ai.leads import signals  # noqa: F401
