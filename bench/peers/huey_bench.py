"""Huey (``SqliteHuey``, its defaults: WAL, SQLite's default synchronous) under the shared protocol.

Its consumer runs 10 worker threads, as ``huey_consumer -w 10 -k thread`` would. Huey has no asyncio
workers and no bulk enqueue, so only the sync variant and single inserts are measured. A Huey task is done
when its function returns (Huey deletes the row when it dequeues it and stores no result for ``None``), so
"finished" counts tasks that returned; Kathikon's count is stricter (the completion is committed).
"""

from __future__ import annotations

import threading
from typing import Any

from huey import SqliteHuey

from bench.common import System, main, noop_ran, probe_ran


class HueySystem(System):
    name = "huey"
    variants = ("sync",)

    def __init__(self, db: str, variant: str) -> None:
        super().__init__(db, variant)
        self.huey = SqliteHuey(filename=db)
        self.done = 0
        self.lock = threading.Lock()
        self.noop = self.huey.task(name="noop")(self._noop)
        self.probe = self.huey.task(name="probe")(probe_ran)
        self.consumer: Any = None

    def _noop(self, args: dict[str, Any]) -> None:
        noop_ran()
        with self.lock:
            self.done += 1

    def insert_one(self, args: dict[str, Any]) -> None:
        self.noop(args)

    def insert_many(self, args: list[dict[str, Any]]) -> None:
        raise NotImplementedError("Huey has no bulk enqueue")

    def insert_probe(self, t0_ns: int, out: str) -> None:
        self.probe(t0_ns, out)

    def start_worker(self) -> None:
        self.consumer = self.huey.create_consumer(workers=10, worker_type="thread", periodic=False)
        self.consumer.start()

    def stop_worker(self) -> None:
        self.consumer.stop(graceful=True)

    def finished(self) -> int:
        return self.done

    def seed_many(self, args: list[dict[str, Any]]) -> None:
        for a in args:
            self.noop(a)


if __name__ == "__main__":
    main(HueySystem)
