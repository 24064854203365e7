"""Sync performs run whole in a pool thread, their decisions handed back to the event loop in bursts.

Waiting for each thread through ``run_in_executor`` costs a task, two futures and one wake-up of the loop
(``call_soon_threadsafe``) per job. Here a pool thread runs ``perform`` and decides the outcome
(``executor.perform_in_thread``), then appends the decision to a queue; the first completion of a burst
schedules one drain on the loop, which hands every decision queued by then to ``deliver``. Only sync
performs without a timeout run this way: a timeout needs the loop to stop waiting (see ``executor``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Generic, TypeVar

from kathikon.job import Job
from kathikon.runtime.executor import Control, perform_in_thread
from kathikon.runtime.outcome import Decision
from kathikon.worker import Worker

__all__ = ["ThreadRunner"]

K = TypeVar("K")
logger = logging.getLogger("kathikon.runtime")


class ThreadRunner(Generic[K]):
    """Runs ``perform_in_thread`` in ``pool``; ``deliver`` gets ``[(key, decision or None), …]`` on the loop
    (None: deciding failed, logged; the job stays executing until it is rescued)."""

    def __init__(self, pool: Executor, owner: str,
                 deliver: Callable[[list[tuple[K, Decision | None]]], None]) -> None:
        self.pool = pool
        self.owner = owner
        self.deliver = deliver
        self._loop = asyncio.get_running_loop()
        self._done: collections.deque[tuple[K, Decision | None]] = collections.deque()
        self._lock = threading.Lock()
        self._drain_scheduled = False

    def submit(self, key: K, worker: Worker, job: Job, control: Control) -> None:
        """Start ``worker.perform(job)`` in a thread (call on the loop). Raises if the pool refuses it."""
        control.attach(worker)
        control.in_thread = True
        # Run in a copy of the caller's context so context variables (tracing, logging) reach the thread.
        context = contextvars.copy_context()
        try:
            self.pool.submit(self._run, key, context, worker, job, control)
        except BaseException:
            control.in_thread = False
            raise

    def _run(self, key: K, context: contextvars.Context, worker: Worker, job: Job, control: Control) -> None:
        decision: Decision | None = None
        try:
            decision = context.run(perform_in_thread, worker, job, control, owner=self.owner)
        except BaseException:
            logger.exception("job %s could not be run; it stays executing until it is rescued", job.id)
        finally:
            control.in_thread = False
            self._hand_back(key, decision)

    def _hand_back(self, key: K, decision: Decision | None) -> None:
        """In the pool thread: queue the decision; wake the loop only if no drain is scheduled yet."""
        self._done.append((key, decision))
        with self._lock:
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop closed: its runtime stopped, nothing waits
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            self._drain_scheduled = False  # before taking: a later append schedules the next drain
        batch = [self._done.popleft() for _ in range(len(self._done))]
        if batch:
            self.deliver(batch)
