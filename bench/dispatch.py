"""Benchmark: hook calls through the host and the runtime vs bare pluggy, in one run.

The host does more than pluggy (each implementation isolated in its own ``try``, grants
filtered, the calling plugin set for the data API, per-(plugin, hook) counts and timings), so
the anchor is a bare ``pm.hook.lead_created(lead=...)`` over the same implementation functions,
measured in the same run, alternated with the other sides. Two tables:

1. One hook call over 1, 10 and 50 implementations: bare pluggy; ``PluginHost.call``; and
   ``get_host().call`` through the real runtime: an in-process Django on a throwaway SQLite
   home whose registry has those plugins installed, granted and enabled (what a web process
   or a worker does per hook call, registry-change detection included); then what one read of
   the registry generation costs (``get_host(check=True)``: the first hook call of each
   request and task pays it).
2. One delivery, ``PluginHost.call_one`` of one plugin on a host holding 1, 10, 50 and 100
   plugins, against a bare pluggy call of that one implementation: it must not grow with
   the number of plugins. (Without the worker's guard, whose mark costs the same at any size.)

The plugins are real distributions (metadata, entry point, manifest) written straight into
a throwaway plugin folder, so no wheel is built. Every figure is microseconds per call, the
median (and minimum) of ``--repeat`` timing runs of ``--number`` calls; ratios are median to
median (and minimum to minimum). The machine's load moves single runs: compare several runs.
Run: ``python bench/dispatch.py``. Targets: ratios <= 1.0 at 10 and 50 in table 1 (host.call
<= 0.8), call_one's ratio flat in table 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import timeit
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pluggy  # noqa: E402

LEAD = {
    "snapshot_version": 1,
    "id": 1,
    "name": "Ada",
    "email": "ada@example.com",
    "phone": "",
    "company": "",
    "source": "website",
    "notes": "",
    "created_at": "2026-11-25T10:00:00+00:00",
}

# Each plugin counts its calls, so every side can be checked to have called every implementation.
PLUGIN = """\
from services_ai.plugins import hookimpl

calls = 0


@hookimpl
def lead_created(lead):
    global calls
    calls += 1
"""
MANIFEST = {"hook_specs": ["lead_created"], "permissions": ["read_leads"], "settings": []}


def plugin_name(index: int) -> str:
    return f"bench-noop-{index:03d}"


def write_plugins(site: Path, count: int) -> None:
    """Install ``count`` plugin distributions into ``site`` as an installer would lay them out."""
    for index in range(count):
        name = plugin_name(index)
        package = name.replace("-", "_")
        (site / package).mkdir(parents=True)
        (site / package / "__init__.py").write_text("")
        (site / package / "main.py").write_text(PLUGIN)
        (site / package / "manifest.json").write_text(json.dumps(MANIFEST))
        dist_info = site / f"{package}-1.0.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0.0\nSummary: bench plugin\n"
        )
        (dist_info / "entry_points.txt").write_text(f"[services_ai]\n{name} = {package}.main\n")
        files = ["__init__.py", "main.py", "manifest.json"]
        record = [f"{package}/{file},," for file in files]
        record += [f"{dist_info.name}/{file},," for file in ("METADATA", "entry_points.txt")]
        (dist_info / "RECORD").write_text("\n".join(record) + "\n")


def setup_django(root: Path, count: int) -> None:
    """An in-process platform on a throwaway SQLite home, with ``count`` plugins installed."""
    site = root / "site"
    write_plugins(site, count)
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("SERVICES_AI_GENERATION", None)
    os.environ.update(
        SERVICES_AI_HOME=str(root / "home"),
        SERVICES_AI_PLUGIN_PATH=str(site),
        DJANGO_SETTINGS_MODULE="services_ai.settings",
    )
    import django

    django.setup()
    logging.disable(logging.INFO)  # the host logs every registration and rebuild
    from django.core.management import call_command

    from plugin_registry.registry.sync import sync_registry

    call_command("migrate", verbosity=0)
    report = sync_registry()
    assert len(report.added) == count and not report.invalid, report


def enable(count: int) -> None:
    """Grant and enable the first ``count`` plugins (those already enabled stay so)."""
    from plugin_registry.registry import actions
    from plugin_registry.registry.models import Plugin

    for index in range(count):
        name = plugin_name(index)
        if not Plugin.objects.get(name=name).enabled:
            actions.set_grant(name, "read_leads", True)
            actions.enable(name)


def plugin_modules(count: int) -> list[tuple[str, ModuleType]]:
    import importlib

    return [
        (plugin_name(i), importlib.import_module(f"{plugin_name(i).replace('-', '_')}.main"))
        for i in range(count)
    ]


def bare_pluggy(plugins: Sequence[tuple[str, object]]) -> pluggy.PluginManager:
    from services_ai.plugins import hookspecs
    from services_ai.plugins.markers import PROJECT_NAME

    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name, plugin in plugins:
        pm.register(plugin, name=name)
    pm.check_pending()
    return pm


def plugin_host(plugins: Sequence[tuple[str, object]]):
    from plugin_registry.host import RegistryState, create_host

    names = frozenset(name for name, _ in plugins)
    state = RegistryState(
        generation=1, enabled=names, grants={name: frozenset({"read_leads"}) for name in names}
    )
    host = create_host(state, load_entrypoints=False, plugins=plugins)
    assert not host.load_failures, host.load_failures
    return host


class Timing:
    """One side's per-call times (us) over the timing runs."""

    def __init__(self, runs: list[float]) -> None:
        self.median = statistics.median(runs)
        self.min = min(runs)

    def __str__(self) -> str:
        return f"{self.median:.2f} ({self.min:.2f})"

    def ratio(self, anchor: Timing) -> str:
        return f"{self.median / anchor.median:.2f} ({self.min / anchor.min:.2f})"


def alternated(sides: list[Callable[[], object]], number: int, repeat: int) -> list[Timing]:
    """Time the sides in alternating runs, each round starting with the next side.

    Alternating keeps a burst of load on the machine from favouring one side.
    """
    runs: list[list[float]] = [[] for _ in sides]
    for round_ in range(repeat):
        for offset in range(len(sides)):
            index = (round_ + offset) % len(sides)
            runs[index].append(timeit.timeit(sides[index], number=number) / number * 1e6)
    return [Timing(times) for times in runs]


def total_calls(modules: list[tuple[str, ModuleType]]) -> int:
    return sum(module.calls for _, module in modules)


def hook_call_table(args: argparse.Namespace) -> None:
    from plugin_registry.runtime import get_host

    print("hook call over N implementations: us per call, median (min) of runs")
    print(
        f"{'impls':>5}  {'bare pluggy':>15}  {'host.call':>15}  {'ratio':>11}  "
        f"{'get_host().call':>15}  {'ratio':>11}"
    )
    for count in (1, 10, 50):
        enable(count)
        modules = plugin_modules(count)
        pm = bare_pluggy(modules)
        host = plugin_host(modules)
        runtime_host = get_host()
        assert runtime_host.implementers("lead_created") == host.implementers("lead_created")
        number = max(200, args.number // count)

        def bare(pm: pluggy.PluginManager = pm) -> None:
            pm.hook.lead_created(lead=LEAD)

        def hosted(host=host) -> None:
            host.call("lead_created", lead=LEAD)

        def runtime() -> None:
            get_host().call("lead_created", lead=LEAD)

        before = total_calls(modules)
        anchor, hosted_t, runtime_t = alternated([bare, hosted, runtime], number, args.repeat)
        made = total_calls(modules) - before
        assert made == 3 * number * args.repeat * count, "a side skipped an implementation"
        print(
            f"{count:>5}  {anchor!s:>15}  {hosted_t!s:>15}  {hosted_t.ratio(anchor):>11}  "
            f"{runtime_t!s:>15}  {runtime_t.ratio(anchor):>11}"
        )
    number = max(50, args.number // 100)
    (checked,) = alternated([lambda: get_host(check=True)], number, args.repeat)
    print(f"a read of the registry generation (first hook call of a request or task): {checked}")


def call_one_table(args: argparse.Namespace) -> None:
    print("call_one of one plugin on a host of N plugins vs a bare pluggy call of that one")
    print(f"{'plugins':>7}  {'bare pluggy':>15}  {'call_one':>15}  {'ratio':>11}")
    modules = plugin_modules(100)
    target = modules[0]
    pm = bare_pluggy([target])
    for count in (1, 10, 50, 100):
        host = plugin_host(modules[:count])
        number = args.number

        def bare(pm: pluggy.PluginManager = pm) -> None:
            pm.hook.lead_created(lead=LEAD)

        def one(host=host) -> None:
            host.call_one(target[0], "lead_created", lead=LEAD)

        before = total_calls(modules)
        anchor, one_t = alternated([bare, one], number, args.repeat)
        made = total_calls(modules) - before
        assert made == 2 * number * args.repeat, "call_one called other plugins"
        print(f"{count:>7}  {anchor!s:>15}  {one_t!s:>15}  {one_t.ratio(anchor):>11}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=10_000, help="calls per timing run")
    parser.add_argument("--repeat", type=int, default=21, help="timing runs per side and row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp:
        setup_django(Path(tmp), 100)
        hook_call_table(args)
        call_one_table(args)
        from django.db import connection

        connection.close()


if __name__ == "__main__":
    main()
