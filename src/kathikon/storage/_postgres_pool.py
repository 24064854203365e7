"""Pooled PostgreSQL connections that live through database restarts.

A ``psycopg_pool.ConnectionPool`` underneath, plus three things a job runtime needs from it:

- **Check on borrow.** Each borrowed connection is checked (an empty query). One found dead means the server
  dropped its connections, so every idle one is checked at once (``pool.check()``) instead of each later call
  discovering another dead one and waiting out the pool's retry backoff; and a direct connection tells at once
  whether the server is down rather than restarted.
- **Fail fast during an outage.** After a connection-level failure, each call first opens a direct connection:
  while the server is down that fails at once with libpq's reason, instead of every call waiting
  ``pool_timeout`` seconds for a pool that cannot connect.
- **Recover at once.** The first direct connection that succeeds after an outage swaps in a fresh pool (the old
  one may be deep in its reconnect backoff); the old pool is closed in the background.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

import psycopg
import psycopg_pool

from kathikon.storage._postgres_config import PostgresSettings

__all__ = ["Connections"]

Pool: TypeAlias = "psycopg_pool.ConnectionPool[psycopg.Connection[Any]]"
log = logging.getLogger("kathikon.storage.postgres")
_BORROW_TRIES = 3


class Connections:
    """Where PostgresStorage gets its connections. Thread-safe; ``close`` is idempotent."""

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._pool: Pool | None = None
        self._outage = False
        self._closed = False

    def direct(self) -> psycopg.Connection[Any]:
        """A new connection outside the pool (fails at once with libpq's reason when the server is down)."""
        return psycopg.connect(self.settings.conninfo, **self.settings.connect_kwargs)

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in a transaction, committed on success and rolled back on error."""
        with self._borrowed() as conn, conn:  # a pooled connection: commits or rolls back on exit, stays open
            yield conn

    @contextmanager
    def autocommit(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in autocommit mode, for one statement that is a transaction on its own: one
        round trip instead of three (BEGIN, the statement, COMMIT)."""
        with self._borrowed() as conn:
            conn.autocommit = True
            try:
                yield conn
            finally:
                if not conn.closed:
                    conn.autocommit = False

    @contextmanager
    def _borrowed(self) -> Iterator[psycopg.Connection[Any]]:
        pool, conn = self._borrow()
        try:
            yield conn
        except psycopg.OperationalError:
            if conn.closed:
                self._outage = True
            raise
        finally:
            pool.putconn(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def _borrow(self) -> tuple[Pool, psycopg.Connection[Any]]:
        for _ in range(_BORROW_TRIES):
            pool = self._healthy_pool()
            try:
                return pool, self._live_connection(pool)
            except psycopg_pool.PoolClosed:
                if self._closed:
                    raise
                continue  # the pool was swapped while we waited: borrow from the new one
            except psycopg_pool.PoolTimeout:
                self._check_server()  # every connection busy, or the server gone? (raises when gone)
                raise
            except psycopg.OperationalError:
                self._outage = True
                raise
        raise psycopg_pool.PoolTimeout("the connection pool kept being replaced")

    def _live_connection(self, pool: Pool) -> psycopg.Connection[Any]:
        for _ in range(_BORROW_TRIES):
            conn = pool.getconn()
            if _alive(conn):
                return conn
            pool.putconn(conn)  # broken: the pool discards and replaces it
            pool.check()  # a restart kills every idle connection: drop them all now
            self.direct().close()  # is it down rather than restarted? then fail now, not after pool_timeout
        return pool.getconn()

    def _check_server(self) -> None:
        try:
            self.direct().close()
        except psycopg.OperationalError:
            self._outage = True
            raise

    def _healthy_pool(self) -> Pool:
        if self._outage and not self._closed:
            self.direct().close()  # raises while the server is still down
            self._replace_pool()
        with self._lock:
            if self._closed:
                raise psycopg_pool.PoolClosed("the PostgreSQL storage is closed")
            if self._pool is None:
                self._pool = self._new_pool()
            return self._pool

    def _replace_pool(self) -> None:
        with self._lock:
            if not self._outage:
                return  # another thread already did
            self._outage = False
            old, self._pool = self._pool, None
        if old is not None:
            log.info("PostgreSQL is reachable again; replacing the connection pool")
            threading.Thread(target=old.close, name="kathikon-pool-close", daemon=True).start()

    def _new_pool(self) -> Pool:
        settings = self.settings
        pool: Pool = psycopg_pool.ConnectionPool(
            settings.conninfo, min_size=settings.pool_min, max_size=settings.pool_max,
            timeout=settings.pool_timeout, kwargs=settings.connect_kwargs, open=False,
            name=f"kathikon-{settings.schema}",
        )
        pool.open(wait=False)
        return pool


def _alive(conn: psycopg.Connection[Any]) -> bool:
    try:
        psycopg_pool.ConnectionPool.check_connection(conn)
    except psycopg.Error:
        return False
    return True
