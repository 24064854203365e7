"""The coordinator loop: this node's heartbeat, the leader election and the lifeline, in one round.

Every ``heartbeat_interval`` seconds one round runs ``node.tick``, ``leader.tick`` and ``lifeline.tick`` in
that order and stops at the first failure (reported as ``("kathikon", "storage", "error")``), so the lifeline
only ticks in rounds where this node could reach the database, and a failed round is retried at the next
interval with a fresh ``now``. The leader lease lasts two heartbeat intervals, so it is renewed at half of it.

The round runs on the runtime's event loop like every other loop, on purpose: a heartbeat must prove that
the node makes progress, not merely that the process exists. A runtime whose event loop is wedged cannot
finish or ack its jobs either, so it should lose them to a live node rather than hold them forever.

``start`` registers the node and runs the leader and lifeline steps before any dispatcher claims, so jobs
left executing by a dead predecessor on this host are rescued before this node starts claiming; ``stop``
(after the last outcome is written) resigns leadership and removes the node record.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from kathikon import telemetry
from kathikon.config import Config
from kathikon.runtime.leader import Leader
from kathikon.runtime.lifeline import Lifeline
from kathikon.runtime.node import Node
from kathikon.storage.base import Storage

if TYPE_CHECKING:
    from kathikon.runtime.loops import LoopContext

__all__ = ["Coordinator"]

STORAGE_ERROR = ("kathikon", "storage", "error")


class Coordinator:
    """A runtime loop (``start``/``tick``/``stop`` with ``now``) owning this node's Node, Leader and Lifeline."""

    name = "coordinator"

    def __init__(self, node: Node, leader: Leader, lifeline: Lifeline, interval: float) -> None:
        self.node = node
        self.leader = leader
        self.lifeline = lifeline
        self.interval = interval
        self._failures = 0

    @classmethod
    def build(cls, storage: Storage, config: Config, node: Node, leader: Leader | None = None) -> Coordinator:
        """The coordinator for ``node`` with the intervals of ``config``."""
        leader = leader or Leader.for_config(storage, node.name, config)
        lifeline = Lifeline(storage, config.rescue_after, config.heartbeat_interval, leader.leads)
        return cls(node, leader, lifeline, config.heartbeat_interval)

    @classmethod
    def from_context(cls, context: LoopContext) -> Coordinator:
        """The runtime's coordinator: its node runs the configured queues and stops remotely cancelled jobs."""
        queues = {name: q.concurrency for name, q in context.config.queues.items()}
        node = Node(context.storage, context.node, queues, executing=context.executing,
                    on_cancelled=context.cancel)
        return cls.build(context.storage, context.config, node, context.leader)

    def start(self, now: datetime) -> None:
        """Register the node (errors propagate: an unregistered node must not claim), then lead if free."""
        self.node.start(now)
        self._steps(now, [self.leader.tick, self.lifeline.tick])

    def tick(self, now: datetime) -> bool:
        """One heartbeat round; False when a step failed (the rest of the round is skipped)."""
        return self._steps(now, [self.node.tick, self.leader.tick, self.lifeline.tick])

    def stop(self, now: datetime) -> None:
        """Resign leadership, then remove the node record. Call after the last job outcome is written."""
        self._steps(now, [lambda _: self.leader.stop(), lambda _: self.node.stop()], all_steps=True)

    def _steps(self, now: datetime, steps: list[Callable[[datetime], object]], *, all_steps: bool = False) -> bool:
        ok = True
        for step in steps:
            ok = self._guarded(step, now) and ok
            if not ok and not all_steps:
                break
        return ok

    def _guarded(self, step: Callable[[datetime], object], now: datetime) -> bool:
        try:
            step(now)
        except Exception as exc:
            self._failures += 1
            telemetry.emit(STORAGE_ERROR, {"failures": self._failures},
                           {"operation": f"{self.name}.{getattr(step, '__qualname__', step)}",
                            "node": self.node.name, "error": str(exc)})
            return False
        self._failures = 0
        return True
