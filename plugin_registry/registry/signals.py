"""Signals the registry sends for the layers above it to act on.

The registry sits below the plugin host's runtime, so it cannot call a plugin itself: it says
what is due, and the runtime (``plugin_registry.runtime``) does it.
"""

from django.dispatch import Signal

#: A plugin whose ``plugin_installed`` is still due was enabled (sent after the commit);
#: keyword argument ``name``.
installed_hook_due = Signal()
