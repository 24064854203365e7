"""The ``Kathikon`` facade: insert, fetch, cancel and list jobs; start and stop the runtime.

Every public operation validates its input, calls one storage operation and emits its telemetry event. The
async twins (``ainsert`` …) run the same code in a worker thread, so there is one implementation of each.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from kathikon import telemetry
from kathikon._clock import utcnow
from kathikon.config import Config
from kathikon.exceptions import JobNotFoundError
from kathikon.job import Job, JobState, WorkerRef
from kathikon.storage import Storage, open_storage
from kathikon.worker import validate_worker

if TYPE_CHECKING:
    from kathikon.runtime import Runtime

__all__ = ["Kathikon"]

P = ParamSpec("P")
R = TypeVar("R")

INSERT = ("kathikon", "job", "insert")
CANCEL = ("kathikon", "job", "cancel")


def _async_twin(method: Callable[P, R]) -> Callable[P, Any]:
    """The awaitable form of a blocking facade method: the same code, run in a worker thread."""

    @functools.wraps(method)
    async def twin(*args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(method, *args, **kwargs)

    twin.__doc__ = f"Awaitable ``{method.__name__}`` (runs it in a worker thread)."
    return twin


class Kathikon:
    """A Kathikon instance: one configuration, one storage, at most one runtime in this process.

    >>> k = Kathikon(database="sqlite:///jobs.db", queues={"default": 10, "emails": 5})
    >>> job = k.insert(MyWorker, {"email": "a@b.com"}, queue="emails", priority=5)
    >>> k.start()          # run the queues in the background of this process
    """

    def __init__(self, database: str | None = None, queues: Any = None, *, storage: Storage | None = None,
                 config: Config | None = None, **options: Any) -> None:
        if config is not None and (database is not None or queues is not None or options):
            raise TypeError("pass either config=Config(...) or individual options, not both")
        self.config = config or Config.load(database=database, queues=queues, **options)
        self.storage = storage if storage is not None else open_storage(self.config.database)
        if self.config.auto_migrate:
            self.storage.setup()
        self._runtime: Runtime | None = None
        self._runtime_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Kathikon {self.storage.url} queues={list(self.config.queues)}>"

    def __enter__(self) -> Kathikon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs --------------------------------------------------------------------------------------

    def insert(self, worker: WorkerRef, args: dict[str, Any] | None = None, *, conn: Any = None,
               **options: Any) -> Job:
        """Insert one job and return it as stored. Options: queue, priority, max_attempts, schedule_in,
        schedule_at, meta, tags. ``conn`` joins the caller's open transaction (see the storage docs)."""
        return self.insert_all([self._build(worker, args, options)], conn=conn)[0]

    def insert_all(self, jobs: Iterable[Job], *, conn: Any = None) -> list[Job]:
        """Insert many jobs in one transaction (all or none) and return them as stored."""
        prepared = [self._with_defaults(job) for job in jobs]
        stored = self.storage.insert(prepared, conn=conn)
        self._after_insert(stored)
        return stored

    async def ainsert(self, worker: WorkerRef, args: dict[str, Any] | None = None, *, conn: Any = None,
                      **options: Any) -> Job:
        """Awaitable ``insert``; ``conn`` may be the driver's async connection."""
        if conn is None or not _is_async_connection(conn):
            return await asyncio.to_thread(self.insert, worker, args, conn=conn, **options)
        return (await self.ainsert_all([self._build(worker, args, options)], conn=conn))[0]

    async def ainsert_all(self, jobs: Iterable[Job], *, conn: Any = None) -> list[Job]:
        """Awaitable ``insert_all``; ``conn`` may be the driver's async connection."""
        if conn is None or not _is_async_connection(conn):
            return await asyncio.to_thread(self.insert_all, list(jobs), conn=conn)
        stored = await self.storage.insert_async([self._with_defaults(job) for job in jobs], conn=conn)
        self._after_insert(stored)
        return stored

    def fetch(self, job_id: str) -> Job:
        """The stored job; raises JobNotFoundError for an unknown id."""
        job = self.storage.fetch(_check_id(job_id))
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    def cancel(self, job_id: str, *, running: bool = False) -> Job:
        """Cancel a job that has not finished. An executing job raises JobExecutingError unless
        ``running=True``, which stops it (async: the task is cancelled; sync: see ``Job`` cancellation)."""
        job = self.storage.cancel(_check_id(job_id), utcnow(), running=running)
        if self._runtime is not None:
            self._runtime.job_cancelled(job.id)
        telemetry.emit(CANCEL, {}, {"job": job})
        return job

    def all(self, *, queue: str | None = None, state: JobState | str | None = None,
            limit: int | None = None) -> list[Job]:
        """Every stored job, oldest first (for tests and debugging), optionally filtered."""
        return self.storage.all(queue=queue, state=JobState(state) if state is not None else None, limit=limit)

    afetch = _async_twin(fetch)
    acancel = _async_twin(cancel)
    aall = _async_twin(all)

    # -- runtime -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the runtime runs in this process."""
        return self._runtime is not None and self._runtime.running

    def start(self) -> None:
        """Run the configured queues, scheduler and pruner in a background thread of this process."""
        from kathikon.runtime import Runtime

        with self._runtime_lock:
            if self._runtime is None or not self._runtime.running:
                self._runtime = Runtime(self.config, self.storage)
                self._runtime.start_in_background()

    def stop(self, grace: float | None = None) -> None:
        """Stop claiming, let running jobs finish within ``grace`` seconds, release the rest. Idempotent."""
        with self._runtime_lock:
            runtime, self._runtime = self._runtime, None
        if runtime is not None:
            runtime.stop(self.config.shutdown_grace if grace is None else grace)

    def start_queue(self, queue: str, concurrency: int | None = None) -> None:
        """Ensure a dispatcher runs for ``queue`` (idempotent). Starts the runtime if it is not running."""
        self.start()
        assert self._runtime is not None
        self._runtime.start_queue(queue, concurrency)

    def close(self) -> None:
        """Stop the runtime if it runs and close the storage."""
        self.stop()
        self.storage.close()

    # -- internals ---------------------------------------------------------------------------------

    def _build(self, worker: WorkerRef, args: dict[str, Any] | None, options: dict[str, Any]) -> Job:
        if isinstance(worker, type):
            validate_worker(worker)
        return Job.build(worker, args, **options)

    def _with_defaults(self, job: Job) -> Job:
        if not isinstance(job, Job):
            raise TypeError(f"insert_all takes Job objects (from Worker.new or Job.build), got {job!r:.200}")
        if "max_attempts" in job.defaulted and job.max_attempts != self.config.max_attempts:
            return job.with_changes(max_attempts=self.config.max_attempts, defaulted=frozenset())
        return job

    def _after_insert(self, stored: list[Job]) -> None:
        if self._runtime is not None:
            self._runtime.jobs_inserted({job.queue for job in stored if job.state == JobState.AVAILABLE})
        if telemetry.listening(INSERT):
            for job in stored:
                telemetry.emit(INSERT, {}, {"job": job})


def _check_id(job_id: object) -> str:
    if not isinstance(job_id, str) or not job_id:
        raise TypeError(f"job id must be a non-empty string, got {job_id!r}")
    return job_id


def _is_async_connection(conn: object) -> bool:
    return asyncio.iscoroutinefunction(getattr(conn, "commit", None))


