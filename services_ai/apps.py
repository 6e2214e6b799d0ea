import os
from pathlib import Path

from django.apps import AppConfig
from django.db.backends.signals import connection_created


def private_sqlite_files(sender: object, connection: object, **kwargs: object) -> None:
    """Make the SQLite database and its WAL files readable by their owner only (0600).

    They hold plugin settings, secrets included; SQLite gives its journal files the database
    file's mode, so narrowing the database file narrows them too.
    """
    if getattr(connection, "vendor", "") != "sqlite":
        return
    name = str(getattr(connection, "settings_dict", {}).get("NAME") or "")
    for path in (Path(name), Path(f"{name}-wal"), Path(f"{name}-shm")):
        if path.is_file() and path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)


class ServicesAIConfig(AppConfig):
    name = "services_ai"
    verbose_name = "Services AI"

    def ready(self) -> None:
        # The app registry is ready only now: the backend's models can be imported.
        from services_ai.data_api import DatabaseBackend
        from services_ai.plugins.backend import install_backend

        install_backend(DatabaseBackend())
        connection_created.connect(private_sqlite_files, dispatch_uid="services_ai.sqlite_mode")
