"""Throwaway databases for tests that run the platform in child processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from services_ai.testing.databases import Rows, throwaway_postgres

__all__ = ["Rows", "postgres_database"]

ADMIN_URL = os.environ.get("SERVICES_AI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create an empty PostgreSQL database; yield its URL; drop it afterwards."""
    psycopg = pytest.importorskip("psycopg")
    with ExitStack() as stack:
        try:  # only a failure to create the database is a reason to skip, never the test's own
            url = stack.enter_context(throwaway_postgres(ADMIN_URL))
        except psycopg.OperationalError as exc:
            if os.environ.get("CI"):
                raise  # CI has PostgreSQL: a missing server is a failure there
            pytest.skip(f"PostgreSQL is not reachable at {ADMIN_URL}: {exc}")
        yield url
