"""Helpers shared by the node, leader, lifeline and coordinator tests: a fixed clock and seeded rows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kathikon import telemetry
from kathikon.job import Job
from kathikon.storage.base import NodeRecord, Storage

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
Event = tuple[tuple[str, ...], Mapping[str, Any], Mapping[str, Any]]


def at(seconds: float) -> datetime:
    """T0 plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def node(name: str, heartbeat: datetime, **meta: Any) -> NodeRecord:
    return NodeRecord(name, started_at=T0 - timedelta(hours=1), heartbeat_at=heartbeat, queues={"default": 2},
                      meta=meta)


def executing_job(storage: Storage, owner: str, started: datetime, max_attempts: int = 20) -> Job:
    """Insert a job and claim it as ``owner`` at ``started``: the job is executing on that node."""
    job = storage.insert([Job.build("tests.workers:NoopWorker", {}, max_attempts=max_attempts,
                                    now=started - timedelta(seconds=1))])[0]
    claimed = storage.claim("default", 1, started, owner)
    assert [j.id for j in claimed] == [job.id]
    return claimed[0]


@pytest.fixture
def events() -> Iterator[list[Event]]:
    """Every coordination event emitted during the test."""
    seen: list[Event] = []
    names = [e for e in telemetry.EVENTS if e[1] in ("node", "leader", "lifeline", "storage")]
    telemetry.attach("coordination-test", names, lambda e, m, md: seen.append((e, m, md)))
    try:
        yield seen
    finally:
        telemetry.detach("coordination-test")


def names(seen: list[Event]) -> list[str]:
    return [".".join(e[1:]) for e, _, _ in seen]
