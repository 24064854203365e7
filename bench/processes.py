"""The ``--processes`` check: CPU-bound jobs through ``kathikon worker --processes P``.

The worker logs at WARNING (its INFO default writes a line per job, which would be measured too).
Throughput is measured from outside the worker, from the jobs' own stored times: the jobs completed after
the first one, divided by the time from the first ``completed_at`` to the last. The measuring process only
checks the job counts every 0.25 s to know when the run is over, so it takes no CPU from the workers it
measures (polling every 20 ms, as it did before 2026-11-25, cost the workers a few per cent on 2 cores).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from bench.kathikon_bench import database_url
from kathikon.job import JobState
from kathikon.storage import Storage, open_storage

POLL = 0.25


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
        _wait_completed(storage, jobs, timeout)
        finished = sorted(job.completed_at for job in storage.all(state=JobState.COMPLETED) if job.completed_at)
        return (len(finished) - 1) / (finished[-1] - finished[0]).total_seconds()
    finally:
        storage.close()


def _wait_completed(storage: Storage, at_least: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = storage.counts()
        if sum(n for (_, state), n in counts.items() if state == JobState.COMPLETED) >= at_least:
            return
        time.sleep(POLL)
    raise TimeoutError(f"{at_least} jobs were not completed within {timeout} s")
