"""Benchmark: installing plugins through the platform against plain pip, on a warm cache.

A throwaway embedded index (devpi-server on a free loopback port) holds the example plugins
and N no-op plugins. Two cases, each timed over several rounds in the same run (median):

1. One plugin until it is loadable. Platform: ``Environment.install`` (catalogue lookup,
   resolution with uv against the index and the platform's packages, a new generation, the
   import check, the switch, the registry refresh). Anchor: a fresh virtual environment that
   sees the platform's packages through a ``.pth`` file, ``pip install`` of the same plugin from
   the same index, and one Python process importing its entry point.
2. N plugins from a hash-pinned lock. Platform: ``Environment.sync_lock`` from an empty
   environment. Anchor: a fresh environment, ``pip install --require-hashes -r`` the same
   lock, and one Python process importing every entry point.

Both paths run with a warm cache: one untimed round of each comes first.
Run: ``python bench/install.py`` (``--plugins`` and ``--rounds`` change the sizes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from services_ai.testing.wheels import (  # noqa: E402
    NOOP_MANIFEST,
    NOOP_PLUGIN,
    build_wheel,
    free_port,
    write_plugin_project,
)

NOOP, MANIFEST = NOOP_PLUGIN, NOOP_MANIFEST
FAST_DEVPI = "--argon2-memory-cost 65536 --argon2-time-cost 2 --argon2-parallelism 2"
LOAD = (
    "import importlib.metadata as m; "
    "[ep.load() for ep in m.entry_points(group='services_ai') if ep.name in {names!r}]"
)


def quiet(message: str) -> None:
    del message


def pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def pip_path(work: Path, index: str, args: list[str], names: list[str]) -> float:
    """Fresh venv seeing the platform, pip install, load the entry points; return seconds."""
    venv = work / "pip-venv"
    shutil.rmtree(venv, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3.*/site-packages"))
    host_site = Path(sys.prefix) / site.relative_to(venv)
    (site / "platform.pth").write_text(f"import site; site.addsitedir({str(host_site)!r})\n")
    subprocess.run(
        [
            sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
            "--quiet", "--index-url", index, *args,
        ],
        check=True, env=pip_env(), capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [str(venv / "bin" / "python"), "-c", LOAD.format(names=set(names))], check=True, cwd=work
    )
    return time.perf_counter() - started


def median_of(rounds: int, prepare: Callable[[], None], run: Callable[[], float]) -> float:
    prepare()
    run()  # warm the caches
    times = []
    for _ in range(rounds):
        prepare()
        times.append(run())
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", type=int, default=50, help="plugins in the lock case")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per path")
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-install-"))
    os.environ["SERVICES_AI_HOME"] = str(work / "home")
    os.environ["SERVICES_AI_INDEX_PORT"] = str(free_port())
    os.environ.setdefault("SERVICES_AI_INDEX_SERVER_ARGS", FAST_DEVPI)
    os.environ.setdefault("SERVICES_AI_INDEX_VENV", str(Path(sys.prefix) / "devpi-server"))
    os.environ.pop("SERVICES_AI_PLUGIN_PATH", None)
    os.environ.pop("SERVICES_AI_INDEX_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "services_ai.settings"
    import logging

    import django

    django.setup()
    logging.disable(logging.INFO)
    from django.core.management import call_command

    from plugin_registry.distribution import index_server
    from plugin_registry.distribution.environment import Environment
    from plugin_registry.distribution.index import IndexClient
    from plugin_registry.distribution.lockfile import format_lock
    from services_ai import conf

    call_command("migrate", verbosity=0)
    index_server.init(quiet)
    index_server.start(quiet)
    try:
        client = IndexClient()
        simple = client.config.simple_url()
        wheels = [build_wheel(REPO / "example_plugins" / "lead-scorer", work / "wheels")]
        names = [f"bench-noop-{i:03d}" for i in range(options.plugins)]
        for name in names:
            project = write_plugin_project(work / "src", name, NOOP, MANIFEST)
            wheels.append(build_wheel(project, work / "wheels"))
        for wheel in wheels:
            client.upload(wheel)
        environment = Environment(client, say=quiet)
        empty = format_lock([], [], {})

        def platform_one() -> float:
            started = time.perf_counter()
            environment.install({"lead-scorer": "1.1.0"}, "bench")
            load_in_process(conf, ["lead-scorer"])
            return time.perf_counter() - started

        def platform_lock() -> float:
            started = time.perf_counter()
            environment.sync_lock(lock, "bench.lock")
            load_in_process(conf, names)
            return time.perf_counter() - started

        def clear() -> None:
            environment.sync_lock(empty, "empty.lock")

        one_platform = median_of(options.rounds, clear, platform_one)
        one_pip = median_of(
            options.rounds,
            lambda: None,
            lambda: pip_path(work, simple, ["lead-scorer==1.1.0"], ["lead-scorer"]),
        )
        lock = environment.resolve(dict.fromkeys(names, "1.0.0"))
        (work / "bench.lock").write_text(lock)
        pip_lock_args = ["--require-hashes", "-r", str(work / "bench.lock")]
        many_platform = median_of(options.rounds, clear, platform_lock)
        many_pip = median_of(
            options.rounds,
            lambda: None,
            lambda: pip_path(work, simple, pip_lock_args, names),
        )
    finally:
        index_server.stop(quiet)
        shutil.rmtree(work, ignore_errors=True)

    print(f"Installing plugins until loadable, warm cache, median of {options.rounds} rounds")
    print(f"{'case':<34}{'pip (s)':>10}{'platform (s)':>14}{'speed-up':>10}")
    for label, pip_time, ours in (
        ("one plugin", one_pip, one_platform),
        (f"{options.plugins} plugins from a lock", many_pip, many_platform),
    ):
        print(f"{label:<34}{pip_time:>10.3f}{ours:>14.3f}{pip_time / ours:>9.1f}x")


def load_in_process(conf, names: list[str]) -> None:
    """Import the entry points of ``names`` from the active generation in this process."""
    import importlib.metadata

    importlib.invalidate_caches()
    wanted = set(names)
    site = str(conf.site_packages(conf.loaded_generation()))
    for entry_point in importlib.metadata.entry_points(group="services_ai"):
        dist = entry_point.dist
        if entry_point.name in wanted and dist and str(dist.locate_file("")).startswith(site):
            entry_point.load()
            wanted.discard(entry_point.name)
    assert not wanted, f"not loadable: {sorted(wanted)}"


if __name__ == "__main__":
    main()
