"""Throwaway databases, and reading a platform's database from outside its processes."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def throwaway_postgres(admin_url: str, prefix: str = "sai_test") -> Iterator[str]:
    """Create an empty PostgreSQL database; yield its URL; drop it afterwards.

    ``admin_url`` is a database the role may connect to and create databases from. Raises
    ``psycopg.OperationalError`` when the server cannot be reached.
    """
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Rows:
    """Read-only queries against a platform's database (``?`` placeholders on both kinds)."""

    def __init__(self, database_url: str, home: Path):
        self.database_url = database_url
        self.sqlite_path = home / "services_ai.sqlite3"

    def all(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.database_url:
            import psycopg

            with psycopg.connect(self.database_url, autocommit=True) as conn:
                return conn.execute(sql.replace("?", "%s"), params).fetchall()
        db = sqlite3.connect(self.sqlite_path, timeout=30)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def row(self, sql: str, params: tuple = ()) -> tuple:
        rows = self.all(sql, params)
        assert rows, sql
        return rows[0]

    def one(self, sql: str, params: tuple = ()) -> Any:
        return self.row(sql, params)[0]
