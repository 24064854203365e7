"""Isolated Kathikon instances for tests: a fresh storage, set as the default instance, restored after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kathikon import _default
from kathikon.config import Config
from kathikon.core import Kathikon
from kathikon.storage import Storage

__all__ = ["clear_jobs", "isolated", "resolve", "reset"]

# Test instances ignore KATHIKON_* variables (a developer's shell must not change a test), react fast when
# started (a test waits for retries and scheduled jobs in tenths of seconds, not seconds) and give running
# jobs a short grace at teardown so a stuck test job cannot hang the suite.
TEST_DEFAULTS: dict[str, Any] = {"poll_interval": 0.05, "scheduler_interval": 0.1, "shutdown_grace": 5.0}


def resolve(k: Kathikon | None) -> Kathikon:
    """The instance a helper acts on: ``k`` when given, else the default instance."""
    if k is None:
        return _default.get_default()
    if not isinstance(k, Kathikon):
        raise TypeError(f"k must be a kathikon.Kathikon instance or None, got {k!r:.200}")
    return k


def clear_jobs(*, k: Kathikon | None = None) -> None:
    """Delete every job of ``k`` (default: the default instance). For tests only."""
    resolve(k).storage.clear_jobs()


def reset(*, k: Kathikon | None = None) -> None:
    """Drop and recreate the tables of ``k`` (default: the default instance). For tests only."""
    resolve(k).storage.reset()


def make_instance(database: str = "memory://", *, storage: Storage | None = None, **options: Any) -> Kathikon:
    """A Kathikon configured only from its arguments (environment variables ignored), set up and empty."""
    config = Config.load(env={}, database=database, **{**TEST_DEFAULTS, **options})
    return Kathikon(config=config, storage=storage)


@contextmanager
def isolated(database: str = "memory://", *, storage: Storage | None = None, **options: Any) -> Iterator[Kathikon]:
    """Run a block with a fresh instance as the default one; afterwards restore the previous default and
    close the instance (stopping its runtime if it was started).

        with kathikon.testing.isolated("sqlite:///tmp/test.db") as k:
            kathikon.insert(MyWorker, {"n": 1})   # goes to k
    """
    k = make_instance(database, storage=storage, **options)
    previous = _default.set_default(k)
    try:
        yield k
    finally:
        _default.set_default(previous)
        k.close()
