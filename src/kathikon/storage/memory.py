"""In-memory storage: the reference implementation of the behaviour and a test double.

Nothing survives the process. It keeps the same rules as the database backends (atomic claim, fenced acks,
JSON-only data: args are round-tripped through JSON on insert) and passes the same conformance suite, so a
unit test that injects it (``Kathikon(storage=MemoryStorage())``) sees the real semantics.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from kathikon._clock import utcnow
from kathikon.job import Job, JobState
from kathikon.storage._stored import stored_form
from kathikon.storage.base import Ack, NodeRecord, Storage, check_cancellable, check_limit

__all__ = ["MemoryStorage"]


class MemoryStorage(Storage):
    """Jobs in a dict guarded by one lock."""

    def __init__(self) -> None:
        self.url = "memory://"
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._nodes: dict[str, NodeRecord] = {}
        self._leases: dict[str, tuple[str, datetime]] = {}

    @classmethod
    def from_url(cls, url: str) -> MemoryStorage:
        return cls()

    def setup(self) -> None:
        pass

    def close(self) -> None:
        pass

    def reset(self) -> None:
        with self._lock:
            self._jobs.clear()
            self._nodes.clear()
            self._leases.clear()

    # -- jobs

    def insert(self, jobs: Sequence[Job], *, conn: Any = None) -> list[Job]:
        if conn is not None:
            raise TypeError(f"MemoryStorage has no connections to join (conn={conn!r})")
        now = utcnow()
        stored = [_round_trip(stored_form(job, now)) for job in jobs]
        with self._lock:
            ids = [j.id for j in stored]
            dupes = [i for i in ids if i in self._jobs] or [i for i, n in Counter(ids).items() if n > 1]
            if dupes:
                raise ValueError(f"a job with id {dupes[0]!r} is already stored")
            for job in stored:
                self._jobs[job.id] = job
        return stored

    def fetch(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def states(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        with self._lock:
            return {i: self._jobs[i].state for i in job_ids if i in self._jobs}

    def all(self, *, queue: str | None = None, state: JobState | None = None,
            limit: int | None = None) -> list[Job]:
        limit = None if limit is None else check_limit(limit)
        with self._lock:
            jobs = [j for _, j in sorted(self._jobs.items())
                    if (queue is None or j.queue == queue) and (state is None or j.state == state)]
        return jobs if limit is None else jobs[:limit]

    def counts(self) -> dict[tuple[str, JobState], int]:
        result: dict[tuple[str, JobState], int] = {}
        with self._lock:
            for job in self._jobs.values():
                key = (job.queue, job.state)
                result[key] = result.get(key, 0) + 1
        return result

    def delete(self, job_id: str) -> bool:
        with self._lock:
            return self._jobs.pop(job_id, None) is not None

    def clear_jobs(self) -> None:
        with self._lock:
            self._jobs.clear()

    def cancel(self, job_id: str, now: datetime, *, running: bool = False) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
            check_cancellable(job_id, None if job is None else job.state, running=running)
            assert job is not None
            job = self._jobs[job_id] = job.with_changes(state=JobState.CANCELLED, cancelled_at=now)
            return job

    # -- execution path

    def claim(self, queue: str, limit: int, now: datetime, owner: str) -> list[Job]:
        check_limit(limit)
        with self._lock:
            ready = [j for j in self._jobs.values()
                     if j.queue == queue and j.state == JobState.AVAILABLE and _due(j, now)]
            ready.sort(key=lambda j: (-j.priority, j.available_at or now, j.id))
            claimed = []
            for ready_job in ready[:limit]:
                job = ready_job.with_changes(state=JobState.EXECUTING, attempts=ready_job.attempts + 1,
                                             started_at=now, attempted_by=owner)
                self._jobs[job.id] = job
                claimed.append(job)
            return claimed

    def ack(self, acks: Sequence[Ack]) -> list[bool]:
        with self._lock:
            return [self._apply(ack) for ack in acks]

    def _apply(self, ack: Ack) -> bool:
        job = self._jobs.get(ack.job_id)
        if (job is None or job.state != JobState.EXECUTING or job.attempts != ack.attempt
                or job.attempted_by != ack.owner):
            return False
        changes: dict[str, Any] = {"state": ack.state}
        if ack.error is not None:
            changes["errors"] = [*job.errors, json.loads(json.dumps(ack.error))]
        if ack.state in (JobState.COMPLETED, JobState.DISCARDED):
            changes["completed_at"] = ack.at
        elif ack.state == JobState.RETRYABLE:
            changes["available_at"] = ack.available_at
        elif ack.state == JobState.SCHEDULED:
            changes.update(scheduled_at=ack.available_at, available_at=ack.available_at,
                           attempts=job.attempts - 1)
        elif ack.state == JobState.AVAILABLE:
            changes.update(available_at=ack.available_at or ack.at, attempts=job.attempts - 1)
        self._jobs[job.id] = job.with_changes(**changes)
        return True

    def stage(self, now: datetime, limit: int) -> dict[str, int]:
        check_limit(limit)
        moved: dict[str, int] = {}
        with self._lock:
            due = sorted((j for j in self._jobs.values()
                          if j.state in (JobState.SCHEDULED, JobState.RETRYABLE) and _due(j, now)),
                         key=lambda j: (j.available_at or now, j.id))
            for job in due[:limit]:
                self._jobs[job.id] = job.with_changes(state=JobState.AVAILABLE)
                moved[job.queue] = moved.get(job.queue, 0) + 1
        return moved

    def prune(self, before: datetime, limit: int) -> list[Job]:
        check_limit(limit)
        with self._lock:
            old = sorted((j for j in self._jobs.values() if _finished_before(j, before)), key=lambda j: j.id)
            for job in old[:limit]:
                del self._jobs[job.id]
            return old[:limit]

    # -- nodes, leases, lifeline

    def register_node(self, node: NodeRecord) -> None:
        with self._lock:
            self._nodes[node.name] = node

    def heartbeat(self, name: str, now: datetime) -> bool:
        with self._lock:
            node = self._nodes.get(name)
            if node is None:
                return False
            self._nodes[name] = NodeRecord(node.name, node.started_at, now, node.queues, node.meta)
            return True

    def remove_node(self, name: str) -> None:
        with self._lock:
            self._nodes.pop(name, None)

    def nodes(self) -> list[NodeRecord]:
        with self._lock:
            return [self._nodes[name] for name in sorted(self._nodes)]

    def prune_nodes(self, stale_before: datetime) -> list[str]:
        with self._lock:
            busy = {j.attempted_by for j in self._jobs.values() if j.state == JobState.EXECUTING}
            gone = [n.name for n in self._nodes.values() if n.heartbeat_at < stale_before and n.name not in busy]
            for name in gone:
                del self._nodes[name]
            return sorted(gone)

    def acquire_lease(self, name: str, holder: str, now: datetime, ttl: float) -> bool:
        with self._lock:
            current = self._leases.get(name)
            if current is None or current[0] == holder or current[1] <= now:
                self._leases[name] = (holder, now + timedelta(seconds=ttl))
                return True
            return False

    def release_lease(self, name: str, holder: str) -> None:
        with self._lock:
            if self._leases.get(name, ("", None))[0] == holder:
                del self._leases[name]

    def rescue(self, now: datetime, stale_before: datetime) -> list[Job]:
        with self._lock:
            alive = {n.name for n in self._nodes.values() if n.heartbeat_at >= stale_before}
            rescued = []
            for job in list(self._jobs.values()):
                if job.state == JobState.EXECUTING and job.attempted_by not in alive:
                    self._jobs[job.id] = _rescued(job, now)
                    rescued.append(self._jobs[job.id])
            return sorted(rescued, key=lambda j: j.id)


def _rescued(job: Job, now: datetime) -> Job:
    error = {"attempt": job.attempts, "at": now.isoformat(), "kind": "rescued",
             "error": f"node {job.attempted_by} stopped heartbeating while the job was executing"}
    errors = [*job.errors, error]
    if job.attempts >= job.max_attempts:
        return job.with_changes(state=JobState.DISCARDED, completed_at=now, errors=errors)
    return job.with_changes(state=JobState.AVAILABLE, available_at=now, errors=errors)


def _due(job: Job, now: datetime) -> bool:
    return job.available_at is None or job.available_at <= now


def _finished_before(job: Job, before: datetime) -> bool:
    if job.state in (JobState.COMPLETED, JobState.DISCARDED):
        return job.completed_at is not None and job.completed_at < before
    if job.state == JobState.CANCELLED:
        return job.cancelled_at is not None and job.cancelled_at < before
    return False


def _round_trip(job: Job) -> Job:
    """Copies of args, meta, tags and errors, so the caller's later changes to them change nothing stored."""
    return job.with_changes(args=json.loads(json.dumps(job.args)), meta=json.loads(json.dumps(job.meta)),
                            tags=list(job.tags), errors=json.loads(json.dumps(job.errors)))
