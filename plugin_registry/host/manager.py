"""The plugin host: pluggy for registration and validation, our own isolated dispatch.

pluggy stops a hook call at the first exception, so the host only uses it to register plugins
and validate them against the hookspecs, and calls each implementation itself: every call runs
in its own ``try``, with the calling plugin set for the data API, counted and timed. The list of
implementations per hook is cached and rebuilt only when registrations or grants change.

(About 400 lines, kept together: loading, validation and the dispatch cache share the host's
state, and the hot path is easier to measure and keep fast in one place.)
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.metadata
import logging
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from time import perf_counter_ns
from typing import Any, NamedTuple

import pluggy
from packaging.utils import canonicalize_name

from plugin_registry.host.budget import ImportBudgetExceeded, import_limit
from plugin_registry.host.records import HookFailure, HookOutcome, HookStats, LoadFailure
from plugin_registry.host.state import Ineligible, RegistryState
from services_ai.plugins import hookspecs
from services_ai.plugins.context import PluginCall, running
from services_ai.plugins.exceptions import PluginLoadError
from services_ai.plugins.hookspecs import HOOK_NAMES, SINGLE_PLUGIN_HOOKS
from services_ai.plugins.markers import ENTRY_POINT_GROUP, PROJECT_NAME
from services_ai.plugins.permissions import permission_for_call

logger = logging.getLogger("plugin_registry.host")

FailureCallback = Callable[[HookFailure], None]
LoadFailureCallback = Callable[[LoadFailure], None]
# Marks a process as running one plugin's code (its import, or a hook) for the block's length.
Guard = Callable[[str, str], AbstractContextManager[object]]


class _Impl(NamedTuple):
    plugin: str
    function: Callable[..., Any]
    argnames: tuple[str, ...]
    stats: HookStats
    call: PluginCall


class _Dispatch:
    """The cached implementations of one (hook, permission), indexed, and how often they ran.

    Every implementation in ``impls`` runs once per run, so calls are counted once per run here
    and folded into each implementation's stats later, instead of once per implementation on
    the hot path. ``steps`` is what the hot loop needs of each implementation, ``argnames`` the
    arguments they all take (``None`` when they differ), ``by_plugin`` finds one plugin's
    implementation for ``call_one`` without a scan.
    """

    __slots__ = ("argnames", "by_plugin", "impls", "runs", "steps")

    def __init__(self, impls: tuple[_Impl, ...]) -> None:
        self.impls = impls
        self.runs = 0
        self.steps = tuple((impl.function, impl.call, impl.stats) for impl in impls)
        shared = {impl.argnames for impl in impls}
        self.argnames = shared.pop() if len(shared) == 1 else None if shared else ()
        self.by_plugin = {impl.plugin: impl for impl in impls}

    def fold(self) -> None:
        for impl in self.impls:
            impl.stats.calls += self.runs
        self.runs = 0


def plugin_name_of(entry_point: importlib.metadata.EntryPoint) -> str:
    """Return the registry name of the plugin an entry point belongs to: its distribution."""
    dist = entry_point.dist
    return canonicalize_name((dist.name if dist is not None else None) or entry_point.name)


def discover_entry_points() -> dict[str, list[importlib.metadata.EntryPoint]]:
    """Return the ``services_ai`` entry points of every installed distribution, by plugin name.

    Nothing is imported: this reads distribution metadata only.
    """
    # Forget cached "nothing here" answers, so a plugin folder created or filled since the last
    # look is seen (Python caches a missing sys.path entry as absent).
    importlib.invalidate_caches()
    found: dict[str, list[importlib.metadata.EntryPoint]] = {}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(plugin_name_of(entry_point), []).append(entry_point)
    return found


class PluginHost:
    """Loads enabled plugins and calls their hooks in isolation, filtered by grants."""

    def __init__(
        self,
        state: RegistryState | None = None,
        *,
        on_failure: FailureCallback | None = None,
        failure_log_size: int = 200,
        guard: Guard | None = None,
        import_budget: float = 0.0,
        on_load_failure: LoadFailureCallback | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.state = state or RegistryState()
        self.load_failures: dict[str, LoadFailure] = {}
        self._given: dict[str, object] = {}  # plugins handed to create_host, not entry points
        self.failures: deque[HookFailure] = deque(maxlen=failure_log_size)
        self.on_failure = on_failure
        self.guard = guard
        self.import_budget = import_budget  # seconds one plugin's import may take; 0: no limit
        self.on_load_failure = on_load_failure
        self._stats: dict[tuple[str, str], HookStats] = {}
        self._dispatch: dict[tuple[str, str | None], _Dispatch] = {}

    # -- loading -------------------------------------------------------------------------

    def load_entrypoints(
        self,
        entry_points: dict[str, list[importlib.metadata.EntryPoint]] | None = None,
        *,
        only: Iterable[str] | None = None,
    ) -> None:
        """Import and register every enabled plugin (of ``only``) that is not registered yet.

        Disabled plugins are never imported. A plugin that fails to import or validate, or whose
        import outlives the import budget, is recorded in :attr:`load_failures` and skipped;
        the others load.
        """
        if entry_points is None:
            entry_points = discover_entry_points()
        names = self.state.enabled if only is None else self.state.enabled & set(only)
        for name in sorted(names):
            if self.pm.has_plugin(name) or name in self._given:
                continue
            if name not in entry_points:
                self._record_load_failure(
                    name,
                    "missing",
                    "enabled, but not installed in this environment (no distribution with a "
                    f"{ENTRY_POINT_GROUP!r} entry point of that name on sys.path)",
                )
                continue
            eps = entry_points[name]
            if len(eps) > 1:
                self._record_load_failure(
                    name,
                    "validate",
                    f"declares {len(eps)} entry points in group {ENTRY_POINT_GROUP!r}; "
                    "a plugin distribution declares exactly one",
                )
                continue
            try:
                plugin = self._import(name, eps[0])
            except ImportBudgetExceeded:
                self._record_load_failure(
                    name,
                    "budget",
                    f"importing {eps[0].value!r} took longer than the import budget of "
                    f"{self.import_budget:g}s; it was interrupted (a plugin must not do slow "
                    "work at import: do it in a hook, or lazily)",
                    traceback.format_exc(),
                )
                continue
            except (Exception, SystemExit) as exc:  # a plugin calling sys.exit() is just broken
                self._record_load_failure(
                    name,
                    "import",
                    f"importing {eps[0].value!r} raised {type(exc).__name__}: {exc}",
                    traceback.format_exc(),
                )
                continue
            try:
                self.register(plugin, name)
            except PluginLoadError:
                continue  # recorded by register()
        self.pm.check_pending()

    def _import(self, name: str, entry_point: importlib.metadata.EntryPoint) -> object:
        guard = self.guard(name, "import") if self.guard else contextlib.nullcontext()
        with guard, import_limit(self.import_budget) as limit:
            plugin = entry_point.load()
        if limit.fired:  # the plugin caught the interruption and went on
            raise ImportBudgetExceeded(import_limit.message)
        return plugin

    def retry_load(self, name: str) -> bool:
        """Try again to load a plugin whose load failed; return whether it is registered now."""
        if self.load_failures.pop(name, None) is not None:
            self.load_entrypoints(only=[name])
        return self.pm.has_plugin(name)

    def register(self, plugin: object, name: str) -> None:
        """Register one plugin object after validating its hooks; raise PluginLoadError."""
        try:
            self.pm.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise self._record_load_failure(name, "register", str(exc)) from exc
        problems = self._validate_registered(plugin)
        problems += self._check_declared_hooks(name, plugin)
        if problems:
            self.pm.unregister(plugin)
            raise self._record_load_failure(name, "validate", "; ".join(problems))
        self.load_failures.pop(name, None)
        self._invalidate()
        logger.info("plugin %s registered", name)

    def unregister(self, name: str) -> None:
        """Remove a plugin from dispatch (its module stays imported)."""
        if self.pm.has_plugin(name):
            self.pm.unregister(name=name)
        self._invalidate()

    def _validate_registered(self, plugin: object) -> list[str]:
        problems = []
        for caller in self.pm.get_hookcallers(plugin) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                if caller.spec is None:  # the hooks are fixed: optionalhook changes nothing
                    problems.append(_unknown_hook_message(caller.name))
                elif impl.hookwrapper or impl.wrapper:
                    problems.append(f"hook {caller.name!r}: wrappers are not supported")
        return problems

    def _check_declared_hooks(self, name: str, plugin: object) -> list[str]:
        """The manifest's ``hook_specs`` decides which events a plugin is sent, so a hook
        implemented but not declared (or declared but not implemented) is a mistake to report,
        not a silence to discover later."""
        declared = self.state.declared_hooks.get(name)
        if declared is None:
            return []
        implemented = {caller.name for caller in self.pm.get_hookcallers(plugin) or []}
        problems = []
        if undeclared := sorted(implemented - declared):
            problems.append(
                f"hook_specs in manifest.json misses implemented hook(s) {', '.join(undeclared)}; "
                "add them"
            )
        if missing := sorted(declared - implemented):
            problems.append(
                f"hook_specs in manifest.json lists {', '.join(missing)}, which the entry-point "
                "module does not implement; implement or remove them"
            )
        return problems

    def _record_load_failure(
        self, name: str, stage: str, message: str, tb: str = ""
    ) -> PluginLoadError:
        failure = LoadFailure(plugin=name, stage=stage, message=message, traceback=tb)
        self.load_failures[name] = failure
        logger.error("%s", failure)
        if self.on_load_failure is not None:
            try:
                self.on_load_failure(failure)
            except Exception:
                logger.exception("recording the load failure of plugin %s failed", name)
        return PluginLoadError(message, plugin=name)

    def refreshed(self, state: RegistryState, entry_points: Any = None) -> PluginHost:
        """Return a new host for a newer registry snapshot; this one keeps serving meanwhile.

        Threads still dispatching through this host are never disturbed by the rebuild. Plugins
        are registered in name order, so every process calls them in one order; modules already
        imported are not imported again. Call counts, timings and failures carry over.
        """
        for dispatch in self._dispatch.values():
            dispatch.fold()
        host = PluginHost(
            state,
            on_failure=self.on_failure,
            guard=self.guard,
            import_budget=self.import_budget,
            on_load_failure=self.on_load_failure,
        )
        host._stats = self._stats
        host.failures = self.failures
        for name, plugin in self._given.items():
            host._given[name] = plugin
            if name in state.enabled:
                with contextlib.suppress(PluginLoadError):  # recorded by register()
                    host.register(plugin, name)
        host.load_entrypoints(entry_points)
        return host

    def plugin_names(self) -> list[str]:
        """Return the names of the registered plugins, sorted."""
        return sorted(name for name, _ in self.pm.list_name_plugin())

    # -- dispatch ------------------------------------------------------------------------

    def _invalidate(self) -> None:
        for dispatch in self._dispatch.values():
            dispatch.fold()
        self._dispatch.clear()

    def _dispatch_for(self, hook: str, permission: str | None) -> _Dispatch:
        key = (hook, permission)
        dispatch = self._dispatch.get(key)
        if dispatch is None:
            impls = self._build_implementations(hook, permission)
            dispatch = self._dispatch[key] = _Dispatch(impls)
        return dispatch

    def _implementations(self, hook: str, permission: str | None) -> tuple[_Impl, ...]:
        return self._dispatch_for(hook, permission).impls

    def _build_implementations(self, hook: str, permission: str | None) -> tuple[_Impl, ...]:
        caller = getattr(self.pm.hook, hook, None)
        if caller is None or hook not in HOOK_NAMES:
            raise ValueError(f"unknown hook {hook!r}; hooks are: {', '.join(HOOK_NAMES)}")
        impls = []
        # pluggy's call order: the last registered first, tryfirst/trylast respected.
        for impl in reversed(caller.get_hookimpls()):
            name = impl.plugin_name
            if self.state.why_not(name, hook, permission) is not None:
                continue
            granted = self.state.granted(name)
            stats = self._stats.setdefault((name, hook), HookStats())
            call = PluginCall(plugin=name, granted=granted)
            impls.append(_Impl(name, impl.function, tuple(impl.argnames), stats, call))
        return tuple(impls)

    def call(self, hook: str, /, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call ``hook`` on every enabled, permitted plugin, each in isolation.

        Return ``(plugin, value)`` for each implementation that returned something other than
        ``None``. A raising implementation is recorded (:attr:`failures`, the failure callback,
        the log) and the others still run.
        """
        if hook in SINGLE_PLUGIN_HOOKS:
            raise ValueError(f"hook {hook!r} is called on one plugin only: use call_one()")
        dispatch = self._dispatch_for(hook, permission_for_call(hook, kwargs))
        dispatch.runs += 1
        if dispatch.argnames is None:
            return self._call_each(dispatch, hook, kwargs)
        # The hot path, measured against a bare pluggy call (bench/dispatch.py): the arguments
        # are built once, every name is a local, and the running plugin is stored straight in
        # this thread's dict of the thread-local (measured: ~22 ns, its setattr ~56 ns).
        args = tuple([kwargs[arg] for arg in dispatch.argnames])
        results = []
        now = perf_counter_ns
        local = running.__dict__
        outer = local.get("call")
        before = now()
        try:
            for function, call, stats in dispatch.steps:
                local["call"] = call
                try:
                    value = function(*args)
                except (Exception, SystemExit) as exc:
                    stats.errors += 1
                    self._hook_failed(call.plugin, hook, exc)
                    value = None
                after = now()
                stats.total_ns += after - before
                before = after
                if value is not None:
                    results.append((call.plugin, value))
        finally:
            local["call"] = outer
        return results

    def _call_each(
        self, dispatch: _Dispatch, hook: str, kwargs: dict[str, Any]
    ) -> list[tuple[str, Any]]:
        """``call`` for implementations that take different arguments: the rare, slower path."""
        results = []
        outer = running.call
        try:
            for plugin, function, argnames, stats, call in dispatch.impls:
                running.call = call
                start = perf_counter_ns()
                try:
                    value = function(*[kwargs[arg] for arg in argnames])
                except (Exception, SystemExit) as exc:
                    stats.errors += 1
                    self._hook_failed(plugin, hook, exc)
                    value = None
                stats.total_ns += perf_counter_ns() - start
                if value is not None:
                    results.append((plugin, value))
        finally:
            running.call = outer
        return results

    def call_one(self, plugin: str, hook: str, /, **kwargs: Any) -> HookOutcome:
        """Call ``hook`` on the named plugin only; never broadcast.

        The plugin's implementation is looked up by name, so a call costs the same whatever the
        number of plugins.
        """
        permission = permission_for_call(hook, kwargs)
        reason = self.state.why_not(plugin, hook, permission)
        if reason is Ineligible.QUARANTINED:
            return HookOutcome(plugin, hook, skipped="plugin is quarantined")
        if reason in (Ineligible.NOT_INSTALLED, Ineligible.NOT_ENABLED) or not self.pm.has_plugin(
            plugin
        ):
            return HookOutcome(plugin, hook, skipped="plugin is not enabled or not loaded")
        if reason is Ineligible.NOT_GRANTED:
            return HookOutcome(plugin, hook, skipped=f"permission {permission!r} not granted")
        impl = self._dispatch_for(hook, None).by_plugin.get(plugin)
        if impl is None:
            return HookOutcome(plugin, hook, skipped=f"plugin does not implement {hook!r}")
        outer = running.call
        running.call = impl.call
        start = perf_counter_ns()
        try:
            args = [kwargs[arg] for arg in impl.argnames]
            if self.guard is None:
                value = impl.function(*args)
            else:
                with self.guard(plugin, hook):
                    value = impl.function(*args)
        except (Exception, SystemExit) as exc:
            impl.stats.errors += 1
            return HookOutcome(plugin, hook, failure=self._hook_failed(plugin, hook, exc))
        finally:
            running.call = outer
            impl.stats.calls += 1
            impl.stats.total_ns += perf_counter_ns() - start
        return HookOutcome(plugin, hook, value=value)

    def implementers(self, hook: str, permission: str | None = None) -> list[str]:
        """Return the plugins that would receive ``hook``, in call order."""
        return [impl.plugin for impl in self._implementations(hook, permission)]

    def _hook_failed(self, plugin: str, hook: str, exc: BaseException) -> HookFailure:
        failure = HookFailure(
            plugin=plugin,
            hook=hook,
            message=f"{type(exc).__name__}: {exc}",
            traceback="".join(traceback.format_exception(exc)),
        )
        self.failures.append(failure)
        logger.error("%s\n%s", failure, failure.traceback)
        if self.on_failure is not None:
            try:
                self.on_failure(failure)
            except Exception:
                logger.exception("recording the failure of plugin %s failed", plugin)
        return failure

    def stats(self) -> dict[tuple[str, str], HookStats]:
        """Return per-(plugin, hook) call counts, error counts and timings."""
        for dispatch in self._dispatch.values():
            dispatch.fold()
        return {key: stats for key, stats in self._stats.items() if stats.calls}


def closest_hook(name: str) -> str | None:
    """The hook name a misspelt ``name`` most likely meant, if any is close."""
    close = difflib.get_close_matches(name, HOOK_NAMES, n=1)
    return close[0] if close else None


def _unknown_hook_message(name: str) -> str:
    close = closest_hook(name)
    hint = f" (did you mean {close!r}?)" if close else ""
    return f"implements unknown hook {name!r}{hint}; known hooks: {', '.join(HOOK_NAMES)}"


def create_host(
    state: RegistryState,
    *,
    load_entrypoints: bool = True,
    plugins: Iterable[tuple[str, object]] = (),
    on_failure: FailureCallback | None = None,
    guard: Guard | None = None,
    import_budget: float = 0.0,
    on_load_failure: LoadFailureCallback | None = None,
) -> PluginHost:
    """Build a host for ``state``: register ``plugins`` and, by default, the enabled entry points.

    Nothing is loaded at import time; every process (and every test) builds its own host.
    """
    host = PluginHost(
        state,
        on_failure=on_failure,
        guard=guard,
        import_budget=import_budget,
        on_load_failure=on_load_failure,
    )
    for name, plugin in plugins:
        host._given[name] = plugin
        try:
            host.register(plugin, name)
        except PluginLoadError:
            continue
    if load_entrypoints:
        host.load_entrypoints()
    return host
