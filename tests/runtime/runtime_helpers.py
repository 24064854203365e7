"""Helpers for the runtime tests: event capture, deadline polling, a claimed job, a storage that fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kathikon import telemetry
from kathikon.exceptions import DatabaseUnavailableError
from kathikon.job import Job
from kathikon.storage import Storage, open_storage

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
OWNER = "test-node"
Event = tuple[tuple[str, ...], Mapping[str, Any], Mapping[str, Any]]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Events(list[Event]):
    """Events captured while attached; ``named("job.stop")`` filters them."""

    def named(self, name: str) -> list[Event]:
        return [e for e in self if ".".join(e[0][1:]) == name]

    def names(self) -> list[str]:
        return [".".join(e[0][1:]) for e in self]


@contextmanager
def capture(*prefixes: str) -> Iterator[Events]:
    """Capture every event whose dotted name (without 'kathikon.') starts with one of ``prefixes``."""
    seen = Events()
    wanted = [e for e in telemetry.EVENTS if not prefixes or any(".".join(e[1:]).startswith(p) for p in prefixes)]
    handler_id = f"runtime-test-{id(seen)}"
    telemetry.attach(handler_id, wanted, lambda e, m, md: seen.append((e, m, md)))
    try:
        yield seen
    finally:
        telemetry.detach(handler_id)


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def sqlite_storage(tmp_path: Path, name: str = "jobs.db") -> Storage:
    storage = open_storage(f"sqlite:///{tmp_path / name}")
    storage.setup()
    return storage


def claimed(storage: Storage, worker: str, args: dict[str, Any] | None = None, *, now: datetime = T0,
            **options: Any) -> Job:
    """Insert a job for ``worker`` and claim it as OWNER: the job as the executor receives it."""
    job = storage.insert([Job.build(worker, args or {}, now=now - timedelta(seconds=1), **options)])[0]
    [got] = storage.claim(job.queue, 1, now, OWNER)
    assert got.id == job.id
    return got


class FlakyStorage:
    """Delegates to ``inner``; the first ``failures`` calls of each method in ``methods`` raise
    DatabaseUnavailableError (as a database restart would) without reaching the database."""

    def __init__(self, inner: Storage, methods: set[str], failures: int) -> None:
        self._inner = inner
        self._methods = methods
        self._left = dict.fromkeys(methods, failures)
        self._lock = threading.Lock()
        self.failed: dict[str, int] = dict.fromkeys(methods, 0)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in self._methods:
            return attr

        def flaky(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                fail = self._left[name] > 0
                if fail:
                    self._left[name] -= 1
                    self.failed[name] += 1
            if fail:
                raise DatabaseUnavailableError(f"{name}: the database is restarting")
            return attr(*args, **kwargs)

        flaky.__name__ = name
        return flaky
