"""Move jobs from one storage to another, e.g. from the SQLite default to PostgreSQL when scaling out.

    from kathikon.transfer import move_jobs
    move_jobs("sqlite:///kathikon.db", "postgresql://db.example.com/app", delete_source=True)

Jobs keep their ids, states, attempts, errors, meta, tags, ``attempted_by`` and every time. Stop every worker on
both sides first: a job that changes while it is being copied would arrive as it was when read. A job left
``executing`` arrives ``executing`` and is rescued by the target's lifeline like any job of a dead node.

The move is restartable: jobs the target already holds (same id) are skipped, so after an interruption the same
call finishes the work. With ``delete_source`` each batch is deleted from the source only after the target has
committed it, so a crash in between leaves a job in both places, never in neither.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from kathikon.config import masked_url
from kathikon.exceptions import StorageError
from kathikon.job import Job
from kathikon.storage import Storage, open_storage

__all__ = ["move_jobs"]


def move_jobs(source_url: str, target_url: str, *, batch: int = 1000, delete_source: bool = False) -> int:
    """Copy every job of ``source_url`` into ``target_url`` in batches; return how many the target gained.

    Both storages are set up (created or migrated) first. With ``delete_source=True`` the jobs are moved, batch by
    batch, and memory stays bounded by ``batch``; a plain copy reads the source's job list once.
    """
    _check_batch(batch)
    if source_url == target_url:
        raise ValueError(f"source_url and target_url must differ, both are {masked_url(source_url)!r}")
    source, target = open_storage(source_url), open_storage(target_url)
    try:
        source.setup()
        target.setup()
        if delete_source:
            return _move(source, target, batch)
        return sum(_insert_missing(target, chunk) for chunk in _chunks(source.all(), batch))
    finally:
        source.close()
        target.close()


def _move(source: Storage, target: Storage, batch: int) -> int:
    written = 0
    while jobs := source.all(limit=batch):
        written += _insert_missing(target, jobs)
        for job in jobs:
            source.delete(job.id)
    return written


def _insert_missing(target: Storage, jobs: Sequence[Job]) -> int:
    """Insert ``jobs`` in one transaction, leaving out those the target already holds (a rerun)."""
    try:
        return len(target.insert(jobs))
    except (ValueError, StorageError):
        missing = [job for job in jobs if target.fetch(job.id) is None]
        if len(missing) == len(jobs):
            raise  # not a rerun: something else is wrong
        return len(target.insert(missing)) if missing else 0


def _chunks(jobs: list[Job], size: int) -> Iterator[list[Job]]:
    for start in range(0, len(jobs), size):
        yield jobs[start:start + size]


def _check_batch(batch: object) -> None:
    if isinstance(batch, bool) or not isinstance(batch, int):
        raise TypeError(f"batch must be an integer, got {type(batch).__name__} {batch!r}")
    if not 1 <= batch <= 100_000:
        raise ValueError(f"batch must be between 1 and 100000, got {batch!r}")
