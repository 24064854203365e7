"""Property tests of the state rules: random sequences of storage operations on a real backend never break
the job life cycle (terminal jobs never change, a claim never returns an executing job, stale acks change
nothing, attempts stay in bounds)."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kathikon import Job, JobState
from kathikon.exceptions import InvalidStateError, JobExecutingError
from kathikon.storage import Ack, Storage, open_storage
from tests.workers import NoopWorker

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OWNER = "node-a"
TERMINAL = {JobState.COMPLETED, JobState.DISCARDED, JobState.CANCELLED}


class JobLifeCycle(RuleBasedStateMachine):
    """Drives one storage with random operations and checks it against the rules after each step."""

    url = "memory://"

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.storage: Storage = open_storage(self.url.format(tmp=Path(self.tmp.name)))
        self.storage.setup()
        self.now = T0
        self.finished: dict[str, Job] = {}
        self.executing: set[str] = set()

    def teardown(self) -> None:
        self.storage.close()
        self.tmp.cleanup()

    @rule(count=st.integers(1, 4), priority=st.integers(0, 3), delay=st.sampled_from([0, 0, 5]),
          max_attempts=st.integers(1, 3))
    def insert(self, count: int, priority: int, delay: int, max_attempts: int) -> None:
        jobs = [Job.build(NoopWorker, {"n": n}, priority=priority, schedule_in=delay, max_attempts=max_attempts,
                          now=self.now) for n in range(count)]
        self.storage.insert(jobs)

    @rule(seconds=st.sampled_from([1, 5, 30]))
    def time_passes(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule(limit=st.integers(1, 5))
    def claim(self, limit: int) -> None:
        claimed = self.storage.claim("default", limit, self.now, OWNER)
        assert len(claimed) <= limit
        priorities = [job.priority for job in claimed]
        assert priorities == sorted(priorities, reverse=True)
        for job in claimed:
            assert job.state == JobState.EXECUTING
            assert job.id not in self.executing, "a job was claimed while it was executing"
            self.executing.add(job.id)

    @precondition(lambda self: bool(self.storage.all(state=JobState.EXECUTING)))
    @rule(outcome=st.sampled_from(["complete", "fail", "sleep", "release"]), stale=st.booleans())
    def ack(self, outcome: str, stale: bool) -> None:
        job = self.storage.all(state=JobState.EXECUTING)[0]
        attempt = job.attempts - 1 if stale else job.attempts
        state, available_at, error = {
            "complete": (JobState.COMPLETED, None, None),
            "fail": (JobState.DISCARDED if job.attempts >= job.max_attempts else JobState.RETRYABLE,
                     self.now + timedelta(seconds=Job.backoff_seconds(job.attempts)),
                     {"attempt": job.attempts, "kind": "error", "error": "boom"}),
            "sleep": (JobState.SCHEDULED, self.now + timedelta(seconds=10), None),
            "release": (JobState.AVAILABLE, None, None),
        }[outcome]
        applied = self.storage.ack([Ack(job.id, attempt, OWNER, state, self.now, available_at, error)])
        assert applied == [not stale]
        if not stale:
            self.executing.discard(job.id)
        after = self.storage.fetch(job.id)
        assert after is not None
        if stale:
            assert after == job, "a stale ack changed the job"
        elif outcome in ("sleep", "release"):
            assert after.attempts == job.attempts - 1, "a sleep or a release must give its attempt back"

    @rule()
    def stage(self) -> None:
        self.storage.stage(self.now, 100)

    @precondition(lambda self: bool(self.storage.all()))
    @rule(index=st.integers(0, 50), running=st.booleans())
    def cancel(self, index: int, running: bool) -> None:
        jobs = self.storage.all()
        job = jobs[index % len(jobs)]
        try:
            cancelled = self.storage.cancel(job.id, self.now, running=running)
        except InvalidStateError:
            assert job.state in TERMINAL
        except JobExecutingError:
            assert job.state == JobState.EXECUTING
            assert not running
        else:
            assert job.state not in TERMINAL
            assert cancelled.state == JobState.CANCELLED
            self.executing.discard(job.id)

    @rule(age=st.sampled_from([0, 60]))
    def prune(self, age: int) -> None:
        for job in self.storage.prune(self.now - timedelta(seconds=age), 100):
            assert job.state in TERMINAL
            self.finished.pop(job.id, None)

    @invariant()
    def terminal_jobs_never_change_and_attempts_stay_in_bounds(self) -> None:
        for job in self.storage.all():
            if job.id in self.finished:
                assert job == self.finished[job.id], "a terminal job changed"
            if job.state in TERMINAL:
                self.finished[job.id] = job
            assert 0 <= job.attempts <= job.max_attempts
            if job.state == JobState.EXECUTING:
                assert job.attempted_by == OWNER
                assert job.attempts >= 1


class SQLiteJobLifeCycle(JobLifeCycle):
    url = "sqlite:///{tmp}/jobs.db"


TestTheLifeCycleRulesHoldOnMemoryStorage = JobLifeCycle.TestCase
TestTheLifeCycleRulesHoldOnMemoryStorage.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestTheLifeCycleRulesHoldOnASQLiteFile = SQLiteJobLifeCycle.TestCase
TestTheLifeCycleRulesHoldOnASQLiteFile.settings = settings(max_examples=20, stateful_step_count=25, deadline=None)
