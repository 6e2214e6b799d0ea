from django.db.models.signals import post_save
from django.dispatch import receiver

from services_ai.events.emit import record_event
from services_ai.leads.models import Lead


@receiver(post_save, sender=Lead, dispatch_uid="services_ai.lead_created")
def lead_saved(sender, instance: Lead, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        record_event("lead_created", lead=instance.snapshot())
