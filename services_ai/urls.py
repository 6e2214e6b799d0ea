from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from services_ai.dashboard import views as dashboard

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("widgets/<str:name>/", dashboard.widget, name="widget"),
    path("plugin-static/<str:name>/<path:path>", dashboard.plugin_static, name="plugin-static"),
    path("exports/", dashboard.exports, name="exports"),
    path("console/", include("plugin_registry.console.urls")),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="console/login.html"),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
