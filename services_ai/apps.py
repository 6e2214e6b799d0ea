from django.apps import AppConfig


class ServicesAIConfig(AppConfig):
    name = "services_ai"
    verbose_name = "Services AI"
