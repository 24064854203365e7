"""kathikon.transfer.move_jobs between two real SQLite files (PostgreSQL targets: tests/storage/test_postgres.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from kathikon.job import Job, JobState
from kathikon.storage import Storage, open_storage
from kathikon.transfer import move_jobs

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def seeded(url: str, count: int) -> list[Job]:
    """``count`` jobs in assorted states with every kind of field set, stored at ``url``."""
    jobs = [Job.build("tests.workers:Echo", {"n": n}, queue=f"q{n % 2}", priority=n % 3, meta={"n": n},
                      tags=["t"], now=T0) for n in range(count)]
    jobs[0] = jobs[0].with_changes(state=JobState.RETRYABLE, attempts=2, errors=[{"attempt": 1, "error": "boom"}])
    jobs[1] = jobs[1].with_changes(state=JobState.COMPLETED, attempts=1, completed_at=T0, attempted_by="node-a")
    store = opened(url)
    store.insert(jobs)
    store.close()
    return jobs


def opened(url: str) -> Storage:
    store = open_storage(url)
    store.setup()
    return store


def stored(url: str) -> list[Job]:
    store = opened(url)
    try:
        return store.all()
    finally:
        store.close()


def test_copying_keeps_every_job_exactly_as_it_was(tmp_path: Path) -> None:
    source, target = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    jobs = seeded(source, 25)

    assert move_jobs(source, target, batch=10) == 25

    assert stored(target) == jobs
    assert stored(source) == jobs


def test_moving_deletes_each_job_from_the_source(tmp_path: Path) -> None:
    source, target = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    jobs = seeded(source, 7)

    assert move_jobs(source, target, batch=3, delete_source=True) == 7

    assert stored(target) == jobs
    assert stored(source) == []


def test_a_rerun_after_an_interruption_skips_the_jobs_already_copied(tmp_path: Path) -> None:
    source, target = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    jobs = seeded(source, 9)
    partial = opened(target)
    partial.insert(jobs[:4])
    partial.close()

    assert move_jobs(source, target, batch=5) == 5

    assert stored(target) == jobs


@pytest.mark.parametrize(("batch", "error"), [(0, ValueError), (-1, ValueError), (2.5, TypeError),
                                              (True, TypeError)])
def test_a_bad_batch_size_is_refused_naming_it(tmp_path: Path, batch: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="batch"):
        move_jobs(f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}", batch=batch)  # type: ignore[arg-type]


def test_a_storage_cannot_be_moved_onto_itself(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with pytest.raises(ValueError, match="must differ"):
        move_jobs(url, url)
