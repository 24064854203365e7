"""The runtime end to end on a real SQLite file: wake-ups, parallelism, cancel, shutdown, database errors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kathikon import Job, JobState, Kathikon, Worker
from kathikon.config import Config
from kathikon.runtime import Runtime
from tests.runtime.runtime_helpers import FlakyStorage, capture, sqlite_storage, wait_for

PATH = "tests.runtime.test_runtime"
release_gate = threading.Event()


class Noop(Worker):
    def perform(self, job: Job) -> None:
        return None


class SleepsSync(Worker):
    def perform(self, job: Job) -> None:
        time.sleep(job.args["seconds"])


class SleepsAsync(Worker):
    async def perform(self, job: Job) -> None:
        await asyncio.sleep(job.args["seconds"])


class Blocks(Worker):
    """Blocks its thread until the test opens ``release_gate``."""

    def perform(self, job: Job) -> None:
        release_gate.wait(10)


class WaitsForCancel(Worker):
    cancelled = threading.Event()

    async def perform(self, job: Job) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            WaitsForCancel.cancelled.set()
            raise


class ChecksFlag(Worker):
    saw_flag = threading.Event()

    def perform(self, job: Job) -> None:
        deadline = time.monotonic() + 10
        while not self.cancel_requested and time.monotonic() < deadline:
            time.sleep(0.005)
        if self.cancel_requested:
            ChecksFlag.saw_flag.set()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.fixture
def k(url: str) -> Iterator[Kathikon]:
    # A long poll interval: anything faster than it proves a wake-up, not a poll.
    instance = Kathikon(database=url, queues={"default": 10}, poll_interval=5, scheduler_interval=0.05)
    try:
        yield instance
    finally:
        release_gate.set()
        instance.close()
        release_gate.clear()


def states(k: Kathikon) -> list[JobState]:
    return [job.state for job in k.all()]


def all_in(k: Kathikon, state: JobState, count: int) -> bool:
    return states(k).count(state) == count


def test_an_insert_wakes_the_dispatcher_at_once(k: Kathikon) -> None:
    k.start()
    started = time.monotonic()
    job = k.insert(Noop)
    wait_for(lambda: k.fetch(job.id).state == JobState.COMPLETED, timeout=2, what="the job to complete")
    assert time.monotonic() - started < 2  # well under poll_interval (5 s)


def test_sync_jobs_run_in_parallel_up_to_the_queue_concurrency(k: Kathikon) -> None:
    k.start()
    started = time.monotonic()
    k.insert_all([SleepsSync.new({"seconds": 0.3}) for _ in range(10)])
    wait_for(lambda: all_in(k, JobState.COMPLETED, 10), timeout=5, what="10 jobs")
    assert time.monotonic() - started < 1.5  # serial would take 3 s


def test_async_jobs_run_concurrently_on_the_event_loop(k: Kathikon) -> None:
    k.start()
    started = time.monotonic()
    k.insert_all([SleepsAsync.new({"seconds": 0.3}) for _ in range(10)])
    wait_for(lambda: all_in(k, JobState.COMPLETED, 10), timeout=5, what="10 jobs")
    assert time.monotonic() - started < 1.5


def test_a_scheduled_job_runs_when_due(k: Kathikon) -> None:
    k.start()
    job = k.insert(Noop, schedule_in=0.2)
    assert job.state == JobState.SCHEDULED
    wait_for(lambda: k.fetch(job.id).state == JobState.COMPLETED, timeout=5, what="the scheduled job")


def test_an_insert_into_a_queue_not_configured_starts_its_dispatcher(k: Kathikon) -> None:
    k.start()
    job = k.insert(Noop, queue="adhoc")
    wait_for(lambda: k.fetch(job.id).state == JobState.COMPLETED, timeout=2, what="the adhoc job")
    assert k._runtime is not None
    assert k._runtime.queues() == {"default": 10, "adhoc": 10}


def test_start_queue_is_idempotent_and_can_resize(k: Kathikon) -> None:
    k.start_queue("reports", 2)
    k.start_queue("reports", 2)
    k.start_queue("reports", 4)
    assert k._runtime is not None
    assert k._runtime.queues()["reports"] == 4
    with pytest.raises(ValueError, match="concurrency"):
        k.start_queue("reports", 0)


def test_jobs_inserted_by_another_process_are_picked_up(k: Kathikon, url: str) -> None:
    k.start()
    with Kathikon(database=url) as other:  # its own connections, as another process would have
        job = other.insert(Noop)
    wait_for(lambda: k.fetch(job.id).state == JobState.COMPLETED, timeout=4, what="the other process's job")


def test_cancelling_a_running_async_job_cancels_its_task_and_drops_its_outcome(k: Kathikon) -> None:
    WaitsForCancel.cancelled.clear()
    k.start()
    with capture("job") as events:
        job = k.insert(WaitsForCancel)
        wait_for(lambda: events.named("job.start"), what="the job to run")
        k.cancel(job.id, running=True)
        wait_for(WaitsForCancel.cancelled.is_set, what="the task to be cancelled")
        wait_for(lambda: events.named("job.ack_dropped"), what="the dropped outcome")
    assert k.fetch(job.id).state == JobState.CANCELLED


def test_cancelling_a_running_sync_job_sets_its_cancel_flag(k: Kathikon) -> None:
    ChecksFlag.saw_flag.clear()
    k.start()
    with capture("job.start") as events:
        job = k.insert(ChecksFlag)
        wait_for(lambda: events, what="the job to run")
    k.cancel(job.id, running=True)
    wait_for(ChecksFlag.saw_flag.is_set, what="the flag")
    assert k.fetch(job.id).state == JobState.CANCELLED


def test_a_job_cancelled_while_its_claim_is_in_flight_is_not_run(k: Kathikon) -> None:
    k.start()
    job = k.insert(Noop, schedule_in=60)
    runtime = k._runtime
    assert runtime is not None
    k.cancel(job.id)
    with capture("job") as events:
        # The claim raced the cancel: storage returned the job although it is cancelled now.
        runtime._call_soon(runtime._dispatchers["default"]._launch, job)
        k.insert(Noop)
        wait_for(lambda: events.named("job.stop"), what="the next job")
    assert job.id not in [md["job"].id for _, _, md in events.named("job.start")]
    assert k.fetch(job.id).state == JobState.CANCELLED


def test_graceful_shutdown_lets_short_jobs_finish_and_releases_the_rest(k: Kathikon) -> None:
    k.start()
    with capture("job") as events:
        quick = k.insert(SleepsSync, {"seconds": 0.1})
        stuck = k.insert(Blocks)
        wait_for(lambda: all_in(k, JobState.EXECUTING, 2), what="both jobs to run")
        k.stop(grace=0.5)
    assert k.fetch(quick.id).state == JobState.COMPLETED
    released = k.fetch(stuck.id)
    assert released.state == JobState.AVAILABLE
    assert released.attempts == 0
    assert released.errors == []
    assert [md["job"].id for _, _, md in events.named("job.release")] == [stuck.id]
    release_gate.set()  # the abandoned thread ends; its late outcome would be fenced out


def test_released_jobs_run_again_on_the_next_start(k: Kathikon) -> None:
    k.start()
    job = k.insert(Blocks)
    wait_for(lambda: k.fetch(job.id).state == JobState.EXECUTING, what="the job to run")
    k.stop(grace=0)
    release_gate.set()
    k.start()
    wait_for(lambda: k.fetch(job.id).state == JobState.COMPLETED, what="the released job to run again")
    assert k.fetch(job.id).attempts == 1


def test_a_second_stop_request_releases_running_jobs_without_waiting_for_the_grace(k: Kathikon) -> None:
    k.start()
    job = k.insert(Blocks)
    wait_for(lambda: k.fetch(job.id).state == JobState.EXECUTING, what="the job to run")
    runtime = k._runtime
    assert runtime is not None
    started = time.monotonic()
    runtime.request_stop(grace=60)
    runtime.request_stop()  # a second SIGTERM/SIGINT
    runtime.stop()
    assert time.monotonic() - started < 10
    assert k.fetch(job.id).state == JobState.AVAILABLE


def test_stop_is_idempotent_and_a_runtime_runs_once(url: str) -> None:
    storage = sqlite_storage(Path(url.removeprefix("sqlite:///")).parent, "other.db")
    runtime = Runtime(Config(database=url), storage)
    runtime.start_in_background()
    assert runtime.running
    runtime.stop(0)
    runtime.stop(0)
    assert not runtime.running
    with pytest.raises(RuntimeError, match="runs once"):
        runtime.start_in_background()
    storage.close()


def test_the_runtime_survives_a_database_restart_without_losing_or_repeating_outcomes(tmp_path: Path) -> None:
    storage = sqlite_storage(tmp_path)
    flaky = FlakyStorage(storage, {"claim", "ack", "stage"}, failures=3)
    runtime = Runtime(Config(database="memory://", poll_interval=0.05, scheduler_interval=0.05), flaky)  # type: ignore[arg-type]
    jobs = storage.insert([Noop.new({"n": n}) for n in range(5)])
    with capture("storage", "job") as events:
        runtime.start_in_background()
        try:
            wait_for(lambda: all(j.state == JobState.COMPLETED for j in storage.all()), what="all jobs")
        finally:
            runtime.stop(1)
    assert flaky.failed == {"claim": 3, "ack": 3, "stage": 3}
    assert len(events.named("storage.error")) >= 6
    assert sorted(md["job"].id for _, _, md in events.named("job.stop")) == sorted(j.id for j in jobs)
    assert all(j.attempts == 1 for j in storage.all())
    storage.close()


def test_run_serves_on_the_callers_event_loop_until_its_stop_event(tmp_path: Path) -> None:
    storage = sqlite_storage(tmp_path)
    job = storage.insert([Noop.new()])[0]
    runtime = Runtime(Config(database="memory://"), storage)

    async def main() -> Any:
        stop = asyncio.Event()
        serving = asyncio.ensure_future(runtime.run(stop))
        while storage.fetch(job.id).state != JobState.COMPLETED:  # type: ignore[union-attr]
            await asyncio.sleep(0.01)
        stop.set()
        return await asyncio.wait_for(serving, 5)

    asyncio.run(main())
    assert not runtime.running
    storage.close()


SCRIPT = '''
import sys, time
import kathikon

class Slow(kathikon.Worker):
    def perform(self, job):
        time.sleep(0.3)

k = kathikon.Kathikon(database=sys.argv[1])
job = k.insert(Slow)
k.start()
while k.fetch(job.id).state != "executing":
    time.sleep(0.01)
print(job.id)
# the script ends here without k.stop()
'''


@pytest.mark.slow
def test_a_script_that_ends_without_stop_still_finishes_its_running_jobs(tmp_path: Path, url: str) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), url], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    with Kathikon(database=url) as k:
        assert k.fetch(done.stdout.strip()).state == JobState.COMPLETED
