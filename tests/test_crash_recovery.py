"""Real signals: ``kathikon worker`` subprocesses are SIGKILLed mid-run and no job is lost or left executing.

Runs on a SQLite file under tmp_path and on PostgreSQL (KATHIKON_TEST_DATABASE_URL; required in CI).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from kathikon.job import JobState
from kathikon.storage import Storage
from kathikon.storage.base import NodeRecord
from tests.crash_workers import count_events as executions
from tests.worker_processes import Workers, database_url, insert, states, storage, wait_for, workers

__all__ = ["database_url", "storage", "workers"]

pytestmark = pytest.mark.slow


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
    rescued_at = min(datetime.fromisoformat(e["at"]) for e in rescues)
    assert rescued_at >= dead.heartbeat_at + timedelta(seconds=1.5), "not before rescue_after had passed"
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
