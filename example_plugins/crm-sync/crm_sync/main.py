"""Hook implementations of the crm-sync plugin.

No network I/O happens here: a "push" to the CRM is simulated by recording the lead id in the
plugin's ``synced`` list.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from services_ai.plugins import Export, LeadSnapshot, api, hookimpl

EXPORT_LIMIT = 1000


def _append(key: str, lead_id: int) -> list[int]:
    """Add ``lead_id`` to the stored list under ``key`` once, atomically; return the list."""
    return api.update_data(key, lambda ids: ids if lead_id in ids else [*ids, lead_id], [])


def to_crm(lead: LeadSnapshot) -> dict[str, Any]:
    """Map a lead snapshot to the CRM's field names."""
    return {
        "external_id": lead["id"],
        "full_name": lead["name"],
        "email_address": lead["email"],
        "phone_number": lead["phone"],
        "company_name": lead["company"],
        "origin": lead["source"],
        "description": lead["notes"],
        "created_at": lead["created_at"],
    }


def mask_secret(secret: str) -> str:
    """Return ``••••`` plus the last 4 characters, or only ``••••`` for short secrets."""
    return "••••" + secret[-4:] if len(secret) >= 8 else "••••"


@hookimpl
def plugin_installed() -> None:
    """Record the install time and start with an empty outbox."""
    api.set_data("installed_at", datetime.now(UTC).isoformat())
    api.set_data("outbox", [])


@hookimpl
def plugin_uninstalled() -> None:
    """Remove every key this plugin stored."""
    api.delete_data()


@hookimpl
def lead_created(lead: LeadSnapshot) -> None:
    """Queue the lead; in realtime mode also record a simulated push."""
    _append("outbox", lead["id"])
    settings = api.get_settings()
    if settings.get("sync_mode") == "realtime" and settings.get("api_key"):
        _append("synced", lead["id"])


@hookimpl
def data_export(data_type: str, filters: dict[str, str]) -> Export | None:
    """Offer leads as a JSON file with CRM field names."""
    if data_type != "leads":
        return None
    leads = api.list_leads(filters, limit=EXPORT_LIMIT)
    return {
        "format": "crm-json",
        "filename": "leads-crm.json",
        "content_type": "application/json",
        "content": json.dumps([to_crm(lead) for lead in leads], indent=2),
    }


@hookimpl
def settings_page(plugin_id: str) -> str:
    """Show the sync status under the settings form, with the API key masked."""
    settings = api.get_settings()
    return api.render_template(
        "crm_sync/settings.html",
        {
            "plugin_id": plugin_id,
            "outbox_size": len(api.get_data("outbox", [])),
            "synced_count": len(api.get_data("synced", [])),
            "installed_at": api.get_data("installed_at"),
            "endpoint": settings.get("endpoint") or "",
            "sync_mode": settings.get("sync_mode") or "",
            "api_key_masked": mask_secret(settings.get("api_key") or ""),
            "api_key_set": bool(settings.get("api_key")),
        },
    )
