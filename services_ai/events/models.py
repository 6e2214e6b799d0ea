from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Event(models.Model):
    """A domain event, as fanned out by a worker from the task its transaction enqueued."""

    hook = models.CharField(_("hook"), max_length=100)
    payload = models.JSONField(_("payload"), help_text=_("the hook's keyword arguments"))
    task_id = models.UUIDField(
        _("task"), unique=True, null=True, blank=True, help_text=_("the fan-out task it came in")
    )
    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now, db_index=True)
    fanned_out_at = models.DateTimeField(_("fanned out at"), null=True, blank=True)

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.hook} #{self.pk}"


class Delivery(models.Model):
    """One event delivered to one plugin: attempts, outcome, timings."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        RUNNING = "running", _("running")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed, will retry")
        DEAD = "dead", _("dead")
        SKIPPED = "skipped", _("skipped")
        HELD = "held", _("held while its plugin is quarantined")

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    plugin_name = models.CharField(_("plugin"), max_length=200)
    hook = models.CharField(_("hook"), max_length=100)
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    max_attempts = models.PositiveIntegerField(_("max attempts"))
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    lease_expires_at = models.DateTimeField(_("lease expires at"), null=True, blank=True)
    worker_id = models.CharField(_("worker"), max_length=64, blank=True)
    claim_token = models.CharField(
        _("claim"), max_length=32, blank=True, help_text=_("identifies the running attempt")
    )
    task_id = models.UUIDField(
        _("task"), null=True, blank=True, help_text=_("the task that will run the next attempt")
    )
    started_at = models.DateTimeField(_("last started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    duration_ms = models.FloatField(_("last duration (ms)"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    last_traceback = models.TextField(_("last traceback"), blank=True)
    skip_reason = models.CharField(_("skip reason"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "plugin_name"], name="one_delivery_per_plugin")
        ]
        indexes = [
            models.Index(fields=["plugin_name", "status"]),
            models.Index(fields=["status", "lease_expires_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.hook} #{self.event_id} -> {self.plugin_name} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        """The same for every attempt of this delivery, different for every other one."""
        return f"{self.event_id}:{self.plugin_name}"
