"""Kathikon under the shared measurement protocol (``python -m bench.kathikon_bench --help``).

``--db`` is a SQLite file path or a PostgreSQL URL. The worker runs embedded (``Kathikon.start()``) with one
queue at concurrency 10 and every other option at its default, as a user would run it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bench.common import System, main
from bench.workloads import NOOP, PROBE
from kathikon import Kathikon
from kathikon.job import Job, JobState

SEED_BATCH = 10_000


def database_url(db: str) -> str:
    """A SQLite file path becomes ``sqlite:///<absolute path>``; URLs pass through."""
    return db if "://" in db else f"sqlite:///{db}"


class KathikonSystem(System):
    name = "kathikon"

    def __init__(self, db: str, variant: str) -> None:
        super().__init__(db, variant)
        self.k = Kathikon(database=database_url(db), queues={"default": 10})
        self.noop = NOOP[variant]
        self.probe = PROBE[variant]

    def insert_one(self, args: dict[str, Any]) -> None:
        self.k.insert(self.noop, args)

    def insert_many(self, args: list[dict[str, Any]]) -> None:
        self.k.insert_all([self.noop.new(a) for a in args])

    def insert_probe(self, t0_ns: int, out: str) -> None:
        self.k.insert(self.probe, {"t0": t0_ns, "out": out})

    def start_worker(self) -> None:
        self.k.start()

    def stop_worker(self) -> None:
        self.k.stop()

    def finished(self) -> int:
        return sum(n for (_, state), n in self.k.storage.counts().items() if state == JobState.COMPLETED)

    def seed_completed(self, count: int) -> None:
        """Store ``count`` completed jobs through the storage's bulk insert, ``SEED_BATCH`` per transaction."""
        now = datetime.now(UTC)
        for start in range(0, count, SEED_BATCH):
            jobs = [
                _completed(self.noop.new({"user_id": i}), now) for i in range(start, min(start + SEED_BATCH, count))
            ]
            self.k.storage.insert(jobs)

    def close(self) -> None:
        self.k.close()


def _completed(job: Job, now: datetime) -> Job:
    return job.with_changes(state=JobState.COMPLETED, attempts=1, started_at=now, completed_at=now, attempted_by="seed")


if __name__ == "__main__":
    main(KathikonSystem)
