"""What the data API needs from the platform: an interface the host implements.

The public API (:mod:`services_ai.plugins.api`) checks the calling plugin's grants and then
asks the backend for the data. The platform hands its implementation over at start-up with
:func:`install_backend`, as pytest hands plugins their ``config``: this package imports no
model and nothing of the platform.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from services_ai.plugins.types import BookingSnapshot, LeadSnapshot


class DataBackend(Protocol):
    """Where the data API reads and writes; ``plugin`` is always the calling plugin's name."""

    def list_leads(self, filters: dict[str, str], limit: int) -> list[LeadSnapshot]: ...

    def get_lead(self, lead_id: int) -> LeadSnapshot | None: ...

    def list_bookings(self, filters: dict[str, str], limit: int) -> list[BookingSnapshot]: ...

    def get_booking(self, booking_id: int) -> BookingSnapshot | None: ...

    def create_booking(
        self, plugin: str, *, lead_id: int, service: str, start: str, end: str, notes: str
    ) -> BookingSnapshot: ...

    def get_settings(self, plugin: str) -> dict[str, Any]: ...

    def get_data(self, plugin: str, key: str, default: Any) -> Any: ...

    def set_data(self, plugin: str, key: str, value: Any) -> None: ...

    def update_data(
        self, plugin: str, key: str, change: Callable[[Any], Any], default: Any
    ) -> Any: ...

    def delete_data(self, plugin: str, key: str | None) -> int: ...

    def render_template(self, plugin: str, template_name: str, context: dict[str, Any]) -> str: ...


class _NotInstalled:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(
            "no data backend is installed: the platform installs it when Django starts "
            "(django.setup()); outside the platform, call install_backend() first"
        )


# _NotInstalled satisfies the protocol through __getattr__: every method lookup raises.
_backend: DataBackend = _NotInstalled()


def install_backend(backend: DataBackend) -> None:
    """Make ``backend`` serve the data API in this process (the platform calls it once)."""
    global _backend
    _backend = backend


def backend() -> DataBackend:
    """Return the installed backend."""
    return _backend
