from __future__ import annotations

from typing import cast

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from services_ai.models import EmitsEvents
from services_ai.plugins.types import SNAPSHOT_VERSION, BookingSnapshot, BookingStatus
from services_ai.snapshots import iso, parse_moment

BOOKING_FILTERS = ("status", "service", "lead_id", "start_after", "start_before")


class BookingQuerySet(models.QuerySet):
    def filtered(self, filters: dict[str, str]) -> BookingQuerySet:
        """Apply admin/plugin filters; raise ValueError naming an unknown or bad filter."""
        unknown = sorted(set(filters) - set(BOOKING_FILTERS))
        if unknown:
            raise ValueError(
                f"unknown booking filter(s) {', '.join(unknown)}; "
                f"known: {', '.join(BOOKING_FILTERS)}"
            )
        qs = self
        if filters.get("status"):
            statuses = Booking.Status.values
            if filters["status"] not in statuses:
                raise ValueError(
                    f"status: {filters['status']!r} is not one of {', '.join(statuses)}"
                )
            qs = qs.filter(status=filters["status"])
        if filters.get("service"):
            qs = qs.filter(service=filters["service"])
        if filters.get("lead_id"):
            try:
                qs = qs.filter(lead_id=int(filters["lead_id"]))
            except ValueError:
                raise ValueError(f"lead_id: {filters['lead_id']!r} is not a number") from None
        if filters.get("start_after"):
            qs = qs.filter(start__gte=parse_moment(filters["start_after"], field="start_after"))
        if filters.get("start_before"):
            qs = qs.filter(start__lt=parse_moment(filters["start_before"], field="start_before"))
        return qs


class Booking(EmitsEvents):
    class Status(models.TextChoices):
        REQUESTED = "requested", _("requested")
        CONFIRMED = "confirmed", _("confirmed")
        COMPLETED = "completed", _("completed")
        CANCELLED = "cancelled", _("cancelled")

    lead = models.ForeignKey(
        "leads.Lead", on_delete=models.CASCADE, related_name="bookings", verbose_name=_("lead")
    )
    service = models.CharField(_("service"), max_length=200)
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.REQUESTED
    )
    start = models.DateTimeField(_("start"))
    end = models.DateTimeField(_("end"))
    notes = models.TextField(_("notes"), blank=True)
    created_by = models.CharField(
        _("created by"), max_length=200, blank=True, help_text=_("plugin that created it, if any")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = BookingQuerySet.as_manager()

    # The row as stored before the current save, set by the pre_save signal handler.
    _stored_snapshot: BookingSnapshot | None

    class Meta:
        verbose_name = _("booking")
        verbose_name_plural = _("bookings")
        ordering = ["start"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gte=models.F("start")), name="booking_end_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.service} for {self.lead} at {self.start:%Y-%m-%d %H:%M}"

    def clean(self) -> None:
        if self.start and self.end and self.end < self.start:
            raise ValidationError({"end": _("The end must not be before the start.")})

    def snapshot(self) -> BookingSnapshot:
        """Return the JSON-serialisable snapshot plugins receive."""
        return {
            "snapshot_version": SNAPSHOT_VERSION,
            "id": self.pk,
            "lead_id": self.lead_id,
            "service": self.service,
            # a plain str, not the Status enum member; cast: the column's choices are exactly
            # BookingStatus's values, which the type of a CharField cannot tell
            "status": cast(BookingStatus, str(self.status)),
            "start": iso(self.start),
            "end": iso(self.end),
            "notes": self.notes,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }

    @classmethod
    def create_validated(
        cls, *, lead_id: int, service: str, start: str, end: str, notes: str, created_by: str
    ) -> Booking:
        """Create a booking from plugin-supplied values; raise ValueError with the reason."""
        from services_ai.leads.models import Lead

        if not Lead.objects.filter(pk=lead_id).exists():
            raise ValueError(f"lead_id: no lead with id {lead_id}")
        if not service.strip():
            raise ValueError("service: must not be empty")
        booking = cls(
            lead_id=lead_id,
            service=service.strip(),
            start=parse_moment(start, field="start"),
            end=parse_moment(end, field="end"),
            notes=notes,
            created_by=created_by,
        )
        try:
            booking.full_clean()
        except ValidationError as exc:
            raise ValueError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from None
        booking.save()
        return booking
