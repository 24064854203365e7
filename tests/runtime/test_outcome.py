"""outcome.decide: every row of the return-value table, as pure data (no storage, no clock)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kathikon import Error, Job, JobState, Sleep
from kathikon.runtime.outcome import Failure, Returned, decide, release
from tests.runtime.runtime_helpers import OWNER, T0, at


def executing(attempts: int = 1, max_attempts: int = 20, **changes: object) -> Job:
    job = Job.build("tests.workers:NoopWorker", {"n": 1}, max_attempts=max_attempts, now=T0)
    return job.with_changes(state=JobState.EXECUTING, attempts=attempts, started_at=at(2), attempted_by=OWNER,
                            **changes)


def names(decision: object) -> list[str]:
    return [".".join(e.event[1:]) for e in decision.emissions]  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", [None, 42, "done", {"a": 1}])
def test_none_or_any_plain_return_value_completes_the_job(value: object) -> None:
    job = executing()
    decision = decide(job, Returned(value, duration=0.5), now=at(3), owner=OWNER)
    assert decision.ack.state == JobState.COMPLETED
    assert (decision.ack.job_id, decision.ack.attempt, decision.ack.owner, decision.ack.at) == (
        job.id, 1, OWNER, at(3))
    assert decision.job.state == JobState.COMPLETED
    assert decision.job.completed_at == at(3)
    assert names(decision) == ["job.stop"]
    stop = decision.emissions[0]
    assert stop.measurements == {"duration": 0.5, "queue_time": 2.0}
    assert stop.metadata["state"] == JobState.COMPLETED


def test_a_sleeping_job_gives_its_attempt_back_and_records_no_error() -> None:
    job = executing(attempts=3)
    decision = decide(job, Returned(Sleep(60)), now=at(3), owner=OWNER)
    assert decision.ack.state == JobState.SCHEDULED
    assert decision.ack.available_at == at(63)
    assert decision.ack.error is None
    assert decision.job.attempts == 2
    assert decision.job.scheduled_at == at(63)
    assert names(decision) == ["job.stop", "job.sleep"]
    assert decision.emissions[1].measurements == {"seconds": 60}


@pytest.mark.parametrize("seconds", [0, -5, 1.5, True, "10", None])
def test_an_invalid_sleep_is_an_invalid_sleep_error_retried_like_any_error(seconds: object) -> None:
    decision = decide(executing(), Returned(Sleep(seconds)), now=at(3), owner=OWNER)
    assert decision.ack.state == JobState.RETRYABLE
    assert decision.ack.error is not None
    assert decision.ack.error["kind"] == "invalid_sleep"
    assert repr(seconds) in decision.ack.error["error"]
    assert names(decision) == ["job.exception", "job.retry"]


def test_an_error_result_retries_after_the_default_backoff_with_an_error_entry() -> None:
    job = executing(attempts=2)
    decision = decide(job, Returned(Error("card declined")), now=at(3), owner=OWNER)
    assert decision.ack.state == JobState.RETRYABLE
    assert decision.ack.available_at == at(3) + timedelta(seconds=Job.backoff_seconds(2))
    assert decision.ack.error == {"attempt": 2, "at": at(3).isoformat(), "kind": "error", "error": "card declined"}
    assert decision.job.errors == [decision.ack.error]
    exception, retry = decision.emissions
    assert exception.metadata["kind"] == "error"
    assert exception.metadata["state"] == JobState.RETRYABLE
    assert retry.measurements == {"backoff": 20.0}


@pytest.mark.parametrize(("reason", "text"), [("boom", "boom"), ({"status": 503}, "{'status': 503}"),
                                             (ValueError("bad"), "ValueError: bad")])
def test_an_error_reason_of_any_type_is_recorded_as_text(reason: object, text: str) -> None:
    decision = decide(executing(), Returned(Error(reason)), now=at(3), owner=OWNER)
    assert decision.ack.error is not None
    assert decision.ack.error["error"] == text


def test_a_raised_exception_is_recorded_with_its_traceback() -> None:
    try:
        raise RuntimeError("exploded")
    except RuntimeError as exc:
        failure = Failure.from_exception(exc, duration=0.25)
    decision = decide(executing(), failure, now=at(3), owner=OWNER)
    assert decision.ack.error is not None
    assert decision.ack.error["kind"] == "exception"
    assert decision.ack.error["error"] == "RuntimeError: exploded"
    assert "Traceback" in decision.ack.error["traceback"]
    assert "exploded" in decision.ack.error["traceback"]
    assert decision.emissions[0].measurements["duration"] == 0.25


@pytest.mark.parametrize("kind", ["timeout", "unknown_worker", "cancelled"])
def test_executor_failures_keep_their_kind(kind: str) -> None:
    decision = decide(executing(), Failure(kind, "text"), now=at(3), owner=OWNER)
    assert decision.ack.error is not None
    assert decision.ack.error["kind"] == kind
    assert "traceback" not in decision.ack.error


def test_the_last_allowed_attempt_discards_the_job() -> None:
    job = executing(attempts=3, max_attempts=3)
    decision = decide(job, Returned(Error("still failing")), now=at(3), owner=OWNER)
    assert decision.ack.state == JobState.DISCARDED
    assert decision.job.completed_at == at(3)
    assert names(decision) == ["job.exception", "job.discard"]
    assert decision.emissions[1].metadata["error"] == "still failing"


def test_a_worker_backoff_override_sets_the_retry_time() -> None:
    decision = decide(executing(), Returned(Error("x")), now=at(3), owner=OWNER, backoff=lambda job: 90)
    assert decision.ack.available_at == at(93)


@pytest.mark.parametrize("broken", [lambda job: 1 / 0, lambda job: "soon", lambda job: float("nan")])
def test_a_broken_backoff_override_falls_back_to_the_default(broken: object) -> None:
    decision = decide(executing(), Returned(Error("x")), now=at(3), owner=OWNER, backoff=broken)  # type: ignore[arg-type]
    assert decision.ack.available_at == at(3) + timedelta(seconds=5)


def test_a_release_gives_the_job_back_available_without_counting_the_attempt() -> None:
    job = executing(attempts=4)
    decision = release(job, now=at(10), owner=OWNER)
    assert (decision.ack.state, decision.ack.available_at, decision.ack.attempt) == (JobState.AVAILABLE, at(10), 4)
    assert decision.job.attempts == 3
    assert names(decision) == ["job.release"]
    assert decision.emissions[0].measurements == {"duration": 8.0}
