"""``services-ai ensure_admin``: create the first admin user if there is none."""

from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from services_ai import conf


class Command(BaseCommand):
    help = (
        "Create a superuser 'admin' if no superuser exists. The password comes from "
        "SERVICES_AI_ADMIN_PASSWORD or is generated and saved in SERVICES_AI_HOME/admin-password."
    )

    def handle(self, *args, **options) -> None:
        users = get_user_model()
        password_file = conf.home() / "admin-password"
        if users.objects.filter(is_superuser=True).exists():
            where = f" (password in {password_file})" if password_file.exists() else ""
            self.stdout.write(f"an admin user exists{where}")
            return
        password = os.environ.get("SERVICES_AI_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        users.objects.create_superuser("admin", "admin@localhost", password)
        password_file.touch(mode=0o600)
        password_file.write_text(password + "\n")
        self.stdout.write(
            self.style.SUCCESS(f"created admin user 'admin'; password saved in {password_file}")
        )
