"""Signals the registry sends for the layers above it to act on.

The registry sits below the plugin host's runtime, so it cannot call a plugin itself: it says
what is due, and the runtime (``plugin_registry.runtime``) does it.
"""

from django.dispatch import Signal

#: A plugin whose ``plugin_installed`` is still due was enabled (sent after the commit);
#: keyword argument ``name``.
installed_hook_due = Signal()

#: An admin lifted a plugin's quarantine by enabling it again (sent after the commit): the
#: deliveries held for it may run again; keyword argument ``name``.
quarantine_lifted = Signal()

#: A web process found its node behind the database's active plugin environment; the layer
#: that builds environments brings the node up to date (in the background).
node_behind = Signal()
