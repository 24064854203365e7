"""LISTEN/NOTIFY wake-ups: a daemon thread holding one dedicated connection that LISTENs on the channel.

Inserts (and stage, rescue and release acks) send ``pg_notify(channel, queue)`` in their own transaction, so
every subscribed process hears of new available jobs at commit. The channel is derived from the schema, so two
apps sharing a database never wake each other.

A subscription first proves that notifications really arrive (a probe round trip): behind a
transaction-mode pooler LISTEN is accepted but nothing is ever delivered, and the runtime must poll instead.
A connection lost later is re-opened with backoff; after a reconnect the listener reports ``None`` (any queue),
since notifications sent meanwhile were missed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

__all__ = ["PROBE_PREFIX", "Listener", "channel_name"]

log = logging.getLogger("kathikon.storage.postgres")

# No queue name starts with '!', so probe payloads are never taken for a queue.
PROBE_PREFIX = "!probe:"
PROBE_TIMEOUT = 2.0
WAIT_SLICE = 0.25  # how often the thread looks at its stop flag while idle
MIN_BACKOFF, MAX_BACKOFF = 0.2, 10.0
_IDENTIFIER_MAX = 63


def channel_name(schema: str) -> str:
    """The NOTIFY channel of a schema: readable when short enough, else a stable hash (identifiers are ≤ 63)."""
    name = f"kathikon_{schema}"
    if len(name) <= _IDENTIFIER_MAX:
        return name
    return "kathikon_" + hashlib.sha256(schema.encode()).hexdigest()[:32]


class Listener:
    """One LISTEN connection and the daemon thread that reads it; ``close`` stops both."""

    def __init__(self, conninfo: str, connect_kwargs: dict[str, Any], channel: str,
                 on_change: Callable[[str | None], None]) -> None:
        self._conninfo = conninfo
        self._connect_kwargs = connect_kwargs
        self._channel = channel
        self._on_change = on_change
        self._stopped = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._run, name=f"kathikon-listen-{channel}", daemon=True)

    def start(self, send_probe: Callable[[str], None]) -> bool:
        """Listen and prove delivery with ``send_probe(payload)``; False when notifications never arrive.

        A database that cannot be reached yet is not a reason to give up: the thread keeps reconnecting.
        """
        try:
            self._conn = self._connect()
        except psycopg.OperationalError as exc:
            log.warning("cannot LISTEN on %s yet (%s); retrying in the background", self._channel, exc)
        else:
            if not self._probe(self._conn, send_probe):
                self._discard()
                return False
        self._thread.start()
        return True

    def close(self) -> None:
        """Stop the thread and close its connection. Idempotent."""
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=WAIT_SLICE * 8)
        elif not self._thread.is_alive():
            self._discard()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._conninfo, autocommit=True, **self._connect_kwargs)
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except BaseException:
            conn.close()
            raise
        return conn

    def _probe(self, conn: psycopg.Connection[Any], send_probe: Callable[[str], None]) -> bool:
        token = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
        try:
            send_probe(token)
            deadline = time.monotonic() + PROBE_TIMEOUT
            while (left := deadline - time.monotonic()) > 0:
                for note in conn.notifies(timeout=left):
                    if note.payload == token:
                        return True
                    self._deliver(note.payload)
        except Exception as exc:  # any failure to prove delivery means: poll instead
            log.warning("LISTEN/NOTIFY probe on %s failed (%s); falling back to polling", self._channel, exc)
            return False
        log.warning("NOTIFY on %s never arrived (a transaction-mode pooler?); falling back to polling",
                    self._channel)
        return False

    def _run(self) -> None:
        backoff = MIN_BACKOFF
        while not self._stopped.is_set():
            try:
                self._listen_once()
                backoff = MIN_BACKOFF
            except psycopg.Error as exc:
                log.warning("LISTEN connection on %s lost (%s); reconnecting in %.1fs", self._channel, exc, backoff)
                self._discard()
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        self._discard()

    def _listen_once(self) -> None:
        """Read notifications for one slice of time, (re)connecting first when needed."""
        if self._conn is None:
            self._conn = self._connect()
            self._deliver(None)  # whatever was notified while disconnected is lost: look at every queue
        for note in self._conn.notifies(timeout=WAIT_SLICE):
            self._deliver(note.payload)

    def _deliver(self, payload: str | None) -> None:
        if payload is not None and payload.startswith("!"):
            return
        try:
            self._on_change(payload or None)
        except Exception:  # a broken callback must not kill the listener
            log.exception("on_change callback of the %s listener raised", self._channel)

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
