"""System checks for event delivery, with stable ids."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from services_ai.events import conf

QUEUES = ("events", "deliveries")


@register()
def check_task_backend(app_configs=None, **kwargs) -> list:
    backend = getattr(settings, "TASKS", {}).get("default", {})
    problems = []
    if backend.get("BACKEND") != "django_tasks_db.DatabaseBackend":
        problems.append(
            Error(
                f"the default task backend is {backend.get('BACKEND')!r}; event delivery needs "
                "'django_tasks_db.DatabaseBackend' (durable, and enqueued in the saving "
                "transaction).",
                hint="Set TASKS['default']['BACKEND'] = 'django_tasks_db.DatabaseBackend'.",
                id="events.E001",
            )
        )
    queues = backend.get("QUEUES", ["default"])
    missing = [q for q in QUEUES if queues and q not in queues]  # [] allows every queue
    if missing:
        problems.append(
            Error(
                f"the default task backend has no queue(s) {', '.join(missing)}.",
                hint="Add them to TASKS['default']['QUEUES'].",
                id="events.E002",
            )
        )
    return problems


@register()
def check_delivery_settings(app_configs=None, **kwargs) -> list:
    problems = []
    budgets = conf.get("TIME_BUDGET")
    if not budgets or any(float(v) <= 0 for v in budgets.values()):
        problems.append(
            Error(
                f"SERVICES_AI_EVENTS['TIME_BUDGET'] must give positive seconds, got {budgets!r}.",
                hint="Set SERVICES_AI_TIME_BUDGET to e.g. 30 or default=30,lead_created=10.",
                id="events.E003",
            )
        )
    if int(conf.get("MAX_ATTEMPTS")) < 1:
        problems.append(
            Error(
                "SERVICES_AI_EVENTS['MAX_ATTEMPTS'] must be at least 1.",
                hint="Set SERVICES_AI_MAX_ATTEMPTS to 1 or more.",
                id="events.E004",
            )
        )
    return problems
