"""The task a worker runs for a console operation (queue ``operations``).

The web process records the ``Operation`` and enqueues ``run_operation`` with the operation's id
and a JSON description of the work (``{"kind": "install", "requirements": ["greeter==1.0.0"]}``);
nothing of the web process travels with it. The worker maps the kind to the function the command
line uses too (``Environment.install``, ``uninstall``, ``rollback``, ``sync_catalogue``), writes
each progress line to ``Operation.log`` and the outcome to ``status`` and ``result``, and beats
``heartbeat_at`` from a thread while it works, so the reaper can tell a long operation from one
whose worker died (``plugin_registry.registry.operations``).

Changing the environment moves the *worker's* process to the new generation (as the command line
does), and the supervisor recycles its workers once the installed plugins changed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from django.db import DatabaseError, connection
from django.utils import timezone
from django_tasks import TaskContext, task

from plugin_registry.distribution.catalogue import sync_catalogue
from plugin_registry.distribution.environment import Environment
from plugin_registry.errors import RegistryError
from plugin_registry.registry.models import Operation
from plugin_registry.registry.operations import HEARTBEAT_EVERY, QUEUE, interrupted

logger = logging.getLogger("plugin_registry.console.operations")

Say = Callable[[str], None]
Status = Operation.Status


# -- the kinds of work ---------------------------------------------------------------------------


def install(op: Operation, say: Say, *, requirements: list[str]) -> str:
    """Install or upgrade ``NAME==VERSION`` (or ``NAME``, the newest installable)."""
    wanted: dict[str, str | None] = {}
    for text in requirements:
        name, _, version = text.partition("==")
        wanted[name.strip()] = version.strip() or None
    result = Environment(say=say).install(wanted, op.description, op.actor)
    lines = [line for change in result.changes for line in change.describe()]
    return f"Generation {result.generation} is active. " + (" ".join(lines) or "No change.")


def uninstall(op: Operation, say: Say, *, name: str) -> str:
    result = Environment(say=say).uninstall(name, op.actor)
    return f"Uninstalled {name}; generation {result.generation} is active."


def rollback(op: Operation, say: Say, *, to: int) -> str:
    result = Environment(say=say).rollback(to, op.actor)
    return f"Generation {result.generation} is active again."


def refresh(op: Operation, say: Say) -> str:
    """Mirror the index into the catalogue."""
    report = sync_catalogue(say=say)
    return (
        f"Catalogue refreshed: {report.projects} project(s), {len(report.new)} new "
        f"version(s), {len(report.gone)} gone."
    )


KINDS: dict[str, Callable[..., str]] = {
    "install": install,
    "upgrade": install,
    "uninstall": uninstall,
    "rollback": rollback,
    "refresh": refresh,
}


# -- running one ---------------------------------------------------------------------------------


# Before waiting fan-outs and deliveries: an admin watches the page, and operations are rare.
@task(takes_context=True, queue_name=QUEUE, priority=10)
def run_operation(context: TaskContext, operation_id: int, work: dict[str, Any]) -> str:
    """Run one console operation; its outcome is recorded on the operation, not raised."""
    worker_ids = context.task_result.worker_ids
    return execute(operation_id, work, worker_id=worker_ids[-1] if worker_ids else "")


def execute(operation_id: int, work: dict[str, Any], *, worker_id: str = "") -> str:
    """Claim the queued operation, run its work, record the outcome; return the status."""
    now = timezone.now()
    claimed = Operation.objects.filter(pk=operation_id, status=Status.QUEUED).update(
        status=Status.RUNNING,
        worker_id=worker_id[:64],
        host=socket.gethostname()[:255],
        pid=os.getpid(),
        picked_up_at=now,
        heartbeat_at=now,
    )
    if not claimed:  # gone, or already failed by the reaper
        logger.warning("operation %s is no longer queued; not running it", operation_id)
        return "skipped"
    op = Operation.objects.get(pk=operation_id)
    lines: list[str] = []

    def say(message: str) -> None:
        lines.append(message)
        Operation.objects.filter(pk=operation_id).update(log="\n".join(lines))

    params = {key: value for key, value in work.items() if key != "kind"}
    status, result = Status.FAILED, ""
    with heartbeat(operation_id):
        try:
            result = KINDS[work["kind"]](op, say, **params)
            status = Status.SUCCEEDED
        except RegistryError as exc:
            result = str(exc)
        except Exception as exc:  # the admin must hear about it, whatever it was
            logger.exception("operation %s failed", operation_id)
            result = f"unexpected error: {type(exc).__name__}: {exc}"
        except BaseException as exc:  # the worker is being stopped in the middle of it
            result = interrupted(f"the worker running it stopped ({type(exc).__name__})")
            raise
        finally:
            Operation.objects.filter(pk=operation_id).update(
                status=status, result=result[:20000], finished_at=timezone.now()
            )
    return status


@contextlib.contextmanager
def heartbeat(operation_id: int, every: float | None = None) -> Iterator[None]:
    """Beat ``heartbeat_at`` every few seconds from a thread while the body runs."""
    stop = threading.Event()
    interval = HEARTBEAT_EVERY if every is None else every

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    Operation.objects.filter(pk=operation_id, status=Status.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except DatabaseError:
                    logger.warning("operation %s: heartbeat failed; retrying", operation_id)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"operation-{operation_id}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
