from django.apps import AppConfig


class ServicesAIConfig(AppConfig):
    name = "services_ai"
    verbose_name = "Services AI"

    def ready(self) -> None:
        # The app registry is ready only now: the backend's models can be imported.
        from services_ai.data_api import DatabaseBackend
        from services_ai.plugins.backend import install_backend

        install_backend(DatabaseBackend())
