"""Leader election by a lease row: one node at a time does the cluster-wide work.

The scheduler, the pruner and the lifeline act on every job of the database, so only the node holding the
``"leader"`` lease runs them; every node still runs its own dispatchers. The lease is taken with
``Storage.acquire_lease`` (one atomic statement on every backend) for ``ttl`` seconds and renewed at half
that, so one late renewal does not lose it. A leader that stops cleanly releases the lease so another node
takes over at its next tick instead of waiting for the lease to expire.

Two leaders at once (a leader paused past its lease while another took over) only duplicate work: staging,
pruning and rescuing are atomic, idempotent statements. So a node counts itself leader until its lease
would expire, never longer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from kathikon import telemetry
from kathikon._clock import utcnow
from kathikon.config import Config
from kathikon.storage.base import Storage

if TYPE_CHECKING:
    from kathikon.runtime.loops import Loop, LoopContext

__all__ = ["LEADER_LEASE", "LEASE_HEARTBEATS", "Leader", "LeaderOnly", "leader_only"]

LEADER_LEASE = "leader"
#: The lease lasts this many heartbeat intervals and is renewed every heartbeat (at half the lease).
LEASE_HEARTBEATS = 2
ELECTED = ("kathikon", "leader", "elected")
RESIGNED = ("kathikon", "leader", "resigned")


class Leader:
    """This node's side of the election: ``tick(now)`` every ``ttl / 2`` seconds, ``stop()`` at shutdown."""

    def __init__(self, storage: Storage, holder: str, ttl: float) -> None:
        if ttl <= 0:
            raise ValueError(f"leader lease ttl must be > 0 seconds, got {ttl!r}")
        self.storage = storage
        self.holder = holder
        self.ttl = ttl
        self._valid_until: datetime | None = None

    @classmethod
    def for_config(cls, storage: Storage, holder: str, config: Config) -> Leader:
        """A lease of ``LEASE_HEARTBEATS`` heartbeat intervals, so it is renewed at half of it."""
        return cls(storage, holder, ttl=config.heartbeat_interval * LEASE_HEARTBEATS)

    @property
    def interval(self) -> float:
        """How often to tick: half the lease, so one late renewal does not lose it."""
        return self.ttl / 2

    @property
    def is_leader(self) -> bool:
        """True while this node holds an unexpired lease (by the wall clock now)."""
        return self.leads(utcnow())

    def leads(self, now: datetime) -> bool:
        """True when this node's lease is still valid at ``now``."""
        return self._valid_until is not None and now < self._valid_until

    def tick(self, now: datetime) -> bool:
        """Take or renew the lease; returns whether this node leads afterwards.

        A storage error counts as losing the lease (we cannot know we still hold it) and is re-raised.
        """
        try:
            held = self.storage.acquire_lease(LEADER_LEASE, self.holder, now, self.ttl)
        except Exception:
            self._lose("error")
            raise
        if held:
            self._win(now)
        else:
            self._lose("lost")
        return held

    def stop(self) -> None:
        """Resign: release the lease if held, so another node takes over at once."""
        if self._valid_until is None:
            return
        self._valid_until = None
        try:
            self.storage.release_lease(LEADER_LEASE, self.holder)
        finally:
            telemetry.emit(RESIGNED, {}, {"node": self.holder, "reason": "shutdown"})

    def _win(self, now: datetime) -> None:
        newly = self._valid_until is None
        self._valid_until = now + timedelta(seconds=self.ttl)
        if newly:
            telemetry.emit(ELECTED, {"ttl": self.ttl}, {"node": self.holder})

    def _lose(self, reason: str) -> None:
        if self._valid_until is not None:
            self._valid_until = None
            telemetry.emit(RESIGNED, {}, {"node": self.holder, "reason": reason})


class LeaderOnly:
    """A runtime loop whose ``tick`` runs only while this node leads (scheduler, pruner); on followers a
    tick does nothing and returns None."""

    def __init__(self, loop: Loop, leads: Callable[[datetime], bool]) -> None:
        self.loop = loop
        self.leads = leads
        self.name = loop.name
        self.interval = loop.interval

    def start(self, now: datetime) -> None:
        self.loop.start(now)

    def tick(self, now: datetime) -> object:
        return self.loop.tick(now) if self.leads(now) else None

    def stop(self, now: datetime) -> None:
        self.loop.stop(now)


def leader_only(factory: Callable[[LoopContext], Loop]) -> Callable[[LoopContext], LeaderOnly]:
    """Wrap a loop factory so its loop does its global work on the leader only."""

    def build(context: LoopContext) -> LeaderOnly:
        return LeaderOnly(factory(context), context.leader.leads)

    build.__qualname__ = f"leader_only({getattr(factory, '__qualname__', factory)})"
    return build
