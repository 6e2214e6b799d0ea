from django.apps import AppConfig


class PluginRegistryConfig(AppConfig):
    name = "plugin_registry"
    verbose_name = "Plugin registry"

    def ready(self) -> None:
        # Importing these registers the system checks.
        from plugin_registry.distribution import checks as distribution_checks  # noqa: F401
        from plugin_registry.registry import checks  # noqa: F401
