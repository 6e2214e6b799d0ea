"""Hook implementations of the crm-sync plugin.

No network I/O happens here. A "push" to the CRM is built as the HTTP request a real client
would send (``push_request``, carrying the delivery's idempotency key as ``Idempotency-Key``) and
handed to ``send``, which stands in for the CRM: it records the push under that key in the
plugin's ``pushes`` data. The lead id is then recorded in the ``synced`` list.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from services_ai.plugins import Export, LeadSnapshot, api, hookimpl

EXPORT_LIMIT = 1000
DEFAULT_ENDPOINT = "https://crm.example.com/api"


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


def push_key(lead: LeadSnapshot) -> str:
    """Return the idempotency key of this push: the delivery's, the same for every attempt.

    Outside a worker (no delivery) it is ``lead:<id>``, so a lead is pushed once.
    """
    delivery = api.current_delivery()
    return delivery.idempotency_key if delivery else f"lead:{lead['id']}"


def push_request(lead: LeadSnapshot, settings: dict[str, Any], key: str) -> dict[str, Any]:
    """Return the request a real CRM client would send for ``lead``: ``POST <endpoint>/leads``
    with the lead in CRM field names and ``key`` as the ``Idempotency-Key`` header, so the CRM
    itself ignores a repeat (say, the worker died after the push, before recording it)."""
    endpoint = (settings.get("endpoint") or DEFAULT_ENDPOINT).rstrip("/")
    return {
        "method": "POST",
        "url": f"{endpoint}/leads",
        "headers": {
            "Authorization": f"Bearer {settings.get('api_key') or ''}",
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        },
        "json": to_crm(lead),
    }


def send(request: dict[str, Any]) -> dict[str, Any]:
    """Simulated CRM call (no network I/O): record the push in ``pushes`` under its
    ``Idempotency-Key``, once, as a CRM honouring the header does; return the CRM's answer.

    A real plugin would send ``request`` with an HTTP client here, with a timeout. The API key
    in its headers is never stored.
    """
    key = request["headers"]["Idempotency-Key"]
    lead_id = request["json"]["external_id"]
    pushes = api.update_data(
        "pushes", lambda seen: seen if key in seen else {**seen, key: lead_id}, {}
    )
    return {"status": 201, "external_id": pushes[key], "idempotency_key": key}


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
    """Queue the lead; in realtime mode also push it (simulated), once per delivery."""
    _append("outbox", lead["id"])
    settings = api.get_settings()
    if settings.get("sync_mode") == "realtime" and settings.get("api_key"):
        key = push_key(lead)
        if key not in api.get_data("pushes", {}):  # else an earlier attempt pushed it already
            send(push_request(lead, settings, key))
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
            "push_count": len(api.get_data("pushes", {})),
            "installed_at": api.get_data("installed_at"),
            "endpoint": settings.get("endpoint") or "",
            "sync_mode": settings.get("sync_mode") or "",
            "api_key_masked": mask_secret(settings.get("api_key") or ""),
            "api_key_set": bool(settings.get("api_key")),
        },
    )
