"""``perform_job``: one execution of a worker through the runtime's real outcome path, without storage.

Like Oban's ``perform_job``: the args are checked to survive JSON unchanged, the job is built as ``insert``
would build it and claimed in memory, then ``runtime.executor.execute`` runs it and ``runtime.outcome`` decides
what would be stored; the decision's telemetry events are emitted as if its ack applied.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kathikon._clock import utcnow
from kathikon.job import Job, JobState
from kathikon.runtime.acker import report
from kathikon.runtime.executor import Control, execute
from kathikon.runtime.outcome import Decision
from kathikon.testing._inline import pool_for, run_to_completion
from kathikon.testing._json import check_round_trip
from kathikon.worker import Worker, validate_worker

__all__ = ["PerformResult", "perform_job"]

OWNER = "kathikon.testing.perform_job"


@dataclass(frozen=True, slots=True)
class PerformResult:
    """What one execution did: ``state`` is where the job would go (completed, retryable, discarded or
    scheduled after a Sleep), ``job`` is the job as it would be stored, ``value`` what perform returned."""

    state: JobState
    job: Job
    value: Any = None
    error: dict[str, Any] | None = None
    exception: BaseException | None = None

    @property
    def completed(self) -> bool:
        return self.state == JobState.COMPLETED


def perform_job(
    worker: type[Worker],
    args: dict[str, Any] | None = None,
    *,
    attempt: int = 1,
    reraise: bool = True,
    **job_options: Any,
) -> PerformResult:
    """Run ``worker`` once on ``args`` and return the decided outcome.

    ``job_options`` are ``insert``'s (queue, priority, max_attempts, meta, tags); ``attempt`` is the attempt
    number this execution is (``attempt=max_attempts`` tests the last one). An exception raised by perform is
    re-raised after its outcome is decided, so the test fails with the worker's own traceback; with
    ``reraise=False`` it is returned instead (``state`` retryable or discarded, ``error`` the recorded entry).
    """
    job = claimed_job(worker, args, attempt, job_options)
    control = Control()
    with ThreadPoolExecutor(1, thread_name_prefix="kathikon-perform") as threads:
        decision = run_to_completion(
            lambda: execute(job, owner=OWNER, pool=pool_for(job.worker, threads), control=control)
        )
    report(decision, applied=True)
    result = _result(decision, control)
    if reraise and result.exception is not None:
        raise result.exception
    return result


def claimed_job(worker: type[Worker], args: dict[str, Any] | None, attempt: int, options: dict[str, Any]) -> Job:
    """The job as ``storage.claim`` would hand it to the executor, args as JSON would return them."""
    validate_worker(worker)
    args = {} if args is None else args
    check_round_trip(args)
    check_round_trip(options.get("meta") or {}, "meta")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt must be an integer >= 1, got {attempt!r}")
    if "schedule_in" in options or "schedule_at" in options:
        raise TypeError("perform_job runs the job now; schedule_in/schedule_at do not apply")
    job = Job.build(worker, json.loads(json.dumps(args)), **options)
    return job.with_changes(state=JobState.EXECUTING, attempts=attempt, started_at=utcnow(), attempted_by=OWNER)


def _result(decision: Decision, control: Control) -> PerformResult:
    return PerformResult(
        state=decision.ack.state,
        job=decision.job,
        value=control.value,
        error=decision.ack.error,
        exception=control.raised,  # the executor keeps only its text in the error entry
    )
