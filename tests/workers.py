"""Workers shared by the tests (importable by path, so subprocess workers can run them)."""

from __future__ import annotations

from kathikon import Error, Job, Sleep, Worker


class NoopWorker(Worker):
    def perform(self, job: Job) -> None:
        return None


class EmailWorker(Worker):
    queue = "emails"
    priority = 3
    max_attempts = 7

    def perform(self, job: Job) -> None:
        return None


class FailingWorker(Worker):
    def perform(self, job: Job) -> Error:
        return Error(f"failed attempt {job.attempts}")


class SleepyWorker(Worker):
    def perform(self, job: Job) -> Sleep | None:
        return Sleep(job.args.get("seconds", 60)) if job.attempts == 1 and not job.args.get("done") else None
