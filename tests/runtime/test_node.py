"""The node record: registration, heartbeats, dead siblings and remote cancels; ticks with explicit times."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from kathikon.job import JobState
from kathikon.runtime import node as node_module
from kathikon.runtime.leader import LEADER_LEASE
from kathikon.runtime.node import Node, node_name
from kathikon.storage.base import Storage
from kathikon.storage.memory import MemoryStorage
from tests.runtime.coordination_helpers import T0, Event, at, events, executing_job, names, node

__all__ = ["events"]


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_node_names_say_host_and_pid_and_never_repeat() -> None:
    first, second = node_name(), node_name()
    assert first.startswith(f"{socket.gethostname()}-{os.getpid()}-")
    assert first != second
    assert node_name("web").startswith(f"web-{os.getpid()}-")


def test_start_registers_the_node_with_its_queues(storage: Storage, events: list[Event]) -> None:
    Node(storage, "node-a", {"default": 10}).start(at(0))
    [record] = storage.nodes()
    assert (record.name, record.started_at, record.heartbeat_at, record.queues) == ("node-a", at(0), at(0),
                                                                                    {"default": 10})
    assert record.meta["pid"] == os.getpid()
    assert names(events) == ["node.start"]


def test_a_tick_records_the_heartbeat(storage: Storage) -> None:
    n = Node(storage, "node-a")
    n.start(at(0))
    n.tick(at(5))
    [record] = storage.nodes()
    assert (record.started_at, record.heartbeat_at) == (at(0), at(5))


def test_a_node_whose_record_vanished_registers_again(storage: Storage, events: list[Event]) -> None:
    n = Node(storage, "node-a")
    n.start(at(0))
    storage.remove_node("node-a")
    n.tick(at(5))
    [record] = storage.nodes()
    assert (record.name, record.started_at, record.heartbeat_at) == ("node-a", at(0), at(5))
    assert names(events) == ["node.start", "node.start"]
    assert events[1][2]["reason"] == "re-registered"


def test_stop_removes_the_record(storage: Storage, events: list[Event]) -> None:
    n = Node(storage, "node-a")
    n.start(at(0))
    n.stop()
    n.stop()
    assert storage.nodes() == []
    assert names(events) == ["node.start", "node.stop"]


def test_a_sibling_whose_process_is_gone_is_removed_at_once(storage: Storage, events: list[Event]) -> None:
    storage.register_node(node("dead", at(0), pid=dead_pid(), scope=node_module._SCOPE))
    assert storage.acquire_lease(LEADER_LEASE, "dead", at(0), 10)
    Node(storage, "node-a").start(at(1))
    assert [n.name for n in storage.nodes()] == ["node-a"]
    assert storage.acquire_lease(LEADER_LEASE, "node-a", at(1), 10), "the dead node's lease is released"
    assert events[-1][2] == {"node": "dead", "reason": "process gone", "seen_by": "node-a"}


def test_a_sibling_whose_process_is_alive_is_kept(storage: Storage) -> None:
    storage.register_node(node("alive", T0, pid=os.getppid(), scope=node_module._SCOPE))
    Node(storage, "node-a").start(at(1))
    assert [n.name for n in storage.nodes()] == ["alive", "node-a"]


def test_a_node_of_another_host_or_pid_namespace_is_never_judged_by_its_pid(storage: Storage) -> None:
    pid = dead_pid()
    storage.register_node(node("elsewhere", T0, pid=pid, scope="other-host|pid:[1]"))
    storage.register_node(node("unknown", T0, pid=pid))
    Node(storage, "node-a").start(at(1))
    assert [n.name for n in storage.nodes()] == ["elsewhere", "node-a", "unknown"]


def test_a_job_cancelled_by_another_process_is_handed_to_the_runtime_once(storage: Storage) -> None:
    running = executing_job(storage, "node-a", at(0))
    other = executing_job(storage, "node-a", at(0))
    cancelled: list[str] = []
    n = Node(storage, "node-a", executing=lambda: {running.id, other.id}, on_cancelled=cancelled.append)
    n.start(at(0))
    n.tick(at(5))
    assert cancelled == []
    storage.cancel(running.id, at(6), running=True)
    n.tick(at(10))
    n.tick(at(15))
    assert cancelled == [running.id]
    fetched = storage.fetch(other.id)
    assert fetched is not None
    assert fetched.state == JobState.EXECUTING


def test_a_node_running_nothing_does_not_ask_about_cancels() -> None:
    class Counting(MemoryStorage):
        asked = 0

        def states(self, job_ids: object) -> dict[str, JobState]:
            Counting.asked += 1
            return {}

    n = Node(Counting(), "node-a")
    n.start(at(0))
    n.tick(at(5))
    assert Counting.asked == 0
