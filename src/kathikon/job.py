"""The job: a durable obligation, its states and the pure rules about it."""

from __future__ import annotations

import importlib
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from kathikon import _json
from kathikon._clock import to_utc, utcnow
from kathikon._ids import new_job_id

if TYPE_CHECKING:
    from kathikon.worker import Worker

__all__ = ["DEFAULT_MAX_ATTEMPTS", "DEFAULT_QUEUE", "Job", "JobState", "WorkerRef"]

DEFAULT_QUEUE = "default"
DEFAULT_MAX_ATTEMPTS = 20
MAX_INT = 2_147_483_647  # fits a 32-bit SQL integer on every backend
MAX_BACKOFF = 86_400
_QUEUE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")
_WORKER_PATH_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.<>]*$")
_MAX_ATTEMPTS_DEFAULTED = frozenset({"max_attempts"})
_NOTHING_DEFAULTED: frozenset[str] = frozenset()

WorkerRef: TypeAlias = "type[Worker] | str"


class JobState(StrEnum):
    """Where a job is in its life. Terminal states never change again."""

    SCHEDULED = "scheduled"
    AVAILABLE = "available"
    EXECUTING = "executing"
    RETRYABLE = "retryable"
    COMPLETED = "completed"
    DISCARDED = "discarded"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({JobState.COMPLETED, JobState.DISCARDED, JobState.CANCELLED})


@dataclass(frozen=True, slots=True)
class Job:
    """A job as stored. Build one with ``Job.build`` or ``MyWorker.new``; insert it with ``Kathikon``.

    ``attempts`` counts the executions started and not given back (a ``Sleep`` or a graceful shutdown gives
    its attempt back); ``attempted_by`` names the node that claimed it last. Times are aware UTC datetimes.
    """

    id: str
    queue: str
    worker: str
    args: dict[str, Any]
    state: JobState = JobState.AVAILABLE
    priority: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    attempts: int = 0
    scheduled_at: datetime | None = None
    available_at: datetime | None = None
    inserted_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    attempted_by: str | None = None
    # Options the caller left to defaults, so the facade can apply its configured ones at insert.
    defaulted: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def build(
        cls,
        worker: WorkerRef,
        args: dict[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        schedule_in: float | None = None,
        schedule_at: datetime | None = None,
        meta: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        now: datetime | None = None,
    ) -> Job:
        """Build an unsaved job, validating every field. Raises ``TypeError``/``ValueError`` naming the field."""
        path, defaults = _worker_defaults(worker)
        args = {} if args is None else args
        check_json_dict(args, "args")
        queue = queue if queue is not None else defaults.get("queue", DEFAULT_QUEUE)
        priority = priority if priority is not None else defaults.get("priority", 0)
        max_attempts = max_attempts if max_attempts is not None else defaults.get("max_attempts")
        # Left to the instance's configured default, applied by the facade at insert.
        defaulted = _MAX_ATTEMPTS_DEFAULTED if max_attempts is None else _NOTHING_DEFAULTED
        now = utcnow() if now is None else to_utc(now, "now")
        scheduled_at = None if schedule_in is None and schedule_at is None else (
            _resolve_schedule(schedule_in, schedule_at, now))
        return assemble_job(
            cls, new_job_id(), check_queue_name(queue), path, args,
            JobState.SCHEDULED if scheduled_at is not None else JobState.AVAILABLE,
            _check_int(priority, "priority", minimum=0),
            _check_int(DEFAULT_MAX_ATTEMPTS if max_attempts is None else max_attempts, "max_attempts", minimum=1),
            0, scheduled_at, scheduled_at or now, now, None, None, None, [],
            {} if meta is None else _check_meta(meta), [] if tags is None else _check_tags(tags), None, defaulted,
        )

    def claimable(self, now: datetime) -> bool:
        """True when a dispatcher may claim the job at ``now``."""
        if self.state not in (JobState.AVAILABLE, JobState.RETRYABLE):
            return False
        return self.available_at is None or self.available_at <= now

    @staticmethod
    def backoff_seconds(attempt: int) -> int:
        """Seconds to wait before retrying after ``attempt``: min(attempt² × 5, 86400), at least 1."""
        if attempt <= 0:
            return 1
        return min(attempt * attempt * 5, MAX_BACKOFF)

    def with_changes(self, **changes: Any) -> Job:
        """A copy with some fields changed (jobs are immutable)."""
        return replace(self, **changes)


def _setter(name: str) -> Callable[[Job, Any], None]:
    setter: Callable[[Job, Any], None] = getattr(Job, name).__set__  # the slot's own descriptor: no frozen check
    return setter


# For assemble_job. Job's own __init__ sets each field through object.__setattr__ and runs its default
# factories: 2.4 µs a job, against 1.1 µs through the slot setters.
_set_id, _set_queue, _set_worker, _set_args = _setter("id"), _setter("queue"), _setter("worker"), _setter("args")
_set_state, _set_priority, _set_attempts = _setter("state"), _setter("priority"), _setter("attempts")
_set_max_attempts, _set_scheduled_at = _setter("max_attempts"), _setter("scheduled_at")
_set_available_at, _set_inserted_at = _setter("available_at"), _setter("inserted_at")
_set_started_at, _set_completed_at = _setter("started_at"), _setter("completed_at")
_set_cancelled_at, _set_errors, _set_meta = _setter("cancelled_at"), _setter("errors"), _setter("meta")
_set_tags, _set_attempted_by, _set_defaulted = _setter("tags"), _setter("attempted_by"), _setter("defaulted")


def assemble_job(  # noqa: PLR0917 - positional: it runs once a job on the bulk paths
    cls: type[Job], job_id: str, queue: str, worker: str, args: dict[str, Any], state: JobState, priority: int,
    max_attempts: int, attempts: int, scheduled_at: datetime | None, available_at: datetime | None,
    inserted_at: datetime | None, started_at: datetime | None, completed_at: datetime | None,
    cancelled_at: datetime | None, errors: list[dict[str, Any]], meta: dict[str, Any], tags: list[str],
    attempted_by: str | None, defaulted: frozenset[str],
) -> Job:
    """A Job from every field in declaration order, equal to ``cls(...)`` with the same values but without
    checking anything: for values already validated (``Job.build``) or read back from storage, on the paths
    that make one job per row (bulk insert, claim)."""
    job = object.__new__(cls)
    _set_id(job, job_id)
    _set_queue(job, queue)
    _set_worker(job, worker)
    _set_args(job, args)
    _set_state(job, state)
    _set_priority(job, priority)
    _set_max_attempts(job, max_attempts)
    _set_attempts(job, attempts)
    _set_scheduled_at(job, scheduled_at)
    _set_available_at(job, available_at)
    _set_inserted_at(job, inserted_at)
    _set_started_at(job, started_at)
    _set_completed_at(job, completed_at)
    _set_cancelled_at(job, cancelled_at)
    _set_errors(job, errors)
    _set_meta(job, meta)
    _set_tags(job, tags)
    _set_attempted_by(job, attempted_by)
    _set_defaulted(job, defaulted)
    return job


def check_queue_name(queue: object, field_name: str = "queue") -> str:
    """Validate a queue name: 1-128 characters of letters, digits, ``_ . : -``."""
    if type(queue) is str and queue in _accepted_queues:
        return queue
    if not isinstance(queue, str):
        raise TypeError(f"{field_name} must be a string, got {type(queue).__name__} {queue!r}")
    if not _QUEUE_RE.match(queue):
        raise ValueError(
            f"{field_name} must be 1-128 characters of letters, digits, '_', '.', ':' or '-' "
            f"(not starting with a punctuation mark), got {queue!r}"
        )
    if type(queue) is str and len(_accepted_queues) < _ACCEPTED_QUEUES_MAX:
        _accepted_queues.add(queue)
    return queue


# Queue names already checked, so most jobs skip the regular expression; bounded for applications that make up
# queue names as they go.
_accepted_queues: set[str] = set()
_ACCEPTED_QUEUES_MAX = 1024


def check_json_dict(value: object, field_name: str) -> None:
    """Refuse anything but a dict with string keys that JSON can store exactly."""
    if type(value) is dict and _json.round_trips(value):
        return  # plain JSON values (nearly every job): nothing to encode to know
    if not isinstance(value, dict):
        raise TypeError(f"{field_name} must be a dict, got {type(value).__name__} {value!r:.200}")
    try:
        _json.ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{field_name} must be JSON-serializable: {exc} (in {value!r:.200})") from None
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise TypeError(f"{field_name} keys must be strings, got {bad[0]!r}")


def check_worker_path(path: str, field_name: str = "worker") -> str:
    if not _WORKER_PATH_RE.match(path):
        raise ValueError(f"{field_name} must be an import path like 'package.module:ClassName', got {path!r}")
    return path


def _check_int(value: object, field_name: str, *, minimum: int) -> int:
    if type(value) is int and minimum <= value <= MAX_INT:  # the usual case, in one test
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field_name} must be an integer, got {type(value).__name__} {value!r}")
    if not minimum <= value <= MAX_INT:
        raise ValueError(f"{field_name} must be between {minimum} and {MAX_INT}, got {value!r}")
    return value


def _check_meta(meta: object) -> dict[str, Any]:
    if meta is None:
        return {}
    check_json_dict(meta, "meta")
    assert isinstance(meta, dict)
    return dict(meta)


def _check_tags(tags: object) -> list[str]:
    if tags is None:
        return []
    if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) and t for t in tags):
        raise TypeError(f"tags must be a list of non-empty strings, got {tags!r}")
    return list(tags)


def _resolve_schedule(schedule_in: object, schedule_at: object, now: datetime) -> datetime | None:
    if schedule_in is not None and schedule_at is not None:
        raise ValueError(
            f"give schedule_in or schedule_at, not both (schedule_in={schedule_in!r}, schedule_at={schedule_at!r})"
        )
    if schedule_in is not None:
        if isinstance(schedule_in, bool) or not isinstance(schedule_in, (int, float)):
            raise TypeError(f"schedule_in must be a number of seconds, got {type(schedule_in).__name__} "
                            f"{schedule_in!r}")
        if not math.isfinite(schedule_in) or schedule_in < 0:
            raise ValueError(f"schedule_in must be a finite number of seconds >= 0, got {schedule_in!r}")
        return now + timedelta(seconds=schedule_in) if schedule_in > 0 else None
    if schedule_at is not None:
        at = to_utc(schedule_at, "schedule_at")  # type: ignore[arg-type]
        return at if at > now else None
    return None


def _worker_defaults(worker: object) -> tuple[str, dict[str, Any]]:
    """The stored path of a worker reference and the defaults its class declares."""
    if isinstance(worker, str):
        return check_worker_path(worker), {}
    worker_module = _worker_module()
    if isinstance(worker, type) and issubclass(worker, worker_module.Worker):
        cls = cast("type[Worker]", worker)
        return str(worker_module.worker_path(cls)), cls.defaults()
    raise TypeError(
        f"worker must be a kathikon.Worker subclass or an import path 'module:ClassName', got {worker!r}"
    )


def _worker_module() -> ModuleType:
    """kathikon.worker, which imports this module: imported on first use, then read from sys.modules
    (an import statement in every Job.build cost 2 µs)."""
    module = sys.modules.get("kathikon.worker")
    if module is None:
        module = importlib.import_module("kathikon.worker")
    return module
