from __future__ import annotations

import contextlib
import importlib
import os
import signal
import site
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services_ai.testing.wheels import free_port
from tests.plugin_projects import (
    BROKEN_PLUGINS,
    DELIVERY_PLUGINS,
    EXAMPLES,
    INDEX_PLUGINS,
    UNCHECKED_UPLOADS,
    build_wheel,
    install_wheels,
    write_plugin_project,
)

EXAMPLE_NAMES = ("lead-scorer", "booking-widget", "crm-sync")

# Every process the tests start inherits this mark, so the session can tell at its end whether
# one of them outlived it (an orphaned devpi-server, worker or web server).
SESSION_MARK = "SERVICES_AI_TEST_SESSION"
LEFTOVER_GRACE = 10.0  # seconds a process may take to exit after the test that stopped it


def pytest_configure(config) -> None:
    os.environ.setdefault(SESSION_MARK, uuid.uuid4().hex)


def pytest_report_header(config) -> str:
    from django.db import connection

    return f"database: {connection.vendor} ({connection.settings_dict['NAME']})"


def marked_processes(mark: str) -> list[tuple[int, str]]:
    """Return (pid, command line) of every other process that carries the session's mark."""
    found = []
    needle = f"{SESSION_MARK}={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if state != "Z":
            found.append((int(entry.name), command.strip()))
    return found


def pytest_sessionfinish(session, exitstatus) -> None:
    """Fail the run if a process the tests started is still alive; then stop it."""
    mark = os.environ.get(SESSION_MARK)
    if not mark or hasattr(session.config, "workerinput"):
        return
    deadline = time.monotonic() + LEFTOVER_GRACE
    leftover = marked_processes(mark)
    while leftover and time.monotonic() < deadline:
        time.sleep(0.2)
        leftover = marked_processes(mark)
    if not leftover:
        return
    lines = "\n".join(f"  pid {pid}: {command[:200]}" for pid, command in leftover)
    session.config.get_terminal_writer().line(
        f"\nprocesses started by the tests are still running after the session:\n{lines}",
        red=True,
    )
    for pid, _ in leftover:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


# devpi-server gets its own environment, shared by every test run of this checkout.
os.environ.setdefault("SERVICES_AI_INDEX_VENV", str(Path(sys.prefix) / "devpi-server"))
# Throwaway servers only: cheap password hashing (production keeps devpi's defaults).
TEST_DEVPI_ARGS = "--argon2-memory-cost 65536 --argon2-time-cost 2 --argon2-parallelism 2"


@pytest.fixture(scope="session")
def example_wheels(tmp_path_factory) -> dict[str, Path]:
    """Real wheels of the example plugins, built once per test run."""
    out = tmp_path_factory.mktemp("example-wheels")
    return {name: build_wheel(EXAMPLES / name, out) for name in EXAMPLE_NAMES}


@pytest.fixture(scope="session")
def example_site(tmp_path_factory, example_wheels) -> Path:
    """A folder with the example plugins installed, as the platform's plugin path uses it."""
    return install_wheels(list(example_wheels.values()), tmp_path_factory.mktemp("example-site"))


@pytest.fixture(scope="session")
def broken_site(tmp_path_factory) -> Path:
    """A folder with plugins that fail to import, misspell a hook or ship a bad manifest."""
    return _build_site(tmp_path_factory, "broken", BROKEN_PLUGINS)


def _build_site(tmp_path_factory, name: str, plugins: dict) -> Path:
    root = tmp_path_factory.mktemp(f"{name}-projects")
    out = tmp_path_factory.mktemp(f"{name}-wheels")
    wheels = [
        build_wheel(write_plugin_project(root, dist, main_py, manifest), out)
        for dist, (main_py, manifest) in plugins.items()
    ]
    return install_wheels(wheels, tmp_path_factory.mktemp(f"{name}-site"))


@pytest.fixture(scope="session")
def delivery_site(tmp_path_factory) -> Path:
    """A folder with plugins that fail on purpose, count re-runs or hang."""
    return _build_site(tmp_path_factory, "delivery", DELIVERY_PLUGINS)


@pytest.fixture(scope="session", autouse=True)
def plugins_on_path(example_site, delivery_site) -> list[Path]:
    """Make the example and delivery plugins installed in this process, from real wheels."""
    for folder in (example_site, delivery_site):
        site.addsitedir(str(folder))
    importlib.invalidate_caches()
    return [example_site, delivery_site]


@pytest.fixture(autouse=True)
def fresh_host():
    """Every test starts with no process host: it is built from the registry on first use."""
    from plugin_registry.runtime import reset_host

    reset_host()
    yield
    reset_host()


@pytest.fixture
def registry(db):
    """The registry mirrored from the installed example plugins, all disabled."""
    from plugin_registry.registry.sync import sync_registry

    sync_registry()
    return Registry()


class Registry:
    """Small helpers over the admin actions, for arranging tests."""

    def enable(self, name: str, *grants: str, **settings) -> None:
        from plugin_registry.registry import actions

        if settings:
            actions.configure(name, settings)
        actions.enable(name)
        for permission in grants:
            actions.set_grant(name, permission, True)


class SAI:
    """Runs the ``services-ai`` command in child processes with its own home and plugin path."""

    def __init__(self, home: Path, plugin_path: list[Path], database_url: str = "", **env: str):
        self.home = home
        self.env = {
            **os.environ,
            "SERVICES_AI_HOME": str(home),
            "SERVICES_AI_PLUGIN_PATH": os.pathsep.join(map(str, plugin_path)),
            "DJANGO_SETTINGS_MODULE": "services_ai.settings",
            **env,
        }
        self.env.pop("SERVICES_AI_TEST_HOME", None)
        self.env.pop("DATABASE_URL", None)
        if database_url:
            self.env["DATABASE_URL"] = database_url
        self.executable = str(Path(sys.executable).parent / "services-ai")

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [self.executable, *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"services-ai {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def python(self, script: str, **kwargs) -> subprocess.Popen:
        """Start a Python child with the platform's settings set up."""
        return subprocess.Popen([sys.executable, "-c", script], env=self.env, text=True, **kwargs)


@pytest.fixture
def sai(tmp_path, example_site, broken_site) -> SAI:
    """A migrated platform home in a temp folder, with example and broken plugins installed."""
    runner = SAI(tmp_path / "home", [example_site, broken_site])
    runner("migrate", "--no-input", "-v0")
    return runner


class PluginIndex:
    """The session's devpi-server, with the example and test plugins published."""

    def __init__(self, runner: SAI, port: int):
        self.runner = runner
        self.port = port
        self.url = f"http://127.0.0.1:{port}/services-ai/stable"
        self.simple_url = self.url + "/+simple/"
        self.password = (runner.home / "index" / "password").read_text().strip()

    def env(self) -> dict[str, str]:
        return {"SERVICES_AI_INDEX_URL": self.url, "SERVICES_AI_INDEX_PASSWORD": self.password}


@pytest.fixture(scope="session")
def index_wheels(tmp_path_factory, example_wheels) -> list[Path]:
    """Wheels of the example plugins and the distribution test plugins."""
    root = tmp_path_factory.mktemp("index-projects")
    out = tmp_path_factory.mktemp("index-wheels")
    built = list(example_wheels.values())
    for dist, version, main_py, manifest, deps, is_plugin in INDEX_PLUGINS:
        project = write_plugin_project(
            root, dist, main_py, manifest, version=version, dependencies=deps,
            entry_point=is_plugin,
        )  # fmt: skip
        built.append(build_wheel(project, out))
    return built


LIBRARIES = tuple(
    f"{dist.replace('-', '_')}-" for dist, *_, is_plugin in INDEX_PLUGINS if not is_plugin
)


def upload_unchecked(runner: SAI, wheels: list[Path]) -> None:
    """Upload straight to the index, without the platform's check, as twine would."""
    script = (
        "import sys; from pathlib import Path; from plugin_registry.distribution.index import IndexClient\n"
        "for path in sys.argv[1:]: IndexClient().upload(Path(path))\n"
    )
    runner("shell", "-c", script.replace("sys.argv[1:]", repr([str(w) for w in wheels])))


@contextlib.contextmanager
def running_index(home: Path) -> Iterator[PluginIndex]:
    """A real devpi-server on a free loopback port, started by `services-ai index`, stopped after."""
    port = free_port()
    runner = SAI(home, [], SERVICES_AI_INDEX_SERVER_ARGS=TEST_DEVPI_ARGS)
    runner("index", "init", "--port", str(port))
    runner("index", "start")
    try:
        yield PluginIndex(runner, port)
    finally:
        runner("index", "stop", check=False)


@pytest.fixture(scope="session")
def plugin_index(tmp_path_factory, index_wheels) -> Iterator[PluginIndex]:
    """The session's index, with the example and test plugins published."""
    with running_index(tmp_path_factory.mktemp("index-home")) as index:
        runner = index.runner
        plugins = [w for w in index_wheels if w.name.split("-")[0] not in UNCHECKED_UPLOADS]
        libraries = [w for w in plugins if w.name.startswith(LIBRARIES)]
        runner("index", "publish", *[str(w) for w in plugins if w not in libraries])
        runner("index", "publish", "--dependency", *map(str, libraries))
        upload_unchecked(
            runner, [w for w in index_wheels if w.name.split("-")[0] in UNCHECKED_UPLOADS]
        )
        yield index


@pytest.fixture
def platform(tmp_path, plugin_index) -> SAI:
    """A migrated platform home whose plugins come from the session's index only."""
    runner = SAI(tmp_path / "home", [], **plugin_index.env())
    runner("migrate", "--no-input", "-v0")
    return runner


# Browser tests: Debian's Chromium (Playwright cannot download browsers here).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
CHROMIUM = os.environ.get("SERVICES_AI_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }
