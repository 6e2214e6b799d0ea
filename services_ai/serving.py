"""The platform under gunicorn: the configuration module of ``services-ai serve``.

``services-ai serve`` checks the platform, collects the static files and then replaces itself
with ``python -m gunicorn --config python:services_ai.serving`` (plus the command's options),
so the command's process id is gunicorn's master: ``kill -HUP`` reloads it gracefully, SIGTERM
stops it gracefully. ``gunicorn -c python:services_ai.serving`` alone works too.

The master imports this module and nothing else of the platform or of Django (not even
``services_ai.conf``): every worker process imports the platform, its settings and the plugins'
generation itself, after it was forked. So a graceful reload (SIGHUP: new workers with fresh
modules, the old ones finish their requests first) moves the web to whatever is installed now,
an upgraded platform and the active plugin generation alike.

The master watches ``$SERVICES_AI_HOME/env/active``; when that symlink moves (a plugin was
installed, upgraded, uninstalled, rolled back, or ``plugins recover`` switched this host), it
reloads itself that way. The workers are marked (``SERVICES_AI_RECYCLED_PROCESS=1``, read by
``plugin_registry.runtime``) so that they never switch generations in place: each serves the
generation it started with until it is replaced.

Gunicorn reads every public name below that is one of its settings; other names are ignored.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

WORKERS_ENV = "SERVICES_AI_WEB_WORKERS"
#: Must equal ``plugin_registry.runtime.RECYCLED_ENV`` (this module cannot import the runtime:
#: the master never sets Django up). tests/test_serve.py checks that they agree.
RECYCLED_ENV = "SERVICES_AI_RECYCLED_PROCESS"
#: Seconds between two looks at the ``env/active`` symlink.
WATCH_INTERVAL = 1.0
DEFAULT_TIMEOUT = 60


def default_bind() -> str:
    """``127.0.0.1:$PORT`` (``PORT`` default 8000): loopback unless told otherwise."""
    return f"127.0.0.1:{os.environ.get('PORT') or '8000'}"


def default_workers() -> int:
    """``SERVICES_AI_WEB_WORKERS``, else two per CPU plus one (gunicorn's rule of thumb)."""
    text = os.environ.get(WORKERS_ENV) or str(2 * (os.cpu_count() or 1) + 1)
    if not (text.isdigit() and int(text) >= 1):
        # Imported here: the master imports nothing of Django unless it cannot start anyway.
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"{WORKERS_ENV}={text!r} is not valid: a whole number, 1 or more"
        )
    return int(text)


def active_link() -> Path:
    """``$SERVICES_AI_HOME/env/active``, as ``services_ai.conf.active_link`` finds it."""
    return Path(os.environ.get("SERVICES_AI_HOME", "var")).resolve() / "env" / "active"


# -- gunicorn settings ------------------------------------------------------------------------

wsgi_app = "services_ai.wsgi:application"
# Set explicitly: gunicorn's own default binds 0.0.0.0:$PORT when PORT is set.
bind = [default_bind()]
workers = default_workers()
# Sync workers: one request at a time per process, run on the process's main thread, so a
# plugin hook's time budget can interrupt it (SIGALRM); a widget that hangs holds one worker.
worker_class = "sync"
# A worker silent this long (one request running past it) is killed and replaced. Above the
# longest budget of a hook called in a request (30 s by default; see SERVICES_AI_SYNC_BUDGET).
timeout = DEFAULT_TIMEOUT
# How long a graceful reload or stop waits for requests in flight before killing their worker.
graceful_timeout = DEFAULT_TIMEOUT
# Each worker imports the platform itself, after the fork: a reload then loads fresh code.
preload_app = False
proc_name = "services-ai"
accesslog = "-"  # standard output
errorlog = "-"  # standard error, beside the platform's own log lines
# gunicorn 25+ would open a control socket in the user's home, one path for every server:
# signals do the same here (HUP, TERM, TTIN/TTOU).
control_socket_disable = True
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'


# -- server hooks ---------------------------------------------------------------------------


def when_ready(server: Any) -> None:
    """In the master, once it listens: start watching the active generation."""
    GenerationWatcher(server, active_link()).start()


def post_fork(server: Any, worker: Any) -> None:
    """In a new worker, before it imports the platform: never switch generations in place."""
    os.environ[RECYCLED_ENV] = "1"


class GenerationWatcher(threading.Thread):
    """A thread of the master: reload the workers gracefully when ``env/active`` moves."""

    def __init__(self, server: Any, link: Path, interval: float = WATCH_INTERVAL):
        super().__init__(name="generation-watcher", daemon=True)
        self.server = server
        self.link = link
        self.interval = interval
        self.stopped = threading.Event()

    def target(self) -> str | None:
        try:
            return os.readlink(self.link)
        except OSError:
            return None

    def run(self) -> None:
        seen = self.target()
        self.server.log.info("watching %s (now %s)", self.link, seen or "no generation")
        while not self.stopped.wait(self.interval):
            now = self.target()
            if now == seen:
                continue
            self.server.log.info(
                "plugin environment moved (%s -> %s): recycling workers gracefully", seen, now
            )
            seen = now
            # The master's own signal handling does the reload, on its main thread.
            os.kill(os.getpid(), signal.SIGHUP)
