from django.urls import path
from django.views.generic import RedirectView

from plugin_registry.console import views

app_name = "console"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="console:catalogue"), name="home"),
    path("catalogue/", views.catalogue, name="catalogue"),
    path("catalogue/refresh/", views.catalogue_refresh, name="catalogue-refresh"),
    path("catalogue/<str:name>/install/", views.install, name="install"),
    path("operations/<int:pk>/", views.operation, name="operation"),
    path("plugins/", views.plugin_list, name="plugins"),
    path("plugins/<str:name>/", views.plugin_detail, name="plugin"),
    path("plugins/<str:name>/enable/", views.plugin_enable, name="plugin-enable"),
    path("plugins/<str:name>/grant/", views.plugin_grant, name="plugin-grant"),
    path("plugins/<str:name>/settings/", views.plugin_settings, name="plugin-settings"),
    path("plugins/<str:name>/uninstall/", views.plugin_uninstall, name="plugin-uninstall"),
    path("history/", views.environment_history, name="history"),
    path("history/<int:number>/rollback/", views.rollback, name="rollback"),
    path("upload/", views.upload, name="upload"),
    path("audit/", views.audit_log, name="audit"),
]
