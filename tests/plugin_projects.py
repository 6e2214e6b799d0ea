"""Building real plugin wheels for tests: the example plugins and small broken ones."""

from __future__ import annotations

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
        {"hook_specs": ["lead_created"], "settings": [{"key": "colour", "type": "colour"}]},
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
            "settings": [{"key": "fail_attempts", "type": "number", "default": 0, "min": 0}],
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
                    "key": "mode",
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
