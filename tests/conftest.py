"""Shared fixtures: one ``storage`` fixture parametrized over every backend.

PostgreSQL tests read ``KATHIKON_TEST_DATABASE_URL``. Locally they skip with a reason when it is unset; in CI
(``CI=true``) a missing or unreachable server fails them instead, so CI can never go green by skipping.
Each test run uses its own PostgreSQL schema, so runs never see each other's jobs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import pytest

from kathikon.storage import Storage, open_storage

BACKENDS = ["memory", "sqlite", "postgres"]
RUN_ID = uuid.uuid4().hex[:8]
_SCHEMAS_HANDED_OUT: set[str] = set()


def postgres_url(schema_suffix: str = "") -> str:
    """The test PostgreSQL URL with a schema private to this test run; skips (or fails in CI) without one."""
    url = os.environ.get("KATHIKON_TEST_DATABASE_URL")
    if not url:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("KATHIKON_TEST_DATABASE_URL is not set, and PostgreSQL tests must run in CI")
        pytest.skip("PostgreSQL tests need KATHIKON_TEST_DATABASE_URL (e.g. postgresql://127.0.0.1/test)")
    parts = urlsplit(url)
    schema = f"kathikon_test_{RUN_ID}{schema_suffix}"
    _SCHEMAS_HANDED_OUT.add(schema)
    query = parts.query + ("&" if parts.query else "") + urlencode({"schema": schema})
    return urlunsplit(parts._replace(query=query))


@pytest.fixture(scope="session", autouse=True)
def drop_postgres_test_schemas() -> Iterator[None]:
    """When the session ends, drop every PostgreSQL schema this run created (``kathikon_test_<RUN_ID>…``)."""
    yield
    url = os.environ.get("KATHIKON_TEST_DATABASE_URL")
    if url and _SCHEMAS_HANDED_OUT:
        import psycopg
        from psycopg import sql

        from kathikon.storage._postgres_config import parse_postgres_url

        with psycopg.connect(parse_postgres_url(url).conninfo, autocommit=True) as conn:
            rows = conn.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)",
                                [f"kathikon_test_{RUN_ID}"]).fetchall()
            for (name,) in rows:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def storage_url(backend: str, tmp_path: Path, name: str = "jobs.db") -> str:
    """A database URL for ``backend``: a real SQLite file under tmp_path, a private PostgreSQL schema."""
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / name}"
    return postgres_url()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> str:
    return storage_url(backend, tmp_path)


@pytest.fixture
def storage(database_url: str) -> Iterator[Storage]:
    """A set-up, empty storage of each backend; PostgreSQL is reset before and after the test."""
    store = open_storage(database_url)
    store.setup()
    store.reset()
    try:
        yield store
    finally:
        store.reset()
        store.close()
