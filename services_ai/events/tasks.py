"""The tasks workers run (Django tasks API, database backend by default)."""

from __future__ import annotations

from django_tasks import TaskContext, task

from services_ai.events.delivery import fan_out_event, run_delivery


@task(takes_context=True, queue_name="events")
def fan_out(context: TaskContext, hook: str, payload: dict) -> int:
    """Record the event, create one delivery per subscribed plugin, enqueue each; return how
    many."""
    result = context.task_result
    return fan_out_event(result.id, hook, payload, occurred_at=result.enqueued_at)


# Deliveries go before fan-outs still waiting (a higher priority), so under a backlog events are
# delivered as they are fanned out, not all fanned out first.
@task(takes_context=True, queue_name="deliveries", priority=1)
def deliver(context: TaskContext, delivery_id: int) -> str:
    """Run one delivery; the outcome is recorded on the delivery, not raised."""
    worker_ids = context.task_result.worker_ids
    return run_delivery(delivery_id, worker_id=worker_ids[-1] if worker_ids else "")
