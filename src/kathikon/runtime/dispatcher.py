"""One dispatcher per queue: claims up to its free slots in one statement and runs each job as a task.

It claims again at once while slots are free and jobs keep coming; otherwise it sleeps until woken (an insert
in this process, the scheduler, another process's commit seen by ``storage.subscribe``, a finished job) or
for at most ``poll_interval`` seconds.

Claiming ahead: the dispatcher also claims jobs beyond its free slots and holds them in ``ready``, starting
each the moment a slot frees, so a short job never waits for a claim round trip and claims come in larger
batches (fewer transactions per job). It holds only as many as its slots will start within its hold window —
two of its claim round trips (the time it takes to get more), at least ``HOLD_TARGET`` — at the queue's mean
run time, and at most ``prefetch``: with short jobs it holds up to ``prefetch``, with jobs as long as the
window none, so a node never sits on jobs another node could have started sooner (that node would need a claim
round trip too). Should jobs turn slow while some are held, those held longer than ``HOLD_LIMIT`` are given
back to ``available`` (the attempt not counted). Held jobs are ``executing`` in storage and owned by this
node: a crash leaves them to the Lifeline like running ones; a graceful stop gives them back at once; a cancel
drops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime

from kathikon import telemetry
from kathikon._clock import utcnow
from kathikon.exceptions import DatabaseUnavailableError
from kathikon.job import Job
from kathikon.runtime.acker import Acker
from kathikon.runtime.executor import Control, begin, execute_with, runs_whole_in_thread
from kathikon.runtime.outcome import Decision, release
from kathikon.runtime.storage_calls import StorageCalls
from kathikon.runtime.threads import ThreadRunner
from kathikon.storage.base import Storage
from kathikon.worker import Worker

__all__ = ["Dispatcher", "RecentCancels", "RunningJob"]

DISPATCHER_POLL = ("kathikon", "dispatcher", "poll")
# The shortest hold window (seconds): how long a job claimed ahead may wait here before it starts, on
# average, however fast claims are.
HOLD_TARGET = 0.01
# Held jobs that waited this long (seconds) are given back: the queue's jobs have turned slow.
HOLD_LIMIT = 0.5
# Weight of the latest sample in the mean run time and mean claim time (exponential moving averages).
RUN_TIME_WEIGHT = 0.1
logger = logging.getLogger("kathikon.runtime")
_Step = tuple["RunningJob", Worker]  # a job about to run in the calling task, and its worker


@dataclass(eq=False, slots=True)
class RunningJob:
    """A claimed job while this node runs it. ``acked``: its outcome was submitted; ``released``: it was
    given back at shutdown (its own outcome is then ignored)."""

    job: Job
    started: float = field(default_factory=time.monotonic)
    control: Control = field(default_factory=Control)
    task: asyncio.Task[None] | None = None
    acked: bool = False
    released: bool = False


class RecentCancels:
    """Ids of jobs cancelled lately that were not running here (bounded). A claim in flight when its job
    is cancelled returns the job anyway; the dispatcher then skips it instead of running it."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, job_id: str) -> None:
        self._ids[job_id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids


class Dispatcher:
    """Claims and runs the jobs of one queue, at most ``concurrency`` at a time."""

    def __init__(self, queue: str, concurrency: int, *, storage: Storage, calls: StorageCalls, acker: Acker,
                 node: str, pool: Executor | None = None, poll_interval: float = 0.2, prefetch: int = 0,
                 recent_cancels: RecentCancels | None = None) -> None:
        self.queue = queue
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.storage = storage
        self.calls = calls
        self.acker = acker
        self.node = node
        self.pool = pool
        self.poll_interval = poll_interval
        self.running: dict[str, RunningJob] = {}
        # Jobs claimed ahead with their claim time (monotonic), started as slots free (see the module docstring).
        self.ready: deque[tuple[float, Job]] = deque()
        self._mean_run = float("inf")  # seconds a job of this queue runs, on average; unknown at first
        self._mean_claim = -1.0  # seconds a claim takes, on average (round trip, in this busy process); -1: none yet
        self._ahead = 0  # ``ahead`` as of the latest run time and claim time (read for every job)
        self.recent_cancels = recent_cancels if recent_cancels is not None else RecentCancels()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set whenever ``running`` becomes empty
        self._threads: ThreadRunner[RunningJob] | None = None
        self._claiming = False
        self._task: asyncio.Task[None] | None = None
        self._abandoned: list[Control] = []

    @property
    def free_slots(self) -> int:
        return max(0, self.concurrency - len(self.running))

    @property
    def ahead(self) -> int:
        """How many claimed jobs to hold beyond the free slots now: those the slots start within the hold
        window at the mean run time, at most ``prefetch`` (none until a job has ended)."""
        return self._ahead

    def _update_ahead(self) -> None:
        if self._mean_run <= 0:
            self._ahead = self.prefetch
        else:
            self._ahead = min(self.prefetch, int(self.hold_window * self.concurrency / self._mean_run))

    @property
    def hold_window(self) -> float:
        """Seconds a held job may wait on average: two claim round trips, within [HOLD_TARGET, HOLD_LIMIT / 2]."""
        return min(max(HOLD_TARGET, 2 * self._mean_claim), HOLD_LIMIT / 2)

    def wanted(self) -> int:
        """How many jobs the next claim asks for (``free_slots`` spelled out: this runs for every job)."""
        return max(0, max(0, self.concurrency - len(self.running)) + self._ahead - len(self.ready))

    def held_ids(self) -> list[str]:
        """Ids of the jobs this dispatcher runs or holds claimed (copies: safe to read from another thread)."""
        return [*list(self.running), *(job.id for _, job in list(self.ready))]

    def start(self) -> None:
        self._claiming = True
        if self.pool is not None:
            self._threads = ThreadRunner(self.pool, self.node, self._threads_done)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"kathikon-dispatcher-{self.queue}")

    def wake(self) -> None:
        """Claim now instead of at the next poll (call on the event loop)."""
        self._wake.set()

    def resize(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._update_ahead()
        self.wake()

    async def tick(self, now: datetime) -> int:
        """Claim what the queue wants at ``now`` (free slots, plus ``ahead``) and start what fits; returns the
        count claimed."""
        free, wanted = self.free_slots, self.wanted()
        if wanted == 0:
            return 0
        asked_at = time.monotonic()
        jobs = await self.calls.call(self.storage.claim, self.queue, wanted, now, self.node,
                                     keep_trying=lambda: self._claiming)
        claimed_at = time.monotonic()
        self._mean_claim = _moving_average(self._mean_claim, claimed_at - asked_at, unknown=-1.0)
        self._update_ahead()
        self.ready.extend((claimed_at, job) for job in jobs)
        self._launch_ready()
        if telemetry.listening(DISPATCHER_POLL):
            telemetry.emit(DISPATCHER_POLL, {"claimed": len(jobs), "free_slots": free, "requested": wanted},
                           {"queue": self.queue, "node": self.node})
        return len(jobs)

    def cancel_job(self, job_id: str) -> bool:
        """Stop the job if it runs here (async: task cancelled; sync: cancel flag set) or drop it if held."""
        running = self.running.get(job_id)
        if running is None:
            return self._drop_ready(job_id)
        running.control.cancel()
        return True

    async def stop_claiming(self) -> None:
        """Stop claiming and give back the jobs held ahead; a claim already in flight completes and what it
        claimed runs or is given back likewise."""
        self._claiming = False
        self.wake()
        if self._task is not None:
            await self._task
        released = self._release_ready(utcnow())
        if released:
            logger.debug("gave back %d job(s) claimed ahead on queue %r", len(released), self.queue)

    async def drain(self) -> None:
        """Wait until no job of this dispatcher runs any more."""
        while self.running:
            self._idle.clear()
            await self._idle.wait()

    def release_unfinished(self, now: datetime) -> list[Job]:
        """Give back every job still running (shutdown): ack it ``available`` and stop its execution."""
        released = self._release_ready(now)
        for running in list(self.running.values()):
            if not running.acked:
                running.released = True
                self.acker.submit(release(running.job, now=now, owner=self.node))
                released.append(running.job)
            running.control.abandon()
            if running.control.thread_running:
                self._abandoned.append(running.control)
            if running.task is not None:
                running.task.cancel()
            else:
                self._forget(running)  # a thread runs it; nothing waits for it any more
        return released

    def abandoned(self) -> int:
        """Sync performs whose thread still runs although this node no longer waits for them."""
        return sum(1 for control in self._abandoned if control.thread_running)

    def _release_ready(self, now: datetime) -> list[Job]:
        released = [job for _, job in self.ready]
        self.ready.clear()
        for job in released:
            self.acker.submit(release(job, now=now, owner=self.node))
        return released

    def _release_stale_ready(self) -> None:
        """Give back the held jobs once the oldest has waited ``HOLD_LIMIT``: jobs have turned slow. The
        running jobs' age then counts as the mean run time, so that the next claims hold less (none once they
        have run for a few hold windows) instead of taking the same jobs back."""
        now = time.monotonic()
        if self.ready and now - self.ready[0][0] > HOLD_LIMIT:
            released = self._release_ready(utcnow())
            logger.debug("gave back %d job(s) held ahead too long on queue %r", len(released), self.queue)
            oldest = min((r.started for r in self.running.values()), default=now)
            self._mean_run = max(self._mean_run, now - oldest)
            self._update_ahead()

    def _drop_ready(self, job_id: str) -> bool:
        for held in self.ready:
            if held[1].id == job_id:
                self.ready.remove(held)
                return True
        return False

    def _launch_ready(self) -> None:
        """Start held jobs while slots are free (claim order)."""
        while self.ready and len(self.running) < self.concurrency:
            self._launch(self.ready.popleft()[1])

    def _launch(self, job: Job, *, in_task: asyncio.Task[None] | None = None) -> _Step | None:
        """Start ``job``. A job that runs on the loop gets a task of its own, or, given ``in_task`` (the
        calling job task, whose job just ended), is returned to run there."""
        if job.id in self.recent_cancels:
            return None  # cancelled while the claim was in flight: nothing to run or record
        running = RunningJob(job)
        self.running[job.id] = running
        begun = begin(job, owner=self.node)
        if isinstance(begun, Decision):  # its worker cannot be built: the attempt failed already
            self._finish(running, begun)
        elif self._threads is not None and runs_whole_in_thread(begun):
            self._start_thread(running, begun)
        elif in_task is not None:
            running.task = in_task
            return running, begun
        else:
            running.task = asyncio.get_running_loop().create_task(self._run_job(running, begun))
        return None

    def _take_for_task(self, task: asyncio.Task[None] | None) -> _Step | None:
        """Start held jobs into the free slot until one is to run in ``task`` (returned)."""
        while self.ready and len(self.running) < self.concurrency:
            step = self._launch(self.ready.popleft()[1], in_task=task)
            if step is not None:
                return step
        return None

    def _start_thread(self, running: RunningJob, worker: Worker) -> None:
        assert self._threads is not None
        try:
            self._threads.submit(running, worker, running.job, running.control)
        except Exception:
            logger.exception("job %s could not be run; it stays executing until it is rescued", running.job.id)
            self._forget(running)

    def _threads_done(self, batch: list[tuple[RunningJob, Decision | None]]) -> None:
        for running, decision in batch:
            self._finish(running, decision)

    def _finish(self, running: RunningJob, decision: Decision | None) -> None:
        """The job's outcome is decided (None: it could not be): submit it unless released, free the slot."""
        if decision is not None and not running.released:
            running.acked = True
            self.acker.submit(decision)
        self._forget(running)

    def _forget(self, running: RunningJob, *, task: asyncio.Task[None] | None = None) -> _Step | None:
        """Free the job's slot and start held jobs; with ``task`` (the job's own, now free), the next job that
        runs on the loop is returned to run in it instead of in a new task."""
        step = None
        if self.running.get(running.job.id) is running:
            del self.running[running.job.id]
            self._note_run_time(time.monotonic() - running.started)
            if task is not None:
                step = self._take_for_task(task)
            self._launch_ready()
            if not self.running:
                self._idle.set()
        if self._needs_claim():
            self.wake()
        return step

    def _note_run_time(self, seconds: float) -> None:
        self._mean_run = _moving_average(self._mean_run, seconds, unknown=float("inf"))
        self._update_ahead()

    def _needs_claim(self) -> bool:
        """Slots would go idle, or the jobs held ahead are down to half: claiming now keeps batches large."""
        return len(self.ready) <= self._ahead // 2 and self.wanted() > 0

    async def _run_job(self, running: RunningJob, worker: Worker) -> None:
        """Run the job, then, while held jobs that run on the loop wait, the next ones in this same task: a
        task per busy slot rather than per job."""
        task = asyncio.current_task()
        step: _Step | None = (running, worker)
        while step is not None:
            running, worker = step
            try:
                await self._execute(running, worker)
            except BaseException:  # the task was cancelled (shutdown): free the slot, take nothing more
                self._forget(running)
                raise
            step = self._forget(running, task=task)

    async def _execute(self, running: RunningJob, worker: Worker) -> None:
        try:
            decision = await execute_with(worker, running.job, owner=self.node, pool=self.pool,
                                          control=running.control)
            if not running.released:
                running.acked = True
                self.acker.submit(decision)
            await running.control.settled()  # a timed-out thread keeps its slot until it really ends
        except Exception:
            logger.exception("job %s could not be run; it stays executing until it is rescued", running.job.id)

    async def _run(self) -> None:
        while self._claiming:
            self._wake.clear()
            self._release_stale_ready()
            wanted = self.wanted()
            claimed = await self._claim_safely()
            if wanted and claimed == wanted and self._needs_claim():
                continue  # the queue may hold more: claim again without waiting
            await self._sleep()

    async def _claim_safely(self) -> int:
        try:
            return await self.tick(utcnow())
        except DatabaseUnavailableError:
            return 0  # only when stopping; StorageCalls retries otherwise
        except Exception:
            logger.exception("claiming from queue %r failed; retrying in %.1f s", self.queue, self.poll_interval)
            return 0

    async def _sleep(self) -> None:
        if self._wake.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll_interval):  # unlike wait_for, no task per sleep
                await self._wake.wait()


def _moving_average(mean: float, sample: float, *, unknown: float) -> float:
    """The exponential moving average after ``sample``; the first sample (``mean`` is ``unknown``) sets it."""
    return sample if mean == unknown else mean + RUN_TIME_WEIGHT * (sample - mean)
