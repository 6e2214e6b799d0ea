"""Benchmark: N simultaneous requests against Django's development server and ``services-ai serve``.

A throwaway home with the example plugins (booking-widget enabled, demo data) is served in turn
by ``services-ai runserver --noreload --insecure`` (the anchor: what ``scripts/platform.sh`` ran
before) and by ``services-ai serve`` (gunicorn, sync workers), with ``--granian`` also by
granian's WSGI server (if installed; it is not a dependency). For each server and page (a
dashboard widget, the dashboard, a static file), in the same run: the median time of one request
alone, and the time until all of N requests sent at once (each on its own connection) have
answered, median over the rounds. Every answer must be 200; failures are counted and printed.

Run: ``python bench/serve.py`` (``--requests``, ``--rounds``, ``--workers`` change the sizes).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from services_ai.testing.processes import stop_group  # noqa: E402
from services_ai.testing.wheels import build_wheel, free_port, install_wheels  # noqa: E402

SAI = str(Path(sys.executable).parent / "services-ai")
PAGES = {
    "widget": "/widgets/booking-widget/",
    "dashboard": "/",
    "static": "/static/services_ai/console.css",
}
SESSION = (
    "from django.contrib.auth import get_user_model; from django.test import Client\n"
    "user, _ = get_user_model().objects.get_or_create("
    "username='bench', defaults={'is_staff': True, 'is_superuser': True})\n"
    "client = Client(); client.force_login(user); print(client.cookies['sessionid'].value)\n"
)


def run(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [SAI, *args], env=env, check=True, capture_output=True, text=True, timeout=300
    ).stdout


def prepare(root: Path) -> tuple[dict[str, str], str]:
    """A migrated home with the example plugins on the plugin path; return (env, session id)."""
    wheels = root / "wheels"
    wheels.mkdir()
    built = [build_wheel(REPO / "example_plugins" / name, wheels) for name in ("booking-widget",)]
    site = install_wheels(built, root / "site")
    env = {
        **os.environ,
        "SERVICES_AI_HOME": str(root / "home"),
        "SERVICES_AI_PLUGIN_PATH": str(site),
        "DJANGO_SETTINGS_MODULE": "services_ai.settings",
        "SERVICES_AI_LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_URL", None)
    run(env, "migrate", "--no-input", "-v0")
    run(env, "plugins", "grant", "booking-widget", "read_bookings")
    run(env, "plugins", "enable", "booking-widget")
    run(env, "demo_data")
    run(env, "collectstatic", "--no-input", "-v0")
    return env, run(env, "shell", "-c", SESSION).split()[-1]


def get(port: int, path: str, session: str, timeout: float = 30) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Cookie": f"sessionid={session}"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def wait_ready(port: int, proc: subprocess.Popen, log: Path, deadline: float = 60) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(
                f"the server exited with {proc.returncode} before answering:\n"
                + log.read_text()[-3000:]
            )
        try:
            if get(port, "/accounts/login/", "", timeout=2) == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server did not answer on port {port} within {deadline:g} s")


@contextmanager
def server(kind: str, env: dict[str, str], port: int, workers: int, log: Path) -> Iterator[None]:
    commands = {
        "runserver": [SAI, "runserver", "--noreload", "--insecure", f"127.0.0.1:{port}"],
        "serve": [SAI, "serve", "--no-collectstatic", "--bind", f"127.0.0.1:{port}",
                  "--workers", str(workers)],
        "granian": [sys.executable, "-m", "granian", "--interface", "wsgi", "--host",
                    "127.0.0.1", "--port", str(port), "--workers", str(workers),
                    "services_ai.wsgi:application"],
    }  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(
            commands[kind], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_ready(port, proc, log)
            yield
        finally:
            with suppress(ProcessLookupError):
                stop_group(proc)


def at_once(port: int, path: str, session: str, count: int) -> tuple[float, int]:
    """Send ``count`` requests together; return (seconds until the last answered, failures)."""
    barrier = threading.Barrier(count + 1)
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait()
        try:
            status = get(port, path, session)
        except OSError:
            status = 0
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, sum(status != 200 for status in statuses)


def measure(port: int, session: str, requests: int, rounds: int) -> dict[str, tuple]:
    results = {}
    for page, path in PAGES.items():
        at_once(port, path, session, requests)  # untimed: every worker builds its host
        alone = []
        for _ in range(max(rounds, 20)):
            started = time.perf_counter()
            if get(port, path, session) != 200:
                raise SystemExit(f"{path} did not answer 200")
            alone.append(time.perf_counter() - started)
        together, failures = [], 0
        for _ in range(rounds):
            seconds, failed = at_once(port, path, session, requests)
            together.append(seconds)
            failures += failed
        results[page] = (statistics.median(alone), statistics.median(together), failures)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="requests sent at once (20)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per page (5, median)")
    parser.add_argument(
        "--workers", type=int, default=None, help="serve's workers (default: serve's own)"
    )
    parser.add_argument("--granian", action="store_true", help="also granian (if installed)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="services-ai-bench-serve-"))
    try:
        env, session = prepare(root)
        from services_ai import serving

        workers = args.workers or serving.default_workers()
        kinds = ["runserver", "serve"] + (["granian"] if args.granian else [])
        table = {}
        for kind in kinds:
            port = free_port()
            with server(kind, env, port, workers, root / f"{kind}.log"):
                table[kind] = measure(port, session, args.requests, args.rounds)
        n = args.requests
        print(f"{n} requests at once, median of {args.rounds} round(s); serve: {workers} workers")
        print(f"{'server':<10} {'page':<10} {'one ms':>8} {f'{n} at once ms':>15} "
              f"{'x one':>7} {'failed':>6}")  # fmt: skip
        for kind, pages in table.items():
            for page, (alone, together, failures) in pages.items():
                print(
                    f"{kind:<10} {page:<10} {alone * 1000:8.1f} {together * 1000:15.1f} "
                    f"{together / alone:7.1f} {failures:6d}"
                )
        for kind in kinds[1:]:
            for page in PAGES:
                ratio = table[kind][page][1] / table["runserver"][page][1]
                print(f"{kind} vs runserver, {page}, {n} at once: {ratio:.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
