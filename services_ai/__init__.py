"""Services AI: a Django platform for service businesses, extended by plugins."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("services-ai")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
