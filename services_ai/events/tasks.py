"""The tasks workers run (Django tasks API, database backend by default)."""

from __future__ import annotations

from django_tasks import TaskContext, task

from .delivery import fan_out_event, run_delivery


@task()
def fan_out(event_id: int) -> int:
    """Create one delivery per subscribed plugin and enqueue each; return how many."""
    return fan_out_event(event_id)


@task(takes_context=True)
def deliver(context: TaskContext, delivery_id: int) -> str:
    """Run one delivery; the outcome is recorded on the delivery, not raised."""
    worker_ids = context.task_result.worker_ids
    return run_delivery(delivery_id, worker_id=worker_ids[-1] if worker_ids else "")
