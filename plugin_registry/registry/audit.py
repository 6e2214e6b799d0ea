"""The audit log: every admin action on plugins, from the console or the command line."""

from __future__ import annotations

from typing import Any

from plugin_registry.registry.models import AuditEntry
from plugin_registry.registry.secrets import is_encrypted

REDACTED = "********"


def record(actor: str, action: str, target: str, before: Any = None, after: Any = None) -> None:
    """Write one entry; call it inside the transaction that made the change."""
    AuditEntry.objects.create(
        actor=(actor or "unknown")[:150],
        action=action[:50],
        target=target[:300],
        before=before,
        after=after,
    )


def redact_settings(values: dict[str, Any], specs: list[dict]) -> dict[str, Any]:
    """Replace secret values by a mark: the audit log never stores a secret, nor its token.

    A value in the encrypted form is redacted whatever the setting's declared type (a new
    version of a plugin may have turned a secret into a text setting).
    """
    secret = {spec["name"] for spec in specs if spec.get("type") == "secret"}
    return {
        key: (
            REDACTED
            if (key in secret and value not in (None, "")) or is_encrypted(value)
            else value
        )
        for key, value in values.items()
    }
