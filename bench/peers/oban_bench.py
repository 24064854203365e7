"""Oban for Python (``oban`` on PyPI, psycopg 3 driver) under the shared protocol.

Oban-py needs Python ≥ 3.12, so this module runs in its own virtualenv (bench/.venv-oban, built by
bench/peer_venv.py) and imports only the standard library, ``bench.common`` (stdlib only) and ``oban``.
The event loop is uvloop's, as Oban's own ``oban start`` command uses it. The worker is an ``Oban``
instance with ``queues={"default": 10}`` and default settings otherwise (LISTEN/NOTIFY on insert, 5 ms
fetch debounce, buffered acks). Its ``process`` must be ``async def``; the sync variant runs the no-op in
``asyncio.to_thread``, as for PgQueuer. A job is finished when its row is ``completed`` in ``oban_jobs``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from oban import Job, Oban, worker
from oban.schema import install
from psycopg_pool import AsyncConnectionPool

from bench.common import System, main, noop_ran, probe_ran

try:  # a dependency of oban; its CLI runs on it
    from uvloop import new_event_loop
except ImportError:  # pragma: no cover - oban 0.7 requires uvloop
    from asyncio import new_event_loop

T = TypeVar("T")
# Set once per process from --variant: run perform in a thread (sync) or on the loop (async).
THREADED = {"value": False}


async def _run(fn: Any, *args: Any) -> None:
    if THREADED["value"]:
        await asyncio.to_thread(fn, *args)
    else:
        fn(*args)


@worker(queue="default")
class Noop:
    async def process(self, job: Job) -> None:
        await _run(_noop, job.args)


@worker(queue="default")
class Probe:
    async def process(self, job: Job) -> None:
        await _run(probe_ran, job.args["t0"], job.args["out"])


def _noop(args: dict[str, Any]) -> None:
    args.get("user_id")
    noop_ran()


class ObanSystem(System):
    name = "oban"

    def __init__(self, db: str, variant: str) -> None:
        super().__init__(db, variant)
        THREADED["value"] = variant == "sync"
        self.loop = new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.pool: AsyncConnectionPool = self._call(Oban.create_pool(db))
        self._call(self._install())
        self.client: Oban = self._call(self._client())
        self.server: Oban | None = None

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def _install(self) -> None:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT to_regclass('public.oban_jobs')")
            row = await cur.fetchone()
        if row is None or row[0] is None:
            await install(self.pool)

    async def _client(self) -> Oban:
        return Oban(pool=self.pool, name="bench-client")  # no queues: client mode, enqueue only

    def insert_one(self, args: dict[str, Any]) -> None:
        self._call(self.client.enqueue(Noop.new(args)))

    def insert_many(self, args: list[dict[str, Any]]) -> None:
        self._call(self.client.enqueue_many([Noop.new(a) for a in args]))

    def insert_probe(self, t0_ns: int, out: str) -> None:
        self._call(self.client.enqueue(Probe.new({"t0": t0_ns, "out": out})))

    def start_worker(self) -> None:
        self.server = self._call(self._start())

    async def _start(self) -> Oban:
        pool = await Oban.create_pool(self.db)  # the worker's own connections, as in a separate process
        return await Oban(pool=pool, queues={"default": 10}, name="bench-worker").start()

    def stop_worker(self) -> None:
        assert self.server is not None
        self._call(self.server.stop())

    def finished(self) -> int:
        return self._call(self._count_completed())

    async def _count_completed(self) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM oban_jobs WHERE state = 'completed' AND worker = %s", [_worker_name(Noop)]
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0


def _worker_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


if __name__ == "__main__":
    main(ObanSystem)
