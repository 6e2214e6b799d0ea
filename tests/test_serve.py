"""`services-ai serve`: the platform under gunicorn, static files by WhiteNoise, and web workers
that move to a new plugin generation by graceful recycling, never by switching in place."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError

from plugin_registry import runtime
from services_ai import conf, serving
from services_ai.testing.wheels import free_port
from tests.conftest import SAI
from tests.plugin_projects import build_wheel, install_wheels, write_plugin_project

SESSION = (
    "from django.contrib.auth import get_user_model; from django.test import Client\n"
    "user = get_user_model().objects.create_superuser('boss', 'boss@example.com', 'x')\n"
    "client = Client(); client.force_login(user); print(client.cookies['sessionid'].value)\n"
)

# A widget that says which version of it answered, from which process; slow enough that
# requests are in flight when the workers are recycled.
GEN_WIDGET = """
import os, time
from services_ai.plugins import hookimpl

@hookimpl
def dashboard_widget(context):
    time.sleep(0.05)
    return {"title": "Generation", "html": f"<p>gen-widget VERSION pid {os.getpid()}</p>"}
"""
GEN_MANIFEST = {"hook_specs": ["dashboard_widget"], "permissions": [], "settings": []}
ANSWER = re.compile(r"gen-widget (\d\.\d\.\d) pid (\d+)")


# -- in this process ---------------------------------------------------------------------------


def test_the_server_and_the_runtime_agree_on_the_mark_of_recycled_workers():
    assert serving.RECYCLED_ENV == runtime.RECYCLED_ENV


def test_defaults_honour_port_and_the_workers_variable(monkeypatch):
    monkeypatch.setenv("PORT", "8123")
    assert serving.default_bind() == "127.0.0.1:8123"
    monkeypatch.delenv("PORT")
    assert serving.default_bind() == "127.0.0.1:8000"
    monkeypatch.setenv(serving.WORKERS_ENV, "3")
    assert serving.default_workers() == 3
    for bad in ("0", "two"):
        monkeypatch.setenv(serving.WORKERS_ENV, bad)
        with pytest.raises(ImproperlyConfigured, match=serving.WORKERS_ENV):
            serving.default_workers()
    monkeypatch.delenv(serving.WORKERS_ENV)
    assert serving.default_workers() == 2 * (os.cpu_count() or 1) + 1


def test_the_master_imports_nothing_of_django_nor_of_the_platform_but_its_configuration():
    # So that a reload (SIGHUP) gives workers fresh modules: they import everything after the fork.
    script = (
        "import sys, services_ai.serving\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'services_ai', 'plugin_registry')))"
    )
    found = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert found.stdout.split() == ["['services_ai',", "'services_ai.serving']"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers": 0}, "--workers must be from 1 to 64"),
        ({"workers": 65}, "--workers must be from 1 to 64"),
        ({"timeout": 0}, "--timeout must be from 1 to 3600 seconds"),
    ],
)
def test_serve_refuses_bad_options(options, message):
    with pytest.raises(CommandError, match=message):
        call_command("serve", **options)


@pytest.fixture
def generations(tmp_path, monkeypatch) -> Iterator[Path]:
    """A temporary home with two (empty) generations; this process's generation restored after."""
    loaded = conf.loaded_generation()
    monkeypatch.setenv(conf.HOME_ENV, str(tmp_path / "home"))
    for number in (1, 2):
        conf.site_packages(conf.environment_dir() / "generations" / f"{number:04d}").mkdir(
            parents=True
        )
    yield conf.environment_dir() / "generations"
    conf.use_generation(loaded)


def activate(number: int) -> Path:
    link = conf.active_link()
    tmp = link.with_name("active.tmp")
    tmp.symlink_to(Path("generations") / f"{number:04d}")
    os.replace(tmp, link)
    return link.parent / os.readlink(link)


def test_a_recycled_process_keeps_its_generation_until_it_is_replaced(generations, monkeypatch):
    assert serving.active_link() == conf.active_link()  # what the master watches
    first = activate(1)
    assert runtime.follow_active_environment() is True  # an ordinary process follows in place
    assert conf.loaded_generation() == first

    monkeypatch.setenv(runtime.RECYCLED_ENV, "1")
    assert runtime.recycled_by_server()
    activate(2)
    assert runtime.follow_active_environment() is False  # hook calls and plugin static alike
    assert conf.loaded_generation() == first

    monkeypatch.delenv(runtime.RECYCLED_ENV)
    assert runtime.follow_active_environment() is True  # commands and runserver: unchanged
    assert conf.loaded_generation() == generations / "0002"


class FakeLog:
    def __init__(self):
        self.lines: list[str] = []

    def info(self, message, *args):
        self.lines.append(message % args)


def test_the_master_reloads_itself_when_the_active_link_moves(generations, monkeypatch):
    activate(1)
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(serving.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    server = type("Server", (), {"log": FakeLog()})()
    watcher = serving.GenerationWatcher(server, conf.active_link(), interval=0.02)
    watcher.start()
    try:
        time.sleep(0.1)
        assert sent == []  # nothing moved
        activate(2)
        deadline = time.monotonic() + 5
        while not sent and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
    finally:
        watcher.stopped.set()
        watcher.join(5)
    assert sent == [(os.getpid(), signal.SIGHUP)]  # once per move
    assert "generations/0001 -> generations/0002" in server.log.lines[-1]


# -- a real server in a child --------------------------------------------------------------------


def get(port: int, path: str, session: str = "") -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        headers = {"Cookie": f"sessionid={session}"} if session else {}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@contextmanager
def serving_platform(runner: SAI, log: Path, *args: str) -> Iterator[Server]:
    """``services-ai serve`` on a free port, answering; stopped (and waited for) afterwards."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [runner.executable, "serve", "--bind", f"127.0.0.1:{port}", *args],
            env=runner.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(proc, port, log)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{server.output()}"
            try:
                if get(port, "/accounts/login/")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"serve did not answer within 30 s:\n{server.output()}")
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def session_of(runner: SAI) -> str:
    return runner("shell", "-c", SESSION).stdout.split()[-1]


@pytest.mark.subprocess
def test_serve_serves_pages_static_files_and_many_requests_at_once(tmp_path, example_site):
    runner = SAI(tmp_path / "home", [example_site], SERVICES_AI_LOG_LEVEL="WARNING")
    runner("migrate", "--no-input", "-v0")
    runner("plugins", "grant", "booking-widget", "read_bookings")
    runner("plugins", "enable", "booking-widget")
    session = session_of(runner)

    with serving_platform(runner, tmp_path / "serve.log", "--workers", "2") as server:
        port = server.port
        # Static files: collected into the home, served by WhiteNoise with caching headers,
        # and with the platform's Content-Security-Policy like every other response.
        assert (runner.home / "static" / "services_ai" / "console.css").is_file()
        status, headers, body = get(port, "/static/services_ai/console.css")
        assert status == 200 and ".card" in body
        assert headers["Content-Type"].startswith("text/css")
        assert "max-age=" in headers["Cache-Control"] and headers["ETag"]
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"

        # A page renders, with the strict policy.
        status, headers, body = get(port, "/", session)
        assert status == 200, body
        assert "/widgets/booking-widget/" in body
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in headers["Content-Security-Policy"]

        # 20 widget requests at once (more than runserver's listen queue of 10): all answer.
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda _: get(port, "/widgets/booking-widget/", session), range(20)))  # fmt: skip
        assert [status for status, _, _ in answers] == [200] * 20
        assert all("Upcoming bookings" in body for _, _, body in answers)

        # SIGTERM: a graceful stop, and exit status 0.
        assert server.stop() == 0
    output = server.output()
    assert "with 2 worker process(es) (gunicorn)" in output
    assert '"GET /widgets/booking-widget/ HTTP/1.1" 200' in output  # the access log
    assert "Shutting down: Master" in output


@pytest.fixture(scope="module")
def gen_widget_wheels(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gen-projects")
    out = tmp_path_factory.mktemp("gen-wheels")
    wheels = {}
    for version in ("1.0.0", "2.0.0"):
        main_py = GEN_WIDGET.replace("VERSION", version)
        project = write_plugin_project(root, "gen-widget", main_py, GEN_MANIFEST, version=version)
        static = project / "gen_widget" / "static"
        static.mkdir()
        (static / "version.txt").write_text(version)
        wheels[version] = build_wheel(project, out)
    return wheels


@pytest.mark.subprocess
def test_serve_recycles_its_workers_when_the_active_generation_moves(tmp_path, gen_widget_wheels):
    home = tmp_path / "home"
    runner = SAI(home, [], SERVICES_AI_LOG_LEVEL="WARNING")
    generations = home / "env" / "generations"
    for number, version in ((1, "1.0.0"), (2, "2.0.0")):
        install_wheels([gen_widget_wheels[version]], conf.site_packages(generations / f"{number:04d}"))  # fmt: skip

    def activate(number: int) -> None:  # as an install on this host does: one atomic rename
        tmp = home / "env" / "active.tmp"
        tmp.symlink_to(Path("generations") / f"{number:04d}")
        os.replace(tmp, home / "env" / "active")

    activate(1)
    runner("migrate", "--no-input", "-v0")
    runner("plugins", "enable", "gen-widget")
    session = session_of(runner)

    with serving_platform(runner, tmp_path / "serve.log", "--workers", "2") as server:
        answers: list[tuple[float, str, int]] = []  # (time, version, worker pid)
        failures: list[str] = []
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                try:
                    status, _, body = get(server.port, "/widgets/gen-widget/", session)
                except OSError as exc:
                    failures.append(repr(exc))
                    continue
                found = ANSWER.search(body)
                if status != 200 or found is None:
                    failures.append(f"{status}: {body[:300]}")
                    continue
                answers.append((time.monotonic(), found[1], int(found[2])))

        clients = [threading.Thread(target=hammer) for _ in range(4)]
        for client in clients:
            client.start()
        try:
            deadline = time.monotonic() + 10
            while len({pid for _, _, pid in answers}) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            old_pids = {pid for _, _, pid in answers}
            assert len(old_pids) == 2, server.output()
            assert {version for _, version, _ in answers} == {"1.0.0"}
            assert get(server.port, "/plugin-static/gen-widget/version.txt", session)[2] == "1.0.0"

            activate(2)
            flipped = time.monotonic()
            deadline = flipped + 15
            while time.monotonic() < deadline:
                latest = [answer for answer in answers if answer[0] > flipped]
                if sum(version == "2.0.0" for _, version, _ in latest[-10:]) == 10:
                    break
                time.sleep(0.05)
            time.sleep(0.5)  # keep requests in flight a little longer
        finally:
            stop.set()
            for client in clients:
                client.join(30)

        output = server.output()
        assert failures == [], output
        new = [(at, pid) for at, version, pid in answers if version == "2.0.0"]
        assert new, f"no worker served generation 2 within 15 s:\n{output}"
        new_pids = {pid for _, pid in new}
        # New processes serve the new generation; the old ones never switched in place.
        assert not new_pids & old_pids
        assert {pid for _, version, pid in answers if version == "1.0.0"} == old_pids
        deadline = time.monotonic() + 10
        while any(os.path.exists(f"/proc/{pid}") for pid in old_pids):  # they leave
            assert time.monotonic() < deadline, f"old workers still running:\n{output}"
            time.sleep(0.1)
        assert min(at for at, _ in new) - flipped < 10
        assert "recycling workers gracefully" in output
        # Plugin static files come from the generation the answering process loaded.
        assert get(server.port, "/plugin-static/gen-widget/version.txt", session)[2] == "2.0.0"
        assert server.stop() == 0


# -- the systemd units -------------------------------------------------------------------------

UNITS = Path(__file__).resolve().parent.parent / "deploy" / "systemd"


def unit(name: str) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            keys.setdefault(key, []).append(value)
    return keys


def test_the_systemd_units_reload_with_hup_and_stop_gracefully():
    web, worker, index = (unit(f"services-ai-{n}.service") for n in ("web", "worker", "index"))
    assert "services-ai serve" in web["ExecStart"][0]
    assert web["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert web["Type"] == ["notify"] and web["KillMode"] == ["mixed"]
    timeout = int(web["ExecStart"][0].split("--timeout ")[1].split()[0])
    assert int(web["TimeoutStopSec"][0]) > timeout  # the workers' graceful stop fits in
    assert "services-ai worker" in worker["ExecStart"][0] and worker["KillMode"] == ["mixed"]
    assert int(worker["TimeoutStopSec"][0]) > 30 + 5 + 10  # budget + kill grace + stale margin
    assert index["Type"] == ["forking"] and "index stop" in index["ExecStop"][0]
    for keys in (web, worker, index):
        home = next(v for v in keys["Environment"] if v.startswith("SERVICES_AI_HOME="))
        assert home == "SERVICES_AI_HOME=/srv/services-ai/home"
        assert keys["User"] == ["services-ai"] and keys["Restart"]
    assert index["PIDFile"] == ["/srv/services-ai/home/index/server.pid"]
    for keys in (web, worker):
        assert any(v.startswith("DATABASE_URL=postgresql://") for v in keys["Environment"])


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not here")
def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path):
    venv_bin = Path(sys.executable).parent
    for path in UNITS.glob("*.service"):
        text = path.read_text().replace("/srv/services-ai/venv/bin", str(venv_bin))
        (tmp_path / path.name).write_text(text)
        found = subprocess.run(
            ["systemd-analyze", "verify", str(tmp_path / path.name)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert found.returncode == 0 and not found.stderr.strip(), (path.name, found.stderr)
