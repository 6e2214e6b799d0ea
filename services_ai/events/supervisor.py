"""``services-ai worker``: supervise database task workers.

Each worker is a child process running django-tasks-db's ``db_worker``. The supervisor:

- starts ``processes`` workers and replaces any that exit;
- kills a worker whose delivery outlived its lease (time budget + grace): plugin code that
  ignores the in-process timeout cannot stall delivery, the attempt is recorded as timed out;
- requeues work abandoned by workers that died (``kill -9``, a lost host) every few seconds;
- recycles workers gracefully when the installed plugins change, so new code is loaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib
import importlib.metadata
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from django.db import close_old_connections
from django.utils import timezone

from services_ai.plugins.markers import ENTRY_POINT_GROUP

from . import conf
from .models import Delivery
from .reaper import abandon_worker, reap_stale

logger = logging.getLogger("services_ai.worker")

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def plugin_environment_fingerprint() -> str:
    """Return a digest of the installed plugin distributions (name, version, location)."""
    importlib.invalidate_caches()
    found = sorted(
        (ep.dist.name, ep.dist.version, str(ep.dist.locate_file("")))
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        if ep.dist is not None
    )
    return hashlib.sha256(repr(found).encode()).hexdigest()[:16]


@dataclass
class Child:
    worker_id: str
    process: subprocess.Popen
    retiring: bool = False
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    def __init__(self, processes: int = 1, *, interval: float = 0.2, verbosity: int = 1):
        self.processes = processes
        self.interval = interval
        self.verbosity = verbosity
        self.children: dict[str, Child] = {}
        self.running = True
        self._serial = 0
        self._prefix = f"{socket.gethostname()[:30]}-{os.getpid()}"

    # -- children ---------------------------------------------------------------------------

    def spawn(self) -> Child:
        self._serial += 1
        worker_id = f"{self._prefix}-{self._serial}"
        command = [
            sys.executable,
            "-m",
            "services_ai",
            "db_worker",
            "--queue-name",
            "*",
            "--worker-id",
            worker_id,
            "--interval",
            str(self.interval),
            "--no-startup-delay",
            "--no-reload",
            # db_worker logs every task at verbosity 1; our own log says what matters.
            "--verbosity",
            str(self.verbosity if self.verbosity > 1 else 0),
        ]
        process = subprocess.Popen(command, preexec_fn=_die_with_parent)
        child = self.children[worker_id] = Child(worker_id, process)
        logger.info("worker %s started (pid %d)", worker_id, process.pid)
        return child

    def _reap_exited(self) -> None:
        for worker_id, child in list(self.children.items()):
            code = child.process.poll()
            if code is None:
                continue
            del self.children[worker_id]
            if not child.retiring and self.running:
                logger.error("worker %s exited with code %s; replacing it", worker_id, code)
                abandon_worker(worker_id, f"abandoned: worker {worker_id} exited with code {code}")

    def _kill_overdue(self) -> None:
        overdue = Delivery.objects.filter(
            status=Delivery.Status.RUNNING,
            worker_id__in=list(self.children),
            lease_expires_at__lt=timezone.now(),
        ).values_list("worker_id", "pk", "hook")
        for worker_id, pk, hook in overdue:
            child = self.children.pop(worker_id, None)
            if child is None:
                continue
            child.process.kill()
            child.process.wait()
            budget = conf.time_budget(hook)
            abandon_worker(
                worker_id,
                f"DeliveryTimeout: delivery {pk} exceeded the {budget:g}s time budget of "
                f"{hook} and ignored the interruption; worker {worker_id} was killed and replaced",
            )
            logger.error("killed worker %s stuck in delivery %d past its lease", worker_id, pk)

    def _recycle(self) -> None:
        logger.info("installed plugins changed: recycling workers gracefully")
        for child in self.children.values():
            if not child.retiring:
                child.retiring = True
                child.process.send_signal(signal.SIGTERM)

    def _fill(self) -> None:
        active = sum(1 for child in self.children.values() if not child.retiring)
        for _ in range(self.processes - active):
            self.spawn()

    # -- main loop ----------------------------------------------------------------------

    def stop(self, signum: int, frame: object) -> None:
        logger.info("received %s: stopping workers", signal.Signals(signum).name)
        self.running = False

    def run(self, *, max_seconds: float | None = None) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        reap_stale()
        fingerprint = plugin_environment_fingerprint()
        last_reap = last_fingerprint = time.monotonic()
        deadline = time.monotonic() + max_seconds if max_seconds else None
        logger.info("supervising %d worker process(es)", self.processes)
        while self.running and (deadline is None or time.monotonic() < deadline):
            close_old_connections()
            self._reap_exited()
            self._kill_overdue()
            now = time.monotonic()
            if now - last_fingerprint > 2:
                last_fingerprint = now
                current = plugin_environment_fingerprint()
                if current != fingerprint:
                    fingerprint = current
                    self._recycle()
            if now - last_reap > 5:
                last_reap = now
                reap_stale()
            self._fill()
            time.sleep(0.5)
        self.shutdown()

    def shutdown(self) -> None:
        for child in self.children.values():
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        longest = conf.stale_after().total_seconds()
        deadline = time.monotonic() + longest
        for child in self.children.values():
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        self.children.clear()
        logger.info("all workers stopped")
