"""The scheduler: makes due ``scheduled`` and ``retryable`` jobs ``available`` and wakes their dispatchers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from kathikon import telemetry
from kathikon.storage.base import Storage

if TYPE_CHECKING:
    from kathikon.runtime.loops import LoopContext

__all__ = ["Scheduler"]

SCHEDULER_TICK = ("kathikon", "scheduler", "tick")
STAGE_LIMIT = 5_000
MAX_BATCHES = 20


def _no_wake(queues: Iterable[str]) -> None:
    pass


class Scheduler:
    """Each tick stages due jobs in batches of ``limit`` (one transaction each) and wakes their queues."""

    name = "scheduler"

    def __init__(self, storage: Storage, *, interval: float = 1.0, limit: int = STAGE_LIMIT,
                 wake: Callable[[Iterable[str]], None] = _no_wake) -> None:
        self.storage = storage
        self.interval = interval
        self.limit = limit
        self.wake = wake

    @classmethod
    def from_context(cls, context: LoopContext) -> Scheduler:
        return cls(context.storage, interval=context.config.scheduler_interval, wake=context.wake)

    def start(self, now: datetime) -> None:
        pass

    def stop(self, now: datetime) -> None:
        pass

    def tick(self, now: datetime) -> dict[str, int]:
        """Stage every job due at ``now`` (at most ``MAX_BATCHES`` batches); returns the count per queue."""
        started = time.perf_counter()
        staged: dict[str, int] = {}
        for _ in range(MAX_BATCHES):
            moved = self.storage.stage(now, self.limit)
            for queue, count in moved.items():
                staged[queue] = staged.get(queue, 0) + count
            if moved:
                self.wake(moved)
            if sum(moved.values()) < self.limit:
                break
        telemetry.emit(SCHEDULER_TICK, {"staged": sum(staged.values()), "duration": time.perf_counter() - started},
                       {"queues": staged})
        return staged
