"""The coordinator round: node heartbeat, then leader, then lifeline; stops at the first failure."""

from __future__ import annotations

import os
from datetime import datetime

from kathikon.config import Config
from kathikon.exceptions import DatabaseUnavailableError
from kathikon.job import JobState
from kathikon.runtime import node as node_module
from kathikon.runtime.coordinator import Coordinator
from kathikon.runtime.node import Node
from kathikon.storage.base import Storage
from kathikon.storage.memory import MemoryStorage
from tests.runtime.coordination_helpers import Event, at, events, executing_job, names, node
from tests.runtime.test_node import dead_pid

__all__ = ["events"]

CONFIG = Config(database="memory://", heartbeat_interval=5.0, rescue_after=60.0)


def coordinator(storage: Storage, name: str = "node-a") -> Coordinator:
    return Coordinator.build(storage, CONFIG, Node(storage, name, {"default": 10}))


def test_the_lease_lasts_two_heartbeats_and_is_renewed_every_heartbeat() -> None:
    c = coordinator(MemoryStorage())
    assert (c.interval, c.leader.ttl, c.leader.interval, c.lifeline.rescue_after) == (5.0, 10.0, 5.0, 60.0)


def test_start_registers_leads_and_rescues_a_dead_predecessor_at_once(storage: Storage,
                                                                       events: list[Event]) -> None:
    storage.register_node(node("predecessor", at(0), pid=dead_pid(), scope=node_module._SCOPE))
    storage.acquire_lease("leader", "predecessor", at(0), 10)
    job = executing_job(storage, "predecessor", at(0))
    c = coordinator(storage)
    c.start(at(1))
    assert c.leader.leads(at(1))
    fetched = storage.fetch(job.id)
    assert fetched is not None
    assert fetched.state == JobState.AVAILABLE
    assert [n.name for n in storage.nodes()] == ["node-a"]
    assert names(events) == ["node.start", "node.dead", "leader.elected", "lifeline.rescue", "lifeline.tick"]


def test_stop_resigns_and_removes_the_node(storage: Storage, events: list[Event]) -> None:
    a, b = coordinator(storage, "node-a"), coordinator(storage, "node-b")
    a.start(at(0))
    b.start(at(1))
    a.stop(at(2))
    assert [n.name for n in storage.nodes()] == ["node-b"]
    b.tick(at(3))
    assert b.leader.leads(at(3))
    assert names(events)[-4:] == ["leader.resigned", "node.stop", "leader.elected", "lifeline.tick"]


def test_a_round_heartbeats_every_node_and_only_the_leader_rescues(storage: Storage) -> None:
    a, b = coordinator(storage, "node-a"), coordinator(storage, "node-b")
    a.start(at(0))
    b.start(at(0))
    storage.register_node(node("dead", at(0)))
    job = executing_job(storage, "dead", at(0))
    for second in range(5, 70, 5):
        assert b.tick(at(second))
        assert a.tick(at(second))
    assert {n.name: n.heartbeat_at for n in storage.nodes()} == {"node-a": at(65), "node-b": at(65)}
    fetched = storage.fetch(job.id)
    assert fetched is not None
    assert fetched.state == JobState.AVAILABLE
    assert a.leader.leads(at(65))
    assert not b.leader.leads(at(65))


class FlakyHeartbeat(MemoryStorage):
    down = False

    def heartbeat(self, name: str, now: datetime) -> bool:
        if self.down:
            raise DatabaseUnavailableError("database is restarting")
        return super().heartbeat(name, now)


def test_a_failed_step_skips_the_rest_of_the_round_and_is_reported(events: list[Event]) -> None:
    storage = FlakyHeartbeat()
    c = coordinator(storage)
    c.start(at(0))
    storage.down = True
    executing_job(storage, "gone", at(1))
    assert c.tick(at(5)) is False
    assert storage.all(state=JobState.EXECUTING), "the lifeline did not tick in a failed round"
    error = events[-1]
    assert error[0] == ("kathikon", "storage", "error")
    assert error[2]["operation"] == "coordinator.Node.tick"
    assert "restarting" in error[2]["error"]
    storage.down = False
    assert c.tick(at(10)) is True
    assert storage.all(state=JobState.EXECUTING) == []


def test_node_meta_names_this_process() -> None:
    storage = MemoryStorage()
    coordinator(storage).start(at(0))
    assert storage.nodes()[0].meta["pid"] == os.getpid()
