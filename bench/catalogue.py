"""Benchmark: refreshing the catalogue against the raw HTTP requests it needs.

A throwaway embedded index (devpi-server on a free loopback port, argon2 cost lowered) holds N
small plugin projects (one wheel each, written with the platform's wheel writer). Each case is
timed over several rounds, the two sides alternated within a round, in the same run:

- the *floor*: a bare script doing only the HTTP requests the refresh needs, with keep-alive
  connections and the same number of threads as the catalogue (``--workers``): the index's
  project list, and then per case
  - **cold** (empty catalogue): every project's PEP 691 page and every wheel;
  - **warm, index changed** (the index's serial moved, e.g. an upload elsewhere on the server;
    nothing new for the catalogue): every project's page;
  - **warm, unchanged** (the serial is the one of the last refresh): nothing more.
- the platform: ``sync_catalogue()`` in this process, and the whole ``services-ai plugins
  catalogue --json`` command (a new process: Django start-up included) against the bare script
  run as a new process too.

Medians and minimums are printed, with the ratio platform / floor of each. The machine may run
other work: compare medians with minimums before trusting a ratio.
Run: ``python bench/catalogue.py`` (``--projects``, ``--rounds``, ``--workers`` change the sizes).
``python bench/catalogue.py --raw URL [--pages] [--wheels]`` runs only the bare script.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FAST_DEVPI = "--argon2-memory-cost 65536 --argon2-time-cost 2 --argon2-parallelism 2"
PEP691 = "application/vnd.pypi.simple.v1+json"


# -- the floor: the HTTP requests alone (standard library only, so it starts fast) --------------


class Raw:
    """Keep-alive GETs, one connection per thread."""

    def __init__(self, server: str) -> None:
        parts = urllib.parse.urlsplit(server)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.local = threading.local()
        self.requests = 0

    def get(self, url: str, accept: str = "*/*") -> bytes:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        conn.request("GET", urllib.parse.urlsplit(url).path, headers={"Accept": accept})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, (url, response.status)
        self.requests += 1
        return body


def raw_refresh(index_url: str, pages: bool, wheels: bool, workers: int) -> int:
    """List the index's projects; read every page (and fetch every wheel); return requests."""
    server = index_url.rsplit("/", 2)[0]
    raw = Raw(server)
    projects = json.loads(raw.get(index_url, "application/json"))["result"]["projects"]
    if not pages:
        return raw.requests

    def one(name: str) -> None:
        url = f"{index_url}/+simple/{name}/"
        for item in json.loads(raw.get(url, PEP691))["files"]:
            if wheels and item["filename"].endswith(".whl"):
                raw.get(urllib.parse.urljoin(url, item["url"]))

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, projects))
    return raw.requests


# -- the index and its projects -------------------------------------------------------------


def plugin_wheel(folder: Path, name: str, version: str = "1.0.0") -> Path:
    """A small real plugin wheel (entry point, manifest), written without a build backend."""
    from plugin_registry.distribution.wheelfile import wheel_contents, wheel_filename, write_wheel

    package = name.replace("-", "_")
    manifest = {"hook_specs": ["lead_created"], "permissions": ["read_leads"], "settings": []}
    metadata = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        f"Summary: Benchmark plugin {name}\nAuthor: Bench\nRequires-Dist: services-ai>=0.1\n"
    )
    members = wheel_contents(
        name, version,
        [
            (f"{package}/__init__.py", b""),
            (f"{package}/main.py", b"def lead_created(lead):\n    return None\n"),
            (f"{package}/manifest.json", json.dumps(manifest).encode()),
        ],
        metadata=metadata, generator="bench",
        entry_points=f"[services_ai]\n{name} = {package}.main\n",
    )  # fmt: skip
    return write_wheel(folder / wheel_filename(name, version), members)


def publish(wheels: list[Path], threads: int = 4) -> None:
    from plugin_registry.distribution.index import IndexClient

    local = threading.local()

    def upload(wheel: Path) -> None:
        if not hasattr(local, "client"):
            local.client = IndexClient()
        local.client.upload(wheel)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(upload, wheels))


# -- timing ---------------------------------------------------------------------------------


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def summary(times: list[float]) -> tuple[float, float]:
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=300, help="plugin projects on the index")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per case")
    parser.add_argument("--workers", type=int, default=8, help="threads of the bare script")
    parser.add_argument("--no-command", action="store_true", help="skip the whole-command cases")
    parser.add_argument("--raw", metavar="INDEX_URL", help="run only the bare script")
    parser.add_argument("--pages", action="store_true", help="(--raw) read every project page")
    parser.add_argument("--wheels", action="store_true", help="(--raw) fetch every wheel")
    options = parser.parse_args()
    if options.raw:
        raw_refresh(options.raw, options.pages or options.wheels, options.wheels, options.workers)
        return

    sys.path.insert(0, str(REPO))
    work = Path(tempfile.mkdtemp(prefix="bench-catalogue-"))
    from services_ai.testing.wheels import free_port

    env = {
        **os.environ,
        "SERVICES_AI_HOME": str(work / "home"),
        "SERVICES_AI_INDEX_PORT": str(free_port()),
        "SERVICES_AI_INDEX_SERVER_ARGS": os.environ.get(
            "SERVICES_AI_INDEX_SERVER_ARGS", FAST_DEVPI
        ),
        "SERVICES_AI_INDEX_VENV": os.environ.get(
            "SERVICES_AI_INDEX_VENV", str(Path(sys.prefix) / "devpi-server")
        ),
        "DJANGO_SETTINGS_MODULE": "services_ai.settings",
        "SERVICES_AI_LOG_LEVEL": "WARNING",
    }
    for name in ("SERVICES_AI_PLUGIN_PATH", "SERVICES_AI_INDEX_URL", "DATABASE_URL"):
        env.pop(name, None)
    os.environ.clear()
    os.environ.update(env)
    import logging

    import django

    django.setup()
    logging.disable(logging.WARNING)
    from django.core.management import call_command

    from plugin_registry.distribution import catalogue, index_server
    from plugin_registry.distribution.index import IndexClient
    from plugin_registry.registry.models import CatalogueVersion

    def quiet(message: str) -> None:
        del message

    call_command("migrate", verbosity=0)
    index_server.init(quiet)
    index_server.start(quiet)
    try:
        started = time.perf_counter()
        names = [f"bench-plugin-{i:04d}" for i in range(options.projects)]
        publish([plugin_wheel(work / "wheels", name) for name in names])
        setup = time.perf_counter() - started
        index_url = IndexClient().config.index_url()
        forget = getattr(catalogue, "forget_index_serial", lambda: None)
        sai = str(Path(sys.executable).parent / "services-ai")
        command = [sai, "plugins", "catalogue", "--json"]
        bare = [sys.executable, __file__, "--raw", index_url, "--workers", str(options.workers)]

        def empty() -> None:
            CatalogueVersion.objects.all().delete()
            forget()

        def sync() -> None:
            report = catalogue.sync_catalogue(IndexClient())
            assert report.projects == options.projects

        def run(args: list[str]) -> None:
            subprocess.run(args, check=True, stdout=subprocess.DEVNULL, timeout=600)

        cases: dict[str, dict[str, list[float]]] = {}

        def side(
            case: str, who: str, prepare: Callable[[], None], go: Callable[[], object]
        ) -> None:
            prepare()
            cases.setdefault(case, {}).setdefault(who, []).append(timed(go))

        def floor(pages: bool, wheels: bool) -> Callable[[], object]:
            return lambda: raw_refresh(index_url, pages, wheels, options.workers)

        # One untimed round of each side first: caches, imports, the server's own warm-up.
        empty()
        floor(True, True)()
        sync()
        for n in range(options.rounds):
            pairs = [
                ("cold", "floor", empty, floor(True, True)),
                ("cold", "sync_catalogue()", empty, sync),
                ("warm, index changed", "floor", forget, floor(True, False)),
                ("warm, index changed", "sync_catalogue()", forget, sync),
                ("warm, unchanged", "floor", quiet_none, floor(False, False)),
                ("warm, unchanged", "sync_catalogue()", quiet_none, sync),
            ]
            if not options.no_command:
                pairs += [
                    ("cold (process)", "bare script", empty, lambda: run([*bare, "--wheels"])),
                    ("cold (process)", "plugins catalogue", empty, lambda: run(command)),
                    ("warm, unchanged (process)", "bare script", quiet_none, lambda: run(bare)),
                    ("warm, unchanged (process)", "plugins catalogue", quiet_none,
                     lambda: run(command)),
                ]  # fmt: skip
            if n % 2:  # alternate which side goes first
                pairs = [p for i in range(0, len(pairs), 2) for p in (pairs[i + 1], pairs[i])]
            for case, who, prepare, go in pairs:
                side(case, who, prepare, go)
        requests = {
            "cold": raw_refresh(index_url, True, True, options.workers),
            "warm, index changed": raw_refresh(index_url, True, False, options.workers),
            "warm, unchanged": raw_refresh(index_url, False, False, options.workers),
        }
    finally:
        index_server.stop(quiet)
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"Catalogue refresh of {options.projects} projects (1 wheel each; index set up in "
        f"{setup:.1f} s), {options.rounds} rounds, {options.workers} threads in the bare script"
    )
    print(f"{'case':<28}{'side':<20}{'median (s)':>11}{'min (s)':>10}{'ratio':>10}")
    for case, sides in cases.items():
        (base, base_times), (ours, our_times) = sides.items()
        count = f"{requests[case]} req" if case in requests else ""
        print(f"{case:<28}{base:<20}{summary(base_times)[0]:>11.3f}{min(base_times):>10.3f}"
              f"{count:>10}")  # fmt: skip
        median_ratio = summary(our_times)[0] / summary(base_times)[0]
        print(f"{'':<28}{ours:<20}{summary(our_times)[0]:>11.3f}{min(our_times):>10.3f}"
              f"{median_ratio:>9.2f}x")  # fmt: skip
        print(f"{'':<28}{'ratio of minimums':<41}{min(our_times) / min(base_times):>9.2f}x")


def quiet_none() -> None:
    return None


if __name__ == "__main__":
    main()
