from django.apps import AppConfig


class PluginRegistryConfig(AppConfig):
    name = "plugin_registry"
    verbose_name = "Plugin registry"

    def ready(self) -> None:
        # Importing these registers the system checks.
        from plugin_registry.distribution import checks as distribution_checks  # noqa: F401
        from plugin_registry.distribution.reconcile import converge_in_background
        from plugin_registry.registry import checks  # noqa: F401
        from plugin_registry.registry.signals import node_behind

        # A web process whose node lags asks; the distribution layer builds in the background.
        node_behind.connect(converge_in_background, dispatch_uid="plugin_registry.converge")
