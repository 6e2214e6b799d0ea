from django.apps import AppConfig


class PluginRegistryConfig(AppConfig):
    name = "plugin_registry"
    verbose_name = "Plugin registry"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
