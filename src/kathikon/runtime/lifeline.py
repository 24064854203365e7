"""The Lifeline: jobs stranded on dead nodes go back to work (leader only).

A job is ``executing`` on exactly one node, the one named by ``attempted_by``. When that node is dead — no
record (it never registered, or was removed as dead), or a heartbeat older than ``rescue_after`` — the
leader's tick moves the job back to ``available`` with a ``rescued`` error entry, or to ``discarded`` when
its attempts are used up, so a job that kills its worker every time is discarded after ``max_attempts``
instead of retried forever. A job running on a live node is never rescued, however long it runs: liveness
is the node's heartbeat, not the job's age. The records of dead nodes that no longer own jobs are pruned.

Blind spells. Heartbeats only prove liveness if everyone could write them. When this node's ticks stop for
a while (the machine slept, the process was paused, or the database was unreachable — a failed round skips
the tick), every other node may have been just as blind, and its stale heartbeat says nothing. So after a
gap in its own ticks longer than two intervals, for the next ``rescue_after`` seconds a heartbeat counts as
stale only when it is older than ``rescue_after`` plus the gap. Jobs of nodes with no record (removed as
dead) are still rescued at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from kathikon import telemetry
from kathikon.job import Job, JobState
from kathikon.storage.base import Storage

__all__ = ["Lifeline"]

RESCUE = ("kathikon", "lifeline", "rescue")
TICK = ("kathikon", "lifeline", "tick")
NODE_DEAD = ("kathikon", "node", "dead")


class Lifeline:
    """Rescues jobs of dead nodes. ``tick(now)`` every ``interval`` seconds on every node; acts on the leader.

    ``leads(now)`` says whether this node is the leader; tick on followers too, so the lifeline notices its
    own blind spells (see the module docstring) even before it becomes leader.
    """

    def __init__(self, storage: Storage, rescue_after: float, interval: float,
                 leads: Callable[[datetime], bool]) -> None:
        if interval <= 0 or rescue_after <= interval:
            raise ValueError(f"lifeline needs 0 < interval < rescue_after, got interval={interval!r}, "
                             f"rescue_after={rescue_after!r}")
        self.storage = storage
        self.rescue_after = rescue_after
        self.interval = interval
        self._leads = leads
        self._last_tick: datetime | None = None
        self._allowance = 0.0
        self._allowance_until: datetime | None = None

    def tick(self, now: datetime) -> list[Job]:
        """Rescue the jobs of dead nodes if this node leads; returns them as changed."""
        allowance = self._watch(now)
        if not self._leads(now):
            return []
        started = time.perf_counter()
        stale_before = now - timedelta(seconds=self.rescue_after + allowance)
        rescued = self.storage.rescue(now, stale_before)
        for job in rescued:
            telemetry.emit(RESCUE, {}, {"job": job, "node": job.attempted_by})
        pruned = self.storage.prune_nodes(stale_before)
        for name in pruned:
            telemetry.emit(NODE_DEAD, {}, {"node": name, "reason": "stale heartbeat"})
        self._emit_tick(rescued, pruned, allowance, time.perf_counter() - started)
        return rescued

    def stale_before(self, now: datetime) -> datetime:
        """The heartbeat cutoff the next tick at ``now`` would use (without recording the tick)."""
        return now - timedelta(seconds=self.rescue_after + self._allowance_at(now))

    def _watch(self, now: datetime) -> float:
        """Record this tick; returns the extra seconds of silence to allow after a blind spell."""
        if self._last_tick is not None:
            gap = (now - self._last_tick).total_seconds()
            if gap > 2 * self.interval:
                self._allowance = max(gap, self._allowance_at(now))
                self._allowance_until = now + timedelta(seconds=self.rescue_after)
        self._last_tick = now
        return self._allowance_at(now)

    def _allowance_at(self, now: datetime) -> float:
        if self._allowance_until is None or now >= self._allowance_until:
            return 0.0
        return self._allowance

    def _emit_tick(self, rescued: list[Job], pruned: list[str], allowance: float, duration: float) -> None:
        discarded = sum(1 for job in rescued if job.state == JobState.DISCARDED)
        telemetry.emit(TICK, {"rescued": len(rescued) - discarded, "discarded": discarded,
                              "nodes_pruned": len(pruned), "allowance": allowance, "duration": duration}, {})
