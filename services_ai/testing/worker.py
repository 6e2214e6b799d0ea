"""Running the real database task worker in the current process, until the queue is empty."""

from __future__ import annotations

from django_tasks_db.management.commands.db_worker import Worker


def run_worker_batch(queues: tuple[str, ...] = ("*",), worker_id: str = "test-worker") -> None:
    """Run every ready task (fan-outs, deliveries, due retries) with django-tasks-db's worker.

    ``queues=("events",)`` runs the fan-outs only, leaving the deliveries enqueued.

    The worker's own loop claims and runs the tasks exactly as ``services-ai worker`` children
    do; only the supervisor around it is left out. Signal handlers are not touched.
    """
    Worker(
        queue_names=list(queues),
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id=worker_id,
        excluded_queue_names=[],
    ).run()
