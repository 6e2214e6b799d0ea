from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "services_ai.dashboard"
    label = "dashboard"
    verbose_name = "Dashboard"
