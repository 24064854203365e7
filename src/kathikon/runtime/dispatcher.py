"""One dispatcher per queue: claims up to its free slots in one statement and runs each job as a task.

It claims again at once while slots are free and jobs keep coming; otherwise it sleeps until woken (an insert
in this process, the scheduler, another process's commit seen by ``storage.subscribe``, a finished job) or
for at most ``poll_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
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
logger = logging.getLogger("kathikon.runtime")


@dataclass(eq=False, slots=True)
class RunningJob:
    """A claimed job while this node runs it. ``acked``: its outcome was submitted; ``released``: it was
    given back at shutdown (its own outcome is then ignored)."""

    job: Job
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
                 node: str, pool: Executor | None = None, poll_interval: float = 0.2,
                 recent_cancels: RecentCancels | None = None) -> None:
        self.queue = queue
        self.concurrency = concurrency
        self.storage = storage
        self.calls = calls
        self.acker = acker
        self.node = node
        self.pool = pool
        self.poll_interval = poll_interval
        self.running: dict[str, RunningJob] = {}
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
        self.wake()

    async def tick(self, now: datetime) -> int:
        """Claim up to the free slots at ``now`` and start running what was claimed; returns the count."""
        free = self.free_slots
        if free == 0:
            return 0
        jobs = await self.calls.call(self.storage.claim, self.queue, free, now, self.node,
                                     keep_trying=lambda: self._claiming)
        for job in jobs:
            self._launch(job)
        if telemetry.listening(DISPATCHER_POLL):
            telemetry.emit(DISPATCHER_POLL, {"claimed": len(jobs), "free_slots": free},
                           {"queue": self.queue, "node": self.node})
        return len(jobs)

    def cancel_job(self, job_id: str) -> bool:
        """Stop the job if it runs here (async: task cancelled; sync: cancel flag set)."""
        running = self.running.get(job_id)
        if running is None:
            return False
        running.control.cancel()
        return True

    async def stop_claiming(self) -> None:
        """Stop claiming; a claim already in flight completes and its jobs run."""
        self._claiming = False
        self.wake()
        if self._task is not None:
            await self._task

    async def drain(self) -> None:
        """Wait until no job of this dispatcher runs any more."""
        while self.running:
            self._idle.clear()
            await self._idle.wait()

    def release_unfinished(self, now: datetime) -> list[Job]:
        """Give back every job still running (shutdown): ack it ``available`` and stop its execution."""
        released = []
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

    def _launch(self, job: Job) -> None:
        if job.id in self.recent_cancels:
            return  # cancelled while the claim was in flight: nothing to run or record
        running = RunningJob(job)
        self.running[job.id] = running
        begun = begin(job, owner=self.node)
        if isinstance(begun, Decision):  # its worker cannot be built: the attempt failed already
            self._finish(running, begun)
        elif self._threads is not None and runs_whole_in_thread(begun):
            self._start_thread(running, begun)
        else:
            running.task = asyncio.get_running_loop().create_task(self._run_job(running, begun))

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

    def _forget(self, running: RunningJob) -> None:
        if self.running.get(running.job.id) is running:
            del self.running[running.job.id]
            if not self.running:
                self._idle.set()
        self.wake()

    async def _run_job(self, running: RunningJob, worker: Worker) -> None:
        try:
            decision = await execute_with(worker, running.job, owner=self.node, pool=self.pool,
                                          control=running.control)
            if not running.released:
                running.acked = True
                self.acker.submit(decision)
            await running.control.settled()  # a timed-out thread keeps its slot until it really ends
        except Exception:
            logger.exception("job %s could not be run; it stays executing until it is rescued", running.job.id)
        finally:
            self._forget(running)

    async def _run(self) -> None:
        while self._claiming:
            self._wake.clear()
            free = self.free_slots
            claimed = await self._claim_safely()
            if free and claimed == free and self.free_slots:
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

