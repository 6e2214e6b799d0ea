"""Rendering one plugin's dashboard card."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from plugin_registry.host.sanitize import sanitize
from plugin_registry.runtime import call_budgeted


@dataclass(frozen=True)
class Card:
    plugin: str
    title: str
    html: str = ""
    refresh_interval: int = 0
    error: str = ""


def render_card(plugin: str, username: str) -> Card | None:
    """Call ``dashboard_widget`` on one plugin within its budget; a failure or an overrun is
    shown in its own card only."""
    context = {"user": username, "now": timezone.now().isoformat(), "plugin_id": plugin}
    outcome = call_budgeted(plugin, "dashboard_widget", context=context)
    if outcome.failure is not None and outcome.failure.message.startswith("SyncHookTimeout"):
        return Card(plugin, plugin, error="This widget did not answer in time.")
    if outcome.failure is not None:
        return Card(plugin, plugin, error=f"This widget failed: {outcome.failure.message}")
    value = outcome.value
    if not outcome.ok or value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("html"), str):
        return Card(plugin, plugin, error="This widget returned something that is not a widget.")
    try:
        refresh = max(0, int(value.get("refresh_interval") or 0))
    except (TypeError, ValueError):
        refresh = 0
    return Card(
        plugin=plugin,
        title=str(value.get("title") or plugin),
        html=sanitize(value["html"]),
        refresh_interval=refresh,
    )
