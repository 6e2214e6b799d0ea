"""The pluggy markers of the ``services_ai`` project."""

import pluggy

PROJECT_NAME = "services_ai"
ENTRY_POINT_GROUP = "services_ai"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
