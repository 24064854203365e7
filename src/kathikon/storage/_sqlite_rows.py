"""Conversions between Kathikon values and SQLite rows: jobs, acks, times and JSON.

Times are stored as fixed-width UTC text ('YYYY-MM-DDTHH:MM:SS.ffffffZ'), so they compare and sort as text
in SQL; they come back as aware UTC datetimes. JSON is written compact and never with NaN.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from kathikon._clock import to_utc
from kathikon.job import Job, JobState
from kathikon.storage._stored import encode_json
from kathikon.storage.base import Ack

__all__ = ["decode_job", "decode_json", "decode_time", "decode_utc", "encode_ack", "encode_job", "encode_json",
           "encode_time"]


def encode_job(job: Job) -> tuple[Any, ...]:
    """The ``insert_job`` parameters, in column order, of a job in its stored form (``_stored.stored_form``)."""
    inserted_at = encode_time(job.inserted_at, "inserted_at")
    # Job.build gives both times the same datetime: format it once.
    available_at = inserted_at if job.available_at is job.inserted_at else encode_time(job.available_at,
                                                                                        "available_at")
    return (
        job.id, job.queue, job.worker, encode_json(job.args, "args"), encode_json(job.meta, "meta"),
        encode_json(job.tags, "tags"), job.state.value, job.priority, job.max_attempts, job.attempts,
        encode_json(job.errors, "errors"), encode_time(job.scheduled_at, "scheduled_at"), available_at,
        inserted_at, encode_time(job.started_at, "started_at"), encode_time(job.completed_at, "completed_at"),
        encode_time(job.cancelled_at, "cancelled_at"), job.attempted_by,
    )


def decode_job(row: Any) -> Job:
    """A Job from a result row (sqlite3.Row)."""
    return Job(
        id=row["id"], queue=row["queue"], worker=row["worker"], args=decode_json(row["args"]),
        state=JobState(row["state"]), priority=row["priority"], max_attempts=row["max_attempts"],
        attempts=row["attempts"], scheduled_at=decode_time(row["scheduled_at"]),
        available_at=decode_time(row["available_at"]),
        inserted_at=decode_time(row["inserted_at"]), started_at=decode_time(row["started_at"]),
        completed_at=decode_time(row["completed_at"]), cancelled_at=decode_time(row["cancelled_at"]),
        errors=decode_json(row["errors"]), meta=decode_json(row["meta"]), tags=decode_json(row["tags"]),
        attempted_by=row["attempted_by"],
    )


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
    return value.isoformat(timespec="microseconds")[:-6] + "Z"


def decode_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def decode_utc(text: str) -> datetime:
    """Python 3.11 reads the trailing 'Z' as UTC."""
    return datetime.fromisoformat(text)


_EMPTY_JSON: dict[str, dict[str, Any] | list[Any]] = {"{}": {}, "[]": []}


def decode_json(text: str) -> Any:
    """Parsed JSON; the empty object and list (most meta, tags and errors) without the parser."""
    empty = _EMPTY_JSON.get(text)
    if empty is not None:
        return type(empty)()
    return json.loads(text)
