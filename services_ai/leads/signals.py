from django.db.models.signals import post_save
from django.dispatch import receiver

from services_ai.events import emit_on_commit

from .models import Lead


@receiver(post_save, sender=Lead, dispatch_uid="services_ai.lead_created")
def lead_saved(sender, instance: Lead, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        emit_on_commit("lead_created", lead=instance.snapshot())
