"""PgQueuer (with asyncpg, its fastest driver) under the shared protocol.

Its entrypoints must be ``async def``; the sync variant wraps the no-op in ``asyncio.to_thread``, which is
what PgQueuer's documentation prescribes for blocking code. The worker is ``PgQueuer.run(batch_size=10)``
with the entrypoint's ``concurrency_limit=10``. A job is finished when PgQueuer has deleted it from its
queue and logged it as successful (it buffers those writes), which is what ``finished`` counts.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import asyncpg
from pgqueuer import PgQueuer, Queries
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job

from bench.common import System, main, noop_ran, probe_ran

T = TypeVar("T")


class PgQueuerSystem(System):
    name = "pgqueuer"

    def __init__(self, db: str, variant: str) -> None:
        super().__init__(db, variant)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.conn: Any = self._call(asyncpg.connect(db))
        self.queries = Queries(AsyncpgDriver(self.conn))
        self._call(self._install())
        self.pgq: PgQueuer | None = None
        self.worker: asyncio.Future[None] | None = None

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def _install(self) -> None:
        if not await self.queries.schema_is_installed():
            await self.queries.install()

    def insert_one(self, args: dict[str, Any]) -> None:
        self._call(self.queries.enqueue("noop", json.dumps(args).encode()))

    def insert_many(self, args: list[dict[str, Any]]) -> None:
        payloads: list[bytes | None] = [json.dumps(a).encode() for a in args]
        self._call(self.queries.enqueue(["noop"] * len(args), payloads, [0] * len(args)))

    def insert_probe(self, t0_ns: int, out: str) -> None:
        self._call(self.queries.enqueue("probe", json.dumps({"t0": t0_ns, "out": out}).encode()))

    def start_worker(self) -> None:
        self._call(self._start())

    async def _start(self) -> None:
        pgq = PgQueuer.from_asyncpg_connection(await asyncpg.connect(self.db))
        threaded = self.variant == "sync"

        @pgq.entrypoint("noop", concurrency_limit=10)
        async def noop(job: Job) -> None:
            if threaded:
                await asyncio.to_thread(_noop, job.payload)
            else:
                _noop(job.payload)

        @pgq.entrypoint("probe", concurrency_limit=10)
        async def probe(job: Job) -> None:
            if threaded:
                await asyncio.to_thread(_probe, job.payload)
            else:
                _probe(job.payload)

        self.pgq = pgq
        self.worker = asyncio.ensure_future(pgq.run(batch_size=10))

    def stop_worker(self) -> None:
        self._call(self._stop())

    async def _stop(self) -> None:
        assert self.pgq is not None
        assert self.worker is not None
        self.pgq.shutdown.set()
        await self.worker

    def finished(self) -> int:
        count: int = self._call(
            self.conn.fetchval("SELECT count(*) FROM pgqueuer_log WHERE entrypoint = 'noop' AND status = 'successful'")
        )
        return count


def _probe(payload: bytes | None) -> None:
    args = json.loads(payload or b"{}")
    probe_ran(args["t0"], args["out"])


def _noop(payload: bytes | None) -> None:
    json.loads(payload or b"{}")
    noop_ran()


if __name__ == "__main__":
    main(PgQueuerSystem)
