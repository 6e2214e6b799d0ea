"""Throwaway databases for tests that run the platform in child processes."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ADMIN_URL = os.environ.get("SERVICES_AI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create an empty PostgreSQL database; yield its URL; drop it afterwards."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            raise  # CI has PostgreSQL: a missing server is a failure there
        pytest.skip(f"PostgreSQL is not reachable at {ADMIN_URL}: {exc}")
    name = f"sai_test_{uuid.uuid4().hex[:12]}"
    base = ADMIN_URL.rsplit("/", 1)[0]
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{base}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Rows:
    """Read-only queries against the child processes' database, from the test process."""

    def __init__(self, database_url: str, home: Path):
        self.database_url = database_url
        self.sqlite_path = home / "services_ai.sqlite3"

    def all(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.database_url:
            import psycopg

            with psycopg.connect(self.database_url, autocommit=True) as conn:
                return conn.execute(sql.replace("?", "%s"), params).fetchall()
        conn = sqlite3.connect(self.sqlite_path, timeout=30)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def one(self, sql: str, params: tuple = ()):
        return self.all(sql, params)[0][0]
