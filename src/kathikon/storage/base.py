"""The storage behaviour: every job-level operation Kathikon performs on a database.

One abstract class, one module per backend (``memory``, ``sqlite``, ``postgres``), one conformance suite
(``tests/storage/test_conformance.py``) run against every backend. The runtime and the facade know only this
module; a backend's driver is imported only in that backend's module.

Every state change of a job goes through ``insert``, ``claim``, ``ack``, ``stage``, ``cancel``, ``rescue``
and ``prune``, so later features (uniqueness, rate limits, batches, workflows) hook in at these points.

Rules every backend keeps:
- ``claim`` is one atomic statement: no two claimers ever get the same job, across threads and processes.
- ``ack`` is fenced on (id, attempt, owner) and ``state = 'executing'``: a stale worker's late outcome for
  a job that was rescued, cancelled or re-claimed changes nothing, and the call reports it as not applied.
- Nothing is deleted on claim; only ``prune``, ``delete``, ``clear_jobs`` and ``reset`` delete.
- Stored data is JSON (args, meta, tags, errors); every time is stored and returned as aware UTC.
- Every method may be called from any thread; driver errors are raised as ``kathikon`` errors.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from kathikon.exceptions import InvalidStateError, JobExecutingError, JobNotFoundError
from kathikon.job import Job, JobState

__all__ = ["Ack", "NodeRecord", "Storage", "Subscription", "TERMINAL_STATES", "check_cancellable", "check_limit"]

TERMINAL_STATES = (JobState.COMPLETED, JobState.DISCARDED, JobState.CANCELLED)

# The states an Ack may move an executing job to.
ACK_STATES = frozenset(
    {JobState.COMPLETED, JobState.RETRYABLE, JobState.DISCARDED, JobState.SCHEDULED, JobState.AVAILABLE}
)


def check_cancellable(job_id: str, state: JobState | str | None, *, running: bool) -> None:
    """The cancel rule every backend applies to the job's current ``state`` (None: no such job)."""
    if state is None:
        raise JobNotFoundError(job_id)
    state = JobState(state)
    if state in TERMINAL_STATES:
        raise InvalidStateError(job_id, state)
    if state == JobState.EXECUTING and not running:
        raise JobExecutingError(job_id)


def check_limit(limit: object) -> int:
    """A batch limit as every backend accepts it: an integer >= 0."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an integer, got {type(limit).__name__} {limit!r}")
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit!r}")
    return limit


@dataclass(frozen=True, slots=True)
class Ack:
    """The recorded outcome of one execution, applied only if the job is still ``executing`` with the
    same ``attempts`` (``attempt``) and ``attempted_by`` (``owner``).

    What each target ``state`` writes:
      completed  completed_at = at
      discarded  completed_at = at; ``error`` appended to errors
      retryable  available_at; ``error`` appended to errors
      scheduled  scheduled_at = available_at = ``available_at``; attempts - 1 (a Sleep is not an attempt)
      available  available_at = ``available_at`` or at; attempts - 1 (released at shutdown, not an attempt)
    """

    job_id: str
    attempt: int
    owner: str
    state: JobState
    at: datetime
    available_at: datetime | None = None
    error: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.state not in ACK_STATES:
            raise ValueError(f"an ack cannot move a job to {self.state!r}")
        if self.state in (JobState.RETRYABLE, JobState.SCHEDULED) and self.available_at is None:
            raise ValueError(f"an ack to {self.state} needs available_at")

    @property
    def gives_back_attempt(self) -> bool:
        return self.state in (JobState.SCHEDULED, JobState.AVAILABLE)


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """A running Kathikon runtime as registered in storage (Phase 2: heartbeats and the Lifeline)."""

    name: str
    started_at: datetime
    heartbeat_at: datetime
    queues: dict[str, int] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


class Subscription(Protocol):
    """A live cross-process change feed from ``Storage.subscribe``; ``close`` stops it."""

    def close(self) -> None: ...


class Storage(abc.ABC):
    """The storage behaviour. See the module docstring for the rules every backend keeps."""

    #: The URL this storage was opened with (passwords masked by backends that have them).
    url: str = ""

    # -- lifecycle -------------------------------------------------------------------------------------

    @abc.abstractmethod
    def setup(self) -> None:
        """Create or migrate Kathikon's tables (idempotent). Refuses a newer schema with SchemaVersionError."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and threads. Idempotent."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Drop and recreate Kathikon's tables (tests only). Never touches other tables."""

    # -- jobs ------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def insert(self, jobs: Sequence[Job], *, conn: Any = None) -> list[Job]:
        """Store ``jobs`` in one transaction and return them as stored.

        With ``conn`` (a connection of the backend's driver) the rows are written inside the caller's open
        transaction and committed or rolled back with it; without it, durable when this returns.
        """

    async def insert_async(self, jobs: Sequence[Job], *, conn: Any) -> list[Job]:
        """``insert`` on the caller's async driver connection (backends that have one override this)."""
        raise TypeError(f"{type(self).__name__} does not accept an async connection (conn={conn!r})")

    @abc.abstractmethod
    def fetch(self, job_id: str) -> Job | None:
        """The job with this id, or None."""

    def states(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """The state of each stored job among ``job_ids`` (unknown ids left out).

        A node asks this every heartbeat about the jobs it is executing, to notice ones cancelled by another
        process. This default reads one job at a time; database backends answer in one query.
        """
        return {job.id: job.state for job in map(self.fetch, job_ids) if job is not None}

    @abc.abstractmethod
    def all(self, *, queue: str | None = None, state: JobState | None = None,
            limit: int | None = None) -> list[Job]:
        """Jobs ordered by id (oldest first), optionally filtered by queue and state."""

    @abc.abstractmethod
    def counts(self) -> dict[tuple[str, JobState], int]:
        """Number of jobs per (queue, state), for stats and the demo."""

    @abc.abstractmethod
    def delete(self, job_id: str) -> bool:
        """Delete one job whatever its state; False when it did not exist."""

    @abc.abstractmethod
    def clear_jobs(self) -> None:
        """Delete every job (tests only)."""

    @abc.abstractmethod
    def cancel(self, job_id: str, now: datetime, *, running: bool = False) -> Job:
        """Move a job to ``cancelled`` atomically and return it.

        Raises JobNotFoundError for an unknown id, InvalidStateError when it is already terminal, and
        JobExecutingError when it is executing and ``running`` is False (with ``running=True`` the job is
        cancelled and the fenced ack drops the late outcome of its execution).
        """

    # -- the execution path ----------------------------------------------------------------------------

    @abc.abstractmethod
    def claim(self, queue: str, limit: int, now: datetime, owner: str) -> list[Job]:
        """Atomically move up to ``limit`` available jobs of ``queue`` (available_at <= now) to executing.

        Order: priority descending, then available_at, then id. Each claimed job gets attempts + 1,
        started_at = now and attempted_by = owner; the returned jobs show those values.
        """

    @abc.abstractmethod
    def ack(self, acks: Sequence[Ack]) -> list[bool]:
        """Apply outcomes in one transaction, each fenced (see ``Ack``). Returns, per ack, whether it applied."""

    @abc.abstractmethod
    def stage(self, now: datetime, limit: int) -> dict[str, int]:
        """Move up to ``limit`` scheduled and retryable jobs whose available_at <= now to available.

        Returns the number moved per queue (queues with none are left out).
        """

    @abc.abstractmethod
    def prune(self, before: datetime, limit: int) -> list[Job]:
        """Delete up to ``limit`` terminal jobs finished before ``before`` and return them.

        Finished means completed_at for completed/discarded jobs and cancelled_at for cancelled ones.
        """

    # -- nodes, leases and the lifeline (Phase 2) ------------------------------------------------------

    @abc.abstractmethod
    def register_node(self, node: NodeRecord) -> None:
        """Insert or replace this node's record."""

    @abc.abstractmethod
    def heartbeat(self, name: str, now: datetime) -> bool:
        """Set the node's heartbeat_at; False when its record is gone (the caller re-registers)."""

    @abc.abstractmethod
    def remove_node(self, name: str) -> None:
        """Delete the node's record (clean shutdown)."""

    @abc.abstractmethod
    def nodes(self) -> list[NodeRecord]:
        """Every registered node, ordered by name."""

    @abc.abstractmethod
    def prune_nodes(self, stale_before: datetime) -> list[str]:
        """Delete node records whose heartbeat_at < stale_before and that own no executing job; names."""

    @abc.abstractmethod
    def acquire_lease(self, name: str, holder: str, now: datetime, ttl: float) -> bool:
        """Take or renew the lease ``name`` until now + ttl; True when ``holder`` holds it afterwards.

        Succeeds when the lease is free, expired (expires_at <= now) or already held by ``holder``.
        """

    @abc.abstractmethod
    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if ``holder`` holds it, so another node can take it at once."""

    @abc.abstractmethod
    def rescue(self, now: datetime, stale_before: datetime) -> list[Job]:
        """Recover jobs executing on dead nodes and return them as changed.

        A node is dead when it has no record or its heartbeat_at < stale_before. Each of its executing
        jobs goes to ``available`` (available_at = now), or to ``discarded`` (completed_at = now) when
        attempts >= max_attempts; an error ``{"attempt", "at", "kind": "rescued", "error"}`` naming the
        node is appended. attempted_by is kept (it names the node that died).
        """

    # -- wake-ups across processes ---------------------------------------------------------------------

    def subscribe(self, on_change: Callable[[str | None], None]) -> Subscription | None:
        """Call ``on_change(queue)`` when another process may have made jobs available (``None``: any queue).

        Returns None when the backend cannot observe other processes; the runtime then relies on polling.
        """
        return None
