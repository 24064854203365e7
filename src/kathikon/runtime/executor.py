"""Run one claimed job: resolve its worker, run ``perform``, bound it by the worker's timeout, decide.

``async def perform`` runs on the event loop: awaited in the caller's own task, or as a task of its own when
the worker has a timeout. ``def perform`` runs in a thread pool so blocking jobs of one queue really run in
parallel; without a timeout the dispatcher lets the thread decide the outcome too (``perform_in_thread``, see
``threads``). ``execute`` needs no running Runtime: the test helpers call it.

Stopping an execution (cancel, timeout, shutdown) differs by kind, because Python cannot kill a thread:
  async perform  its task is cancelled (``CancelledError`` is raised at its current ``await``).
  sync perform   ``Worker.cancel_requested`` becomes True and the thread is abandoned: it runs on until
                 perform returns, its late result is ignored, and its queue slot stays taken until then.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import math
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import datetime
from typing import Any

from kathikon import telemetry
from kathikon._clock import utcnow
from kathikon.exceptions import WorkerError
from kathikon.job import Job
from kathikon.runtime.outcome import Decision, Failure, Result, Returned, decide, queue_time
from kathikon.worker import Worker, is_async_worker, resolve_worker

__all__ = ["Control", "begin", "execute", "execute_with", "perform_in_thread", "run_perform", "runs_whole_in_thread"]

JOB_START = ("kathikon", "job", "start")


class Control:
    """The handle on one running execution: cancel it, and know when its task or thread has ended.

    Its ``threading.Event`` is created only when a cancel is requested (most jobs are never cancelled);
    the worker instance of the execution then sees it through ``Worker.cancel_requested``.
    """

    __slots__ = ("_cancel_event", "_worker", "in_thread", "pending", "raised", "thread_done", "value")

    def __init__(self) -> None:
        # The perform task or future (a separate task, or a sync perform's thread) while it runs.
        self.pending: asyncio.Future[Any] | None = None
        # Set when a sync perform's thread returns (it may outlive the event loop that waited for it).
        self.thread_done: threading.Event | None = None
        # True while ``perform_in_thread`` runs this execution in a pool thread (no future tracks it).
        self.in_thread = False
        # What perform returned or raised, once it ended (the test helpers report them).
        self.value: Any = None
        self.raised: BaseException | None = None
        self._worker: Worker | None = None
        self._cancel_event: threading.Event | None = None

    @property
    def cancel_event(self) -> threading.Event:
        if self._cancel_event is None:
            self._cancel_event = threading.Event()
            if self._worker is not None:
                self._worker._cancel_event = self._cancel_event
        return self._cancel_event

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_event is not None and self._cancel_event.is_set()

    @property
    def thread_running(self) -> bool:
        return self.in_thread or (self.thread_done is not None and not self.thread_done.is_set())

    def attach(self, worker: Worker) -> None:
        """``worker`` runs this execution: a cancel, even an earlier one, sets its ``cancel_requested``."""
        self._worker = worker
        if self._cancel_event is not None:
            worker._cancel_event = self._cancel_event

    def cancel(self) -> None:
        """Ask the execution to stop: cancels an async perform, sets the flag a sync perform can check."""
        self.cancel_event.set()
        if isinstance(self.pending, asyncio.Task):
            self.pending.cancel()

    def abandon(self) -> None:
        """Cancel, and stop waiting for a sync perform's thread (shutdown): its late result is ignored."""
        self.cancel()
        if self.pending is not None:
            self.pending.cancel()

    async def settled(self) -> None:
        """Wait until an abandoned perform (timed-out thread or task) has really ended."""
        if self.pending is not None and not self.pending.done():
            await asyncio.wait({self.pending})


async def execute(job: Job, *, owner: str, pool: Executor | None = None, control: Control | None = None,
                  clock: Callable[[], datetime] = utcnow) -> Decision:
    """Run the executing ``job`` (as returned by ``storage.claim``) and decide its outcome.

    Emits ``("kathikon", "job", "start")``; the decision's events are for the caller to emit once its ack
    applied. ``pool`` runs sync performs (default: the loop's default executor).
    """
    begun = begin(job, owner=owner, clock=clock)
    if isinstance(begun, Decision):
        return begun
    return await execute_with(begun, job, owner=owner, pool=pool, control=control or Control(), clock=clock)


def begin(job: Job, *, owner: str, clock: Callable[[], datetime] = utcnow) -> Worker | Decision:
    """Emit ``job.start`` and build the job's worker; the failed attempt's Decision if it cannot be built."""
    if telemetry.listening(JOB_START):
        telemetry.emit(JOB_START, {"system_time": time.time(), "queue_time": queue_time(job)}, {"job": job})
    started = time.perf_counter()
    try:
        return resolve_worker(job.worker)()
    except WorkerError as exc:
        failure = Failure("unknown_worker", str(exc), duration=time.perf_counter() - started)
        return decide(job, failure, now=clock(), owner=owner)
    except Exception as exc:  # the worker's __init__ failed
        return decide(job, Failure.from_exception(exc, time.perf_counter() - started), now=clock(), owner=owner)


async def execute_with(worker: Worker, job: Job, *, owner: str, pool: Executor | None, control: Control,
                       clock: Callable[[], datetime] = utcnow) -> Decision:
    """``execute`` once ``begin`` built the worker."""
    result = await run_perform(worker, job, pool=pool, control=control)
    return decide(job, result, now=clock(), owner=owner, backoff=worker.backoff)


def runs_whole_in_thread(worker: Worker) -> bool:
    """A sync perform without a timeout: nothing needs the event loop until it ends, so a pool thread can
    run it and decide its outcome (``perform_in_thread``) with no task waiting for it."""
    return _timeout_of(worker) is None and not _is_async(type(worker))


def perform_in_thread(worker: Worker, job: Job, control: Control, *, owner: str,
                      clock: Callable[[], datetime] = utcnow) -> Decision:
    """Run a sync ``perform`` in the calling (pool) thread and decide its outcome; ``control.attach(worker)``
    must have been called on the loop first, so a cancel reaches ``Worker.cancel_requested``."""
    started = time.perf_counter()
    try:
        value = control.value = worker.perform(job)
    except BaseException as exc:  # a pool thread records anything perform raises as the job's failure
        control.raised = exc
        result: Result = Failure.from_exception(exc, time.perf_counter() - started)
    else:
        result = _returned(value, time.perf_counter() - started)
    return decide(job, result, now=clock(), owner=owner, backoff=worker.backoff)


async def run_perform(worker: Worker, job: Job, *, pool: Executor | None, control: Control) -> Result:
    """Run ``worker.perform(job)`` within the worker's timeout; never raises for the job's own failures."""
    control.attach(worker)
    started = time.perf_counter()
    timeout = _timeout_of(worker)
    task = asyncio.current_task()
    if timeout is None and task is not None and _is_async(type(worker)):
        if control.cancel_requested:
            return _cancelled(started)  # cancelled before it started
        return await _perform_here(worker, job, control, task, started)
    pending = _start_perform(worker, job, pool, control)
    control.pending = pending
    pending.add_done_callback(_retrieve)
    if control.cancel_requested:
        control.cancel()  # cancelled before its task existed
    try:
        done, _ = await asyncio.wait({pending}, timeout=timeout)
    except asyncio.CancelledError:  # the caller gave up on the job (shutdown): stop it too
        control.abandon()
        raise
    duration = time.perf_counter() - started
    if not done:
        control.cancel()
        return Failure("timeout", _timeout_message(worker, pending), duration=duration)
    return _result_of(pending, control, duration)


async def _perform_here(worker: Worker, job: Job, control: Control, task: asyncio.Task[Any],
                        started: float) -> Result:
    """An async perform without a timeout runs in the caller's ``task``: no second task to create and wait
    on. ``control.cancel`` cancels that task; the cancel is taken back here, where perform was interrupted."""
    control.pending = task
    try:
        control.value = await worker.perform(job)  # type: ignore[misc]
    except asyncio.CancelledError:
        if not control.cancel_requested:
            raise  # the caller gave up on the job (shutdown)
        task.uncancel()
        return _cancelled(started)
    except Exception as exc:
        control.raised = exc
        return Failure.from_exception(exc, time.perf_counter() - started)
    finally:
        control.pending = None
    return Returned(control.value, time.perf_counter() - started)


def _cancelled(started: float) -> Failure:
    return Failure("cancelled", "the job was cancelled while it was running", duration=time.perf_counter() - started)


def _start_perform(worker: Worker, job: Job, pool: Executor | None, control: Control) -> asyncio.Future[Any]:
    loop = asyncio.get_running_loop()
    if _is_async(type(worker)):
        return loop.create_task(worker.perform(job))  # type: ignore[arg-type]
    control.thread_done = threading.Event()
    # Run in a copy of the caller's context so context variables (tracing, logging) reach the thread.
    call = functools.partial(_in_thread, control.thread_done, contextvars.copy_context().run, worker.perform, job)
    return loop.run_in_executor(pool, call)


def _in_thread(done: threading.Event, run: Callable[..., Any], *args: Any) -> Any:
    try:
        return run(*args)
    finally:
        done.set()


def _result_of(pending: asyncio.Future[Any], control: Control, duration: float) -> Result:
    if pending.cancelled():
        return Failure("cancelled", "the job was cancelled while it was running", duration=duration)
    exc = pending.exception()
    if exc is not None:
        control.raised = exc
        return Failure.from_exception(exc, duration)
    control.value = pending.result()
    return _returned(control.value, duration)


def _returned(value: Any, duration: float) -> Result:
    if inspect.iscoroutine(value):  # a plain ``def perform`` returned a coroutine: it would never run
        value.close()
        return Failure("exception", "perform returned a coroutine without awaiting it; declare it "
                       "`async def perform`", duration=duration)
    return Returned(value, duration)


# Worker classes seen so far → is their perform async (``inspect`` costs microseconds on every job otherwise).
_async_workers: weakref.WeakKeyDictionary[type[Worker], bool] = weakref.WeakKeyDictionary()


def _is_async(cls: type[Worker]) -> bool:
    known = _async_workers.get(cls)
    if known is None:
        known = _async_workers[cls] = is_async_worker(cls)
    return known


def _timeout_of(worker: Worker) -> float | None:
    timeout = type(worker).timeout
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout):
        return None  # refused at start-up by ``kathikon worker``; never let it block the job
    return max(0.0, float(timeout))


def _timeout_message(worker: Worker, pending: asyncio.Future[Any]) -> str:
    how = "its task was cancelled" if isinstance(pending, asyncio.Task) else "its thread was abandoned"
    return f"perform did not finish within the worker's timeout of {type(worker).timeout} s; {how}"


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark the outcome of an abandoned perform as seen, so asyncio does not log it as lost."""
    if not future.cancelled():
        future.exception()
