"""``cancel(id, running=True)`` from another process stops a job running in a ``kathikon worker`` subprocess:
its node notices at its next heartbeat. The state stays ``cancelled``; the late outcome is fenced out."""

from __future__ import annotations

from pathlib import Path

import pytest

from kathikon import Kathikon
from kathikon.exceptions import JobExecutingError
from kathikon.job import JobState
from kathikon.storage import Storage
from tests.crash_workers import count_events
from tests.worker_processes import Workers, database_url, insert, states, storage, wait_for, workers

__all__ = ["database_url", "storage", "workers"]

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("worker", ["Cooperative", "LongAsync"])
def test_a_job_running_in_another_process_is_stopped_by_cancel_running(
        worker: str, storage: Storage, workers: Workers, tmp_path: Path) -> None:
    log = tmp_path / "executions.log"
    [job] = insert(workers.url, f"tests.crash_workers:{worker}", log, 1)
    workers.start()
    wait_for(lambda: count_events(log)[job.id] == 1, "the job to start", workers)
    with Kathikon(database=workers.url) as k:
        with pytest.raises(JobExecutingError):
            k.cancel(job.id)
        assert k.cancel(job.id, running=True).state == JobState.CANCELLED
    wait_for(lambda: count_events(log, "cancelled")[job.id] == 1, "the running job to stop", workers, timeout=15)
    wait_for(lambda: f"job.ack_dropped job={job.id}" in workers.output(), "its late outcome fenced out", workers)
    assert states(storage, [job])[JobState.CANCELLED] == 1
    assert count_events(log, "finished")[job.id] == 0
