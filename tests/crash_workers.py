"""Workers for the crash tests and the chaos script, imported by real ``kathikon worker`` subprocesses.

Each appends one line ``<job id> <event> <pid>`` to ``args["log"]`` when an execution starts (event
``started``) and when it notices a cancel; one small O_APPEND write per line, so lines from concurrent
processes never interleave.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from pathlib import Path

from kathikon import Job, Worker

CANCEL_WAIT = 30.0


def record(job: Job, event: str) -> None:
    with open(job.args["log"], "a", encoding="utf-8") as log:
        log.write(f"{job.id} {event} {os.getpid()}\n")


def count_events(log: Path, event: str = "started") -> Counter[str]:
    """How many times each job id logged ``event``."""
    if not log.exists():
        return Counter()
    return Counter(parts[0] for parts in map(str.split, log.read_text().splitlines()) if parts[1] == event)


class Recording(Worker):
    """Records the execution, then works for ``args["seconds"]``."""

    def perform(self, job: Job) -> None:
        record(job, "started")
        time.sleep(job.args.get("seconds", 0.0))


class KillsItsWorker(Worker):
    """Records the execution, then SIGKILLs the process running it: every attempt dies with its worker."""

    def perform(self, job: Job) -> None:
        record(job, "started")
        os.kill(os.getpid(), signal.SIGKILL)


class Cooperative(Worker):
    """A long sync job that checks ``cancel_requested`` between steps and stops when asked."""

    def perform(self, job: Job) -> None:
        record(job, "started")
        deadline = time.monotonic() + CANCEL_WAIT
        while not self.cancel_requested and time.monotonic() < deadline:
            time.sleep(0.02)
        record(job, "cancelled" if self.cancel_requested else "finished")


class LongAsync(Worker):
    """A long async job; a cancel arrives as CancelledError."""

    async def perform(self, job: Job) -> None:
        record(job, "started")
        try:
            await asyncio.sleep(CANCEL_WAIT)
        except asyncio.CancelledError:
            record(job, "cancelled")
            raise
        record(job, "finished")
