"""Three ``kathikon worker`` processes on one PostgreSQL database: every job runs, none runs twice.

Each worker process imports this module (``-A tests.storage.test_postgres_workers``) for ``RecordExecution``,
whose perform appends "<job id> <pid>" to a file named in the job's args. No process crashes here, so the
lifeline never re-runs a job: each id must appear exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from kathikon import Job, Worker
from kathikon.job import JobState
from kathikon.storage import Storage, open_storage
from tests.conftest import postgres_url

pytest.importorskip("psycopg")

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

JOBS = 300
WORKERS = 3
ROOT = Path(__file__).resolve().parents[2]


class RecordExecution(Worker):
    queue = "race"

    def perform(self, job: Job) -> None:
        # One short O_APPEND write per execution: lines from several processes never interleave.
        with open(job.args["log"], "a", encoding="utf-8") as log:
            log.write(f"{job.id} {os.getpid()}\n")


@pytest.fixture
def storage() -> Iterator[Storage]:
    store = open_storage(postgres_url("_workers"))
    store.setup()
    store.reset()
    yield store
    store.close()


def start_worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "kathikon", "worker", "-A", __name__, "--database", url,
               "--queues", "race=5", "--log-level", "warning"]
    with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)


def wait_until_running(storage: Storage, processes: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """Every worker registered its node, so all of them compete for the jobs from the first one on."""
    deadline = time.monotonic() + timeout
    while len(storage.nodes()) < len(processes):
        assert all(p.poll() is None for p in processes), "a worker process exited early"
        assert time.monotonic() < deadline, f"only {len(storage.nodes())} workers started within {timeout}s"
        time.sleep(0.1)


def wait_until_all_completed(storage: Storage, processes: list[subprocess.Popen[bytes]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while storage.counts().get(("race", JobState.COMPLETED), 0) < JOBS:
        assert all(p.poll() is None for p in processes), "a worker process exited early"
        assert time.monotonic() < deadline, f"not every job completed within {timeout}s: {storage.counts()}"
        time.sleep(0.1)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_three_worker_processes_run_every_job_exactly_once(storage: Storage, tmp_path: Path) -> None:
    url = postgres_url("_workers")
    executions = tmp_path / "executions.txt"
    executions.touch()
    processes = [start_worker(url, tmp_path / f"worker-{n}.log") for n in range(WORKERS)]
    try:
        wait_until_running(storage, processes, timeout=60)
        storage.insert([RecordExecution.new({"log": str(executions), "n": n}) for n in range(JOBS)])
        wait_until_all_completed(storage, processes, timeout=90)
    finally:
        stop(processes)

    lines = executions.read_text(encoding="utf-8").split()
    runs = Counter(lines[0::2])
    assert sorted(runs) == sorted(job.id for job in storage.all())
    assert set(runs.values()) == {1}, [job_id for job_id, n in runs.items() if n > 1]
    assert storage.counts() == {("race", JobState.COMPLETED): JOBS}
    assert [p.returncode for p in processes] == [0] * WORKERS
    assert len(set(lines[1::2])) > 1  # more than one process took part
