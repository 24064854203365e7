"""The storage conformance suite: the behaviour of ``kathikon.storage.base.Storage``, run on every backend.

Only what the docstrings of base.py promise is tested here, never a backend's internals. Jobs are seeded in
the exact state a test needs and every call gets an explicit ``now``; nothing sleeps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from kathikon.exceptions import InvalidStateError, JobExecutingError, JobNotFoundError, StorageError
from kathikon.job import Job, JobState
from kathikon.storage import Ack, NodeRecord, Storage

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
WORKER = "tests.workers:Echo"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def build(**options: Any) -> Job:
    args = options.pop("args", {"n": 1})
    return Job.build(WORKER, args, now=options.pop("now", T0), **options)


def seeded(storage: Storage, **changes: Any) -> Job:
    """Insert one job in exactly the state given by ``changes`` (build options go in ``options``)."""
    job = build(**changes.pop("options", {})).with_changes(**changes)
    return storage.insert([job])[0]


def executing(storage: Storage, owner: str = "node-a", attempts: int = 1, **changes: Any) -> Job:
    return seeded(storage, state=JobState.EXECUTING, attempts=attempts, attempted_by=owner,
                  started_at=at(1), **changes)


def ids(jobs: list[Job]) -> list[str]:
    return [job.id for job in jobs]


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


# -- insert, fetch, all, counts, delete, clear_jobs


def test_every_field_of_an_inserted_job_comes_back_from_fetch(storage: Storage) -> None:
    job = build(args={"email": "a@b.com", "nested": {"list": [1, 2.5, None, True, "ü"]}},
                queue="emails", priority=7, max_attempts=3, meta={"trace": {"id": "x"}},
                tags=["billing", "urgent"]).with_changes(
        state=JobState.RETRYABLE, attempts=2, scheduled_at=at(30),
        available_at=at(60), started_at=at(5), completed_at=at(6), cancelled_at=at(7),
        errors=[{"attempt": 1, "error": "boom"}, {"attempt": 2, "error": "bang"}], attempted_by="node-a")

    [stored] = storage.insert([job])
    fetched = storage.fetch(job.id)

    assert stored == job
    assert fetched == job
    assert fetched is not None
    for value in (fetched.scheduled_at, fetched.available_at, fetched.inserted_at, fetched.started_at,
                  fetched.completed_at, fetched.cancelled_at):
        assert_utc(value)
    assert fetched.scheduled_at == at(30)
    assert fetched.inserted_at == T0  # microseconds survive


def test_unset_times_and_lists_come_back_empty(storage: Storage) -> None:
    job = build()
    storage.insert([job])

    fetched = storage.fetch(job.id)

    assert fetched is not None
    assert (fetched.scheduled_at, fetched.started_at, fetched.completed_at, fetched.cancelled_at) == (
        None, None, None, None)
    assert (fetched.errors, fetched.meta, fetched.tags, fetched.attempted_by) == ([], {}, [], None)
    assert fetched.state == JobState.AVAILABLE
    assert fetched.attempts == 0


def test_args_are_stored_as_json(storage: Storage) -> None:
    job = build(args={"pair": (1, 2)})

    [stored] = storage.insert([job])

    assert stored.args == {"pair": [1, 2]}
    fetched = storage.fetch(job.id)
    assert fetched is not None
    assert fetched.args == {"pair": [1, 2]}


def test_a_job_made_by_hand_comes_back_from_insert_as_fetch_returns_it(storage: Storage) -> None:
    paris = timezone(timedelta(hours=2))
    job = Job(id="f" * 32, queue="default", worker=WORKER, args={"pair": (1, 2), "by_number": {1: "one"}},
              state="available", inserted_at=T0.astimezone(paris), tags=("a",),  # type: ignore[arg-type]
              meta={"trace": [(1, 2)]}, errors=[{"at": (3,)}])

    [stored] = storage.insert([job])
    fetched = storage.fetch(job.id)

    assert stored == fetched
    assert stored.args == {"pair": [1, 2], "by_number": {"1": "one"}}
    assert (stored.tags, stored.meta, stored.errors) == (["a"], {"trace": [[1, 2]]}, [{"at": [3]}])
    assert stored.inserted_at == stored.available_at == T0
    assert stored.state is JobState.AVAILABLE


def test_a_job_built_with_plain_json_is_returned_as_fetch_returns_it(storage: Storage) -> None:
    job = build(args={"n": 1, "x": 2.5, "s": "ü", "none": None, "ok": True, "list": [1, {"k": []}]},
                meta={"m": {}}, tags=["t"])

    [stored] = storage.insert([job])

    assert stored == job == storage.fetch(job.id)


def test_fetch_of_an_unknown_id_is_none(storage: Storage) -> None:
    assert storage.fetch("0" * 32) is None


def test_inserting_no_jobs_stores_nothing(storage: Storage) -> None:
    assert storage.insert([]) == []
    assert storage.all() == []


def test_a_batch_with_an_id_repeated_stores_nothing(storage: Storage) -> None:
    first, second = build(), build()

    with pytest.raises((ValueError, StorageError)):
        storage.insert([first, second, first])

    assert storage.all() == []


def test_a_batch_with_an_id_already_stored_stores_nothing(storage: Storage) -> None:
    old = seeded(storage)
    new = build()

    with pytest.raises((ValueError, StorageError)):
        storage.insert([new, old])

    assert ids(storage.all()) == [old.id]


def test_all_lists_jobs_by_id(storage: Storage) -> None:
    jobs = [build() for _ in range(4)]
    storage.insert(list(reversed(jobs)))

    assert ids(storage.all()) == ids(jobs)


def test_all_filters_by_queue_state_and_limit(storage: Storage) -> None:
    a1 = seeded(storage, options={"queue": "a"})
    b1 = seeded(storage, options={"queue": "b"})
    a2 = seeded(storage, options={"queue": "a"}, state=JobState.COMPLETED, completed_at=at(1))
    a3 = seeded(storage, options={"queue": "a"})

    assert ids(storage.all(queue="a")) == [a1.id, a2.id, a3.id]
    assert ids(storage.all(state=JobState.AVAILABLE)) == [a1.id, b1.id, a3.id]
    assert ids(storage.all(queue="a", state=JobState.AVAILABLE)) == [a1.id, a3.id]
    assert ids(storage.all(limit=2)) == [a1.id, b1.id]
    assert ids(storage.all(queue="a", state=JobState.AVAILABLE, limit=1)) == [a1.id]
    assert storage.all(queue="missing") == []


def test_counts_are_per_queue_and_state(storage: Storage) -> None:
    seeded(storage, options={"queue": "a"})
    seeded(storage, options={"queue": "a"})
    seeded(storage, options={"queue": "b"})
    seeded(storage, options={"queue": "a"}, state=JobState.COMPLETED, completed_at=at(1))

    assert storage.counts() == {("a", JobState.AVAILABLE): 2, ("b", JobState.AVAILABLE): 1,
                                ("a", JobState.COMPLETED): 1}


def test_counts_of_an_empty_storage_are_empty(storage: Storage) -> None:
    assert storage.counts() == {}


def test_delete_removes_a_job_whatever_its_state(storage: Storage) -> None:
    job = executing(storage)
    other = seeded(storage)

    assert storage.delete(job.id) is True
    assert storage.fetch(job.id) is None
    assert storage.delete(job.id) is False
    assert ids(storage.all()) == [other.id]


def test_clear_jobs_deletes_every_job(storage: Storage) -> None:
    seeded(storage)
    executing(storage)

    storage.clear_jobs()

    assert storage.all() == []


# -- cancel


def test_cancelling_an_unknown_job_raises_job_not_found(storage: Storage) -> None:
    with pytest.raises(JobNotFoundError):
        storage.cancel("0" * 32, at(1))


@pytest.mark.parametrize("state", [JobState.COMPLETED, JobState.DISCARDED, JobState.CANCELLED])
def test_cancelling_a_finished_job_raises_invalid_state_and_changes_nothing(
        storage: Storage, state: JobState) -> None:
    job = seeded(storage, state=state, completed_at=at(1), cancelled_at=at(1))

    with pytest.raises(InvalidStateError) as raised:
        storage.cancel(job.id, at(2))

    assert raised.value.state == state
    assert storage.fetch(job.id) == job


def test_cancelling_an_executing_job_without_running_raises_and_changes_nothing(storage: Storage) -> None:
    job = executing(storage)

    with pytest.raises(JobExecutingError):
        storage.cancel(job.id, at(2))

    assert storage.fetch(job.id) == job


def test_cancelling_an_executing_job_with_running_cancels_it(storage: Storage) -> None:
    job = executing(storage)

    cancelled = storage.cancel(job.id, at(2), running=True)

    assert cancelled == job.with_changes(state=JobState.CANCELLED, cancelled_at=at(2))
    assert storage.fetch(job.id) == cancelled


@pytest.mark.parametrize("state", [JobState.AVAILABLE, JobState.SCHEDULED, JobState.RETRYABLE])
def test_cancelling_a_waiting_job_cancels_it(storage: Storage, state: JobState) -> None:
    job = seeded(storage, state=state)

    cancelled = storage.cancel(job.id, at(2))

    assert cancelled.state == JobState.CANCELLED
    assert cancelled.cancelled_at == at(2)
    assert_utc(cancelled.cancelled_at)
    assert storage.fetch(job.id) == cancelled


def test_a_cancelled_job_is_never_claimed(storage: Storage) -> None:
    job = seeded(storage)
    storage.cancel(job.id, at(1))

    assert storage.claim("default", 10, at(2), "node-a") == []


# -- claim


def test_claim_takes_higher_priority_then_older_available_at_then_lower_id(storage: Storage) -> None:
    low_early = build(priority=0, now=at(-10))
    high_late = build(priority=5, now=at(-1))
    high_early = build(priority=5, now=at(-5))
    tie_first = build(priority=1, now=at(-3))
    tie_second = build(priority=1, now=at(-3))
    storage.insert([low_early, tie_second, high_late, tie_first, high_early])

    claimed = storage.claim("default", 10, T0, "node-a")

    assert ids(claimed) == [high_early.id, high_late.id, tie_first.id, tie_second.id, low_early.id]


def test_claim_takes_at_most_limit_jobs_in_order(storage: Storage) -> None:
    jobs = [build(now=at(-i)) for i in range(5)]
    storage.insert(jobs)

    first = storage.claim("default", 2, T0, "node-a")
    second = storage.claim("default", 2, T0, "node-a")
    third = storage.claim("default", 2, T0, "node-a")

    oldest_first = ids(list(reversed(jobs)))
    assert ids(first) == oldest_first[:2]
    assert ids(second) == oldest_first[2:4]
    assert ids(third) == oldest_first[4:]
    assert storage.claim("default", 2, T0, "node-a") == []


def test_claim_with_limit_zero_takes_nothing(storage: Storage) -> None:
    seeded(storage)

    assert storage.claim("default", 0, T0, "node-a") == []


def test_claim_skips_future_jobs_other_queues_and_jobs_not_available(storage: Storage) -> None:
    due = seeded(storage)
    seeded(storage, options={"now": at(10)})
    seeded(storage, options={"queue": "other"})
    for state in (JobState.SCHEDULED, JobState.RETRYABLE, JobState.COMPLETED, JobState.DISCARDED,
                  JobState.CANCELLED):
        seeded(storage, state=state)
    executing(storage)

    assert ids(storage.claim("default", 100, at(1), "node-a")) == [due.id]


def test_a_job_due_exactly_now_is_claimed(storage: Storage) -> None:
    job = seeded(storage, options={"now": at(5)})

    assert ids(storage.claim("default", 1, at(5), "node-a")) == [job.id]


def test_claim_counts_the_attempt_and_records_the_owner_and_start(storage: Storage) -> None:
    job = seeded(storage, attempts=2)

    [claimed] = storage.claim("default", 1, at(3), "node-a")

    expected = job.with_changes(state=JobState.EXECUTING, attempts=3, started_at=at(3), attempted_by="node-a")
    assert claimed == expected
    assert storage.fetch(job.id) == expected
    assert_utc(claimed.started_at)


# -- ack


def test_acking_completed_finishes_the_job(storage: Storage) -> None:
    job = executing(storage)

    assert storage.ack([Ack(job.id, 1, "node-a", JobState.COMPLETED, at(2))]) == [True]

    assert storage.fetch(job.id) == job.with_changes(state=JobState.COMPLETED, completed_at=at(2))


def test_acking_discarded_finishes_the_job_and_records_the_error(storage: Storage) -> None:
    job = executing(storage, errors=[{"attempt": 0, "error": "earlier"}])
    error = {"attempt": 1, "at": at(2).isoformat(), "error": "ValueError('bad')"}

    assert storage.ack([Ack(job.id, 1, "node-a", JobState.DISCARDED, at(2), error=error)]) == [True]

    assert storage.fetch(job.id) == job.with_changes(
        state=JobState.DISCARDED, completed_at=at(2), errors=[*job.errors, error])


def test_acking_retryable_sets_the_next_run_and_records_the_error(storage: Storage) -> None:
    job = executing(storage, attempts=2)
    error = {"attempt": 2, "error": "timeout", "detail": {"retry": True}}

    assert storage.ack([Ack(job.id, 2, "node-a", JobState.RETRYABLE, at(2), available_at=at(60),
                            error=error)]) == [True]

    assert storage.fetch(job.id) == job.with_changes(state=JobState.RETRYABLE, available_at=at(60),
                                                     errors=[error])


def test_acking_scheduled_snoozes_and_gives_the_attempt_back(storage: Storage) -> None:
    job = executing(storage, attempts=2)

    assert storage.ack([Ack(job.id, 2, "node-a", JobState.SCHEDULED, at(2), available_at=at(30))]) == [True]

    assert storage.fetch(job.id) == job.with_changes(state=JobState.SCHEDULED, scheduled_at=at(30),
                                                     available_at=at(30), attempts=1)


def test_acking_available_releases_the_job_now_and_gives_the_attempt_back(storage: Storage) -> None:
    job = executing(storage)

    assert storage.ack([Ack(job.id, 1, "node-a", JobState.AVAILABLE, at(2))]) == [True]

    released = job.with_changes(state=JobState.AVAILABLE, available_at=at(2), attempts=0)
    assert storage.fetch(job.id) == released
    assert ids(storage.claim("default", 1, at(2), "node-b")) == [job.id]


def test_acking_available_with_a_time_releases_the_job_at_that_time(storage: Storage) -> None:
    job = executing(storage)

    assert storage.ack([Ack(job.id, 1, "node-a", JobState.AVAILABLE, at(2), available_at=at(9))]) == [True]

    assert storage.fetch(job.id) == job.with_changes(state=JobState.AVAILABLE, available_at=at(9), attempts=0)


@pytest.mark.parametrize(("attempt", "owner"), [(2, "node-a"), (0, "node-a"), (1, "node-b")])
def test_an_ack_with_the_wrong_attempt_or_owner_changes_nothing(
        storage: Storage, attempt: int, owner: str) -> None:
    job = executing(storage)

    applied = storage.ack([Ack(job.id, attempt, owner, JobState.COMPLETED, at(2))])

    assert applied == [False]
    assert storage.fetch(job.id) == job


@pytest.mark.parametrize("state", [JobState.CANCELLED, JobState.AVAILABLE, JobState.COMPLETED])
def test_an_ack_for_a_job_no_longer_executing_changes_nothing(storage: Storage, state: JobState) -> None:
    job = seeded(storage, state=state, attempts=1, attempted_by="node-a", cancelled_at=at(1))

    applied = storage.ack([Ack(job.id, 1, "node-a", JobState.RETRYABLE, at(2), available_at=at(3),
                               error={"error": "late"})])

    assert applied == [False]
    assert storage.fetch(job.id) == job


def test_an_ack_for_an_unknown_job_is_not_applied(storage: Storage) -> None:
    assert storage.ack([Ack("0" * 32, 1, "node-a", JobState.COMPLETED, at(2))]) == [False]


def test_acks_in_one_call_report_each_outcome(storage: Storage) -> None:
    first, second, third = executing(storage), executing(storage), executing(storage)

    applied = storage.ack([
        Ack(first.id, 1, "node-a", JobState.COMPLETED, at(2)),
        Ack(second.id, 1, "node-b", JobState.COMPLETED, at(2)),
        Ack(third.id, 1, "node-a", JobState.RETRYABLE, at(2), available_at=at(9), error={"e": 1}),
    ])

    assert applied == [True, False, True]
    assert [storage.fetch(j.id).state for j in (first, second, third)] == [  # type: ignore[union-attr]
        JobState.COMPLETED, JobState.EXECUTING, JobState.RETRYABLE]


def test_a_batch_of_completions_applies_each_fenced_one_and_keeps_each_completion_time(storage: Storage) -> None:
    good = [executing(storage) for _ in range(4)]
    wrong_attempt, other_owner = executing(storage, attempts=2), executing(storage, owner="node-b")
    finished = seeded(storage, state=JobState.COMPLETED, attempts=1, attempted_by="node-a", completed_at=at(1))
    acks = [Ack(job.id, 1, "node-a", JobState.COMPLETED, at(10 + n)) for n, job in enumerate(good)]
    acks[2:2] = [Ack(j.id, 1, "node-a", JobState.COMPLETED, at(5)) for j in (wrong_attempt, other_owner, finished)]
    acks.append(Ack("0" * 32, 1, "node-a", JobState.COMPLETED, at(5)))

    assert storage.ack(acks) == [True, True, False, False, False, True, True, False]
    assert [storage.fetch(j.id).completed_at for j in good] == [at(10), at(11), at(12), at(13)]  # type: ignore[union-attr]
    assert {storage.fetch(j.id).state for j in (wrong_attempt, other_owner)} == {JobState.EXECUTING}  # type: ignore[union-attr]
    assert storage.fetch(finished.id).completed_at == at(1)  # type: ignore[union-attr]


def test_the_first_of_two_acks_for_one_job_in_a_batch_wins(storage: Storage) -> None:
    job, other = executing(storage), executing(storage)

    applied = storage.ack([
        Ack(job.id, 1, "node-a", JobState.COMPLETED, at(2)),
        Ack(other.id, 1, "node-a", JobState.COMPLETED, at(2)),
        Ack(job.id, 1, "node-a", JobState.AVAILABLE, at(3)),
    ])

    assert applied == [True, True, False]
    assert storage.fetch(job.id).state == JobState.COMPLETED  # type: ignore[union-attr]


def test_acking_nothing_applies_nothing(storage: Storage) -> None:
    assert storage.ack([]) == []


def test_a_second_ack_of_the_same_execution_is_not_applied(storage: Storage) -> None:
    job = executing(storage)
    ack = Ack(job.id, 1, "node-a", JobState.COMPLETED, at(2))

    assert storage.ack([ack]) == [True]
    assert storage.ack([ack]) == [False]


# -- stage


def test_stage_makes_due_scheduled_and_retryable_jobs_available(storage: Storage) -> None:
    scheduled = seeded(storage, state=JobState.SCHEDULED, scheduled_at=at(5), available_at=at(5))
    retryable = seeded(storage, options={"queue": "other"}, state=JobState.RETRYABLE, available_at=at(3))
    future = seeded(storage, state=JobState.SCHEDULED, scheduled_at=at(50), available_at=at(50))
    done = seeded(storage, state=JobState.COMPLETED, completed_at=at(1))

    moved = storage.stage(at(5), 100)

    assert moved == {"default": 1, "other": 1}
    assert storage.fetch(scheduled.id) == scheduled.with_changes(state=JobState.AVAILABLE)
    assert storage.fetch(retryable.id) == retryable.with_changes(state=JobState.AVAILABLE)
    assert storage.fetch(future.id) == future
    assert storage.fetch(done.id) == done


def test_stage_moves_at_most_limit_jobs(storage: Storage) -> None:
    for i in range(5):
        seeded(storage, state=JobState.SCHEDULED, scheduled_at=at(i), available_at=at(i))

    assert storage.stage(at(10), 3) == {"default": 3}
    assert storage.stage(at(10), 3) == {"default": 2}
    assert storage.stage(at(10), 3) == {}
    assert storage.counts() == {("default", JobState.AVAILABLE): 5}


def test_stage_leaves_out_queues_with_nothing_due(storage: Storage) -> None:
    seeded(storage, options={"queue": "later"}, state=JobState.SCHEDULED, available_at=at(99))

    assert storage.stage(at(1), 10) == {}


# -- prune


def test_prune_deletes_finished_jobs_older_than_the_cutoff(storage: Storage) -> None:
    completed = seeded(storage, state=JobState.COMPLETED, completed_at=at(1))
    discarded = seeded(storage, state=JobState.DISCARDED, completed_at=at(2))
    cancelled = seeded(storage, state=JobState.CANCELLED, cancelled_at=at(3))
    recent = seeded(storage, state=JobState.COMPLETED, completed_at=at(20))
    recent_cancel = seeded(storage, state=JobState.CANCELLED, cancelled_at=at(20), completed_at=at(1))
    waiting = [seeded(storage, state=state, completed_at=at(1), cancelled_at=at(1))
               for state in (JobState.AVAILABLE, JobState.SCHEDULED, JobState.RETRYABLE)]
    running = executing(storage, completed_at=at(1), cancelled_at=at(1))

    pruned = storage.prune(at(10), 100)

    assert sorted(ids(pruned)) == sorted([completed.id, discarded.id, cancelled.id])
    assert {job.id: job for job in pruned}[completed.id] == completed
    assert sorted(ids(storage.all())) == sorted([recent.id, recent_cancel.id, running.id, *ids(waiting)])


def test_prune_cutoff_is_exclusive(storage: Storage) -> None:
    job = seeded(storage, state=JobState.COMPLETED, completed_at=at(10))

    assert storage.prune(at(10), 10) == []
    assert ids(storage.prune(at(10.000001), 10)) == [job.id]


def test_prune_deletes_at_most_limit_jobs(storage: Storage) -> None:
    for i in range(5):
        seeded(storage, state=JobState.COMPLETED, completed_at=at(i))

    assert len(storage.prune(at(10), 2)) == 2
    assert len(storage.all()) == 3
    assert len(storage.prune(at(10), 10)) == 3
    assert storage.all() == []


# -- nodes


def node(name: str, heartbeat: float = 0, **changes: Any) -> NodeRecord:
    return NodeRecord(name, changes.pop("started_at", at(-100)), at(heartbeat), **changes)


def test_registered_nodes_are_listed_by_name(storage: Storage) -> None:
    b = node("node-b", queues={"default": 10, "emails": 5}, meta={"host": "h1", "pid": 42})
    a = node("node-a")
    storage.register_node(b)
    storage.register_node(a)

    assert storage.nodes() == [a, b]
    for record in storage.nodes():
        assert_utc(record.started_at)
        assert_utc(record.heartbeat_at)


def test_registering_a_node_again_replaces_its_record(storage: Storage) -> None:
    storage.register_node(node("node-a", queues={"default": 1}))
    again = node("node-a", heartbeat=5, started_at=at(4), queues={"emails": 2}, meta={"v": 2})

    storage.register_node(again)

    assert storage.nodes() == [again]


def test_heartbeat_updates_a_registered_node(storage: Storage) -> None:
    record = node("node-a", queues={"default": 3})
    storage.register_node(record)

    assert storage.heartbeat("node-a", at(9)) is True

    assert storage.nodes() == [NodeRecord("node-a", record.started_at, at(9), record.queues, record.meta)]


def test_heartbeat_of_an_unknown_node_reports_it_gone(storage: Storage) -> None:
    assert storage.heartbeat("node-a", at(9)) is False
    assert storage.nodes() == []


def test_remove_node_deletes_its_record(storage: Storage) -> None:
    storage.register_node(node("node-a"))
    storage.register_node(node("node-b"))

    storage.remove_node("node-a")
    storage.remove_node("missing")

    assert [n.name for n in storage.nodes()] == ["node-b"]


def test_prune_nodes_deletes_stale_nodes_that_own_no_executing_job(storage: Storage) -> None:
    for name, heartbeat in (("stale-idle", 0), ("stale-busy", 0), ("fresh", 20), ("stale-done", 0)):
        storage.register_node(node(name, heartbeat))
    executing(storage, owner="stale-busy")
    seeded(storage, state=JobState.COMPLETED, attempted_by="stale-done", completed_at=at(1))

    assert storage.prune_nodes(at(10)) == ["stale-done", "stale-idle"]
    assert [n.name for n in storage.nodes()] == ["fresh", "stale-busy"]


# -- leases


def test_a_free_lease_is_acquired(storage: Storage) -> None:
    assert storage.acquire_lease("leader", "node-a", at(0), 30) is True


def test_a_held_lease_is_refused_to_others_until_it_expires(storage: Storage) -> None:
    storage.acquire_lease("leader", "node-a", at(0), 30)

    assert storage.acquire_lease("leader", "node-b", at(29), 30) is False
    assert storage.acquire_lease("leader", "node-b", at(30), 30) is True
    assert storage.acquire_lease("leader", "node-a", at(31), 30) is False


def test_the_holder_renews_its_lease(storage: Storage) -> None:
    storage.acquire_lease("leader", "node-a", at(0), 30)

    assert storage.acquire_lease("leader", "node-a", at(20), 30) is True
    assert storage.acquire_lease("leader", "node-b", at(40), 30) is False
    assert storage.acquire_lease("leader", "node-b", at(50), 30) is True


def test_leases_are_independent_by_name(storage: Storage) -> None:
    storage.acquire_lease("leader", "node-a", at(0), 30)

    assert storage.acquire_lease("pruner", "node-b", at(1), 30) is True


def test_a_released_lease_can_be_taken_at_once(storage: Storage) -> None:
    storage.acquire_lease("leader", "node-a", at(0), 30)

    storage.release_lease("leader", "node-a")

    assert storage.acquire_lease("leader", "node-b", at(1), 30) is True


def test_only_the_holder_can_release_a_lease(storage: Storage) -> None:
    storage.acquire_lease("leader", "node-a", at(0), 30)

    storage.release_lease("leader", "node-b")
    storage.release_lease("unknown", "node-a")

    assert storage.acquire_lease("leader", "node-b", at(1), 30) is False


# -- rescue


def test_rescue_makes_jobs_of_a_stale_node_available_again(storage: Storage) -> None:
    storage.register_node(node("dead", heartbeat=0))
    job = executing(storage, owner="dead", attempts=1)

    [rescued] = storage.rescue(at(20), stale_before=at(10))

    assert rescued.state == JobState.AVAILABLE
    assert rescued.available_at == at(20)
    assert rescued.attempted_by == "dead"
    assert rescued.attempts == 1
    assert storage.fetch(job.id) == rescued
    [error] = rescued.errors
    assert error["attempt"] == 1
    assert error["kind"] == "rescued"
    assert "dead" in error["error"]
    assert datetime.fromisoformat(error["at"]) == at(20)


def test_rescue_treats_a_node_without_a_record_as_dead(storage: Storage) -> None:
    job = executing(storage, owner="vanished")

    assert ids(storage.rescue(at(20), stale_before=at(10))) == [job.id]


def test_rescue_leaves_jobs_of_live_nodes_alone(storage: Storage) -> None:
    storage.register_node(node("alive", heartbeat=10))
    job = executing(storage, owner="alive")

    assert storage.rescue(at(20), stale_before=at(10)) == []
    assert storage.fetch(job.id) == job


def test_rescue_discards_a_job_out_of_attempts(storage: Storage) -> None:
    job = executing(storage, owner="dead", attempts=3, options={"max_attempts": 3},
                    errors=[{"attempt": 2, "error": "boom"}])

    [rescued] = storage.rescue(at(20), stale_before=at(10))

    assert rescued.state == JobState.DISCARDED
    assert rescued.completed_at == at(20)
    assert rescued.available_at == job.available_at
    assert [e.get("kind") for e in rescued.errors] == [None, "rescued"]
    assert storage.fetch(job.id) == rescued


def test_rescue_touches_only_executing_jobs(storage: Storage) -> None:
    waiting = seeded(storage, attempted_by="dead", attempts=1)
    done = seeded(storage, state=JobState.COMPLETED, attempted_by="dead", completed_at=at(1))
    dead = [executing(storage, owner="dead") for _ in range(3)]

    rescued = storage.rescue(at(20), stale_before=at(10))

    assert sorted(ids(rescued)) == sorted(ids(dead))
    assert storage.fetch(waiting.id) == waiting
    assert storage.fetch(done.id) == done


def test_a_late_ack_after_rescue_is_not_applied(storage: Storage) -> None:
    job = executing(storage, owner="dead")
    storage.rescue(at(20), stale_before=at(10))
    [again] = storage.claim("default", 1, at(21), "node-b")

    late = storage.ack([Ack(job.id, 1, "dead", JobState.COMPLETED, at(22))])

    assert late == [False]
    assert again.attempts == 2
    assert storage.fetch(job.id) == again


# -- lifecycle


def test_setup_is_idempotent_and_keeps_jobs(storage: Storage) -> None:
    job = seeded(storage)

    storage.setup()

    assert storage.fetch(job.id) == job


def test_reset_deletes_every_job_node_and_lease(storage: Storage) -> None:
    seeded(storage)
    storage.register_node(node("node-a"))
    storage.acquire_lease("leader", "node-a", at(0), 30)

    storage.reset()

    assert storage.all() == []
    assert storage.nodes() == []
    assert storage.acquire_lease("leader", "node-b", at(1), 30) is True


@pytest.mark.parametrize("limit", [-1, 2.5, "10", True])
def test_a_bad_limit_is_refused_naming_it_on_every_batch_operation(storage: Storage, limit: object) -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    calls = [
        lambda: storage.claim("default", limit, now, "node-a"),  # type: ignore[arg-type]
        lambda: storage.stage(now, limit),  # type: ignore[arg-type]
        lambda: storage.prune(now, limit),  # type: ignore[arg-type]
        lambda: storage.all(limit=limit),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises((TypeError, ValueError), match="limit must be"):
            call()
