"""Running plugin code in tests as the host would: as a named plugin, inside a delivery.

    from services_ai.testing.plugins import as_plugin, delivering

    with as_plugin("my-plugin", "read_leads"), delivering("12:my-plugin", attempt=2):
        my_plugin.main.lead_created(lead)   # api.* sees my-plugin, its grants, this delivery

Not part of the plugin API: plugin code must never pretend to be another plugin.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from services_ai.plugins.context import DeliveryInfo, PluginCall, acting_as, running


def as_plugin(name: str, *granted: str) -> acting_as:
    """Run a block as plugin ``name`` holding the ``granted`` permissions."""
    return acting_as(PluginCall(plugin=name, granted=frozenset(granted)))


@contextmanager
def delivering(idempotency_key: str, *, attempt: int = 1, event_id: int = 0) -> Iterator[None]:
    """Run a block as one attempt of an event delivery (``api.current_delivery()``)."""
    outer = running.delivery
    running.delivery = DeliveryInfo(
        idempotency_key=idempotency_key, attempt=attempt, event_id=event_id
    )
    try:
        yield
    finally:
        running.delivery = outer
