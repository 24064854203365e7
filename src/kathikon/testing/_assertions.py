"""``assert_enqueued`` / ``refute_enqueued``: find stored jobs by worker, args (as a subset), queue, state.

A failing assertion lists the jobs it looked at, so the test output explains what was enqueued instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kathikon.core import Kathikon
from kathikon.job import Job, JobState, WorkerRef
from kathikon.testing._instances import resolve
from kathikon.worker import worker_path

__all__ = ["ENQUEUED_STATES", "assert_enqueued", "refute_enqueued"]

# A job waiting to run, now or later: what "enqueued" means unless the caller names states.
ENQUEUED_STATES = frozenset({JobState.AVAILABLE, JobState.SCHEDULED, JobState.RETRYABLE})
_LISTED = 20  # jobs listed in a failure message


@dataclass(frozen=True, slots=True)
class _Query:
    worker: str | None
    args: dict[str, Any] | None
    queue: str | None
    states: frozenset[JobState]
    priority: int | None

    def matches(self, job: Job) -> bool:
        return (
            job.state in self.states
            and (self.worker is None or job.worker == self.worker)
            and (self.queue is None or job.queue == self.queue)
            and (self.priority is None or job.priority == self.priority)
            and (self.args is None or _is_subset(self.args, job.args))
        )

    def describe(self) -> str:
        parts = [f"worker={self.worker}"] if self.worker else []
        parts += [f"args⊇{self.args}"] if self.args is not None else []
        parts += [f"queue={self.queue}"] if self.queue else []
        parts += [f"priority={self.priority}"] if self.priority is not None else []
        parts.append("state in " + "/".join(sorted(self.states)))
        return ", ".join(parts)


def assert_enqueued(
    *,
    worker: WorkerRef | None = None,
    args: dict[str, Any] | None = None,
    queue: str | None = None,
    state: JobState | str | Iterable[JobState | str] | None = None,
    priority: int | None = None,
    k: Kathikon | None = None,
) -> list[Job]:
    """Assert that at least one stored job matches, and return the matching jobs (oldest first).

    ``args`` matches as a subset (nested dicts too): ``args={"id": 1}`` matches ``{"id": 1, "x": 2}``.
    ``state`` defaults to the waiting states (available, scheduled, retryable).
    """
    query = _query(worker, args, queue, state, priority)
    looked_at = resolve(k).all(queue=query.queue)
    found = [job for job in looked_at if query.matches(job)]
    if not found:
        raise AssertionError(
            f"expected a job with {query.describe()}, found none.\n{_listing(looked_at, _where(query))}"
        )
    return found


def refute_enqueued(
    *,
    worker: WorkerRef | None = None,
    args: dict[str, Any] | None = None,
    queue: str | None = None,
    state: JobState | str | Iterable[JobState | str] | None = None,
    priority: int | None = None,
    k: Kathikon | None = None,
) -> None:
    """Assert that no stored job matches (same matching rules as ``assert_enqueued``)."""
    query = _query(worker, args, queue, state, priority)
    found = [job for job in resolve(k).all(queue=query.queue) if query.matches(job)]
    if found:
        raise AssertionError(
            f"expected no job with {query.describe()}, found {len(found)}.\n{_listing(found, 'matching')}"
        )


def _query(worker: object, args: object, queue: object, state: object, priority: object) -> _Query:
    if args is not None and not isinstance(args, dict):
        raise TypeError(f"args must be a dict (matched as a subset), got {type(args).__name__} {args!r:.200}")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise TypeError(f"priority must be an integer, got {priority!r}")
    if queue is not None and not isinstance(queue, str):
        raise TypeError(f"queue must be a string, got {type(queue).__name__} {queue!r}")
    return _Query(_worker_filter(worker), _as_stored(args), queue, _states(state), priority)


def _worker_filter(worker: object) -> str | None:
    if worker is None or isinstance(worker, str):
        return worker
    if isinstance(worker, type):
        return worker_path(worker)
    raise TypeError(f"worker must be a Worker class or an import path 'module:ClassName', got {worker!r}")


def _states(state: object) -> frozenset[JobState]:
    if state is None:
        return ENQUEUED_STATES
    items = [state] if isinstance(state, str) else state
    if not isinstance(items, Iterable):
        raise TypeError(f"state must be a JobState, a state name or several of them, got {state!r}")
    try:
        return frozenset(JobState(s) for s in items)
    except ValueError:
        known = ", ".join(s.value for s in JobState)
        raise ValueError(f"state must name job states ({known}), got {state!r}") from None


def _as_stored(args: dict[str, Any] | None) -> dict[str, Any] | None:
    """Expected args as storage would return them (tuples as lists, keys as strings), to compare like for like."""
    if args is None:
        return None
    try:
        stored: dict[str, Any] = json.loads(json.dumps(args))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"args must be JSON-serializable to match stored jobs: {exc} (in {args!r:.200})") from None
    return stored


def _is_subset(expected: object, actual: object) -> bool:
    """Dicts match when every expected key matches; lists item by item; scalars by value (bool is not int)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and _is_subset(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(_is_subset(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return isinstance(expected, bool) == isinstance(actual, bool) and expected == actual


def _listing(jobs: list[Job], title: str) -> str:
    if not jobs:
        return f"No jobs {title}."
    lines = [
        f"  {job.worker} {job.args} queue={job.queue} state={job.state} priority={job.priority}"
        for job in jobs[:_LISTED]
    ]
    more = [f"  … and {len(jobs) - _LISTED} more"] if len(jobs) > _LISTED else []
    return "\n".join([f"Jobs {title} ({len(jobs)}):", *lines, *more])


def _where(query: _Query) -> str:
    return f"in queue {query.queue!r}" if query.queue else "in all queues"
