"""The default instance behind the module-level facade (``kathikon.insert`` …), the seeds' ``Kathikon``
module. ``configure`` sets it up; the first call without ``configure`` builds it from the environment."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from kathikon.core import Kathikon
from kathikon.job import Job, JobState, WorkerRef

__all__ = ["aall", "acancel", "afetch", "ainsert", "ainsert_all", "all", "cancel", "configure", "fetch",
           "get_default", "insert", "insert_all", "start", "start_queue", "stop"]

_lock = threading.Lock()
_default: Kathikon | None = None


def configure(database: str | None = None, queues: Any = None, **options: Any) -> Kathikon:
    """(Re)configure the default instance; closes the previous one. Returns the new instance."""
    global _default
    instance = Kathikon(database, queues, **options)
    with _lock:
        previous, _default = _default, instance
    if previous is not None:
        previous.close()
    return instance


def get_default() -> Kathikon:
    """The default instance, built from ``KATHIKON_*`` environment variables on first use."""
    global _default
    with _lock:
        if _default is None:
            _default = Kathikon()
        return _default


def set_default(instance: Kathikon | None) -> Kathikon | None:
    """Replace the default instance without closing the old one (test helpers); returns the old one."""
    global _default
    with _lock:
        previous, _default = _default, instance
    return previous


def insert(worker: WorkerRef, args: dict[str, Any] | None = None, **options: Any) -> Job:
    return get_default().insert(worker, args, **options)


def insert_all(jobs: Iterable[Job], **options: Any) -> list[Job]:
    return get_default().insert_all(jobs, **options)


def fetch(job_id: str) -> Job:
    return get_default().fetch(job_id)


def cancel(job_id: str, *, running: bool = False) -> Job:
    return get_default().cancel(job_id, running=running)


def all(*, queue: str | None = None, state: JobState | str | None = None, limit: int | None = None) -> list[Job]:
    return get_default().all(queue=queue, state=state, limit=limit)


def start() -> None:
    get_default().start()


def stop(grace: float | None = None) -> None:
    get_default().stop(grace)


def start_queue(queue: str, concurrency: int | None = None) -> None:
    get_default().start_queue(queue, concurrency)


async def ainsert(worker: WorkerRef, args: dict[str, Any] | None = None, **options: Any) -> Job:
    return await get_default().ainsert(worker, args, **options)


async def ainsert_all(jobs: Iterable[Job], **options: Any) -> list[Job]:
    return await get_default().ainsert_all(jobs, **options)


async def afetch(job_id: str) -> Job:
    return await get_default().afetch(job_id)  # type: ignore[no-any-return]


async def acancel(job_id: str, *, running: bool = False) -> Job:
    return await get_default().acancel(job_id, running=running)  # type: ignore[no-any-return]


async def aall(*, queue: str | None = None, state: JobState | str | None = None,
               limit: int | None = None) -> list[Job]:
    return await get_default().aall(queue=queue, state=state, limit=limit)  # type: ignore[no-any-return]
