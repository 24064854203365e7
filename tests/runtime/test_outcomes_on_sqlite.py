"""Every row of the return-value table, run by a real runtime on a SQLite file: stored state and events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kathikon import Error, Job, JobState, Kathikon, Sleep, Worker
from tests.runtime.runtime_helpers import Events, capture, wait_for


class ReturnsNone(Worker):
    def perform(self, job: Job) -> None:
        return None


class ReturnsValue(Worker):
    async def perform(self, job: Job) -> dict[str, int]:
        return {"rows": 3}


class Sleeps(Worker):
    def perform(self, job: Job) -> Sleep:
        return Sleep(job.args["seconds"])


class Fails(Worker):
    def perform(self, job: Job) -> Error:
        return Error({"status": 503})


class Raises(Worker):
    async def perform(self, job: Job) -> None:
        raise ValueError("bad payload")


class TooSlowSync(Worker):
    timeout = 0.05

    def perform(self, job: Job) -> None:
        time.sleep(0.3)


class TooSlowAsync(Worker):
    timeout = 0.05

    async def perform(self, job: Job) -> None:
        await asyncio.sleep(5)


SETTLED = (JobState.COMPLETED, JobState.SCHEDULED, JobState.RETRYABLE, JobState.DISCARDED)


@pytest.fixture
def run_jobs(tmp_path: Path) -> Iterator[object]:
    k = Kathikon(database=f"sqlite:///{tmp_path / 'jobs.db'}", queues={"default": 10})

    def run(*jobs: Job) -> tuple[list[Job], Events]:
        with capture("job") as events:
            stored = k.insert_all(jobs)
            k.start()
            wait_for(lambda: all(k.fetch(j.id).state in SETTLED for j in stored), what="every outcome")
            wait_for(lambda: len(events.named("job.stop") + events.named("job.exception")) == len(stored),
                     what="every outcome's events")
        return [k.fetch(j.id) for j in stored], events

    yield run
    k.close()


def events_of(events: Events, job: Job) -> list[str]:
    return [".".join(e[1:]) for e, _, md in events if md.get("job") is not None and md["job"].id == job.id]


def test_every_outcome_row_is_stored_and_reported(run_jobs: object) -> None:
    jobs, events = run_jobs(  # type: ignore[operator]
        ReturnsNone.new(), ReturnsValue.new(), Sleeps.new({"seconds": 30}), Sleeps.new({"seconds": -1}),
        Fails.new(), Fails.new(max_attempts=1), Raises.new(), TooSlowSync.new(), TooSlowAsync.new(),
        Job.build("tests.runtime.not_deployed_yet:Later", {}),
    )
    none, value, slept, bad_sleep, retried, discarded, raised, slow_sync, slow_async, unknown = jobs
    assert none.state == value.state == JobState.COMPLETED
    assert events_of(events, none) == ["job.insert", "job.start", "job.stop"]

    assert (slept.state, slept.attempts, slept.errors) == (JobState.SCHEDULED, 0, [])
    assert events_of(events, slept)[-2:] == ["job.stop", "job.sleep"]
    assert bad_sleep.state == JobState.RETRYABLE
    assert bad_sleep.errors[0]["kind"] == "invalid_sleep"
    assert "-1" in bad_sleep.errors[0]["error"]

    assert retried.state == JobState.RETRYABLE
    assert retried.errors[0]["error"] == "{'status': 503}"
    assert events_of(events, retried)[-2:] == ["job.exception", "job.retry"]
    assert discarded.state == JobState.DISCARDED
    assert events_of(events, discarded)[-2:] == ["job.exception", "job.discard"]

    assert raised.errors[0]["kind"] == "exception"
    assert "ValueError: bad payload" in raised.errors[0]["traceback"]
    assert slow_sync.errors[0]["kind"] == slow_async.errors[0]["kind"] == "timeout"
    assert unknown.state == JobState.RETRYABLE
    assert unknown.errors[0]["kind"] == "unknown_worker"
    assert all(job.attempted_by is not None for job in jobs)
