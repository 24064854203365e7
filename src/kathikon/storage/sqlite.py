"""SQLite storage: the embedded default. One file (or RAM with ``:memory:``), no server.

One connection per instance, guarded by a lock and shared by every thread: SQLite has one writer at a time
anyway, and ``:memory:`` needs the single connection to be one database. Writes run in ``BEGIN IMMEDIATE``
transactions, so concurrent processes sharing the file queue on the busy timeout instead of failing
mid-transaction. The file is in WAL mode: readers never block the writer, and with ``synchronous=normal``
a commit survives a kill -9 of the process (see docs/storage.md for power loss).

Safety with a shared file: Kathikon touches only ``kathikon_*`` tables. A file that is not a SQLite database,
or whose Kathikon schema is newer than this version knows, is refused before anything is written to it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import cache
from itertools import chain
from typing import Any
from urllib.parse import urlsplit

from kathikon._clock import to_utc, utcnow
from kathikon.config import check_database_url
from kathikon.job import Job, JobState
from kathikon.storage import _sql
from kathikon.storage._sqlite_file import (
    check_header,
    check_schema_version,
    check_seconds,
    check_sqlite_version,
    check_synchronous,
    mapped_errors,
    migrate,
    url_options,
    when_free,
)
from kathikon.storage._sqlite_rows import (
    decode_job,
    decode_jobs,
    decode_utc,
    encode_ack,
    encode_completions,
    encode_job,
    encode_json,
    encode_new_job,
    encode_time,
)
from kathikon.storage._sqlite_watch import ChangeWatcher
from kathikon.storage._stored import never_ran, stored_form
from kathikon.storage.base import Ack, NodeRecord, Storage, Subscription, check_cancellable, check_limit

__all__ = ["SQLiteStorage"]

_MEMORY = ":memory:"
_Q = _sql.queries("sqlite")


class SQLiteStorage(Storage):
    """Jobs in a SQLite file (or in RAM with ``path=":memory:"``)."""

    def __init__(self, path: str | os.PathLike[str] = "kathikon.db", *, synchronous: str = "normal",
                 busy_timeout: float = 5.0, change_poll_interval: float = 0.005) -> None:
        check_sqlite_version()
        path = os.fspath(path)
        self._memory = path == _MEMORY
        self._path = path if self._memory else os.path.abspath(path)
        self._synchronous = check_synchronous(synchronous)
        self._busy_s = check_seconds(busy_timeout, "busy_timeout")
        self._poll_interval = check_seconds(change_poll_interval, "change_poll_interval", positive=True)
        self.url = "sqlite:///" + self._path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._watchers: set[ChangeWatcher] = set()

    @property
    def busy_timeout(self) -> float:
        """Seconds a call waits for another process's write lock before DatabaseUnavailableError."""
        return self._busy_s

    @classmethod
    def from_url(cls, url: str) -> SQLiteStorage:
        """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or ``sqlite:///:memory:``, with optional
        ``?synchronous=off|normal|full|extra&busy_timeout=<seconds>``."""
        parts = urlsplit(check_database_url(url))
        options = url_options(parts.query)
        storage = cls(parts.path[1:], **options)
        storage.url = url
        return storage

    # -- lifecycle

    def setup(self) -> None:
        with self._write() as conn:
            migrate(conn)

    def close(self) -> None:
        for watcher in list(self._watchers):
            watcher.close()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def reset(self) -> None:
        with self._write() as conn:
            for (table,) in conn.execute(_Q["kathikon_tables"]).fetchall():
                conn.execute(f'DROP TABLE "{table}"')
            migrate(conn)

    # -- jobs

    def insert(self, jobs: Sequence[Job], *, conn: Any = None) -> list[Job]:
        now = utcnow()
        stored = [stored_form(job, now) for job in jobs]  # nearly always the jobs themselves: nothing decoded
        if all(map(never_ran, stored)):  # every job an application inserts: fewer columns to bind
            query, rows = _Q["insert_new_job"], [encode_new_job(job) for job in stored]
        else:
            query, rows = _Q["insert_job"], [encode_job(job) for job in stored]
        if conn is not None:
            with mapped_errors(self._path):
                _insert_joined(_check_app_connection(conn), query, rows)
        else:
            with self._write() as own:
                _insert_rows(own, query, rows)
        return stored

    def fetch(self, job_id: str) -> Job | None:
        rows = self._select(_Q["fetch_job"], (job_id,))
        return decode_job(rows[0]) if rows else None

    def states(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        rows = self._select(_Q["job_states"], (json.dumps(list(job_ids)),))
        return {row["id"]: JobState(row["state"]) for row in rows}

    def all(self, *, queue: str | None = None, state: JobState | None = None,
            limit: int | None = None) -> list[Job]:
        params = {"queue": queue, "state": None if state is None else JobState(state).value,
                  "limit": -1 if limit is None else check_limit(limit)}
        return decode_jobs(self._select(_Q["all_jobs"], params))

    def counts(self) -> dict[tuple[str, JobState], int]:
        rows = self._select(_Q["count_jobs"])
        return {(row["queue"], JobState(row["state"])): row["n"] for row in rows}

    def delete(self, job_id: str) -> bool:
        with self._write() as conn:
            return conn.execute(_Q["delete_job"], (job_id,)).rowcount > 0

    def clear_jobs(self) -> None:
        with self._write() as conn:
            conn.execute(_Q["clear_jobs"])

    def cancel(self, job_id: str, now: datetime, *, running: bool = False) -> Job:
        at = encode_time(now, "now")
        with self._write() as conn:
            row = conn.execute(_Q["job_state"], (job_id,)).fetchone()
            check_cancellable(job_id, None if row is None else row["state"], running=running)
            return decode_job(conn.execute(_Q["cancel_job"], {"id": job_id, "now": at}).fetchone())

    # -- execution path

    def claim(self, queue: str, limit: int, now: datetime, owner: str) -> list[Job]:
        params = {"queue": queue, "limit": check_limit(limit), "now": encode_time(now, "now"), "owner": owner}
        with self._write() as conn:
            rows = conn.execute(_Q["claim_jobs"], params).fetchall()
        jobs = decode_jobs(rows)
        jobs.sort(key=lambda job: (-job.priority, job.available_at, job.id))  # RETURNING keeps no order
        return jobs

    def ack(self, acks: Sequence[Ack]) -> list[bool]:
        batched = _plain_completions(acks)
        singles = [(n, encode_ack(ack)) for n, ack in enumerate(acks) if n not in batched]
        applied = [False] * len(acks)
        with self._write() as conn:
            if batched:
                done = [acks[n] for n in batched]
                params = {"owner": done[0].owner, "done": encode_completions(done)}
                completed = {row[0] for row in conn.execute(_Q["complete_jobs"], params).fetchall()}
                for n in batched:
                    applied[n] = acks[n].job_id in completed
            for n, p in singles:
                applied[n] = conn.execute(_Q["ack_job"], p).rowcount == 1
        return applied

    def stage(self, now: datetime, limit: int) -> dict[str, int]:
        params = {"now": encode_time(now, "now"), "limit": check_limit(limit)}
        with self._write() as conn:
            rows = conn.execute(_Q["stage_jobs"], params).fetchall()
        moved: dict[str, int] = {}
        for row in rows:
            moved[row["queue"]] = moved.get(row["queue"], 0) + 1
        return moved

    def prune(self, before: datetime, limit: int) -> list[Job]:
        params = {"before": encode_time(before, "before"), "limit": check_limit(limit)}
        with self._write() as conn:
            rows = conn.execute(_Q["prune_jobs"], params).fetchall()
        return sorted(decode_jobs(rows), key=lambda j: j.id)

    # -- nodes, leases, lifeline

    def register_node(self, node: NodeRecord) -> None:
        params = {"name": node.name, "started_at": encode_time(node.started_at, "started_at"),
                  "heartbeat_at": encode_time(node.heartbeat_at, "heartbeat_at"),
                  "queues": encode_json(node.queues, "queues"), "meta": encode_json(node.meta, "meta")}
        with self._write() as conn:
            conn.execute(_Q["register_node"], params)

    def heartbeat(self, name: str, now: datetime) -> bool:
        with self._write() as conn:
            return conn.execute(_Q["heartbeat_node"], (encode_time(now, "now"), name)).rowcount > 0

    def remove_node(self, name: str) -> None:
        with self._write() as conn:
            conn.execute(_Q["remove_node"], (name,))

    def nodes(self) -> list[NodeRecord]:
        rows = self._select(_Q["list_nodes"])
        return [NodeRecord(row["name"], decode_utc(row["started_at"]), decode_utc(row["heartbeat_at"]),
                           json.loads(row["queues"]), json.loads(row["meta"])) for row in rows]

    def prune_nodes(self, stale_before: datetime) -> list[str]:
        with self._write() as conn:
            rows = conn.execute(_Q["prune_nodes"], {"stale_before": encode_time(stale_before, "stale_before")})
            return sorted(row["name"] for row in rows.fetchall())

    def acquire_lease(self, name: str, holder: str, now: datetime, ttl: float) -> bool:
        params = {"name": name, "holder": holder, "now": encode_time(now, "now"),
                  "expires_at": encode_time(now + timedelta(seconds=ttl), "now + ttl")}
        with self._write() as conn:
            return conn.execute(_Q["acquire_lease"], params).fetchone() is not None

    def release_lease(self, name: str, holder: str) -> None:
        with self._write() as conn:
            conn.execute(_Q["release_lease"], (name, holder))

    def rescue(self, now: datetime, stale_before: datetime) -> list[Job]:
        params = {"now": encode_time(now, "now"), "at": to_utc(now, "now").isoformat(),
                  "stale_before": encode_time(stale_before, "stale_before")}
        with self._write() as conn:
            rows = conn.execute(_Q["rescue_jobs"], params).fetchall()
        return sorted(decode_jobs(rows), key=lambda j: j.id)

    # -- wake-ups across processes

    def subscribe(self, on_change: Callable[[str | None], None]) -> Subscription | None:
        """Watch ``PRAGMA data_version`` on the writer connection: it changes when another connection (another
        process, or an application connection given to ``insert``) commits, never for this instance's own
        commits. None for ``:memory:``, which no other process can see."""
        if self._memory:
            return None
        self._connection_checked()
        watcher = ChangeWatcher(self._foreign_data_version, self._poll_interval, on_change, self._watchers.discard)
        self._watchers.add(watcher)
        return watcher

    def _foreign_data_version(self, wait: bool) -> int | None:
        """The writer connection's data_version; None when it is busy and ``wait`` is False."""
        if not self._lock.acquire(blocking=wait):
            return None
        try:
            conn = self._conn
            return None if conn is None else int(conn.execute("PRAGMA data_version").fetchone()[0])
        finally:
            self._lock.release()

    # -- connection and transactions

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed when the block ends, rolled back if it raises.

        While another process writes, BEGIN is retried after short sleeps (``when_free``) for up to
        ``busy_timeout`` seconds, then DatabaseUnavailableError.
        """
        with self._lock, mapped_errors(self._path):
            conn = self._connection()
            when_free(lambda: conn.execute("BEGIN IMMEDIATE"), self._busy_s)
            try:
                yield conn
                when_free(lambda: conn.execute("COMMIT"), self._busy_s)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _select(self, query: str, params: Any = ()) -> list[sqlite3.Row]:
        """The rows of one read (its own snapshot); retried like a BEGIN while the database is busy."""
        with self._read() as conn:
            rows: list[sqlite3.Row] = when_free(lambda: conn.execute(query, params).fetchall(), self._busy_s)
            return rows

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock, mapped_errors(self._path):
            yield self._connection()

    def _connection_checked(self) -> None:
        with self._lock, mapped_errors(self._path):
            self._connection()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        """Connect, refusing foreign files and newer schemas before anything is written to the file."""
        if not self._memory:
            check_header(self._path)
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_s * 1000)}")
            check_schema_version(conn)
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            if not self._memory:
                # Writes the file header: only after the checks. In WAL mode only BEGIN IMMEDIATE and a read
                # can meet a busy database, and when_free retries those with shorter sleeps than SQLite's own
                # busy handler (1, 2, 5, 10 … 100 ms), which is turned off. Other journal modes keep it.
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() == "wal":
                    conn.execute("PRAGMA busy_timeout = 0")
        except BaseException:
            conn.close()
            raise
        return conn


# -- transactional insert on the application's connection


def _plain_completions(acks: Sequence[Ack]) -> set[int]:
    """Positions of the acks one ``complete_jobs`` statement can apply (most of a batch): completions without
    an error, of the first completion's owner. None of them when a job appears twice: such a batch applies in
    order, one ack at a time, so the first wins as the ack contract says."""
    if len(acks) < 2 or len({ack.job_id for ack in acks}) < len(acks):
        return set()
    owner = next((ack.owner for ack in acks if ack.state == JobState.COMPLETED), None)
    batched = {n for n, ack in enumerate(acks)
               if ack.state == JobState.COMPLETED and ack.owner == owner and ack.error is None}
    return batched if len(batched) >= 2 else set()


def _check_app_connection(conn: object) -> sqlite3.Connection:
    if not isinstance(conn, sqlite3.Connection):
        raise TypeError(f"conn must be a sqlite3.Connection to the same file, got {type(conn).__name__} {conn!r}")
    return conn


def _insert_joined(conn: sqlite3.Connection, query: str, rows: list[tuple[Any, ...]]) -> None:
    """Write inside the caller's transaction without committing it; a failed batch leaves nothing behind.

    A connection in Python's default (legacy) transaction mode that has not begun yet is begun here, as
    the sqlite3 module would before an INSERT, so the caller's commit or rollback decides. A savepoint
    keeps the batch atomic inside that transaction.
    """
    legacy = getattr(conn, "autocommit", -1) == -1 and conn.isolation_level is not None
    if legacy and not conn.in_transaction:
        conn.execute("BEGIN")
    conn.execute("SAVEPOINT kathikon_insert")
    try:
        _insert_rows(conn, query, rows)
    except BaseException:
        conn.execute("ROLLBACK TO kathikon_insert")
        raise
    finally:
        conn.execute("RELEASE kathikon_insert")


def _insert_rows(conn: sqlite3.Connection, query: str, rows: list[tuple[Any, ...]]) -> None:
    try:
        _insert_in_chunks(conn, query, rows)
    except sqlite3.IntegrityError as exc:
        raise ValueError(_duplicate_message(conn, [row[0] for row in rows], exc)) from None


# Rows per INSERT statement at most. One statement with many rows of VALUES binds as many parameters as
# executemany does, but SQLite prepares, steps and resets it once for all of them instead of once a row: 1.2 µs
# a job less. Fewer when the connection allows fewer parameters per statement (32,766 by default since 3.32).
_ROWS_PER_STATEMENT = 100


def _insert_in_chunks(conn: sqlite3.Connection, query: str, rows: list[tuple[Any, ...]]) -> None:
    """Run the one-row INSERT ``query`` for every row: many rows per statement, the rest with executemany."""
    per_statement = 1
    if rows:
        parameters = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        per_statement = min(_ROWS_PER_STATEMENT, parameters // len(rows[0]))
    whole = len(rows) - len(rows) % per_statement if per_statement > 1 else 0
    if whole:
        many = _many_rows(query, per_statement)
        for start in range(0, whole, per_statement):
            conn.execute(many, list(chain.from_iterable(rows[start:start + per_statement])))
    if whole < len(rows):
        conn.executemany(query, rows[whole:])


@cache
def _many_rows(query: str, count: int) -> str:
    """``query``, an ``INSERT … VALUES (?, …)`` of one row, with ``count`` rows of values."""
    head, _, row = query.rpartition("VALUES")
    return head + "VALUES " + ", ".join([row.strip()] * count)


def _duplicate_message(conn: sqlite3.Connection, ids: list[str], exc: sqlite3.IntegrityError) -> str:
    seen: set[str] = set()
    for job_id in ids:
        if job_id in seen:
            return f"job id {job_id!r} appears twice in one insert; nothing was stored"
        seen.add(job_id)
    stored = conn.execute(_Q["stored_ids"], (json.dumps(ids),)).fetchone()
    if stored is not None:
        return f"a job with id {stored[0]!r} is already stored; nothing was stored"
    return f"the jobs could not be stored ({exc}); nothing was stored"


