"""Conversions between Kathikon values and SQLite rows: jobs, acks, times and JSON.

Times are stored as fixed-width UTC text ('YYYY-MM-DDTHH:MM:SS.ffffffZ'), so they compare and sort as text
in SQL; they come back as aware UTC datetimes. JSON is written compact and never with NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from kathikon import _json
from kathikon._clock import to_utc
from kathikon.job import Job, JobState, assemble_job
from kathikon.storage._stored import encode_json, json_text
from kathikon.storage.base import Ack

__all__ = ["decode_job", "decode_jobs", "decode_json", "decode_time", "decode_utc", "encode_ack", "encode_completions",
           "encode_job", "encode_json", "encode_new_job", "encode_time"]

# JobState(text) and state.value go through the enum machinery (0.2-0.3 µs each); these are dict lookups.
_STATE_TEXT = {state: state.value for state in JobState}
_STATE_OF = {state.value: state for state in JobState}
_NO_DEFAULTS: frozenset[str] = frozenset()
# The columns a job is read from, in the order of Job's fields.
_JOB_COLUMNS = ("id", "queue", "worker", "args", "state", "priority", "max_attempts", "attempts", "scheduled_at",
                "available_at", "inserted_at", "started_at", "completed_at", "cancelled_at", "errors", "meta",
                "tags", "attempted_by")


def encode_job(job: Job) -> tuple[Any, ...]:
    """The ``insert_job`` parameters, in column order, of a job in its stored form (``_stored.stored_form``)."""
    inserted_at, available_at = _insertion_times(job)
    return (
        job.id, job.queue, job.worker, json_text(job.args), json_text(job.meta), json_text(job.tags),
        _STATE_TEXT[job.state], job.priority, job.max_attempts, job.attempts, json_text(job.errors),
        encode_time(job.scheduled_at, "scheduled_at"), available_at, inserted_at,
        encode_time(job.started_at, "started_at"), encode_time(job.completed_at, "completed_at"),
        encode_time(job.cancelled_at, "cancelled_at"), job.attempted_by,
    )


def encode_new_job(job: Job) -> tuple[Any, ...]:
    """The ``insert_new_job`` parameters of a stored-form job that never ran (``_stored.never_ran``)."""
    inserted_at, available_at = _insertion_times(job)
    return (
        job.id, job.queue, job.worker, json_text(job.args), json_text(job.meta), json_text(job.tags),
        _STATE_TEXT[job.state], job.priority, job.max_attempts,
        None if job.scheduled_at is None else encode_time(job.scheduled_at, "scheduled_at"), available_at, inserted_at,
    )


def _insertion_times(job: Job) -> tuple[str | None, str | None]:
    inserted_at = encode_time(job.inserted_at, "inserted_at")
    if job.available_at is job.inserted_at:  # Job.build gives both the same datetime: format it once
        return inserted_at, inserted_at
    return inserted_at, encode_time(job.available_at, "available_at")


def decode_jobs(rows: Sequence[Any]) -> list[Job]:
    """Jobs from the result rows (sqlite3.Row) of one statement: each row is read by column position, found
    once for all of them (a read by name searches the columns)."""
    if not rows:
        return []
    get = _job_columns(rows[0].keys())
    return [_decode(get(row)) for row in rows]


def decode_job(row: Any) -> Job:
    """A Job from a result row (sqlite3.Row)."""
    return _decode(_job_columns(row.keys())(row))


def _job_columns(keys: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    return itemgetter(*(keys.index(column) for column in _JOB_COLUMNS))


def _decode(values: tuple[Any, ...]) -> Job:
    (job_id, queue, worker, args, state, priority, max_attempts, attempts, scheduled_at, available_at, inserted_at,
     started_at, completed_at, cancelled_at, errors, meta, tags, attempted_by) = values
    return assemble_job(
        Job, job_id, queue, worker, decode_json(args), _STATE_OF.get(state) or JobState(state), priority,
        max_attempts, attempts, decode_time(scheduled_at), decode_time(available_at), decode_time(inserted_at),
        decode_time(started_at), decode_time(completed_at), decode_time(cancelled_at), decode_json(errors),
        decode_json(meta), decode_json(tags), attempted_by, _NO_DEFAULTS,
    )


def encode_completions(acks: Sequence[Ack]) -> str:
    """The ``complete_jobs`` batch: a JSON array of [id, attempt, completed_at]."""
    return _json.dumps_plain([[ack.job_id, ack.attempt, encode_time(ack.at, "at")] for ack in acks])


def encode_ack(ack: Ack) -> dict[str, Any]:
    """The columns an ack writes (see ``Ack``); None keeps a column as it is."""
    at, available_at = encode_time(ack.at, "at"), encode_time(ack.available_at, "available_at")
    finished = ack.state in (JobState.COMPLETED, JobState.DISCARDED)
    return {
        "id": ack.job_id, "attempt": ack.attempt, "owner": ack.owner, "state": JobState(ack.state).value,
        "given_back": 1 if ack.gives_back_attempt else 0,
        "completed_at": at if finished else None,
        "scheduled_at": available_at if ack.state == JobState.SCHEDULED else None,
        "available_at": _ack_available_at(ack.state, at, available_at),
        "error": None if ack.error is None else encode_json(ack.error, "error"),
    }


def _ack_available_at(state: JobState, at: str | None, available_at: str | None) -> str | None:
    if state == JobState.AVAILABLE:
        return available_at or at
    return available_at if state in (JobState.RETRYABLE, JobState.SCHEDULED) else None


def encode_time(value: datetime | None, field: str) -> str | None:
    """Fixed-width UTC text ('YYYY-MM-DDTHH:MM:SS.ffffffZ'), so stored times compare and sort as text."""
    if value is None:
        return None
    if value.tzinfo is not UTC:  # the common case (every time Kathikon makes is UTC) skips the conversion
        value = to_utc(value, field)
    # The text isoformat gives, formatted from the fields: 0.35 µs less than isoformat on an aware datetime.
    return _TIME_TEXT % (value.year, value.month, value.day, value.hour, value.minute, value.second,
                         value.microsecond)


_TIME_TEXT = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"


_fromisoformat = datetime.fromisoformat


def decode_time(text: str | None) -> datetime | None:
    return None if text is None else _fromisoformat(text)


def decode_utc(text: str) -> datetime:
    """Python 3.11 reads the trailing 'Z' as UTC."""
    return datetime.fromisoformat(text)


_EMPTY_JSON: dict[str, dict[str, Any] | list[Any]] = {"{}": {}, "[]": []}


def decode_json(text: str) -> Any:
    """Parsed JSON; the empty object and list (most meta, tags and errors) without the parser."""
    empty = _EMPTY_JSON.get(text)
    if empty is not None:
        return type(empty)()
    return _json.loads(text)
