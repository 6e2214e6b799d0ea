"""The permissions a plugin can request, and which hooks need which permission."""

from __future__ import annotations

from typing import Any

PERMISSIONS: dict[str, str] = {
    "read_leads": "Receive lead events and read leads (name, contact details, notes).",
    "read_bookings": "Receive booking events and read bookings.",
    "create_bookings": "Create bookings for existing leads.",
}

#: Earlier names of permissions, still accepted in manifests and commands.
PERMISSION_ALIASES: dict[str, str] = {"write_bookings": "create_bookings"}

#: Data types offered to ``data_export`` and the permission each needs.
EXPORT_DATA_TYPES: dict[str, str] = {
    "leads": "read_leads",
    "bookings": "read_bookings",
}

#: Hooks that are only delivered to plugins holding the named permission.
HOOK_PERMISSIONS: dict[str, str] = {
    "lead_created": "read_leads",
    "booking_created": "read_bookings",
    "booking_updated": "read_bookings",
}


def permission_for_call(hook: str, kwargs: dict[str, Any]) -> str | None:
    """Return the permission a plugin needs to receive this hook call, or ``None``."""
    if hook == "data_export":
        return EXPORT_DATA_TYPES.get(kwargs.get("data_type", ""), "unknown_data_type")
    return HOOK_PERMISSIONS.get(hook)
