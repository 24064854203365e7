"""Scheduler and Pruner ticks on every backend, driven by hand with an explicit ``now``: no sleeps."""

from __future__ import annotations

from datetime import timedelta

from kathikon import Error, Job, JobState
from kathikon.runtime.acker import record
from kathikon.runtime.outcome import Returned, decide
from kathikon.runtime.pruner import Pruner
from kathikon.runtime.scheduler import Scheduler
from kathikon.storage import Storage
from tests.runtime.runtime_helpers import OWNER, T0, at, capture, claimed

NOOP = "tests.workers:NoopWorker"


def test_the_scheduler_makes_due_scheduled_jobs_available_and_wakes_their_queues(storage: Storage) -> None:
    due = Job.build(NOOP, {}, queue="emails", schedule_in=10, now=T0)
    later = Job.build(NOOP, {}, queue="emails", schedule_in=100, now=T0)
    other = Job.build(NOOP, {}, queue="reports", schedule_in=5, now=T0)
    storage.insert([due, later, other])
    woken: list[set[str]] = []
    scheduler = Scheduler(storage, wake=lambda queues: woken.append(set(queues)))
    with capture("scheduler") as events:
        staged = scheduler.tick(at(20))
    assert staged == {"emails": 1, "reports": 1}
    assert woken == [{"emails", "reports"}]
    assert storage.fetch(due.id).state == JobState.AVAILABLE  # type: ignore[union-attr]
    assert storage.fetch(later.id).state == JobState.SCHEDULED  # type: ignore[union-attr]
    [(_, measurements, metadata)] = events.named("scheduler.tick")
    assert measurements["staged"] == 2
    assert measurements["duration"] >= 0
    assert metadata == {"queues": {"emails": 1, "reports": 1}}


def test_the_scheduler_makes_due_retryable_jobs_available(storage: Storage) -> None:
    job = claimed(storage, "tests.workers:FailingWorker", now=T0)
    record(storage, [decide(job, Returned(Error("x")), now=T0, owner=OWNER)])
    assert storage.fetch(job.id).state == JobState.RETRYABLE  # type: ignore[union-attr]
    scheduler = Scheduler(storage)
    assert scheduler.tick(T0 + timedelta(seconds=4)) == {}
    assert scheduler.tick(T0 + timedelta(seconds=5)) == {"default": 1}
    assert storage.fetch(job.id).state == JobState.AVAILABLE  # type: ignore[union-attr]


def test_the_scheduler_stages_in_bounded_batches_until_nothing_is_due(storage: Storage) -> None:
    storage.insert([Job.build(NOOP, {}, schedule_in=1, now=T0) for _ in range(7)])
    woken: list[set[str]] = []
    staged = Scheduler(storage, limit=3, wake=lambda q: woken.append(set(q))).tick(at(2))
    assert staged == {"default": 7}
    assert len(woken) == 3  # batches of 3, 3 and 1


def test_an_idle_scheduler_tick_stages_nothing_and_still_reports_the_tick(storage: Storage) -> None:
    with capture("scheduler") as events:
        assert Scheduler(storage).tick(T0) == {}
    assert events.named("scheduler.tick")[0][1]["staged"] == 0


def finished(storage: Storage, when: float) -> Job:
    job = claimed(storage, NOOP, now=at(when))
    record(storage, [decide(job, Returned(None), now=at(when), owner=OWNER)])
    return job


def test_the_pruner_deletes_terminal_jobs_older_than_the_retention_period(storage: Storage) -> None:
    old = finished(storage, 0)
    recent = finished(storage, 500)
    waiting = storage.insert([Job.build(NOOP, {}, now=T0)])[0]
    cancelled = storage.insert([Job.build(NOOP, {}, now=T0)])[0]
    storage.cancel(cancelled.id, at(1))
    pruner = Pruner(storage, retention=1000)
    with capture("pruner", "job.prune") as events:
        assert pruner.tick(at(1200)) == 2
    assert storage.fetch(old.id) is None
    assert storage.fetch(cancelled.id) is None
    assert storage.fetch(recent.id) is not None
    assert storage.fetch(waiting.id) is not None
    assert sorted(md["job"].id for _, _, md in events.named("job.prune")) == sorted([old.id, cancelled.id])
    [(_, measurements, metadata)] = events.named("pruner.tick")
    assert measurements["pruned"] == 2
    assert metadata == {"before": at(200)}


def test_the_pruner_deletes_in_batches_of_its_limit(storage: Storage) -> None:
    for _ in range(5):
        finished(storage, 0)
    assert Pruner(storage, retention=10, limit=2).tick(at(100)) == 5
    assert storage.all() == []
