"""The Lifeline: seeded rows (stale heartbeats, missing records, long jobs), one tick, outcome and telemetry."""

from __future__ import annotations

from datetime import datetime

import pytest

from kathikon.job import JobState
from kathikon.runtime.lifeline import Lifeline
from kathikon.storage.base import Storage
from kathikon.storage.memory import MemoryStorage
from tests.runtime.coordination_helpers import T0, Event, at, events, executing_job, names, node

__all__ = ["events"]

RESCUE_AFTER = 60.0
INTERVAL = 5.0


def leading(now: datetime) -> bool:
    return True


def lifeline(storage: Storage, leads: object = leading) -> Lifeline:
    return Lifeline(storage, RESCUE_AFTER, INTERVAL, leads)  # type: ignore[arg-type]


def state(storage: Storage, job_id: str) -> JobState:
    job = storage.fetch(job_id)
    assert job is not None
    return job.state


def test_a_job_on_a_node_with_a_stale_heartbeat_goes_back_to_available(storage: Storage,
                                                                        events: list[Event]) -> None:
    storage.register_node(node("dead", at(0)))
    job = executing_job(storage, "dead", at(0))
    [rescued] = lifeline(storage).tick(at(61))
    assert (rescued.id, rescued.state, rescued.available_at, rescued.attempted_by) == (
        job.id, JobState.AVAILABLE, at(61), "dead")
    assert rescued.errors[-1]["kind"] == "rescued"
    assert names(events) == ["lifeline.rescue", "node.dead", "lifeline.tick"]
    assert events[0][2]["job"].id == job.id
    assert events[2][1]["rescued"] == 1


def test_a_node_silent_for_less_than_rescue_after_keeps_its_jobs(storage: Storage) -> None:
    storage.register_node(node("slow", at(0)))
    job = executing_job(storage, "slow", at(0))
    assert lifeline(storage).tick(at(59)) == []
    assert state(storage, job.id) == JobState.EXECUTING


def test_a_long_running_job_on_a_live_node_is_never_rescued(storage: Storage) -> None:
    job = executing_job(storage, "live", at(0))
    line = lifeline(storage)
    for hour in range(1, 25):
        storage.register_node(node("live", at(hour * 3600 - 5)))
        assert line.tick(at(hour * 3600)) == []
    assert state(storage, job.id) == JobState.EXECUTING


def test_a_job_on_a_node_without_a_record_is_rescued_at_once(storage: Storage) -> None:
    job = executing_job(storage, "vanished", at(0))
    assert [j.id for j in lifeline(storage).tick(at(1))] == [job.id]


def test_a_rescue_that_uses_up_the_attempts_discards_the_job(storage: Storage, events: list[Event]) -> None:
    job = executing_job(storage, "dead", at(0), max_attempts=1)
    [rescued] = lifeline(storage).tick(at(1))
    assert (rescued.id, rescued.state, rescued.completed_at) == (job.id, JobState.DISCARDED, at(1))
    assert events[-1][1]["discarded"] == 1


def test_a_job_that_kills_its_worker_every_time_is_discarded_after_max_attempts(storage: Storage) -> None:
    job = executing_job(storage, "victim-1", at(0), max_attempts=3)
    line = lifeline(storage)
    for attempt in range(2, 4):
        [rescued] = line.tick(at(attempt))
        assert rescued.state == JobState.AVAILABLE
        [claimed] = storage.claim("default", 1, at(attempt), f"victim-{attempt}")
        assert claimed.attempts == attempt
    [final] = line.tick(at(4))
    assert (final.id, final.state, final.attempts) == (job.id, JobState.DISCARDED, 3)
    assert [e["kind"] for e in final.errors] == ["rescued"] * 3


def test_a_follower_rescues_nothing(storage: Storage, events: list[Event]) -> None:
    job = executing_job(storage, "dead", at(0))
    assert lifeline(storage, leads=lambda now: False).tick(at(100)) == []
    assert state(storage, job.id) == JobState.EXECUTING
    assert events == []


def test_dead_nodes_that_own_no_jobs_are_pruned(storage: Storage, events: list[Event]) -> None:
    storage.register_node(node("dead", at(0)))
    storage.register_node(node("live", at(95)))
    lifeline(storage).tick(at(100))
    assert [n.name for n in storage.nodes()] == ["live"]
    assert events[0][2] == {"node": "dead", "reason": "stale heartbeat"}


def test_after_a_blind_spell_stale_heartbeats_do_not_count(storage: Storage) -> None:
    """The machine slept 10 minutes: every heartbeat is stale, yet only the job of a node known dead (no
    record) is rescued; the sleeping node's job keeps running."""
    storage.register_node(node("asleep", at(0)))
    sleeping = executing_job(storage, "asleep", at(0))
    line = lifeline(storage)
    line.tick(at(0))
    gone = executing_job(storage, "gone", at(1))
    rescued = line.tick(at(600))
    assert [j.id for j in rescued] == [gone.id]
    assert state(storage, sleeping.id) == JobState.EXECUTING
    assert line.stale_before(at(600)) == at(600 - RESCUE_AFTER - 600)


def test_the_blind_spell_allowance_ends_after_rescue_after(storage: Storage) -> None:
    storage.register_node(node("gone", at(0)))
    job = executing_job(storage, "gone", at(0))
    line = lifeline(storage)
    line.tick(at(0))
    for second in range(600, 660, 5):
        assert line.tick(at(second)) == []
    assert [j.id for j in line.tick(at(660))] == [job.id]
    assert line.stale_before(at(665)) == at(665 - RESCUE_AFTER)


def test_regular_ticks_allow_no_extra_silence() -> None:
    line = lifeline(MemoryStorage())
    for second in range(0, 100, 5):
        line.tick(at(second))
    assert line.stale_before(at(100)) == at(100 - RESCUE_AFTER)
    assert line.stale_before(T0) == at(-RESCUE_AFTER)


def test_rescue_after_must_exceed_the_interval() -> None:
    with pytest.raises(ValueError, match=r"0 < interval < rescue_after, got interval=5, rescue_after=5"):
        Lifeline(MemoryStorage(), 5, 5, leading)
