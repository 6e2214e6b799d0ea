"""A pytest plugin that gives a test run its own ``SERVICES_AI_HOME`` and no plugin path.

Load it with ``-p services_ai.testing.isolation`` (the platform's pytest configuration does).
It works at import time on purpose: pytest-django imports the Django settings before any
``conftest.py`` runs, and the settings read ``SERVICES_AI_HOME`` when imported. Without it, a
test run would see the developer's database and locally installed plugins.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_home = os.environ.get("SERVICES_AI_TEST_HOME") or tempfile.mkdtemp(prefix="services-ai-test-")
os.environ["SERVICES_AI_HOME"] = _home
os.environ.pop("SERVICES_AI_PLUGIN_PATH", None)
if not os.environ.get("SERVICES_AI_TEST_HOME"):
    atexit.register(shutil.rmtree, _home, ignore_errors=True)
