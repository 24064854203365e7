"""The job an insert stores, known without reading it back.

``insert`` returns the jobs as stored: equal to what ``fetch`` returns later. For the jobs Kathikon builds
(``Job.build``: plain JSON values, aware UTC times, both insertion times set) that is the job itself, so a bulk
insert neither copies nor decodes anything. Any other job is normalized here the way the database will hold
it: JSON values encoded and decoded (tuples become lists, non-string keys strings), times converted to UTC,
a missing ``inserted_at`` set to ``now`` and a missing ``available_at`` to ``inserted_at``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from kathikon._clock import to_utc
from kathikon._json import ENCODER, dumps_plain, round_trips
from kathikon.job import Job, JobState

__all__ = ["encode_json", "json_text", "never_ran", "stored_form"]


def stored_form(job: Job, now: datetime) -> Job:
    """``job`` as the database holds it once inserted at ``now``; raises TypeError/ValueError naming a field
    whose value cannot be stored (not JSON, a naive time)."""
    if _already_stored(job):
        return job
    inserted_at = _utc(job.inserted_at, "inserted_at") or now
    return job.with_changes(
        state=JobState(job.state), args=_json_copy(job.args, "args"), meta=_json_copy(job.meta, "meta"),
        tags=_json_copy(job.tags, "tags"), errors=_json_copy(job.errors, "errors"), inserted_at=inserted_at,
        available_at=_utc(job.available_at, "available_at") or inserted_at,
        scheduled_at=_utc(job.scheduled_at, "scheduled_at"), started_at=_utc(job.started_at, "started_at"),
        completed_at=_utc(job.completed_at, "completed_at"), cancelled_at=_utc(job.cancelled_at, "cancelled_at"),
    )


def never_ran(job: Job) -> bool:
    """True for a job (in its stored form) whose run columns all hold their defaults: no attempt, no error,
    not started, finished or cancelled. Its insert can leave those columns out (every new job is one)."""
    return (job.attempts == 0 and job.errors == [] and job.started_at is None and job.completed_at is None
            and job.cancelled_at is None and job.attempted_by is None)


def _already_stored(job: Job) -> bool:
    # Spelled out, without helper calls: it runs once a job on every insert.
    inserted_at, available_at, scheduled_at = job.inserted_at, job.available_at, job.scheduled_at
    started_at, completed_at, cancelled_at = job.started_at, job.completed_at, job.cancelled_at
    meta, tags, errors = job.meta, job.tags, job.errors
    return (
        type(job.state) is JobState
        and inserted_at is not None and inserted_at.tzinfo is UTC
        and available_at is not None and available_at.tzinfo is UTC
        and (scheduled_at is None or scheduled_at.tzinfo is UTC) and (started_at is None or started_at.tzinfo is UTC)
        and (completed_at is None or completed_at.tzinfo is UTC)
        and (cancelled_at is None or cancelled_at.tzinfo is UTC)
        and round_trips(job.args)
        and ((type(meta) is dict and not meta) or round_trips(meta))  # empty, as most are, or plain
        and ((type(tags) is list and not tags) or round_trips(tags))
        and ((type(errors) is list and not errors) or round_trips(errors))
    )


def _utc(value: datetime | None, field: str) -> datetime | None:
    return None if value is None else to_utc(value, field)


def _json_copy(value: Any, field: str) -> Any:
    return value if round_trips(value) else json.loads(encode_json(value, field))


def encode_json(value: object, field: str) -> str:
    """Compact JSON text, never NaN; TypeError naming ``field`` for a value JSON cannot hold."""
    if not value and isinstance(value, (dict, list)):
        return "[]" if isinstance(value, list) else "{}"
    try:
        return ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{field} must be JSON-serializable: {exc} (in {value!r:.200})") from None


_EMPTY_TEXT: dict[type, str] = {dict: "{}", list: "[]"}


def json_text(value: Any) -> str:
    """The JSON text of a value of a stored-form job, which is plain JSON (``round_trips``): it cannot fail, and
    costs less than ``encode_json`` (no encoder built per call; the empty dict and list without one)."""
    if not value:
        empty = _EMPTY_TEXT.get(type(value))
        if empty is not None:
            return empty
    return dumps_plain(value)
