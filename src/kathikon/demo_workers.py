"""The workers and the job mix of ``kathikon demo``: a small shop's background work.

Each job carries the final state it should reach in ``meta["demo_expect"]``, so the demo can check at the
end that every job ended where the rules say it must.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from kathikon._clock import utcnow
from kathikon.job import Job, JobState
from kathikon.results import Error, Sleep
from kathikon.worker import Worker

__all__ = ["QUEUES", "BuildDigest", "DeliverWebhook", "DemoPlan", "SendEmail", "WaitForExport", "demo_jobs"]

# Concurrency per queue: small enough that priorities and queueing are visible.
QUEUES = {"emails": 4, "webhooks": 4, "digests": 2, "exports": 2}


class SendEmail(Worker):
    """A blocking SMTP call: a plain ``def``, so it runs in the thread pool."""

    queue = "emails"

    def perform(self, job: Job) -> None:
        time.sleep(job.args["ms"] / 1000)


class DeliverWebhook(Worker):
    """An HTTP POST: ``async def``, run on the event loop. Some endpoints are down for a while."""

    queue = "webhooks"
    max_attempts = 4

    async def perform(self, job: Job) -> Error | None:
        await asyncio.sleep(job.args["ms"] / 1000)
        if job.args.get("endpoint_dead"):
            raise ConnectionRefusedError(f"connection refused by {job.args['url']}")
        if job.attempts <= job.args.get("fail_first", 0):
            return Error(f"HTTP 503 from {job.args['url']}")
        return None

    def backoff(self, job: Job) -> float:
        # The demo retries within seconds; production would keep the default 5, 20, 45 … seconds.
        return float(job.args["backoff"])


class BuildDigest(Worker):
    """A daily digest, inserted with ``schedule_in`` so it waits in ``scheduled`` first."""

    queue = "digests"

    def perform(self, job: Job) -> None:
        time.sleep(0.1)


class WaitForExport(Worker):
    """Polls an export that is not ready yet: ``Sleep`` puts it back without counting an attempt."""

    queue = "exports"

    def perform(self, job: Job) -> Sleep | None:
        if utcnow() < datetime.fromisoformat(job.args["ready_at"]):
            return Sleep(1)
        return None


@dataclass(frozen=True, slots=True)
class DemoPlan:
    """How big and how slow the demo is. ``small()`` is the quick run the tests use."""

    newsletters: int = 120
    password_resets: int = 6
    webhooks: int = 16
    digests_at: tuple[float, ...] = (3.0, 6.0, 9.0)
    exports_ready_in: tuple[float, ...] = (2.0, 4.0, 6.0)
    retry_backoff: float = 1.0
    email_ms: tuple[int, int] = (40, 120)

    @classmethod
    def small(cls) -> DemoPlan:
        return cls(
            newsletters=12,
            password_resets=2,
            webhooks=6,
            digests_at=(1.0,),
            exports_ready_in=(1.0,),
            retry_backoff=0.3,
            email_ms=(5, 20),
        )


def demo_jobs(plan: DemoPlan, now: datetime, rng: random.Random) -> list[Job]:
    """Every job of the demo (the cancelled one included), in insertion order."""
    return [*_emails(plan, rng), *_webhooks(plan, rng), *_digests(plan), *_exports(plan, now)]


def _expect(state: JobState) -> dict[str, str]:
    return {"demo_expect": state.value}


def _emails(plan: DemoPlan, rng: random.Random) -> list[Job]:
    done = _expect(JobState.COMPLETED)
    newsletters = [
        SendEmail.new({"to": f"reader{i}@example.com", "ms": rng.randint(*plan.email_ms)}, meta=done)
        for i in range(plan.newsletters)
    ]
    # Inserted last with a higher priority: they jump the newsletter backlog.
    resets = [
        SendEmail.new(
            {"to": f"user{i}@example.com", "ms": plan.email_ms[0], "kind": "password_reset"},
            priority=9,
            meta=done,
            tags=["password-reset"],
        )
        for i in range(plan.password_resets)
    ]
    # A reminder the user withdraws before it is due: the demo cancels it.
    reminder = SendEmail.new(
        {"to": "undecided@example.com", "ms": 10}, schedule_in=600, meta=_expect(JobState.CANCELLED), tags=["to-cancel"]
    )
    return [*newsletters, *resets, reminder]


def _webhooks(plan: DemoPlan, rng: random.Random) -> list[Job]:
    jobs = []
    for i in range(plan.webhooks):
        args: dict[str, object] = {
            "url": f"https://hooks.example.com/{i}",
            "ms": rng.randint(20, 80),
            "backoff": plan.retry_backoff,
            "fail_first": (0, 0, 1, 2)[i % 4],
        }
        jobs.append(DeliverWebhook.new(args, meta=_expect(JobState.COMPLETED)))
    dead = {"url": "https://gone.example.com/hook", "ms": 10, "backoff": plan.retry_backoff, "endpoint_dead": True}
    jobs.append(DeliverWebhook.new(dead, max_attempts=3, meta=_expect(JobState.DISCARDED)))
    return jobs


def _digests(plan: DemoPlan) -> list[Job]:
    return [
        BuildDigest.new({"edition": n}, schedule_in=delay, meta=_expect(JobState.COMPLETED))
        for n, delay in enumerate(plan.digests_at, start=1)
    ]


def _exports(plan: DemoPlan, now: datetime) -> list[Job]:
    return [
        WaitForExport.new(
            {"export": n, "ready_at": (now + timedelta(seconds=delay)).isoformat()}, meta=_expect(JobState.COMPLETED)
        )
        for n, delay in enumerate(plan.exports_ready_in, start=1)
    ]
