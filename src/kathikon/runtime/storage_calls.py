"""Blocking storage calls run off the event loop, retried while the database is unavailable.

A database restart must not kill a worker: ``DatabaseUnavailableError`` is retried with capped exponential
backoff (each failure emits ``("kathikon", "storage", "error")``). Every other error propagates. The storage
operations the runtime retries are single transactions (claim, ack, stage, prune), so a failed one changed
nothing and retrying it neither loses nor duplicates an outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from kathikon import telemetry
from kathikon.exceptions import DatabaseUnavailableError

__all__ = ["StorageCalls"]

T = TypeVar("T")

STORAGE_ERROR = ("kathikon", "storage", "error")


def _always() -> bool:
    return True


class StorageCalls:
    """Runs ``fn(*args)`` in ``pool`` (a few I/O threads, apart from the jobs' threads)."""

    def __init__(self, pool: Executor | None = None, *, first_delay: float = 0.05, max_delay: float = 2.0) -> None:
        self.pool = pool
        self.first_delay = first_delay
        self.max_delay = max_delay

    async def call(self, fn: Callable[..., T], *args: Any, keep_trying: Callable[[], bool] = _always) -> T:
        """``fn(*args)`` in a thread; while the database is unavailable and ``keep_trying()``, try again."""
        loop = asyncio.get_running_loop()
        delay = self.first_delay
        failures = 0
        while True:
            try:
                return await loop.run_in_executor(self.pool, fn, *args)
            except DatabaseUnavailableError as exc:
                failures += 1
                _report(fn, exc, failures, delay)
                if not keep_trying():
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_delay)


def _report(fn: Callable[..., Any], exc: Exception, failures: int, delay: float) -> None:
    if telemetry.listening(STORAGE_ERROR):
        operation = getattr(fn, "__name__", repr(fn))
        telemetry.emit(STORAGE_ERROR, {"failures": failures, "retry_in": delay},
                       {"operation": operation, "error": str(exc)})
