"""Template context every console page gets."""

from __future__ import annotations

from django.http import HttpRequest

from plugin_registry.registry.models import Plugin


def quarantined_plugins(request: HttpRequest) -> dict[str, object]:
    """The quarantined plugins, for the banner staff see on every page."""
    user = getattr(request, "user", None)
    if user is None or not user.is_staff:
        return {}
    return {
        "quarantined_plugins": list(
            Plugin.objects.filter(quarantined_at__isnull=False).only("name", "quarantine_reason")
        )
    }
