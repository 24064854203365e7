"""The runtime's own per-job cost: Kathikon processing no-op jobs on a storage double whose claim and ack cost
nothing (a deque), so what is measured is the dispatcher, executor, outcome and acker alone.

    python -m bench.runtime_only --variant async --jobs 20000 --runs 3

Prints jobs/s (first start to last ack) and the process's CPU time per job for each run. A profiling aid for
docs/benchmarks.md, not part of the side-by-side table.
"""

from __future__ import annotations

import argparse
import collections
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bench import common
from bench.workloads import NOOP
from kathikon import Kathikon
from kathikon.job import Job, JobState
from kathikon.storage.base import Ack
from kathikon.storage.memory import MemoryStorage


class FreeStorage(MemoryStorage):
    """Claims pop a deque and acks only count: O(1), no locks held long, nothing to decode."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: collections.deque[Job] = collections.deque()
        self.acked = 0

    def insert(self, jobs: Sequence[Job], *, conn: Any = None) -> list[Job]:
        self.waiting.extend(jobs)
        return list(jobs)

    def claim(self, queue: str, limit: int, now: datetime, owner: str) -> list[Job]:
        claimed = []
        while self.waiting and len(claimed) < limit:
            job = self.waiting.popleft()
            claimed.append(job.with_changes(state=JobState.EXECUTING, attempts=1, started_at=now, attempted_by=owner))
        return claimed

    def ack(self, acks: Sequence[Ack]) -> list[bool]:
        self.acked += len(acks)
        return [True] * len(acks)


def run_once(variant: str, jobs: int) -> tuple[float, float]:
    """(jobs/s, CPU µs per job) of one run."""
    storage = FreeStorage()
    k = Kathikon(database="memory://", queues={"default": 10}, storage=storage)
    k.insert_all([NOOP[variant].new(common.payload(i)) for i in range(jobs)])
    common.TRACKER.__init__()  # type: ignore[misc]
    common.TRACKER.target = jobs
    cpu = time.process_time()
    k.start()
    try:
        common.TRACKER.reached.wait(300)
        while storage.acked < jobs:
            time.sleep(0.001)
        end = time.perf_counter()
        used = time.process_time() - cpu
    finally:
        k.close()
    assert common.TRACKER.first_start is not None
    return jobs / (end - common.TRACKER.first_start), used / jobs * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", default="async", choices=["sync", "async"])
    p.add_argument("--jobs", type=int, default=20_000)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    for _ in range(a.runs):
        rate, cpu = run_once(a.variant, a.jobs)
        print(f"{a.variant}: {rate:,.0f} jobs/s, {cpu:.0f} µs CPU per job")


if __name__ == "__main__":
    main()
