from collections.abc import Mapping

from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from services_ai.bookings.models import Booking
from services_ai.events.emit import record_event

# Fields whose change makes an update worth an event (updated_at always changes).
_IGNORED = {"updated_at"}


@receiver(pre_save, sender=Booking, dispatch_uid="services_ai.booking_pre_save")
def remember_stored_state(sender, instance: Booking, raw: bool = False, **kwargs) -> None:
    """Read the row as stored before this save: ``previous_state`` must be the real values."""
    instance._stored_snapshot = None
    if instance.pk is not None and not raw:
        # Inside save()'s transaction: the row is locked until the event is recorded.
        stored = Booking.objects.select_for_update().filter(pk=instance.pk).first()
        instance._stored_snapshot = stored.snapshot() if stored else None


@receiver(post_save, sender=Booking, dispatch_uid="services_ai.booking_saved")
def booking_saved(sender, instance: Booking, created: bool, raw: bool = False, **kwargs) -> None:
    if raw:
        return
    current = instance.snapshot()
    if created:
        record_event("booking_created", booking=current)
        return
    previous = getattr(instance, "_stored_snapshot", None)
    if previous is None:
        return
    # Compared field by field as plain mappings: the keys are iterated, not literal.
    now: Mapping[str, object] = current
    before: Mapping[str, object] = previous
    if any(now[key] != before[key] for key in now if key not in _IGNORED):
        record_event("booking_updated", booking=current, previous_state=previous)
