"""ASGI entry point."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "services_ai.settings")
application = get_asgi_application()

from plugin_registry.runtime import start_web_heartbeat  # noqa: E402  (needs Django set up)

# This process serves the web: it reports its node's heartbeat and follows the environment.
start_web_heartbeat()
