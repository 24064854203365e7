"""The pruner: deletes completed, discarded and cancelled jobs older than ``retention_period``."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from kathikon import telemetry
from kathikon.storage.base import Storage

if TYPE_CHECKING:
    from kathikon.runtime.loops import LoopContext

__all__ = ["Pruner"]

PRUNER_TICK = ("kathikon", "pruner", "tick")
JOB_PRUNE = ("kathikon", "job", "prune")
MAX_BATCHES = 10


class Pruner:
    """Each tick deletes old terminal jobs in batches of ``limit`` rows, one transaction per batch, so a
    large backlog never holds a long lock; it stops after ``MAX_BATCHES`` and continues next tick."""

    name = "pruner"

    def __init__(self, storage: Storage, *, interval: float = 60.0, retention: float = 604_800.0,
                 limit: int = 10_000) -> None:
        self.storage = storage
        self.interval = interval
        self.retention = retention
        self.limit = limit

    @classmethod
    def from_context(cls, context: LoopContext) -> Pruner:
        config = context.config
        return cls(context.storage, interval=config.prune_interval, retention=config.retention_period,
                   limit=config.prune_limit)

    def start(self, now: datetime) -> None:
        pass

    def stop(self, now: datetime) -> None:
        pass

    def tick(self, now: datetime) -> int:
        """Delete terminal jobs finished before ``now - retention``; returns how many were deleted."""
        started = time.perf_counter()
        before = now - timedelta(seconds=self.retention)
        pruned = 0
        for _ in range(MAX_BATCHES):
            batch = self.storage.prune(before, self.limit)
            pruned += len(batch)
            if telemetry.listening(JOB_PRUNE):
                for job in batch:
                    telemetry.emit(JOB_PRUNE, {}, {"job": job})
            if len(batch) < self.limit:
                break
        telemetry.emit(PRUNER_TICK, {"pruned": pruned, "duration": time.perf_counter() - started},
                       {"before": before})
        return pruned
