"""Benchmark: a hook dispatched through the host vs a bare pluggy call.

The host does more than pluggy (each implementation isolated in its own ``try``, grants
filtered, the calling plugin set for the data API, per-(plugin, hook) counts and timings), so
the anchor is a bare ``pm.hook.lead_created(lead=...)`` over the same implementations, measured
in the same run. Run: ``python bench/dispatch.py``. Target: ratio <= 1.0 at 10 and 50.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pluggy

from plugin_registry.host import RegistryState, create_host
from services_ai.plugins import hookimpl, hookspecs
from services_ai.plugins.markers import PROJECT_NAME

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


def make_plugins(count: int) -> list[tuple[str, object]]:
    """Return ``count`` distinct plugin objects that each implement ``lead_created``."""
    plugins: list[tuple[str, object]] = []
    for index in range(count):

        class Plugin:
            seen = 0

            @hookimpl
            def lead_created(self, lead: dict) -> None:
                self.seen += 1

        plugins.append((f"plugin-{index}", Plugin()))
    return plugins


def bare_pluggy(plugins: list[tuple[str, object]]) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name, plugin in plugins:
        pm.register(plugin, name=name)
    pm.check_pending()
    return pm


def per_call(first, second, number: int, repeat: int) -> tuple[float, float]:
    """Time two callables in alternating runs; return each one's median per call, in us.

    Alternating keeps a burst of load on the machine from favouring one side.
    """
    runs: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for stmt, times in zip((first, second), runs, strict=True):
            times.append(timeit.timeit(stmt, number=number) / number * 1e6)
    return statistics.median(runs[0]), statistics.median(runs[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="calls per timing run")
    parser.add_argument("--repeat", type=int, default=9, help="timing runs per row (median)")
    args = parser.parse_args()

    print(f"{'impls':>5}  {'bare pluggy (us)':>16}  {'host (us)':>10}  {'ratio':>6}")
    for count in (1, 10, 50):
        plugins = make_plugins(count)
        names = frozenset(name for name, _ in plugins)
        state = RegistryState(
            generation=1,
            enabled=names,
            grants={name: frozenset({"read_leads"}) for name in names},
        )
        host = create_host(state, load_entrypoints=False, plugins=plugins)
        assert not host.load_failures, host.load_failures
        pm = bare_pluggy(make_plugins(count))
        number = max(1000, args.number // count)

        def bare(pm: pluggy.PluginManager = pm) -> None:
            pm.hook.lead_created(lead=LEAD)

        def hosted(host=host) -> None:
            host.call("lead_created", lead=LEAD)

        bare_us, host_us = per_call(bare, hosted, number, args.repeat)
        calls = sum(s.calls for s in host.stats().values())  # folds the per-run counts
        assert calls >= number * count, "the host did not call every implementation"
        print(f"{count:>5}  {bare_us:>16.2f}  {host_us:>10.2f}  {host_us / bare_us:>6.2f}")


if __name__ == "__main__":
    main()
