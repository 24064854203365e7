"""Conversions between Kathikon values and PostgreSQL rows, and driver errors mapped to Kathikon errors.

JSON columns are ``jsonb`` (written with psycopg's ``Jsonb`` wrapper, read back as Python values); times are
``timestamptz`` and come back converted to aware UTC whatever the session's TimeZone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg_pool
from psycopg.types.json import Jsonb

from kathikon._clock import utcnow
from kathikon._json import ENCODER
from kathikon.exceptions import DatabaseUnavailableError, StorageError
from kathikon.job import Job, JobState, assemble_job
from kathikon.storage._stored import json_text, stored_form
from kathikon.storage.base import Ack, NodeRecord

__all__ = ["ack_records", "claim_order", "copy_rows", "job_from_row", "jobs_json", "mapped_errors", "node_from_row",
           "node_params", "stored_jobs"]


# JobState(text) and state.value go through the enum machinery (0.2-0.3 µs each); these are dict lookups.
_STATE_TEXT = {state: state.value for state in JobState}
_STATE_OF = {state.value: state for state in JobState}
_NO_DEFAULTS: frozenset[str] = frozenset()


def stored_jobs(jobs: Sequence[Job]) -> list[Job]:
    """The jobs exactly as the database will hold them: nearly always the given ones (see ``_stored``), so
    nothing is decoded back. Their JSON values are plain (``stored_form`` normalized any other)."""
    now = utcnow()
    return [stored_form(job, now) for job in jobs]


def jobs_json(stored: Sequence[Job]) -> str:
    """Stored jobs as the one JSON array of objects ``insert_jobs`` reads (encoding cannot fail: plain JSON)."""
    return ENCODER.encode([_record(job) for job in stored])


def copy_rows(stored: Sequence[Job]) -> list[tuple[Any, ...]]:
    """Stored jobs as ``copy_jobs`` rows, in column order."""
    return [(job.id, job.queue, job.worker, json_text(job.args), json_text(job.meta), json_text(job.tags),
             _STATE_TEXT[job.state], job.priority, job.max_attempts, job.attempts, json_text(job.errors),
             job.scheduled_at, job.available_at, job.inserted_at, job.started_at, job.completed_at,
             job.cancelled_at, job.attempted_by) for job in stored]


def _record(job: Job) -> dict[str, Any]:
    return {"id": job.id, "queue": job.queue, "worker": job.worker, "args": job.args, "meta": job.meta,
            "tags": job.tags, "state": job.state.value, "priority": job.priority, "max_attempts": job.max_attempts,
            "attempts": job.attempts, "errors": job.errors, "scheduled_at": _iso(job.scheduled_at),
            "available_at": _iso(job.available_at), "inserted_at": _iso(job.inserted_at),
            "started_at": _iso(job.started_at), "completed_at": _iso(job.completed_at),
            "cancelled_at": _iso(job.cancelled_at), "attempted_by": job.attempted_by}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def job_from_row(row: Mapping[str, Any]) -> Job:
    return assemble_job(
        Job, row["id"], row["queue"], row["worker"], row["args"], _STATE_OF.get(row["state"]) or JobState(row["state"]),
        row["priority"], row["max_attempts"], row["attempts"], _utc(row["scheduled_at"]), _utc(row["available_at"]),
        _utc(row["inserted_at"]), _utc(row["started_at"]), _utc(row["completed_at"]), _utc(row["cancelled_at"]),
        row["errors"], row["meta"], row["tags"], row["attempted_by"], _NO_DEFAULTS,
    )


def claim_order(job: Job) -> tuple[int, datetime, str]:
    """The sort key of claim order: priority descending, then available_at, then id."""
    assert job.available_at is not None  # the column is NOT NULL
    return -job.priority, job.available_at, job.id


def ack_records(acks: Sequence[Ack]) -> Jsonb:
    """Every ack as one JSON array for ``jsonb_to_recordset``; ``n`` is the ack's position in the batch."""
    return Jsonb([_ack_record(n, ack) for n, ack in enumerate(acks)])


def _ack_record(n: int, ack: Ack) -> dict[str, Any]:
    record: dict[str, Any] = {"n": n, "job_id": ack.job_id, "attempt": ack.attempt, "owner": ack.owner,
                              "state": JobState(ack.state).value, "at": ack.at.isoformat()}
    if ack.available_at is not None:
        record["available_at"] = ack.available_at.isoformat()
    if ack.error is not None:
        record["error"] = _json_copy(ack.error)
    return record


def node_params(node: NodeRecord) -> dict[str, Any]:
    return {"name": node.name, "started_at": node.started_at, "heartbeat_at": node.heartbeat_at,
            "queues": Jsonb(dict(node.queues)), "meta": Jsonb(_json_copy(node.meta))}


def node_from_row(row: Mapping[str, Any]) -> NodeRecord:
    return NodeRecord(name=row["name"], started_at=_utc_required(row["started_at"]),
                      heartbeat_at=_utc_required(row["heartbeat_at"]), queues=row["queues"], meta=row["meta"])


@contextmanager
def mapped_errors(action: str) -> Iterator[None]:
    """Raise driver errors as Kathikon errors: unreachable → DatabaseUnavailableError, the rest StorageError."""
    try:
        yield
    except psycopg_pool.PoolClosed as exc:
        raise StorageError(f"PostgreSQL storage is closed (during {action})") from exc
    except psycopg_pool.PoolTimeout as exc:
        raise DatabaseUnavailableError(f"PostgreSQL is unavailable (during {action}): no connection could be "
                                       f"made or borrowed in time; {exc}") from exc
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(f"PostgreSQL is unavailable (during {action}): {exc}") from exc
    except psycopg.Error as exc:
        raise StorageError(f"PostgreSQL refused {action}: {exc}") from exc


def _json_copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is UTC:  # a session in UTC: nothing to convert
        return value
    return value.astimezone(UTC)


def _utc_required(value: datetime) -> datetime:
    return value.astimezone(UTC)
