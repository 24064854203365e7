"""Run the runtime's async execution path to completion from a plain (sync) test.

The helpers run jobs in the calling thread: a sync ``perform`` runs inline rather than in a pool, so it sees
the test's thread-locals and database transaction. A worker with a ``timeout`` still gets a real thread,
because a timeout can only be enforced on a thread the caller does not block on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from kathikon.exceptions import WorkerError
from kathikon.worker import resolve_worker

__all__ = ["InlineExecutor", "pool_for", "run_to_completion"]

P = ParamSpec("P")
T = TypeVar("T")


class InlineExecutor(Executor):
    """An executor that runs each call at once, in the thread that submits it."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # recorded as the job's failure, as a pool thread would
            future.set_exception(exc)
        return future


def pool_for(worker_path: str, threads: ThreadPoolExecutor) -> Executor:
    """Inline for most workers; ``threads`` for a worker with a timeout (or one that cannot be resolved)."""
    try:
        timeout = resolve_worker(worker_path).timeout
    except WorkerError:
        return threads  # the executor records the error; the pool is never used
    return threads if timeout is not None else InlineExecutor()


def run_to_completion(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``make()`` builds on a fresh event loop: in the calling thread, or, when that thread
    already runs a loop (an async test), in a helper thread while the caller waits."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(1, thread_name_prefix="kathikon-testing") as helper:
        return helper.submit(lambda: asyncio.run(make())).result()
