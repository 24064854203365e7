"""``kathikon worker`` processes on PostgreSQL: three share one database and run every job exactly once; one
keeps running while its database restarts.

Each worker process imports this module (``-A tests.storage.test_postgres_workers``) for ``RecordExecution``,
whose perform appends "<job id> <pid>" to a file named in the job's args. No worker crashes here, so the
lifeline never re-runs a job: each id must appear exactly once.

The restart test runs its own throw-away PostgreSQL server (initdb in a temporary directory, as the
``postgres`` user), so restarting it never disturbs the shared test server; it skips where the server binaries
or root are missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from kathikon import Job, Worker
from kathikon.exceptions import DatabaseUnavailableError
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


def wait_until_all_completed(storage: Storage, processes: list[subprocess.Popen[bytes]], timeout: float,
                             jobs: int = JOBS) -> None:
    deadline = time.monotonic() + timeout
    while storage.counts().get(("race", JobState.COMPLETED), 0) < jobs:
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

    executed_once_each(executions, storage)
    lines = executions.read_text(encoding="utf-8").split()
    assert storage.counts() == {("race", JobState.COMPLETED): JOBS}
    assert [p.returncode for p in processes] == [0] * WORKERS
    assert len(set(lines[1::2])) > 1  # more than one process took part


def executed_once_each(executions: Path, storage: Storage) -> None:
    runs = Counter(executions.read_text(encoding="utf-8").split()[0::2])
    assert sorted(runs) == sorted(job.id for job in storage.all())
    assert set(runs.values()) == {1}, [job_id for job_id, n in runs.items() if n > 1]


# -- a database restart under a running worker


class PrivateServer:
    """A throw-away PostgreSQL server on a free port, run as the ``postgres`` user."""

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.dir = tempfile.mkdtemp(prefix="kathikon-pg-")
        self.port = _free_port()
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres("initdb", "-D", f"{self.dir}/data", "-U", "postgres", "-A", "trust", "--no-sync")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres("pg_ctl", "-D", f"{self.dir}/data", "-o", options, "-l", f"{self.dir}/log", "-w", "start")

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", f"{self.dir}/data", "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", f"{self.bindir}/pg_ctl", "-D", f"{self.dir}/data",
                        "-m", "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _as_postgres(self, program: str, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", f"{self.bindir}/{program}", *args],
                       capture_output=True, check=True, timeout=60)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def private_server() -> Iterator[PrivateServer]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found or os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root, runuser and the PostgreSQL server binaries to run a private server")
    server = PrivateServer(os.path.dirname(found[-1]))
    try:
        server.start()
        yield server
    finally:
        server.remove()


def test_a_worker_keeps_running_while_its_database_restarts(private_server: PrivateServer, tmp_path: Path) -> None:
    executions = tmp_path / "executions.txt"
    executions.touch()
    storage = open_storage(private_server.url)
    storage.setup()
    worker = [start_worker(private_server.url, tmp_path / "worker.log")]
    try:
        wait_until_running(storage, worker, timeout=60)
        storage.insert([RecordExecution.new({"log": str(executions), "n": n}) for n in range(20)])
        wait_until_all_completed(storage, worker, timeout=60, jobs=20)

        private_server.stop()
        with pytest.raises(DatabaseUnavailableError):
            storage.insert([RecordExecution.new({"log": str(executions)})])
        time.sleep(1.0)  # the worker meets the outage: its claims fail and are retried with backoff
        private_server.start()

        storage.insert([RecordExecution.new({"log": str(executions), "n": n}) for n in range(20, 40)])
        wait_until_all_completed(storage, worker, timeout=60, jobs=40)
        executed_once_each(executions, storage)
    finally:
        stop(worker)
        storage.close()
    assert worker[0].returncode == 0
