"""Building real plugin wheels for tests: the example plugins and small broken ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services_ai.testing.wheels import build_wheel, install_wheels, write_plugin_project

__all__ = ["build_wheel", "install_wheels", "write_plugin_project"]

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "example_plugins"


BROKEN_PLUGINS = {
    # Valid manifest, but importing the entry point fails.
    "broken-import": (
        """
        import missing_dependency_of_broken_import  # noqa: F401
        """,
        {"hook_specs": ["lead_created"], "permissions": ["read_leads"], "settings": []},
    ),
    # Valid manifest, but the hook name is misspelt in the code.
    "misspelt-hook": (
        """
        from services_ai.plugins import hookimpl

        @hookimpl
        def lead_create(lead):
            pass
        """,
        {"hook_specs": ["lead_created"], "permissions": ["read_leads"], "settings": []},
    ),
    # The manifest asks for an unknown setting type and misses "permissions".
    "bad-manifest": (
        """
        from services_ai.plugins import hookimpl

        @hookimpl
        def lead_created(lead):
            pass
        """,
        {"hook_specs": ["lead_created"], "settings": [{"name": "colour", "type": "colour"}]},
    ),
}


# Plugins that exercise event delivery: retries, idempotency and time budgets.
DELIVERY_PLUGINS = {
    # Fails its first `fail_attempts` attempts of every delivery, then succeeds.
    "flaky-plugin": (
        """
        from services_ai.plugins import api, hookimpl

        @hookimpl
        def lead_created(lead):
            delivery = api.current_delivery()
            if delivery.attempt <= api.get_settings()["fail_attempts"]:
                raise RuntimeError(f"flaky failure on attempt {delivery.attempt}")
            api.set_data(f"ok:{delivery.idempotency_key}", delivery.attempt)
        """,
        {
            "hook_specs": ["lead_created"],
            "permissions": ["read_leads"],
            "settings": [{"name": "fail_attempts", "type": "number", "default": 0, "min": 0}],
        },
    ),
    # Does its work once per idempotency key, however often a delivery is re-run.
    "idempotent-counter": (
        """
        from services_ai.plugins import api, hookimpl

        @hookimpl
        def lead_created(lead):
            key = api.current_delivery().idempotency_key
            api.update_data(f"calls:{key}", lambda calls: calls + 1, 0)
            if api.get_data(f"seen:{key}") is not None:
                api.set_data(f"rerun:{key}", True)
                return
            api.set_data(f"seen:{key}", lead["id"])
        """,
        {"hook_specs": ["lead_created"], "permissions": ["read_leads"], "settings": []},
    ),
    # "sleep" never returns but can be interrupted, "block-signals" ignores the interruption,
    # "slow" takes two seconds and succeeds.
    "hang-plugin": (
        """
        import signal
        import time

        from services_ai.plugins import api, hookimpl

        @hookimpl
        def lead_created(lead):
            mode = api.get_settings()["mode"]
            if mode == "slow":
                time.sleep(2)
                api.set_data(f"done:{lead['id']}", True)
                return
            if mode == "block-signals":
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGTERM})
            time.sleep(3600)
        """,
        {
            "hook_specs": ["lead_created"],
            "permissions": ["read_leads"],
            "settings": [
                {
                    "name": "mode",
                    "type": "select",
                    "default": "sleep",
                    "options": [
                        {"value": "sleep", "label": "sleep"},
                        {"value": "block-signals", "label": "block signals and sleep"},
                        {"value": "slow", "label": "take two seconds"},
                    ],
                }
            ],
        },
    ),
}


GREETER_V1 = """
from services_ai.plugins import api, hookimpl

@hookimpl
def lead_created(lead):
    api.set_data("greeted", lead["id"])
"""

GREETER_V2 = """
from services_ai.plugins import api, hookimpl

@hookimpl
def lead_created(lead):
    api.set_data("greeted", lead["id"])

@hookimpl
def plugin_installed():
    api.set_data("installed", "2.0.0")

@hookimpl
def plugin_uninstalled():
    api.set_data("uninstalled", "2.0.0")
"""


EVIL_WIDGET = """
from services_ai.plugins import hookimpl

@hookimpl
def dashboard_widget(context):
    return {
        "title": "Evil",
        "html": '<b class="kept">bold ok</b><script>window.__pwned = 1</script>'
        '<img src="x" onerror="window.__pwned = 2">'
        '<a id="js" href="javascript:window.__pwned = 3">click</a>'
        '<p onclick="window.__pwned = 4" id="clicky">click me</p>',
    }
"""

BROKEN_WIDGET = """
from services_ai.plugins import hookimpl

@hookimpl
def dashboard_widget(context):
    raise RuntimeError("widget exploded")
"""

SLOW_WIDGET = """
import time
from services_ai.plugins import hookimpl

@hookimpl
def dashboard_widget(context):
    time.sleep(14)
    return {"title": "Slow", "html": "<p>finally</p>"}
"""


def _manifest(hooks: list[str], permissions: list[str], settings: list | None = None) -> dict:
    return {"hook_specs": hooks, "permissions": permissions, "settings": settings or []}


# Published to the test devpi next to the example plugins:
# (distribution, version, main.py, manifest, dependencies, is a plugin)
INDEX_PLUGINS = [
    ("greeter", "1.0.0", GREETER_V1, _manifest(["lead_created"], ["read_leads"]),
     ("services-ai>=0.1",), True),
    # 2.0.0 asks for one more permission and implements the lifecycle hooks.
    ("greeter", "2.0.0", GREETER_V2,
     _manifest(["lead_created", "plugin_installed", "plugin_uninstalled"],
               ["read_leads", "read_bookings"]),
     ("services-ai>=0.1",), True),
    # Needs a platform that does not exist yet.
    ("future-plugin", "1.0.0", GREETER_V1, _manifest(["lead_created"], ["read_leads"]),
     ("services-ai>=9",), True),
    # Needs a Django the platform cannot have.
    ("old-django-plugin", "1.0.0", GREETER_V1, _manifest(["lead_created"], ["read_leads"]),
     ("services-ai>=0.1", "Django<4"), True),
    # Installs fine, fails to import.
    ("import-fails", "1.0.0", "import no_such_module_anywhere  # noqa\n",
     _manifest(["lead_created"], ["read_leads"]), ("services-ai>=0.1",), True),
    # Takes its time to import: a window to kill an install while the generation is checked.
    ("slow-import", "1.0.0", "import time\ntime.sleep(3)\n" + GREETER_V1,
     _manifest(["lead_created"], ["read_leads"]), ("services-ai>=0.1",), True),
    # A plugin with a dependency of its own, itself an ordinary library on the index.
    ("with-helper", "1.0.0",
     "from helper_lib.main import VALUE  # noqa: F401\n" + GREETER_V1,
     _manifest(["lead_created"], ["read_leads"]),
     ("services-ai>=0.1", "helper-lib>=1"), True),
    ("helper-lib", "1.2.0", "VALUE = 12\n", _manifest([], []), (), False),
    # Dashboard widgets for the browser tests: hostile HTML, one that raises, one too slow.
    ("evil-widget", "1.0.0", EVIL_WIDGET, _manifest(["dashboard_widget"], []),
     ("services-ai>=0.1",), True),
    ("broken-widget", "1.0.0", BROKEN_WIDGET, _manifest(["dashboard_widget"], []),
     ("services-ai>=0.1",), True),
    ("slow-widget", "1.0.0", SLOW_WIDGET, _manifest(["dashboard_widget"], []),
     ("services-ai>=0.1",), True),
]  # fmt: skip


#: Refused by the platform's publish check; they reach the index the way an author's own
#: upload (twine, devpi upload) would, to test that installing refuses them too.
UNCHECKED_UPLOADS = frozenset({"future_plugin", "import_fails"})


def run_project_tests(project: Path) -> subprocess.CompletedProcess:
    """Run a plugin project's own tests the way its author does (``python -m pytest``)."""
    env = {k: v for k, v in os.environ.items() if k != "SERVICES_AI_TEST_HOME"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
