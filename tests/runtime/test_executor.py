"""executor.execute: resolve the worker, run perform (async as a task, sync in a thread), timeouts, cancel."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from kathikon import Error, Job, JobState, Sleep, Worker
from kathikon.runtime.executor import Control, execute
from kathikon.storage.memory import MemoryStorage
from tests.runtime.runtime_helpers import OWNER, capture, claimed

PATH = "tests.runtime.test_executor"
gate = threading.Event()


class SyncDone(Worker):
    def perform(self, job: Job) -> None:
        return None


class AsyncSleeps(Worker):
    async def perform(self, job: Job) -> Sleep:
        await asyncio.sleep(0)
        return Sleep(30)


class AsyncFails(Worker):
    async def perform(self, job: Job) -> Error:
        return Error(f"attempt {job.attempts} failed")


class Raises(Worker):
    def perform(self, job: Job) -> None:
        raise KeyError(job.args["missing"])


class BrokenInit(Worker):
    def __init__(self) -> None:
        raise RuntimeError("no config")

    def perform(self, job: Job) -> None:
        return None


class SlowSync(Worker):
    timeout = 0.05

    def perform(self, job: Job) -> str:
        deadline = time.monotonic() + 5
        while not self.cancel_requested and time.monotonic() < deadline:
            time.sleep(0.005)
        return "cancel seen" if self.cancel_requested else "finished"


class SlowAsync(Worker):
    timeout = 0.05
    cancelled = threading.Event()

    async def perform(self, job: Job) -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            SlowAsync.cancelled.set()
            raise


class Backoff(Worker):
    def perform(self, job: Job) -> Error:
        return Error("later")

    def backoff(self, job: Job) -> float:
        return 600


class Waits(Worker):
    async def perform(self, job: Job) -> None:
        await asyncio.sleep(5)


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


def run(job: Job, control: Control | None = None) -> object:
    return asyncio.run(execute(job, owner=OWNER, control=control))


def test_a_sync_worker_runs_in_a_thread_and_completes(storage: MemoryStorage) -> None:
    job = claimed(storage, f"{PATH}:SyncDone")
    with capture("job") as events:
        decision = run(job)
    assert decision.ack.state == JobState.COMPLETED  # type: ignore[attr-defined]
    assert events.names() == ["job.start"]  # the rest is emitted once the ack applied
    measurements = events[0][1]
    assert set(measurements) == {"system_time", "queue_time"}


def test_an_async_worker_runs_as_a_task(storage: MemoryStorage) -> None:
    decision = run(claimed(storage, f"{PATH}:AsyncSleeps"))
    assert decision.ack.state == JobState.SCHEDULED  # type: ignore[attr-defined]


def test_an_async_error_result_is_retried(storage: MemoryStorage) -> None:
    decision = run(claimed(storage, f"{PATH}:AsyncFails"))
    assert decision.ack.error["error"] == "attempt 1 failed"  # type: ignore[attr-defined]


def test_a_raised_exception_is_recorded_with_its_traceback(storage: MemoryStorage) -> None:
    decision = run(claimed(storage, f"{PATH}:Raises", {"missing": "x"}))
    error = decision.ack.error  # type: ignore[attr-defined]
    assert error["kind"] == "exception"
    assert error["error"] == "KeyError: 'x'"
    assert "in perform" in error["traceback"]


def test_a_worker_whose_constructor_fails_is_recorded_as_an_exception(storage: MemoryStorage) -> None:
    decision = run(claimed(storage, f"{PATH}:BrokenInit"))
    assert decision.ack.error["error"] == "RuntimeError: no config"  # type: ignore[attr-defined]


def test_an_unknown_worker_path_is_an_unknown_worker_error_and_is_retried(storage: MemoryStorage) -> None:
    decision = run(claimed(storage, "no_such_module.jobs:Gone"))
    assert decision.ack.state == JobState.RETRYABLE  # type: ignore[attr-defined]
    assert decision.ack.error["kind"] == "unknown_worker"  # type: ignore[attr-defined]
    assert "no_such_module" in decision.ack.error["error"]  # type: ignore[attr-defined]


def test_the_worker_backoff_override_sets_the_retry_time(storage: MemoryStorage) -> None:
    job = claimed(storage, f"{PATH}:Backoff")
    decision = run(job)
    delay = (decision.ack.available_at - decision.ack.at).total_seconds()  # type: ignore[attr-defined]
    assert delay == 600


def test_a_sync_timeout_abandons_the_thread_and_raises_its_cancel_flag(storage: MemoryStorage) -> None:
    control = Control()

    async def scenario() -> tuple[object, bool]:
        decision = await execute(claimed(storage, f"{PATH}:SlowSync"), owner=OWNER, control=control)
        running_after_timeout = control.thread_running
        await control.settled()  # the thread sees the flag and returns
        return decision, running_after_timeout

    decision, running_after_timeout = asyncio.run(scenario())
    assert decision.ack.error["kind"] == "timeout"  # type: ignore[attr-defined]
    assert "thread was abandoned" in decision.ack.error["error"]  # type: ignore[attr-defined]
    assert control.cancel_requested
    assert control.pending is not None
    assert control.pending.result() == "cancel seen"
    assert running_after_timeout or control.thread_done is not None


def test_an_async_timeout_cancels_the_task(storage: MemoryStorage) -> None:
    SlowAsync.cancelled.clear()
    decision = run(claimed(storage, f"{PATH}:SlowAsync"))
    assert decision.ack.error["kind"] == "timeout"  # type: ignore[attr-defined]
    assert "task was cancelled" in decision.ack.error["error"]  # type: ignore[attr-defined]
    assert SlowAsync.cancelled.is_set()


def test_cancelling_a_running_async_job_cancels_its_task(storage: MemoryStorage) -> None:
    control = Control()

    async def scenario() -> object:
        running = asyncio.ensure_future(execute(claimed(storage, f"{PATH}:Waits"), owner=OWNER, control=control))
        while control.pending is None:
            await asyncio.sleep(0)
        control.cancel()
        return await running

    decision = asyncio.run(scenario())
    assert decision.ack.error["kind"] == "cancelled"  # type: ignore[attr-defined]


def test_cancelling_a_running_sync_job_sets_the_flag_it_can_check(storage: MemoryStorage) -> None:
    control = Control()

    class Cooperative(Worker):
        abstract = True  # keeps it out of the CLI's start-up check

        def perform(self, job: Job) -> str:
            while not self.cancel_requested:
                time.sleep(0.002)
            return "stopped"

    from kathikon.runtime.executor import run_perform

    async def scenario() -> object:
        running = asyncio.ensure_future(run_perform(Cooperative(), Job.build(SyncDone), pool=None, control=control))
        while control.pending is None:
            await asyncio.sleep(0)
        control.cancel()
        return await running

    result = asyncio.run(scenario())
    assert result.value == "stopped"  # type: ignore[attr-defined]


class ReturnsCoroutine(Worker):
    def perform(self, job: Job) -> object:
        return asyncio.sleep(0)


def test_a_sync_perform_returning_a_coroutine_fails_instead_of_silently_completing(storage: MemoryStorage) -> None:
    decision = run(claimed(storage, f"{PATH}:ReturnsCoroutine"))
    assert decision.ack.state == JobState.RETRYABLE  # type: ignore[attr-defined]
    assert "async def perform" in decision.ack.error["error"]  # type: ignore[attr-defined]
