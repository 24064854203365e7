"""Periodic loops: the seam where the runtime's background processes plug in.

A loop is an object with ``name``, ``interval`` (seconds) and three blocking methods, ``start(now)``,
``tick(now)`` and ``stop(now)``, that the runtime calls in its I/O threads: ``start`` once before the
dispatchers run, ``tick`` every ``interval`` seconds (first at once), ``stop`` once after the last job
outcome is written. Tests call ``tick(now)`` directly. The scheduler and the pruner are loops; node
heartbeats, leader election and the lifeline are added the same way: a module with a loop class and one
entry in ``LOOP_FACTORIES``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from kathikon._clock import utcnow
from kathikon.config import Config
from kathikon.exceptions import DatabaseUnavailableError
from kathikon.runtime.coordinator import Coordinator
from kathikon.runtime.leader import Leader, leader_only
from kathikon.runtime.pruner import Pruner
from kathikon.runtime.scheduler import Scheduler
from kathikon.runtime.storage_calls import StorageCalls
from kathikon.storage.base import Storage

__all__ = ["LOOP_FACTORIES", "Loop", "LoopContext", "LoopRunner"]

logger = logging.getLogger("kathikon.runtime")


class Loop(Protocol):
    name: str
    interval: float

    def start(self, now: datetime) -> None: ...

    def tick(self, now: datetime) -> object: ...

    def stop(self, now: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class LoopContext:
    """What a loop may use. ``wake(queues)`` is thread-safe: it wakes this node's dispatchers of ``queues``;
    ``queues()`` gives the queues this node runs and their concurrency; ``executing()`` the ids of the jobs
    running here and ``cancel(job_id)`` (thread-safe) stops one of them. ``leader`` is this node's side of
    the leader election (ticked by the coordinator loop, read by the leader-only loops)."""

    config: Config
    storage: Storage
    node: str
    wake: Callable[[Iterable[str]], None]
    queues: Callable[[], dict[str, int]]
    executing: Callable[[], Collection[str]] = frozenset
    cancel: Callable[[str], None] = lambda job_id: None
    leader: Leader = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "leader", Leader.for_config(self.storage, self.node, self.config))


#: Builders of the loops every runtime runs, in start order (stopped in reverse order). The coordinator
#: (heartbeat, leader election, lifeline) starts first and stops last: the node is registered before any
#: claim and removed after the last outcome. The scheduler and the pruner do their work on the leader only.
LOOP_FACTORIES: list[Callable[[LoopContext], Loop]] = [
    Coordinator.from_context, leader_only(Scheduler.from_context), leader_only(Pruner.from_context)]


class LoopRunner:
    """Runs one loop on the event loop: start, tick every interval until stopped, then stop."""

    def __init__(self, loop: Loop, calls: StorageCalls) -> None:
        self.loop = loop
        self.calls = calls
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.calls.call(self.loop.start, utcnow())
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"kathikon-{self.loop.name}")

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        """Finish the current tick, then call the loop's ``stop``."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        await self.calls.call(self.loop.stop, utcnow(), keep_trying=lambda: False)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self._tick_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.loop.interval)

    async def _tick_once(self) -> None:
        try:
            await self.calls.call(self.loop.tick, utcnow(), keep_trying=lambda: not self._stopping.is_set())
        except DatabaseUnavailableError:
            pass  # reported by StorageCalls; the next tick tries again
        except Exception:
            logger.exception("the %s loop failed; it will tick again in %.1f s", self.loop.name,
                             self.loop.interval)
