"""Hook implementations of the lead-scorer plugin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services_ai.plugins import LeadSnapshot, api, hookimpl

FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "aol.com",
        "icloud.com",
    }
)


def _sources(value: str) -> set[str]:
    """Split a comma separated setting into lower-case source names."""
    return {part.strip().lower() for part in value.split(",") if part.strip()}


def score_lead(lead: Mapping[str, Any], settings: Mapping[str, Any]) -> int:
    """Return a deterministic 0..100 score for a lead snapshot."""
    score = 30
    if (lead.get("source") or "").strip().lower() in _sources(
        settings.get("priority_sources", "referral,website")
    ):
        score += 30
    if (lead.get("company") or "").strip():
        score += 20
    if (lead.get("phone") or "").strip():
        score += 10
    if (lead.get("notes") or "").strip():
        score += 10
    domain = (lead.get("email") or "").rpartition("@")[2].strip().lower()
    if settings.get("free_mail_penalty", True) and domain in FREE_MAIL_DOMAINS:
        score -= 20
    return max(0, min(100, score))


@hookimpl
def lead_created(lead: LeadSnapshot) -> None:
    """Score the new lead and store the result under ``score:<id>``."""
    settings = api.get_settings()
    score = score_lead(lead, settings)
    hot = score >= float(settings.get("threshold", 60))
    api.set_data(f"score:{lead['id']}", {"score": score, "hot": hot})
