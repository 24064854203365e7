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
from kathikon._json import ENCODER, round_trips
from kathikon.job import Job, JobState

__all__ = ["encode_json", "stored_form"]


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


def _already_stored(job: Job) -> bool:
    inserted_at, available_at = job.inserted_at, job.available_at
    return (
        type(job.state) is JobState
        and inserted_at is not None and inserted_at.tzinfo is UTC
        and available_at is not None and available_at.tzinfo is UTC
        and _utc_or_none(job.scheduled_at) and _utc_or_none(job.started_at)
        and _utc_or_none(job.completed_at) and _utc_or_none(job.cancelled_at)
        and round_trips(job.args) and round_trips(job.meta) and round_trips(job.tags) and round_trips(job.errors)
    )


def _utc_or_none(value: datetime | None) -> bool:
    return value is None or value.tzinfo is UTC


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
