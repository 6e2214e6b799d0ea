"""The ``services-ai`` command: Django's management commands with the platform's settings."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    """Run a management command, e.g. ``services-ai migrate`` or ``services-ai plugins list``."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "services_ai.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(["services-ai", *(sys.argv[1:] if argv is None else argv)])
    except ImproperlyConfigured as exc:
        sys.exit(f"services-ai: configuration error: {exc}")


if __name__ == "__main__":
    main()
