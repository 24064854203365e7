"""The outcome of one execution, decided without I/O: what perform did + the job + now → an ``Ack``.

The worker's return values (see ``kathikon.results``):

    None or any plain value  → completed
    Sleep(n), n a positive int → scheduled at now + n, attempt given back, no error
    Sleep(anything else)       → error "invalid_sleep", retried like any error
    Error(reason)              → error "error"
    raised exception           → error "exception" (with the traceback)
    timeout / unknown worker   → error "timeout" / "unknown_worker" (built by the executor)

An error makes the job ``retryable`` at now + backoff, or ``discarded`` once ``attempts >= max_attempts``
(``storage.claim`` already counted the current attempt). A ``Decision`` also carries the telemetry to emit
once the ack is applied, so a dropped (fenced-out) ack never reports a state the job did not reach.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeAlias

from kathikon.job import Job, JobState
from kathikon.results import Error, Sleep
from kathikon.storage.base import Ack
from kathikon.telemetry import Event

__all__ = ["Decision", "Emission", "Failure", "Result", "Returned", "decide", "release", "queue_time"]

JOB_STOP: Event = ("kathikon", "job", "stop")
JOB_EXCEPTION: Event = ("kathikon", "job", "exception")
JOB_SLEEP: Event = ("kathikon", "job", "sleep")
JOB_RETRY: Event = ("kathikon", "job", "retry")
JOB_DISCARD: Event = ("kathikon", "job", "discard")
JOB_RELEASE: Event = ("kathikon", "job", "release")


@dataclass(frozen=True, slots=True)
class Returned:
    """``perform`` returned ``value`` after ``duration`` seconds."""

    value: object
    duration: float = 0.0


@dataclass(frozen=True, slots=True)
class Failure:
    """The attempt failed without a return value: ``kind`` is exception, timeout, unknown_worker, cancelled."""

    kind: str
    error: str
    traceback: str | None = None
    duration: float = 0.0

    @classmethod
    def from_exception(cls, exc: BaseException, duration: float = 0.0) -> Failure:
        text = "".join(traceback.format_exception(exc))
        return cls("exception", describe_exception(exc), text, duration)


Result: TypeAlias = Returned | Failure


@dataclass(frozen=True, slots=True)
class Emission:
    """One telemetry event to send: ``telemetry.emit(event, measurements, metadata)``."""

    event: Event
    measurements: Mapping[str, Any]
    metadata: Mapping[str, Any]


class Decision:
    """The ack to write, the job as it will be stored, and the events to emit once the ack applied.

    Only the ack is built up front: the stored ``job`` copy and the ``emissions`` cost more than the rest of
    the decision and are needed only when a telemetry handler listens (or a test looks), so they are built on
    first access by ``build``. ``events`` names the events ``emissions`` will hold.
    """

    __slots__ = ("_build", "_built", "ack", "events")

    def __init__(self, ack: Ack, events: tuple[Event, ...],
                 build: Callable[[], tuple[Job, tuple[Emission, ...]]]) -> None:
        self.ack = ack
        self.events = events
        self._build = build
        self._built: tuple[Job, tuple[Emission, ...]] | None = None

    @property
    def job(self) -> Job:
        return self._stored()[0]

    @property
    def emissions(self) -> tuple[Emission, ...]:
        return self._stored()[1]

    def _stored(self) -> tuple[Job, tuple[Emission, ...]]:
        if self._built is None:
            self._built = self._build()
        return self._built


def decide(job: Job, result: Result, *, now: datetime, owner: str,
           backoff: Callable[[Job], float] | None = None) -> Decision:
    """The outcome of ``result`` for the executing ``job``. ``backoff`` is the worker's (default: the job's)."""
    if type(result) is Returned and not isinstance(result.value, (Sleep, Error)):  # most jobs: no patterns to try
        return _completed(job, result.duration, now, owner)
    match result:
        case Returned(Sleep() as sleep) if sleep.valid:
            return _slept(job, sleep.seconds, result.duration, now, owner)
        case Returned(Sleep() as sleep):
            message = f"Sleep seconds must be a positive integer, got {sleep.seconds!r}"
            return _failed(job, Failure("invalid_sleep", message, duration=result.duration), now, owner, backoff)
        case Returned(Error(reason)):
            return _failed(job, Failure("error", _reason_text(reason), duration=result.duration),
                           now, owner, backoff)
        case Returned():
            return _completed(job, result.duration, now, owner)
        case Failure():
            return _failed(job, result, now, owner, backoff)


def release(job: Job, *, now: datetime, owner: str) -> Decision:
    """Give an unfinished job back at shutdown: ``available`` now, its attempt not counted."""
    ack = Ack(job.id, job.attempts, owner, JobState.AVAILABLE, now, available_at=now)
    return Decision(ack, (JOB_RELEASE,), partial(_released_view, job, now))


def queue_time(job: Job) -> float:
    """Seconds the job waited between becoming available and being claimed."""
    if job.started_at is None or job.available_at is None:
        return 0.0
    return max(0.0, (job.started_at - job.available_at).total_seconds())


def describe_exception(exc: BaseException) -> str:
    """``"ValueError: bad input"``, or the class name alone for an exception without a message."""
    name = type(exc).__qualname__
    text = str(exc)
    return f"{name}: {text}" if text else name


def _completed(job: Job, duration: float, now: datetime, owner: str) -> Decision:
    ack = Ack(job.id, job.attempts, owner, JobState.COMPLETED, now)
    return Decision(ack, (JOB_STOP,), partial(_completed_view, job, duration, now))


def _slept(job: Job, seconds: int, duration: float, now: datetime, owner: str) -> Decision:
    at = now + timedelta(seconds=seconds)
    ack = Ack(job.id, job.attempts, owner, JobState.SCHEDULED, now, available_at=at)
    return Decision(ack, (JOB_STOP, JOB_SLEEP), partial(_slept_view, job, seconds, duration, at))


def _failed(job: Job, failure: Failure, now: datetime, owner: str,
            backoff: Callable[[Job], float] | None) -> Decision:
    entry = _error_entry(job, failure, now)
    if job.attempts >= job.max_attempts:
        ack = Ack(job.id, job.attempts, owner, JobState.DISCARDED, now, error=entry)
        return Decision(ack, (JOB_EXCEPTION, JOB_DISCARD), partial(_failed_view, job, failure, ack, None))
    delay = _backoff_seconds(job, backoff)
    ack = Ack(job.id, job.attempts, owner, JobState.RETRYABLE, now, available_at=now + timedelta(seconds=delay),
              error=entry)
    return Decision(ack, (JOB_EXCEPTION, JOB_RETRY), partial(_failed_view, job, failure, ack, delay))


# The stored job and the events of each outcome, built only when read (see ``Decision``).

def _released_view(job: Job, now: datetime) -> tuple[Job, tuple[Emission, ...]]:
    stored = job.with_changes(state=JobState.AVAILABLE, available_at=now, attempts=job.attempts - 1)
    running = (now - job.started_at).total_seconds() if job.started_at else 0.0
    return stored, (Emission(JOB_RELEASE, {"duration": running}, {"job": stored}),)


def _completed_view(job: Job, duration: float, now: datetime) -> tuple[Job, tuple[Emission, ...]]:
    stored = job.with_changes(state=JobState.COMPLETED, completed_at=now)
    return stored, (Emission(JOB_STOP, _timing(job, duration), {"job": stored, "state": JobState.COMPLETED}),)


def _slept_view(job: Job, seconds: int, duration: float, at: datetime) -> tuple[Job, tuple[Emission, ...]]:
    stored = job.with_changes(state=JobState.SCHEDULED, scheduled_at=at, available_at=at,
                              attempts=job.attempts - 1)
    stop = Emission(JOB_STOP, _timing(job, duration), {"job": stored, "state": JobState.SCHEDULED})
    sleep = Emission(JOB_SLEEP, {"seconds": seconds}, {"job": stored, "scheduled_at": at})
    return stored, (stop, sleep)


def _failed_view(job: Job, failure: Failure, ack: Ack, delay: float | None) -> tuple[Job, tuple[Emission, ...]]:
    """``delay`` None: discarded; else retryable after ``delay`` seconds (``ack.available_at``)."""
    meta = {"kind": failure.kind, "error": failure.error}
    errors = [*job.errors, ack.error]
    if delay is None:
        stored = job.with_changes(state=JobState.DISCARDED, completed_at=ack.at, errors=errors)
        after = Emission(JOB_DISCARD, {}, {"job": stored, **meta})
    else:
        stored = job.with_changes(state=JobState.RETRYABLE, available_at=ack.available_at, errors=errors)
        after = Emission(JOB_RETRY, {"backoff": delay}, {"job": stored, "available_at": ack.available_at, **meta})
    exception = Emission(JOB_EXCEPTION, _timing(job, failure.duration), {"job": stored, "state": stored.state,
                                                                          **meta})
    return stored, (exception, after)


def _error_entry(job: Job, failure: Failure, now: datetime) -> dict[str, Any]:
    entry: dict[str, Any] = {"attempt": job.attempts, "at": now.isoformat(), "kind": failure.kind,
                             "error": failure.error}
    if failure.traceback is not None:
        entry["traceback"] = failure.traceback
    return entry


def _backoff_seconds(job: Job, backoff: Callable[[Job], float] | None) -> float:
    """The worker's backoff when it gives a usable number of seconds, else the default curve."""
    default = float(Job.backoff_seconds(job.attempts))
    if backoff is None:
        return default
    try:
        seconds = backoff(job)
    except Exception:
        return default  # a broken override must not lose the retry
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return default
    return max(0.0, float(seconds))


def _reason_text(reason: object) -> str:
    if isinstance(reason, str):
        return reason
    if isinstance(reason, BaseException):
        return describe_exception(reason)
    return repr(reason)


def _timing(job: Job, duration: float) -> dict[str, float]:
    return {"duration": duration, "queue_time": queue_time(job)}
