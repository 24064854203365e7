"""Leader election by the "leader" lease row: ticks driven with explicit times, no sleeps."""

from __future__ import annotations

from datetime import datetime

import pytest

from kathikon.exceptions import DatabaseUnavailableError
from kathikon.runtime.leader import LEADER_LEASE, Leader, LeaderOnly
from kathikon.storage.base import Storage
from kathikon.storage.memory import MemoryStorage
from tests.runtime.coordination_helpers import Event, at, events, names

__all__ = ["events"]


def test_the_first_node_to_tick_becomes_leader(storage: Storage, events: list[Event]) -> None:
    a = Leader(storage, "node-a", ttl=10)
    assert a.tick(at(0)) is True
    assert a.leads(at(0))
    assert names(events) == ["leader.elected"]
    assert events[0][2]["node"] == "node-a"


def test_a_second_node_cannot_lead_while_the_lease_is_held(storage: Storage) -> None:
    a, b = Leader(storage, "node-a", ttl=10), Leader(storage, "node-b", ttl=10)
    a.tick(at(0))
    assert b.tick(at(5)) is False
    assert not b.leads(at(5))


def test_a_leader_renews_its_lease_at_half_its_ttl(storage: Storage) -> None:
    a, b = Leader(storage, "node-a", ttl=10), Leader(storage, "node-b", ttl=10)
    assert a.interval == 5
    for second in (0, 5, 10, 15):
        assert a.tick(at(second))
        assert not b.tick(at(second + 1))
    assert a.leads(at(24))


def test_a_follower_takes_over_once_the_leaders_lease_expires(storage: Storage, events: list[Event]) -> None:
    a, b = Leader(storage, "node-a", ttl=10), Leader(storage, "node-b", ttl=10)
    a.tick(at(0))
    assert not a.leads(at(10)), "a leader counts itself leader only until its lease would expire"
    assert b.tick(at(10)) is True
    assert a.tick(at(11)) is False
    assert names(events) == ["leader.elected", "leader.elected", "leader.resigned"]
    assert events[-1][2] == {"node": "node-a", "reason": "lost"}


def test_a_resigning_leader_lets_another_node_take_over_at_once(storage: Storage, events: list[Event]) -> None:
    a, b = Leader(storage, "node-a", ttl=10), Leader(storage, "node-b", ttl=10)
    a.tick(at(0))
    a.stop()
    assert not a.is_leader
    assert b.tick(at(1)) is True
    assert names(events) == ["leader.elected", "leader.resigned", "leader.elected"]
    assert events[1][2]["reason"] == "shutdown"


def test_a_follower_stopping_leaves_the_leaders_lease_alone(storage: Storage, events: list[Event]) -> None:
    a, b = Leader(storage, "node-a", ttl=10), Leader(storage, "node-b", ttl=10)
    a.tick(at(0))
    b.tick(at(1))
    b.stop()
    assert not Leader(storage, "node-c", ttl=10).tick(at(2))
    assert names(events) == ["leader.elected"]


class BrokenLeases(MemoryStorage):
    def acquire_lease(self, name: str, holder: str, now: datetime, ttl: float) -> bool:
        raise DatabaseUnavailableError("database is down")


def test_a_storage_error_counts_as_losing_the_lease(events: list[Event]) -> None:
    storage = BrokenLeases()
    a = Leader(storage, "node-a", ttl=10)
    a._valid_until = at(10)  # it led until the database went away
    with pytest.raises(DatabaseUnavailableError):
        a.tick(at(1))
    assert not a.leads(at(1))
    assert events[-1][2] == {"node": "node-a", "reason": "error"}


def test_a_lease_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ttl must be > 0 seconds, got 0"):
        Leader(MemoryStorage(), "node-a", ttl=0)


def test_the_lease_row_is_named_leader() -> None:
    storage = MemoryStorage()
    Leader(storage, "node-a", ttl=10).tick(at(0))
    assert not storage.acquire_lease(LEADER_LEASE, "node-b", at(1), 10)


class CountingLoop:
    name = "counting"
    interval = 1.0

    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self, now: datetime) -> None:
        self.calls.append("start")

    def tick(self, now: datetime) -> object:
        self.calls.append("tick")
        return "ticked"

    def stop(self, now: datetime) -> None:
        self.calls.append("stop")


def test_a_leader_only_loop_ticks_on_the_leader_and_idles_on_followers() -> None:
    storage = MemoryStorage()
    a, b = Leader(storage, "node-a", ttl=10), Leader(storage, "node-b", ttl=10)
    a.tick(at(0))
    b.tick(at(0))
    on_a, on_b = LeaderOnly(CountingLoop(), a.leads), LeaderOnly(CountingLoop(), b.leads)
    for loop in (on_a, on_b):
        loop.start(at(1))
        assert loop.name == "counting"
        assert loop.interval == 1.0
    assert on_a.tick(at(1)) == "ticked"
    assert on_b.tick(at(1)) is None
    on_a.stop(at(2))
    on_b.stop(at(2))
    assert on_a.loop.calls == ["start", "tick", "stop"]  # type: ignore[attr-defined]
    assert on_b.loop.calls == ["start", "stop"]  # type: ignore[attr-defined]


def test_the_runtime_runs_the_scheduler_and_pruner_on_the_leader_only() -> None:
    from kathikon.config import Config
    from kathikon.runtime.coordinator import Coordinator
    from kathikon.runtime.loops import LOOP_FACTORIES, LoopContext

    context = LoopContext(Config(database="memory://"), MemoryStorage(), "node-a", lambda queues: None, dict)
    loops = [factory(context) for factory in LOOP_FACTORIES]
    assert isinstance(loops[0], Coordinator)
    assert loops[0].leader is context.leader
    assert [(type(loop).__name__, loop.name) for loop in loops[1:]] == [
        ("LeaderOnly", "scheduler"), ("LeaderOnly", "pruner")]
