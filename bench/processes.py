"""The ``--processes`` check: CPU-bound jobs through ``kathikon worker --processes P``.

The worker logs at WARNING (its INFO default writes a line per job, which would be measured too).
Throughput is measured from outside the worker: from the first committed completion to the last one, by
polling the job counts every 20 ms (the seconds a run takes make that resolution irrelevant).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from bench.kathikon_bench import database_url
from kathikon.job import JobState
from kathikon.storage import Storage, open_storage

POLL = 0.02


def supported() -> bool:
    """True when this Kathikon's ``kathikon worker`` has a ``--processes`` option."""
    proc = subprocess.run(
        [sys.executable, "-m", "kathikon", "worker", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    return "--processes" in proc.stdout


def measure(db: str, processes: int, jobs: int) -> float:
    """Jobs/s of ``processes`` worker processes on ``jobs`` seeded CPU-bound jobs."""
    from bench.harness import ROOT, subprocess_env
    from bench.harness import measure as run_measurement

    run_measurement("bench.kathikon_bench", "seed", db, variant="cpu", count=jobs, batch=1000)
    url = database_url(db)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kathikon",
            "worker",
            "-A",
            "bench.workloads",
            "--database",
            url,
            "--queues",
            "default=10",
            "--processes",
            str(processes),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return _throughput(url, jobs)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)


def _throughput(url: str, jobs: int, timeout: float = 600) -> float:
    storage = open_storage(url)
    try:
        first_count, first_at = _wait_completed(storage, 1, timeout)
        _, last_at = _wait_completed(storage, jobs, timeout)
        return (jobs - first_count) / (last_at - first_at)
    finally:
        storage.close()


def _wait_completed(storage: Storage, at_least: int, timeout: float) -> tuple[int, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = storage.counts()
        done = sum(n for (_, state), n in counts.items() if state == JobState.COMPLETED)
        if done >= at_least:
            return done, time.perf_counter()
        time.sleep(POLL)
    raise TimeoutError(f"{at_least} jobs were not completed within {timeout} s")
