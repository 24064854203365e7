"""``Storage.states``: the state of many jobs in one call, on every backend (used for remote cancels)."""

from __future__ import annotations

from datetime import UTC, datetime

from kathikon.job import Job, JobState
from kathikon.storage.base import Storage

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_states_names_the_state_of_each_known_job(storage: Storage) -> None:
    a, b, c = storage.insert([Job.build("tests.workers:NoopWorker", {"n": n}, now=NOW) for n in range(3)])
    storage.claim("default", 1, NOW, "node-a")
    storage.cancel(b.id, NOW)
    assert storage.states([a.id, b.id, c.id, "no-such-job"]) == {
        a.id: JobState.EXECUTING, b.id: JobState.CANCELLED, c.id: JobState.AVAILABLE}


def test_states_of_no_ids_is_empty(storage: Storage) -> None:
    assert storage.states([]) == {}


def test_a_job_cancelled_while_running_reads_as_cancelled(storage: Storage) -> None:
    [job] = storage.insert([Job.build("tests.workers:NoopWorker", {}, now=NOW)])
    storage.claim("default", 1, NOW, "node-a")
    storage.cancel(job.id, NOW, running=True)
    assert storage.states([job.id]) == {job.id: JobState.CANCELLED}
