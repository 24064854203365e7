"""Real signals: ``kathikon worker`` subprocesses are SIGKILLed mid-run and no job is lost or left executing.

Runs on a SQLite file under tmp_path and on PostgreSQL (KATHIKON_TEST_DATABASE_URL; required in CI).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kathikon import Kathikon
from kathikon.job import Job, JobState
from kathikon.storage import Storage, open_storage
from kathikon.storage.base import NodeRecord
from tests.conftest import storage_url

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
FAST_LIFELINE = {"KATHIKON_HEARTBEAT_INTERVAL": "0.2", "KATHIKON_RESCUE_AFTER": "1.5", "KATHIKON_POLL_INTERVAL": "0.1"}


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = storage_url(request.param, tmp_path)
    store = open_storage(url)
    store.setup()
    store.reset()
    store.close()
    yield url
    if request.param == "postgres":
        store = open_storage(url)
        store.reset()
        store.close()


@pytest.fixture
def storage(database_url: str) -> Iterator[Storage]:
    store = open_storage(database_url)
    yield store
    store.close()


class Workers:
    """``kathikon worker`` subprocesses on one database; each one's output goes to a file under tmp_path."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "kathikon", "worker", "-A", "tests.crash_workers", "--database", self.url,
                   "--queues", "default=4", "--log-level", "DEBUG", *extra]
        with open(self.tmp_path / f"worker-{len(self.procs)}.log", "wb") as output:
            proc = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
                                    env={**os.environ, **FAST_LIFELINE, **(env or {})})
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp_path.glob("worker-*.log")))


@pytest.fixture
def workers(database_url: str, tmp_path: Path) -> Iterator[Workers]:
    running = Workers(database_url, tmp_path)
    yield running
    running.stop_all()


def wait_for(condition: Callable[[], bool], what: str, workers: Workers, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}; worker output:\n{workers.output()[-4000:]}")
        time.sleep(0.05)


def insert(url: str, worker: str, log: Path, count: int, **options: object) -> list[Job]:
    with Kathikon(database=url) as k:
        return k.insert_all([Job.build(worker, {"log": str(log), "seconds": 0.4}, **options)  # type: ignore[arg-type]
                             for _ in range(count)])


def executions(log: Path) -> Counter[str]:
    return Counter(line.split()[0] for line in log.read_text().splitlines()) if log.exists() else Counter()


def states(storage: Storage, jobs: list[Job]) -> Counter[JobState]:
    found = storage.states([j.id for j in jobs])
    return Counter(found.get(j.id) for j in jobs)  # type: ignore[misc]


def test_jobs_of_a_killed_worker_complete_on_its_replacement(storage: Storage, workers: Workers,
                                                             tmp_path: Path) -> None:
    """The replacement sees at start-up that its predecessor's process is gone and rescues its jobs at
    once, long before rescue_after (60 s here) would have passed."""
    log = tmp_path / "executions.log"
    jobs = insert(workers.url, "tests.crash_workers:Recording", log, 12)
    first = workers.start(env={"KATHIKON_RESCUE_AFTER": "60"})
    wait_for(lambda: states(storage, jobs)[JobState.EXECUTING] >= 2, "jobs executing", workers)
    workers.kill(first)
    stranded = states(storage, jobs)[JobState.EXECUTING]
    assert stranded >= 1
    started = time.monotonic()
    workers.start(env={"KATHIKON_RESCUE_AFTER": "60"})
    wait_for(lambda: states(storage, jobs) == Counter({JobState.COMPLETED: 12}), "every job completed", workers)
    assert time.monotonic() - started < 30, "rescued without waiting for rescue_after"
    counts = executions(log)
    assert all(counts[j.id] >= 1 for j in jobs)
    rescued = [j for j in storage.all() if any(e["kind"] == "rescued" for e in j.errors)]
    assert len(rescued) == stranded


def test_jobs_of_a_worker_that_died_on_another_machine_are_rescued_after_rescue_after(
        storage: Storage, workers: Workers, tmp_path: Path) -> None:
    """A node on another host cannot be checked by pid: its jobs wait until its heartbeat is rescue_after old."""
    log = tmp_path / "executions.log"
    jobs = insert(workers.url, "tests.crash_workers:Recording", log, 8)
    first = workers.start()
    wait_for(lambda: states(storage, jobs)[JobState.EXECUTING] >= 2, "jobs executing", workers)
    workers.kill(first)
    [dead] = storage.nodes()
    storage.register_node(NodeRecord(dead.name, dead.started_at, dead.heartbeat_at, dead.queues,
                                     {**dead.meta, "scope": "another-host|pid:[1]"}))
    workers.start()
    wait_for(lambda: states(storage, jobs) == Counter({JobState.COMPLETED: 8}), "every job completed", workers)
    rescues = [e for j in storage.all() for e in j.errors if e["kind"] == "rescued"]
    assert rescues
    assert all(dead.name in e["error"] for e in rescues)
    assert all(executions(log)[j.id] >= 1 for j in jobs)


def test_a_job_that_kills_its_worker_every_time_is_discarded_after_max_attempts(
        storage: Storage, workers: Workers, tmp_path: Path) -> None:
    """Two supervised worker processes; the job kills whichever runs it; the supervisor restarts them."""
    log = tmp_path / "executions.log"
    [deadly] = insert(workers.url, "tests.crash_workers:KillsItsWorker", log, 1, max_attempts=2)
    normal = insert(workers.url, "tests.crash_workers:Recording", log, 4)
    supervisor = workers.start("--processes", "2")
    wait_for(lambda: states(storage, [deadly])[JobState.DISCARDED] == 1, "the deadly job discarded", workers)
    wait_for(lambda: states(storage, normal) == Counter({JobState.COMPLETED: 4}), "the other jobs", workers)
    job = storage.fetch(deadly.id)
    assert job is not None
    assert (job.attempts, [e["kind"] for e in job.errors]) == (2, ["rescued", "rescued"])
    assert executions(log)[deadly.id] == 2
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0
    assert storage.nodes() == [], "every child removed its node record on the graceful stop"
    assert "restarting in" in workers.output()
