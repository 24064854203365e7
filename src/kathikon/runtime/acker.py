"""Write outcomes: buffer decisions and apply their acks in one transaction per batch (group commit).

While one batch is being written, the next accumulates, so under load many acks share one commit and when
idle an ack is written at once. ``close`` flushes everything. The events of a decision are emitted only once
its ack applied; a fenced-out ack (the job was rescued, cancelled or released meanwhile) emits
``("kathikon", "job", "ack_dropped")`` instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from kathikon import telemetry
from kathikon.exceptions import DatabaseUnavailableError
from kathikon.runtime.outcome import Decision
from kathikon.runtime.storage_calls import StorageCalls
from kathikon.storage.base import Storage

__all__ = ["Acker", "record"]

ACK_DROPPED = ("kathikon", "job", "ack_dropped")
logger = logging.getLogger("kathikon.runtime")


def record(storage: Storage, decisions: Sequence[Decision]) -> list[bool]:
    """Apply the decisions' acks in one transaction, then emit their events; returns which applied.

    ``DatabaseUnavailableError`` propagates (nothing was written; the caller retries). Any other error
    fails only the acks that cause it: the batch is retried one ack at a time.
    """
    if not decisions:
        return []
    try:
        applied = storage.ack([d.ack for d in decisions])
    except DatabaseUnavailableError:
        raise
    except Exception as exc:
        if len(decisions) > 1:
            return [record(storage, [d])[0] for d in decisions]
        logger.exception("could not record the outcome of job %s", decisions[0].ack.job_id)
        report(decisions[0], applied=False, reason="error", error=str(exc))
        return [False]
    for decision, ok in zip(decisions, applied, strict=True):
        report(decision, applied=ok)
    return applied


def report(decision: Decision, *, applied: bool, reason: str = "fenced", error: str | None = None) -> None:
    """Emit a decision's events if its ack applied, else ``ack_dropped`` (``reason``: fenced or error)."""
    if applied:
        if any(telemetry.listening(event) for event in decision.events):  # else skip building them
            for emission in decision.emissions:
                telemetry.emit(emission.event, emission.measurements, emission.metadata)
    elif telemetry.listening(ACK_DROPPED):
        telemetry.emit(ACK_DROPPED, {}, {"job": decision.job, "outcome": decision.ack.state, "reason": reason,
                                         "error": error})


class Acker:
    """Buffers decisions submitted on the event loop and writes them with ``record`` in batches."""

    def __init__(self, storage: Storage, calls: StorageCalls) -> None:
        self.storage = storage
        self.calls = calls
        self._buffer: list[Decision] = []
        self._ready = asyncio.Event()
        self._writing: asyncio.Future[list[bool]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def pending(self) -> int:
        """Decisions submitted and not yet written."""
        return len(self._buffer)

    def submit(self, decision: Decision) -> None:
        """Queue one decision for the next batch (call on the event loop)."""
        self._buffer.append(decision)
        self._ready.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kathikon-acker")

    async def flush(self) -> None:
        """Return once everything submitted so far is written."""
        while self._buffer or self._writing is not None:
            if self._writing is not None:
                await asyncio.shield(self._writing)
            else:
                await self._write_batch()

    async def close(self, timeout: float) -> None:
        """Write everything still buffered (giving up after ``timeout`` seconds) and stop."""
        self._closing = True
        self._ready.set()
        if self._task is None:
            await asyncio.wait_for(self.flush(), timeout)
            return
        done, _ = await asyncio.wait({self._task}, timeout=timeout)
        if not done:
            self._task.cancel()
            logger.error("gave up writing %d job outcomes after %.1f s: the database is unreachable; those "
                         "jobs stay executing until the lifeline rescues them", len(self._buffer), timeout)

    async def _run(self) -> None:
        while not (self._closing and not self._buffer):
            await self._ready.wait()
            self._ready.clear()
            await self.flush()

    async def _write_batch(self) -> None:
        batch, self._buffer = self._buffer, []
        self._writing = asyncio.ensure_future(self.calls.call(record, self.storage, batch))
        try:
            await self._writing
        finally:
            self._writing = None
