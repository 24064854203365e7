"""Workers for the crash tests and the chaos script, imported by real ``kathikon worker`` subprocesses.

Each records every execution it starts as one line ``<job id> <pid>`` appended to ``args["log"]`` (one
small O_APPEND write, so lines from concurrent processes never interleave), before doing its work.
"""

from __future__ import annotations

import os
import signal
import time

from kathikon import Job, Worker


def record_execution(job: Job) -> None:
    with open(job.args["log"], "a", encoding="utf-8") as log:
        log.write(f"{job.id} {os.getpid()}\n")


class Recording(Worker):
    """Records the execution, then works for ``args["seconds"]``."""

    def perform(self, job: Job) -> None:
        record_execution(job)
        time.sleep(job.args.get("seconds", 0.0))


class KillsItsWorker(Worker):
    """Records the execution, then SIGKILLs the process running it: every attempt dies with its worker."""

    def perform(self, job: Job) -> None:
        record_execution(job)
        os.kill(os.getpid(), signal.SIGKILL)
