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
from kathikon.exceptions import DatabaseUnavailableError, StorageError
from kathikon.job import Job, JobState
from kathikon.storage.base import Ack, NodeRecord

__all__ = ["ack_records", "claim_order", "encode_jobs", "job_from_row", "mapped_errors", "node_from_row",
           "node_params"]


def encode_jobs(jobs: Sequence[Job]) -> tuple[list[Job], list[tuple[Any, ...]]]:
    """The jobs exactly as the database will hold them, and their rows for ``copy_jobs`` (column order).

    Each JSON field is serialized once: the text goes to the database and is parsed back for the returned job,
    so the caller sees what a later fetch returns (tuples become lists, and so on).
    """
    stored, rows = [], []
    for job in jobs:
        args, meta, tags, errors = (json.dumps(value) for value in (job.args, job.meta, job.tags, job.errors))
        inserted_at = job.inserted_at or utcnow()
        # A job built by hand without available_at is due from its insertion on.
        available_at = job.available_at or inserted_at
        state = JobState(job.state)
        stored.append(job.with_changes(state=state, args=json.loads(args), meta=json.loads(meta),
                                       tags=json.loads(tags), errors=json.loads(errors), inserted_at=inserted_at,
                                       available_at=available_at))
        rows.append((job.id, job.queue, job.worker, args, meta, tags, state.value, job.priority, job.max_attempts,
                     job.attempts, errors, job.scheduled_at, available_at, inserted_at, job.started_at,
                     job.completed_at, job.cancelled_at, job.attempted_by))
    return stored, rows


def job_from_row(row: Mapping[str, Any]) -> Job:
    return Job(
        id=row["id"], queue=row["queue"], worker=row["worker"], args=row["args"], state=JobState(row["state"]),
        priority=row["priority"], max_attempts=row["max_attempts"], attempts=row["attempts"],
        scheduled_at=_utc(row["scheduled_at"]), available_at=_utc(row["available_at"]),
        inserted_at=_utc(row["inserted_at"]), started_at=_utc(row["started_at"]),
        completed_at=_utc(row["completed_at"]), cancelled_at=_utc(row["cancelled_at"]),
        errors=row["errors"], meta=row["meta"], tags=row["tags"], attempted_by=row["attempted_by"],
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
    return None if value is None else value.astimezone(UTC)


def _utc_required(value: datetime) -> datetime:
    return value.astimezone(UTC)
