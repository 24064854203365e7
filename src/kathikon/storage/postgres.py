"""PostgreSQL storage: the same Kathikon across many processes and machines (``pip install 'kathikon[postgres]'``).

    postgresql://user:secret@host:5432/app?schema=jobs&pool_max=20

psycopg 3 with a ``psycopg_pool.ConnectionPool`` that lives through database restarts (``_postgres_pool``).
Every Kathikon table lives in the URL's ``schema``; SQL lives in ``sql/postgres/`` (``queries.sql`` and
versioned ``migrations/``), applied by ``setup`` in one transaction under an advisory lock, so nodes starting
together never race.

- ``claim`` is one statement: a CTE picks jobs in claim order ``FOR UPDATE SKIP LOCKED`` and an UPDATE takes
  them, so concurrent claimers on any number of machines never get the same job and never wait for each other.
- ``ack`` applies a whole batch in one fenced UPDATE; ``insert``, ``stage``, ``rescue`` and release acks send
  ``pg_notify`` in the same transaction, which ``subscribe`` turns into wake-ups (see ``_postgres_notifier``).
- ``insert(jobs, conn=…)`` and ``insert_async(jobs, conn=…)`` write on the caller's psycopg connection inside
  its transaction, so the jobs commit or roll back with the application's own rows.
- Driver errors are raised as Kathikon errors (see ``_postgres_rows.mapped_errors``).
"""

from __future__ import annotations

try:
    import psycopg
    import psycopg_pool  # noqa: F401  (checked here so a missing extra gets one clear message)
except ImportError as exc:  # the optional extra is not installed
    raise ImportError("PostgreSQL support needs the postgres extra: pip install 'kathikon[postgres]'") from exc

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeAlias

from psycopg.rows import DictRow, dict_row

from kathikon.exceptions import StorageError
from kathikon.job import Job, JobState
from kathikon.storage._postgres_config import PostgresSettings, parse_postgres_url
from kathikon.storage._postgres_notifier import Listener, channel_name
from kathikon.storage._postgres_pool import Connections
from kathikon.storage._postgres_rows import (
    ack_records,
    claim_order,
    copy_rows,
    job_from_row,
    jobs_json,
    mapped_errors,
    node_from_row,
    node_params,
    stored_jobs,
)
from kathikon.storage._postgres_schema import SchemaSql
from kathikon.storage.base import Ack, NodeRecord, Storage, Subscription, check_cancellable, check_limit

__all__ = ["PostgresStorage"]

Cursor: TypeAlias = "psycopg.Cursor[DictRow]"

# Inserts of up to this many jobs are one statement (one round trip, 0.2-0.3 ms less than BEGIN, COPY, NOTIFY,
# COMMIT); larger ones use COPY, which costs the server far less per row (5,000 jobs: about twice as fast).
ONE_STATEMENT_MAX = 4


class PostgresStorage(Storage):
    """Jobs in PostgreSQL tables of one schema, shared by every process that opens the same URL."""

    def __init__(self, settings: PostgresSettings) -> None:
        self.url = settings.masked_url
        self.settings = settings
        self.schema = settings.schema
        self.channel = channel_name(settings.schema)
        self._schema = SchemaSql(settings.schema)
        self._q = self._schema.queries
        self._connections = Connections(settings)
        self._lock = threading.Lock()
        self._closed = False
        self._listeners: list[Listener] = []

    @classmethod
    def from_url(cls, url: str) -> PostgresStorage:
        """Open (without connecting yet) the storage a ``postgresql://`` or ``postgres://`` URL names."""
        return cls(parse_postgres_url(url))

    def __repr__(self) -> str:
        return f"<PostgresStorage {self.url}>"

    # -- lifecycle -------------------------------------------------------------------------------------

    def setup(self) -> None:
        # A direct connection (not the pool) so an unreachable server fails at once with libpq's reason.
        with (mapped_errors("setup"), self._connections.direct() as conn,
              conn.cursor(row_factory=dict_row) as cur):
            self._schema.migrate(cur)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.close()
        with mapped_errors("close"):
            self._connections.close()

    def reset(self) -> None:
        with self._cursor("reset") as cur:
            self._schema.recreate(cur)

    # -- jobs ------------------------------------------------------------------------------------------

    def insert(self, jobs: Sequence[Job], *, conn: Any = None) -> list[Job]:
        plan = self._insert_plan(jobs)
        if not plan.stored:
            return plan.stored
        if conn is None:
            with self._cursor("insert", autocommit=plan.one_statement) as cur, _duplicate_ids():
                plan.run(cur)
            return plan.stored
        if not isinstance(conn, psycopg.Connection):
            raise TypeError(f"conn must be a psycopg.Connection (use insert_async for an AsyncConnection), "
                            f"got {conn!r}")
        # In autocommit mode the insert is made atomic on its own; otherwise it joins the open transaction.
        with (mapped_errors("insert"), _duplicate_ids(),
              conn.transaction() if conn.autocommit else nullcontext(), conn.cursor() as cur):
            plan.run(cur)
        return plan.stored

    async def insert_async(self, jobs: Sequence[Job], *, conn: Any) -> list[Job]:
        if not isinstance(conn, psycopg.AsyncConnection):
            raise TypeError(f"conn must be a psycopg.AsyncConnection, got {conn!r}")
        plan = self._insert_plan(jobs)
        if not plan.stored:
            return plan.stored
        with mapped_errors("insert"), _duplicate_ids():
            async with conn.transaction() if conn.autocommit else nullcontext(), conn.cursor() as cur:
                await plan.run_async(cur)
        return plan.stored

    def _insert_plan(self, jobs: Sequence[Job]) -> _InsertPlan:
        stored = stored_jobs(jobs)
        if len(stored) <= ONE_STATEMENT_MAX:
            params = {"jobs": jobs_json(stored), "channel": self.channel, "notify": self.settings.notify}
            return _InsertPlan(stored, self._q["insert_jobs"], params)
        woken = sorted({job.queue for job in stored if job.state == JobState.AVAILABLE})
        wake = [(self.channel, queue) for queue in woken] if self.settings.notify else []
        return _InsertPlan(stored, self._q["copy_jobs"], rows=copy_rows(stored), notify=self._q["notify"], wake=wake)

    def fetch(self, job_id: str) -> Job | None:
        with self._cursor("fetch") as cur:
            cur.execute(self._q["fetch"], {"id": job_id})
            row = cur.fetchone()
        return None if row is None else job_from_row(row)

    def states(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        with self._cursor("job_states") as cur:
            cur.execute(self._q["job_states"], {"ids": list(job_ids)})
            return {row["id"]: JobState(row["state"]) for row in cur.fetchall()}

    def all(self, *, queue: str | None = None, state: JobState | None = None,
            limit: int | None = None) -> list[Job]:
        params = {"queue": queue, "state": None if state is None else JobState(state).value,
                  "limit": None if limit is None else check_limit(limit)}
        with self._cursor("all") as cur:
            cur.execute(self._q["all"], params)
            return [job_from_row(row) for row in cur.fetchall()]

    def counts(self) -> dict[tuple[str, JobState], int]:
        with self._cursor("counts") as cur:
            cur.execute(self._q["counts"])
            return {(row["queue"], JobState(row["state"])): row["n"] for row in cur.fetchall()}

    def delete(self, job_id: str) -> bool:
        with self._cursor("delete") as cur:
            cur.execute(self._q["delete"], {"id": job_id})
            return cur.fetchone() is not None

    def clear_jobs(self) -> None:
        with self._cursor("clear_jobs") as cur:
            cur.execute(self._q["clear_jobs"])

    def cancel(self, job_id: str, now: datetime, *, running: bool = False) -> Job:
        with self._cursor("cancel") as cur:
            cur.execute(self._q["lock_job"], {"id": job_id})
            row = cur.fetchone()
            check_cancellable(job_id, None if row is None else row["state"], running=running)
            cur.execute(self._q["cancel"], {"id": job_id, "now": now})
            return job_from_row(_one(cur))

    # -- the execution path ----------------------------------------------------------------------------

    def claim(self, queue: str, limit: int, now: datetime, owner: str) -> list[Job]:
        if check_limit(limit) == 0:
            return []
        with self._cursor("claim", autocommit=True) as cur:
            cur.execute(self._q["claim"], {"queue": queue, "limit": limit, "now": now, "owner": owner})
            jobs = [job_from_row(row) for row in cur.fetchall()]
        return sorted(jobs, key=claim_order)  # UPDATE … RETURNING keeps no order

    def ack(self, acks: Sequence[Ack]) -> list[bool]:
        if not acks:
            return []
        params = {"acks": ack_records(acks), "channel": self.channel, "notify": self.settings.notify}
        with self._cursor("ack", autocommit=True) as cur:
            cur.execute(self._q["ack"], params)  # notifies queues that got a job back, in the same statement
            rows = cur.fetchall()
        applied = {row["n"] for row in rows}
        return [n in applied for n in range(len(acks))]

    def stage(self, now: datetime, limit: int) -> dict[str, int]:
        if check_limit(limit) == 0:
            return {}
        with self._cursor("stage") as cur:
            cur.execute(self._q["stage"], {"now": now, "limit": limit})
            moved = {row["queue"]: int(row["n"]) for row in cur.fetchall()}
            self._notify(cur, set(moved))
        return moved

    def prune(self, before: datetime, limit: int) -> list[Job]:
        if check_limit(limit) == 0:
            return []
        with self._cursor("prune") as cur:
            cur.execute(self._q["prune"], {"before": before, "limit": limit})
            return sorted((job_from_row(row) for row in cur.fetchall()), key=lambda job: job.id)

    # -- nodes, leases and the lifeline ----------------------------------------------------------------

    def register_node(self, node: NodeRecord) -> None:
        with self._cursor("register_node") as cur:
            cur.execute(self._q["register_node"], node_params(node))

    def heartbeat(self, name: str, now: datetime) -> bool:
        with self._cursor("heartbeat") as cur:
            cur.execute(self._q["heartbeat"], {"name": name, "now": now})
            return cur.fetchone() is not None

    def remove_node(self, name: str) -> None:
        with self._cursor("remove_node") as cur:
            cur.execute(self._q["remove_node"], {"name": name})

    def nodes(self) -> list[NodeRecord]:
        with self._cursor("nodes") as cur:
            cur.execute(self._q["nodes"])
            return [node_from_row(row) for row in cur.fetchall()]

    def prune_nodes(self, stale_before: datetime) -> list[str]:
        with self._cursor("prune_nodes") as cur:
            cur.execute(self._q["prune_nodes"], {"stale_before": stale_before})
            return sorted(row["name"] for row in cur.fetchall())

    def acquire_lease(self, name: str, holder: str, now: datetime, ttl: float) -> bool:
        params = {"name": name, "holder": holder, "now": now, "until": now + timedelta(seconds=ttl)}
        with self._cursor("acquire_lease") as cur:
            cur.execute(self._q["acquire_lease"], params)
            return cur.fetchone() is not None

    def release_lease(self, name: str, holder: str) -> None:
        with self._cursor("release_lease") as cur:
            cur.execute(self._q["release_lease"], {"name": name, "holder": holder})

    def rescue(self, now: datetime, stale_before: datetime) -> list[Job]:
        with self._cursor("rescue") as cur:
            cur.execute(self._q["rescue"], {"now": now, "stale_before": stale_before, "at": now.isoformat()})
            rescued = sorted((job_from_row(row) for row in cur.fetchall()), key=lambda job: job.id)
            self._notify(cur, {job.queue for job in rescued if job.state == JobState.AVAILABLE})
        return rescued

    # -- wake-ups across processes ---------------------------------------------------------------------

    def subscribe(self, on_change: Callable[[str | None], None]) -> Subscription | None:
        """LISTEN on this schema's channel in a daemon thread; None when notify=false or delivery fails."""
        if not self.settings.notify:
            return None
        listener = Listener(self.settings.conninfo, self.settings.connect_kwargs, self.channel, on_change)
        if not listener.start(self._send_probe):
            return None
        with self._lock:
            closed = self._closed
            if not closed:
                self._listeners.append(listener)
        if closed:  # closed while the listener started: it must not outlive the storage
            listener.close()
            raise StorageError("the PostgreSQL storage is closed (during subscribe)")
        return listener

    def _send_probe(self, payload: str) -> None:
        with self._cursor("notify") as cur:
            cur.execute(self._q["notify"], (self.channel, payload))

    def _notify(self, cur: Cursor, queues: set[str]) -> None:
        if self.settings.notify and queues:
            cur.executemany(self._q["notify"], [(self.channel, queue) for queue in sorted(queues)])

    # -- connections -----------------------------------------------------------------------------------

    @contextmanager
    def _cursor(self, action: str, *, autocommit: bool = False) -> Iterator[Cursor]:
        """A cursor in one transaction on a pooled connection: committed on success, rolled back on error.

        ``autocommit`` is for a single statement, atomic on its own, which then costs one round trip.
        """
        connection = self._connections.autocommit() if autocommit else self._connections.transaction()
        with mapped_errors(action), connection as conn, conn.cursor(row_factory=dict_row) as cur:
            yield cur


@dataclass(frozen=True, slots=True)
class _InsertPlan:
    """What one insert writes, built once and run on either kind of connection (sync or async): a few jobs
    in one statement (``params``), more with COPY (``rows``) followed by their ``wake`` notifications."""

    stored: list[Job]
    sql: str
    params: dict[str, Any] | None = None
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    notify: str = ""
    wake: list[tuple[str, str]] = field(default_factory=list)

    @property
    def one_statement(self) -> bool:
        return self.params is not None

    def run(self, cur: psycopg.Cursor[Any]) -> None:
        if self.params is not None:
            cur.execute(self.sql, self.params)
            return
        with cur.copy(self.sql) as copy:
            for row in self.rows:
                copy.write_row(row)
        if self.wake:
            cur.executemany(self.notify, self.wake)

    async def run_async(self, cur: psycopg.AsyncCursor[Any]) -> None:
        if self.params is not None:
            await cur.execute(self.sql, self.params)
            return
        async with cur.copy(self.sql) as copy:
            for row in self.rows:
                await copy.write_row(row)
        if self.wake:
            await cur.executemany(self.notify, self.wake)


@contextmanager
def _duplicate_ids() -> Iterator[None]:
    """A job id that is already stored is bad input (ValueError naming the id), not a database failure."""
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        found = re.search(r"\(id\)=\((.*)\)", exc.diag.message_detail or "")
        job_id = found[1] if found else "?"
        raise ValueError(f"a job with id {job_id!r} is already stored") from exc


def _one(cur: Cursor) -> DictRow:
    row = cur.fetchone()
    if row is None:
        raise psycopg.DataError("the statement returned no row")
    return row
