"""The node: this runtime's record in storage, kept fresh by a heartbeat.

A node registers before its dispatchers claim anything (a job whose ``attempted_by`` names no registered node
is rescued at once), heartbeats every ``heartbeat_interval`` seconds, registers again if its record vanished,
and removes the record only after its last job is acked or released at shutdown.

Each tick also does two cheap checks that need no leader:

- Jobs this node runs that were cancelled with ``cancel(id, running=True)`` by another process are handed to
  ``on_cancelled`` (the runtime stops them). One query for the ids it is executing.
- Dead siblings: a node registered from this host and PID namespace whose process no longer exists is dead
  for certain, not merely silent, so its record is removed (and its leader lease released) at once. The
  leader's lifeline then rescues its jobs on its next tick instead of after ``rescue_after``: a worker
  restarted after a crash, or a supervisor's child killed by the OOM killer, gets its jobs back in seconds.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Collection, Mapping
from datetime import datetime

from kathikon import telemetry
from kathikon.job import JobState
from kathikon.runtime.leader import LEADER_LEASE
from kathikon.storage.base import NodeRecord, Storage

__all__ = ["Node", "node_name"]

NODE_START = ("kathikon", "node", "start")
NODE_STOP = ("kathikon", "node", "stop")
NODE_DEAD = ("kathikon", "node", "dead")


def node_name(prefix: str | None = None) -> str:
    """A name no other process will ever register: ``<prefix or host>-<pid>-<random>``.

    The pid and random suffix are always added, so a restarted process never inherits the identity (and
    thereby the stranded jobs) of the process it replaces.
    """
    return f"{prefix or socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Node:
    """This runtime as a registered node. ``start(now)``, then ``tick(now)`` every heartbeat, ``stop()``."""

    def __init__(self, storage: Storage, name: str, queues: Mapping[str, int] | None = None, *,
                 executing: Callable[[], Collection[str]] = frozenset,
                 on_cancelled: Callable[[str], None] = lambda job_id: None) -> None:
        self.storage = storage
        self.name = name
        self.queues = dict(queues or {})
        self._executing = executing
        self._on_cancelled = on_cancelled
        self._started_at: datetime | None = None
        self._notified: set[str] = set()

    def start(self, now: datetime) -> None:
        """Register, then reap dead siblings (so their jobs are rescued before this node claims)."""
        self._register(now)
        telemetry.emit(NODE_START, {}, {"node": self.name, "queues": self.queues})
        self.reap_dead_siblings()

    def tick(self, now: datetime) -> None:
        """Heartbeat (re-registering if the record is gone), reap dead siblings, notice remote cancels."""
        if not self.storage.heartbeat(self.name, now):
            self._register(now)
            telemetry.emit(NODE_START, {}, {"node": self.name, "queues": self.queues, "reason": "re-registered"})
        self.reap_dead_siblings()
        self.check_cancelled()

    def stop(self) -> None:
        """Remove the record. Call only once every job of this node is acked or released."""
        if self._started_at is None:
            return
        self._started_at = None
        try:
            self.storage.remove_node(self.name)
        finally:
            telemetry.emit(NODE_STOP, {}, {"node": self.name})

    def reap_dead_siblings(self) -> list[str]:
        """Remove the records of nodes of this host whose process is gone; returns their names."""
        dead = [n.name for n in self.storage.nodes() if n.name != self.name and _process_gone(n)]
        for name in dead:
            self.storage.remove_node(name)
            self.storage.release_lease(LEADER_LEASE, name)
            telemetry.emit(NODE_DEAD, {}, {"node": name, "reason": "process gone", "seen_by": self.name})
        return dead

    def check_cancelled(self) -> list[str]:
        """Hand the ids of this node's executing jobs that storage says are cancelled to ``on_cancelled``."""
        running = set(self._executing())
        self._notified &= running
        ids = running - self._notified
        if not ids:
            return []
        states = self.storage.states(sorted(ids))
        cancelled = sorted(i for i, state in states.items() if state == JobState.CANCELLED)
        for job_id in cancelled:
            self._notified.add(job_id)
            self._on_cancelled(job_id)
        return cancelled

    def _register(self, now: datetime) -> None:
        self._started_at = self._started_at or now
        meta = {"host": socket.gethostname(), "pid": os.getpid(), "scope": _SCOPE}
        self.storage.register_node(NodeRecord(self.name, self._started_at, now, self.queues, meta))


def _pid_scope() -> str | None:
    """Where a pid means the same process: this host and PID namespace. None where we cannot tell safely."""
    if os.name != "posix":
        return None  # os.kill(pid, 0) is not a harmless probe on Windows
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""  # no /proc (macOS, BSD): no PID namespaces either, the host name suffices
    return f"{socket.gethostname()}|{namespace}"


_SCOPE = _pid_scope()


def _process_gone(node: NodeRecord) -> bool:
    """True only when ``node`` ran in our pid scope and its process no longer exists."""
    pid = node.meta.get("pid")
    if _SCOPE is None or node.meta.get("scope") != _SCOPE or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # exists, owned by another user
    return False
