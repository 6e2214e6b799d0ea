"""``services-ai demo_data``: a few leads and bookings to look at (events fire as usual)."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from services_ai.bookings.models import Booking
from services_ai.leads.models import Lead

LEADS = [
    ("Ada Lovelace", "ada@analytical.example", "referral", "Analytical Engines Ltd"),
    ("Grace Hopper", "grace@gmail.com", "website", ""),
    ("Alan Turing", "alan@bletchley.example", "trade show", "Bletchley Park"),
]
SERVICES = ["Boiler service", "Window cleaning", "Garden design"]


class Command(BaseCommand):
    help = "Create three demo leads with one booking each."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        now = timezone.now().replace(minute=0, second=0, microsecond=0)
        for index, (name, email, source, company) in enumerate(LEADS):
            lead = Lead.objects.create(name=name, email=email, source=source, company=company)
            start = now + timedelta(days=index + 1, hours=9)
            Booking.objects.create(
                lead=lead, service=SERVICES[index], start=start, end=start + timedelta(hours=2)
            )
        self.stdout.write(self.style.SUCCESS(f"created {len(LEADS)} leads and bookings"))
