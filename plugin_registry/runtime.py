"""The process's host, kept in step with the registry in the database.

Nothing is loaded at import time. The first hook call builds the host. Later calls compare the
registry generation (one small query) and apply a newer snapshot, but not on every call: at
the first hook call of each web request and each task (a delivery, a fan-out, a console
operation), at the next one in the process that made the change, and otherwise at most once a
second (``registry.generation.CHECK_EVERY``). So enabling, disabling, granting and revoking take
effect in every process for every request and task that starts after the change was committed,
and within a second for calls already under way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.core.signals import request_started
from django.db import connection
from django_tasks.signals import task_started

from plugin_registry.host import marks
from plugin_registry.host.budget import TimeBudgetExceeded, time_limit
from plugin_registry.host.manager import PluginHost, create_host
from plugin_registry.host.records import HookFailure, HookOutcome, LoadFailure
from plugin_registry.registry import nodes, quarantine
from plugin_registry.registry.generation import check as registry_check
from plugin_registry.registry.generation import current_generation
from plugin_registry.registry.models import Plugin, PluginFailure
from plugin_registry.registry.signals import installed_hook_due, node_behind
from plugin_registry.registry.state import load_state
from services_ai import conf

Say = Callable[[str], None]

logger = logging.getLogger("plugin_registry.host")

_lock = threading.Lock()
_host: PluginHost | None = None


def _record_failure(failure: HookFailure) -> None:
    PluginFailure.objects.create(
        plugin_name=failure.plugin,
        hook=failure.hook,
        message=failure.message[:5000],
        traceback=failure.traceback[-20000:],
    )


def _load_failed(failure: LoadFailure) -> None:
    """An import past its budget stalled this process: a strike towards quarantine."""
    if failure.stage == "budget":
        quarantine.strike(failure.plugin, quarantine.STALL, failure.message)


def report_dead_processes() -> int:
    """Strike the plugins that this host's dead processes were running when they died.

    The worker supervisor calls it every few seconds and every process when it builds its
    host, so a web process killed inside a plugin's hook is noticed. Return how many.
    """
    count = 0
    for pid, found in marks.orphans():
        for mark in found:
            quarantine.strike(
                mark.plugin,
                quarantine.CRASH,
                f"process {pid} died while running the plugin's code, {mark.describe()}",
            )
            count += 1
    return count


_heartbeat_started = False


def start_web_heartbeat() -> bool:
    """Start this web process's heartbeat thread; return whether it started (once per process).

    Every few seconds it says which generation the process runs, and when the node lags the
    database it asks for the node to be brought up to date: a node with only web processes has
    no worker supervisor to do it, and must follow even when nobody calls a plugin.
    """
    global _heartbeat_started
    if _heartbeat_started:
        return False
    _heartbeat_started = True
    threading.Thread(target=_web_heartbeat, name="node-heartbeat", daemon=True).start()
    return True


def _web_heartbeat() -> None:
    while True:
        try:
            if not recycled_by_server():  # the app server recycles its workers instead
                follow_active_environment()
            nodes.beat("web", nodes.generation_number(conf.loaded_generation()), force=True)
            if nodes.runs_behind():
                node_behind.send(PluginHost)
        except Exception:
            logger.exception("the web heartbeat of this node failed; retrying")
        finally:
            connection.close()
        time.sleep(nodes.BEAT_EVERY)


def _new_host() -> PluginHost:
    try:
        report_dead_processes()
    except Exception:
        logger.exception("looking for processes that died in plugin code failed")
    return create_host(
        load_state(),
        on_failure=_record_failure,
        guard=marks.in_plugin,
        import_budget=quarantine.import_budget(),
        on_load_failure=_load_failed,
    )


def _record_load_failures(host: PluginHost) -> None:
    for name, failure in host.load_failures.items():
        updated = Plugin.objects.filter(name=name).exclude(load_error=str(failure))
        if updated.update(load_error=str(failure)):
            PluginFailure.objects.create(
                plugin_name=name,
                hook=f"<load:{failure.stage}>",
                message=failure.message[:5000],
                traceback=failure.traceback[-20000:],
            )
    Plugin.objects.filter(enabled=True).exclude(name__in=host.load_failures).exclude(
        load_error=""
    ).update(load_error="")


#: Set to ``1`` in the worker processes of ``services-ai serve``: their app server replaces them
#: (new processes, fresh modules) when the active generation moves, so they never switch in place.
RECYCLED_ENV = "SERVICES_AI_RECYCLED_PROCESS"


def recycled_by_server() -> bool:
    """Is this process replaced by its server on a new generation, rather than switching itself?"""
    return os.environ.get(RECYCLED_ENV) == "1"


def _environment_switched() -> bool:
    """Has the managed environment's active generation moved since this process loaded it?

    Always no in a process pinned to one generation: the child that checks a generation, and
    the app server's workers (``recycled_by_server``), which serve the generation they started
    with, hook calls and plugin static files alike, until the server recycles them.
    """
    if conf.GENERATION_ENV in os.environ or recycled_by_server():
        return False
    return conf.active_generation_dir() != conf.loaded_generation()


def _follow_active_generation() -> None:
    """Load plugins from the new active generation from now on; rebuild the host.

    Requests already running keep the plugin objects they hold; the next hook call imports the
    new code. (The worker supervisor recycles its processes instead.)
    """
    global _host
    old, new = conf.loaded_generation(), conf.active_generation_dir()
    conf.use_generation(new)
    _host = None
    logger.info("plugin environment switched: %s -> %s", old, new)


def follow_active_environment() -> bool:
    """Load plugins from the active environment generation if it moved; return whether it did.

    Cheap when nothing moved (one ``readlink``). ``get_host`` calls it whenever it reads the
    registry generation; code that reads a plugin's files without calling a hook (its static
    files) calls it too.
    """
    if not _environment_switched():
        return False
    with _lock:
        if not _environment_switched():
            return False
        _follow_active_generation()
        return True


def get_host(*, check: bool = False) -> PluginHost:
    """Return this process's host, refreshed if the registry changed since it was built.

    The registry generation is read (one query, and the active environment's ``readlink``)
    only when ``registry.generation.check`` says it is due; ``check=True`` reads it now.
    """
    host = _host
    if host is not None and not check and not registry_check.needed():
        return host
    token = registry_check.begin()
    host = _current_host(current_generation())
    registry_check.done(token)
    return host


def _current_host(generation: int) -> PluginHost:
    """Return the host for registry ``generation``: this one, or a new one built or refreshed."""
    global _host
    host = _host
    if follow_active_environment():
        host = None
    if host is not None and host.state.generation == generation:
        return host
    with _lock:
        if _host is None:
            _host = _new_host()
            logger.info("plugin host built: %s", ", ".join(_host.plugin_names()) or "no plugins")
        elif _host.state.generation != generation:
            _host = _host.refreshed(load_state())
            logger.info(
                "plugin host refreshed: %s", ", ".join(_host.plugin_names()) or "no plugins"
            )
        _record_load_failures(_host)
        return _host


def _read_registry_soon(sender: object, **kwargs: object) -> None:
    """A web request or a task starts: its first hook call reads the registry generation."""
    registry_check.due()


request_started.connect(_read_registry_soon, dispatch_uid="plugin_registry.runtime.request")
task_started.connect(_read_registry_soon, dispatch_uid="plugin_registry.runtime.task")


@contextlib.contextmanager
def switching_environment() -> Iterator[None]:
    """Hold off every thread's hook calls while this process moves to another generation.

    Threads waiting in :func:`get_host` then see the finished switch, never a half-done one.
    """
    global _host
    with _lock:
        try:
            yield
        finally:
            _host = None


def reset_host() -> None:
    """Forget this process's host (tests, and after a new environment generation)."""
    global _host
    with _lock:
        _host = None


# -- the lifecycle hooks, called on one plugin only ---------------------------------------------


def call_lifecycle_hook(name: str, hook: str, say: Say) -> None:
    """Call ``plugin_installed``/``plugin_uninstalled`` on one enabled plugin only."""
    plugin = Plugin.objects.filter(name=name).first()
    if plugin is None or not plugin.enabled:
        return  # disabled plugins are never imported; it runs at the next enable instead
    host = get_host(check=True)  # enabled perhaps a moment ago, by another process
    if name not in host.implementers(hook):
        return  # the plugin does not implement it (or failed to load: recorded by the host)
    outcome = call_budgeted(name, hook)
    if outcome.failure is not None:
        say(f"warning: {name}'s {hook} hook failed: {outcome.failure.message}")
    elif outcome.skipped:
        say(f"{name}'s {hook} hook was not called: {outcome.skipped}")


def mark_installed(name: str, say: Say) -> None:
    """Note that ``plugin_installed`` is due; call it now if the plugin is enabled."""
    Plugin.objects.filter(name=name).update(installed_hook_pending=True)
    plugin = Plugin.objects.filter(name=name).first()
    if plugin is not None and plugin.enabled:
        run_installed_hook(name, say)


def run_installed_hook(name: str, say: Say | None = None, **signal_kwargs: object) -> None:
    """Call a newly installed or upgraded plugin's ``plugin_installed`` once, when it is enabled."""
    if not Plugin.objects.filter(name=name, installed_hook_pending=True).update(
        installed_hook_pending=False
    ):
        return
    call_lifecycle_hook(name, "plugin_installed", say or (lambda m: logger.warning("%s", m)))


def _on_installed_hook_due(sender: object, name: str, **kwargs: object) -> None:
    run_installed_hook(name)


installed_hook_due.connect(_on_installed_hook_due, dispatch_uid="plugin_registry.runtime")


# -- hooks called while someone waits ----------------------------------------------------------


class SyncHookTimeout(TimeBudgetExceeded):
    """Raised inside a synchronous hook (widget, settings page, export) past its budget."""


class _sync_limit(time_limit):
    error = SyncHookTimeout
    message = "exceeded the time budget of this hook"


def call_budgeted(plugin: str, hook: str, /, **kwargs: Any) -> HookOutcome:
    """Call ``hook`` on one plugin for a waiting request, within the hook's budget.

    Past the budget (``SERVICES_AI_SYNC_BUDGET``) the caller gets a failed outcome at once and
    the plugin's call is abandoned: interrupted on a process's main thread (a worker of the app
    server, a command), left to finish on its own thread otherwise (the development server's
    request threads). Each overrun is a strike towards the plugin's quarantine.
    """
    host = get_host()
    budget = quarantine.sync_budget(hook)
    if threading.current_thread() is threading.main_thread():
        try:
            with _sync_limit(budget) as limit:
                outcome = host.call_one(plugin, hook, **kwargs)
        except SyncHookTimeout:
            return _overran(plugin, hook, budget)
        return _overran(plugin, hook, budget) if limit.fired else outcome
    done: list[HookOutcome] = []

    def run() -> None:
        try:
            done.append(host.call_one(plugin, hook, **kwargs))
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run, name=f"{plugin}.{hook}", daemon=True)
    thread.start()
    thread.join(budget)
    return done[0] if done else _overran(plugin, hook, budget)


def _overran(plugin: str, hook: str, budget: float) -> HookOutcome:
    message = f"did not answer within its {budget:g}s budget; the call was abandoned"
    try:
        quarantine.strike(plugin, quarantine.STALL, f"its {hook} hook {message}")
    except Exception:
        logger.exception("recording the stall of plugin %s failed", plugin)
    failure = HookFailure(plugin, hook, f"SyncHookTimeout: {message}", "")
    return HookOutcome(plugin, hook, failure=failure)
