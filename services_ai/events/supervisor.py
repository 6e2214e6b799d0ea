"""``services-ai worker``: supervise database task workers.

Each worker is a child process running django-tasks-db's ``db_worker``. The supervisor:

- starts ``processes`` workers and replaces any that exit;
- kills a worker whose delivery outlived its lease (time budget + grace): plugin code that
  ignores the in-process timeout cannot stall delivery, the attempt is recorded as timed out;
- requeues work abandoned by workers that died (``kill -9``, a lost host) every few seconds;
- recycles workers gracefully when the installed plugins change, so new code is loaded;
- strikes the plugin whose code a worker was running when it died or had to be killed (and
  the plugins this host's dead web processes were running), towards its quarantine.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
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
import uuid
from dataclasses import dataclass, field

from django.db import close_old_connections
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from plugin_registry.distribution.reconcile import converge
from plugin_registry.host import marks
from plugin_registry.registry import nodes, quarantine
from plugin_registry.registry.operations import QUEUE as OPERATIONS_QUEUE
from plugin_registry.runtime import report_dead_processes
from services_ai import conf as platform_conf
from services_ai.events import conf
from services_ai.events.models import Delivery
from services_ai.events.reaper import abandon_worker, reap_stale
from services_ai.events.stats import prune
from services_ai.plugins.markers import ENTRY_POINT_GROUP

logger = logging.getLogger("services_ai.worker")

PR_SET_PDEATHSIG = 1
PRUNE_EVERY = 3600.0  # seconds between prunes of what is past retention


def _die_with_parent(parent: int) -> None:  # runs in the child, between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the supervisor died before the request took effect
        os._exit(1)


def plugin_environment_fingerprint() -> str:
    """Return a digest of the active environment generation and the installed plugins."""
    importlib.invalidate_caches()
    found: list[tuple[str, str, str]] = [
        ("<generation>", "", str(platform_conf.active_generation_dir()))
    ]
    found += sorted(
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
        # Unique across hosts and restarts (containers often share host names and run as pid 1):
        # the supervisor acts on database rows by worker id.
        self._prefix = f"{socket.gethostname()[:24]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

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
            "--skip-checks",  # the supervisor ran them; each worker would only repeat them
            # db_worker logs every task at verbosity 1; our own log says what matters.
            "--verbosity",
            str(self.verbosity if self.verbosity > 1 else 0),
        ]
        process = subprocess.Popen(
            command,
            env={**os.environ, conf.PROCESSES_ENV: str(self.processes)},
            preexec_fn=functools.partial(_die_with_parent, os.getpid()),
            # A group of its own: Ctrl-C reaches the supervisor only, which then stops each
            # worker once, gracefully (a second signal would abort the task in progress).
            process_group=0,
        )
        child = self.children[worker_id] = Child(worker_id, process)
        logger.info("worker %s started (pid %d)", worker_id, process.pid)
        return child

    def _reap_exited(self) -> None:
        for worker_id, child in list(self.children.items()):
            code = child.process.poll()
            if code is None:
                continue
            del self.children[worker_id]
            running = self._running(child) or []
            marks.forget(child.process.pid)
            if not child.retiring and self.running:
                logger.error("worker %s exited with code %s; replacing it", worker_id, code)
                for mark in running:
                    quarantine.strike(
                        mark.plugin,
                        quarantine.CRASH,
                        f"worker {worker_id} exited with code {code}, {mark.describe()}",
                    )
                abandon_worker(worker_id, f"abandoned: worker {worker_id} exited with code {code}")

    @staticmethod
    def _running(child: Child) -> list[marks.Mark] | None:
        """What plugin code the worker runs: its marks, or None when unknown."""
        try:
            return marks.decode_all(marks.marker_path(child.process.pid).read_bytes())
        except OSError:
            return None

    def _in_plugin(self, worker_id: str, plugin: str, event_id: int) -> bool:
        """Whether the worker runs that delivery's plugin code (unknown counts as yes)."""
        running = self._running(self.children[worker_id])
        if running is None:
            return True
        return any(m.plugin == plugin and m.detail == f"event {event_id}" for m in running)

    def _kill(self, worker_id: str) -> list[marks.Mark] | None:
        """Kill a worker; return what plugin code it was running (None: it was not ours)."""
        child = self.children.pop(worker_id, None)
        if child is None:
            return None
        running = self._running(child) or []
        child.process.kill()
        child.process.wait()
        marks.forget(child.process.pid)
        return running

    def _kill_overdue(self) -> None:
        now = timezone.now()
        overdue = Delivery.objects.filter(
            status=Delivery.Status.RUNNING,
            worker_id__in=list(self.children),
            lease_expires_at__lt=now,
        ).values_list("worker_id", "pk", "hook", "plugin_name", "event_id")
        for worker_id, pk, hook, plugin, event_id in overdue:
            if worker_id not in self.children or not self._in_plugin(worker_id, plugin, event_id):
                continue
            if self._kill(worker_id) is None:
                continue
            budget = conf.time_budget(hook)
            quarantine.strike(
                plugin,
                quarantine.STALL,
                f"its {hook} hook ran past the {budget:g}s time budget and ignored the "
                f"interruption (delivery {pk}); worker {worker_id} was killed",
            )
            abandon_worker(
                worker_id,
                f"DeliveryTimeout: delivery {pk} exceeded the {budget:g}s time budget of "
                f"{hook} and ignored the interruption; worker {worker_id} was killed and replaced",
                overdue=pk,
            )
            logger.error("killed worker %s stuck in delivery %d past its lease", worker_id, pk)
        # Any other task (a fan-out, or a delivery before its claim) stuck for too long. Console
        # operations (an install may take minutes) have a heartbeat instead (recover_operations).
        stuck = (
            DBTaskResult.objects.filter(status="RUNNING", started_at__lt=now - conf.stale_after())
            .exclude(queue_name=OPERATIONS_QUEUE)
            .values_list("worker_ids", "task_path")
        )
        for worker_ids, task_path in stuck:
            worker_id = worker_ids[-1] if worker_ids else ""
            if worker_id not in self.children:
                continue
            running = self._kill(worker_id)
            if running is None:
                continue
            for mark in running:
                quarantine.strike(
                    mark.plugin,
                    quarantine.STALL,
                    f"worker {worker_id} was stuck {mark.describe()} for longer than "
                    f"{conf.stale_after().total_seconds():g}s and was killed",
                )
            abandon_worker(worker_id, f"abandoned: worker {worker_id} was stuck and killed")
            logger.error("killed worker %s stuck in %s", worker_id, task_path)

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
        try:
            reap_stale()
        except Exception:
            logger.exception("recovering abandoned work at start failed; retrying later")
        fingerprint = plugin_environment_fingerprint()
        last_reap = last_fingerprint = time.monotonic()
        last_prune = last_reap - PRUNE_EVERY + 60  # a minute after start, then hourly
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        logger.info("supervising %d worker process(es)", self.processes)
        nodes.beat(
            "worker", nodes.generation_number(platform_conf.active_generation_dir()), force=True
        )
        failures = 0
        try:
            while self.running and (deadline is None or time.monotonic() < deadline):
                try:
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
                        report_dead_processes()
                        self._converge()
                        nodes.beat(
                            "worker",
                            nodes.generation_number(platform_conf.active_generation_dir()),
                            force=True,
                        )
                    if now - last_prune > PRUNE_EVERY:
                        last_prune = now
                        removed = prune()
                        logger.info("pruned past retention: %s", removed)
                    self._fill()
                    failures = 0
                except Exception:
                    # A lost database connection must not take the workers down with it.
                    failures += 1
                    logger.exception("supervisor pass failed (%d in a row); retrying", failures)
                    close_old_connections()
                    time.sleep(min(30.0, 0.5 * 2**failures))
                    continue
                finally:
                    close_old_connections()
                time.sleep(0.5)
        finally:
            self.shutdown()

    def _converge(self) -> None:
        """Follow the database's active plugin environment on this node (several hosts)."""
        try:
            converge(lambda message: logger.info("plugin environment: %s", message), wait=False)
        except Exception:
            logger.exception("bringing this node's plugin environment up to date failed")

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
