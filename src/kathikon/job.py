"""The job: a durable obligation, its states and the pure rules about it."""

from __future__ import annotations

import importlib
import math
import re
import sys
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
        scheduled_at = _resolve_schedule(schedule_in, schedule_at, now)
        return cls(
            id=new_job_id(),
            queue=check_queue_name(queue),
            worker=path,
            args=args,
            state=JobState.SCHEDULED if scheduled_at is not None else JobState.AVAILABLE,
            priority=_check_int(priority, "priority", minimum=0),
            max_attempts=_check_int(
                DEFAULT_MAX_ATTEMPTS if max_attempts is None else max_attempts, "max_attempts", minimum=1
            ),
            scheduled_at=scheduled_at,
            available_at=scheduled_at or now,
            inserted_at=now,
            meta=_check_meta(meta),
            tags=_check_tags(tags),
            defaulted=defaulted,
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


def check_queue_name(queue: object, field_name: str = "queue") -> str:
    """Validate a queue name: 1-128 characters of letters, digits, ``_ . : -``."""
    if not isinstance(queue, str):
        raise TypeError(f"{field_name} must be a string, got {type(queue).__name__} {queue!r}")
    if not _QUEUE_RE.match(queue):
        raise ValueError(
            f"{field_name} must be 1-128 characters of letters, digits, '_', '.', ':' or '-' "
            f"(not starting with a punctuation mark), got {queue!r}"
        )
    return queue


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
