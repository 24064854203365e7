"""``drain_queue``: run a queue's jobs now, in the calling thread, through the runtime's real execution path.

Each job goes claim → ``runtime.executor.execute`` → ``runtime.outcome`` → ``runtime.acker.record`` (the
fenced ack, then its telemetry events), one job at a time in claim order (priority, then age).

``with_scheduled`` moves the drain's clock forward instead of touching jobs: with a datetime, the clock is
that time; with True, it is the latest time a job of the queue is waiting for. The scheduler's ``tick`` at
that time makes due jobs available, and they run as if it were that time (``started_at`` and
``completed_at`` show it). A retry or a ``Sleep`` lands after that time, so each drain runs a job at most once
per due date and always ends; drain again to run the retries.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from kathikon._clock import to_utc, utcnow
from kathikon.core import Kathikon
from kathikon.job import Job, JobState, check_queue_name
from kathikon.runtime.acker import record
from kathikon.runtime.executor import execute
from kathikon.runtime.scheduler import Scheduler
from kathikon.testing._inline import pool_for, run_to_completion
from kathikon.testing._instances import resolve

__all__ = ["DrainResult", "drain_queue"]

WAITING = (JobState.SCHEDULED, JobState.RETRYABLE)
TIMEOUT_THREADS = 8


@dataclass(frozen=True, slots=True)
class DrainResult:
    """How the jobs run by one drain ended: ``assert drain_queue("emails") == DrainResult(completed=2)``."""

    completed: int = 0
    retried: int = 0
    discarded: int = 0
    slept: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.completed + self.retried + self.discarded + self.slept + self.cancelled


def drain_queue(
    queue: str,
    *,
    k: Kathikon | None = None,
    with_scheduled: bool | datetime = False,
    with_recursion: bool = True,
    limit: int | None = None,
) -> DrainResult:
    """Run the available jobs of ``queue`` now and return how they ended.

    ``with_recursion``: keep going while jobs become available (jobs inserted by the jobs run too); False
    runs only as many jobs as were available at the start. ``with_scheduled``: see the module docstring.
    ``limit``: run at most this many jobs. Works from sync tests and from async ones (it then runs in a
    helper thread while the test's event loop waits).
    """
    instance = resolve(k)
    drain = _Drain(instance, check_queue_name(queue), _horizon(instance, queue, with_scheduled))
    budget = _budget(instance, drain, with_recursion, limit)
    return run_to_completion(partial(drain.run, budget))


class _Drain:
    def __init__(self, k: Kathikon, queue: str, horizon: datetime | None) -> None:
        self.k = k
        self.queue = queue
        self.horizon = horizon
        self.owner = f"kathikon.testing.drain-{uuid.uuid4().hex[:12]}"
        self.counts = dict.fromkeys(JobState, 0)

    def now(self) -> datetime:
        """The drain's clock: real time, but never before the horizon ``with_scheduled`` set."""
        now = utcnow()
        return now if self.horizon is None else max(now, self.horizon)

    async def run(self, budget: int) -> DrainResult:
        # Threads for workers with a timeout; a timed-out perform keeps its thread, so the next one gets a
        # new thread rather than waiting (and timing out) behind it.
        with ThreadPoolExecutor(TIMEOUT_THREADS, thread_name_prefix="kathikon-drain") as threads:
            while budget > 0 and (job := self._claim_next()) is not None:
                decision = await execute(job, owner=self.owner, pool=pool_for(job.worker, threads), clock=self.now)
                [applied] = record(self.k.storage, [decision])
                self.counts[decision.ack.state if applied else self._state_of(job)] += 1
                budget -= 1
        return self._result()

    def stage(self, now: datetime) -> None:
        """With a horizon, make what is due by then available, as the runtime's scheduler would."""
        if self.horizon is not None:
            Scheduler(self.k.storage).tick(now)

    def _claim_next(self) -> Job | None:
        now = self.now()
        self.stage(now)
        claimed = self.k.storage.claim(self.queue, 1, now, self.owner)
        return claimed[0] if claimed else None

    def _state_of(self, job: Job) -> JobState:
        """Where a job whose outcome was fenced out is now (cancelled while it ran, most likely)."""
        stored = self.k.storage.fetch(job.id)
        return stored.state if stored is not None else JobState.CANCELLED

    def _result(self) -> DrainResult:
        c = self.counts
        return DrainResult(
            completed=c[JobState.COMPLETED],
            retried=c[JobState.RETRYABLE],
            discarded=c[JobState.DISCARDED],
            slept=c[JobState.SCHEDULED],
            cancelled=c[JobState.CANCELLED],
        )


def _horizon(k: Kathikon, queue: str, with_scheduled: bool | datetime) -> datetime | None:
    if isinstance(with_scheduled, datetime):
        return to_utc(with_scheduled, "with_scheduled")
    if not isinstance(with_scheduled, bool):
        raise TypeError(f"with_scheduled must be True, False or a datetime, got {with_scheduled!r}")
    if not with_scheduled:
        return None
    waiting = [job.available_at for state in WAITING for job in k.storage.all(queue=queue, state=state)]
    return max((at for at in waiting if at is not None), default=utcnow())


def _budget(k: Kathikon, drain: _Drain, with_recursion: bool, limit: int | None) -> int:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be an integer >= 0 or None, got {limit!r}")
    budget = limit if limit is not None else 2**63
    if with_recursion:
        return budget
    now = drain.now()
    drain.stage(now)
    available = [j for j in k.storage.all(queue=drain.queue, state=JobState.AVAILABLE) if j.claimable(now)]
    return min(budget, len(available))
