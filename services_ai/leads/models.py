from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from services_ai.models import EmitsEvents
from services_ai.plugins.types import SNAPSHOT_VERSION, LeadSnapshot
from services_ai.snapshots import iso, parse_moment

LEAD_FILTERS = ("source", "created_after", "created_before")


class LeadQuerySet(models.QuerySet):
    def filtered(self, filters: dict[str, str]) -> LeadQuerySet:
        """Apply admin/plugin filters; raise ValueError naming an unknown or bad filter."""
        unknown = sorted(set(filters) - set(LEAD_FILTERS))
        if unknown:
            raise ValueError(
                f"unknown lead filter(s) {', '.join(unknown)}; known: {', '.join(LEAD_FILTERS)}"
            )
        qs = self
        if filters.get("source"):
            qs = qs.filter(source=filters["source"])
        if filters.get("created_after"):
            qs = qs.filter(
                created_at__gte=parse_moment(filters["created_after"], field="created_after")
            )
        if filters.get("created_before"):
            qs = qs.filter(
                created_at__lt=parse_moment(filters["created_before"], field="created_before")
            )
        return qs


class Lead(EmitsEvents):
    name = models.CharField(_("name"), max_length=200)
    email = models.EmailField(_("email"), blank=True)
    phone = models.CharField(_("phone"), max_length=50, blank=True)
    company = models.CharField(_("company"), max_length=200, blank=True)
    source = models.CharField(
        _("source"), max_length=100, blank=True, help_text=_("e.g. website, referral")
    )
    notes = models.TextField(_("notes"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    objects = LeadQuerySet.as_manager()

    class Meta:
        verbose_name = _("lead")
        verbose_name_plural = _("leads")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def snapshot(self) -> LeadSnapshot:
        """Return the JSON-serialisable snapshot plugins receive."""
        return {
            "snapshot_version": SNAPSHOT_VERSION,
            "id": self.pk,
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "company": self.company,
            "source": self.source,
            "notes": self.notes,
            "created_at": iso(self.created_at),
        }
