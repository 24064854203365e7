"""Real ``kathikon worker`` subprocesses on a SQLite file under tmp_path or on PostgreSQL, for the crash and
remote-cancel tests (PostgreSQL needs KATHIKON_TEST_DATABASE_URL; required in CI)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kathikon import Kathikon
from kathikon.job import Job, JobState
from kathikon.storage import Storage, open_storage
from tests.conftest import storage_url

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


def insert(url: str, worker: str, log: Path, count: int, **options: Any) -> list[Job]:
    with Kathikon(database=url) as k:
        return k.insert_all([Job.build(worker, {"log": str(log), "seconds": 0.4}, **options)
                             for _ in range(count)])


def states(storage: Storage, jobs: list[Job]) -> Counter[JobState]:
    found = storage.states([j.id for j in jobs])
    return Counter(found.get(j.id) for j in jobs)  # type: ignore[misc]
