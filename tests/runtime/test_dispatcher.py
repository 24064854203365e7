"""Dispatcher ticks, the acker's group commit and fenced acks, and retries while the database is down."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kathikon import Error, Job, JobState, Worker
from kathikon.runtime.acker import Acker, record
from kathikon.runtime.dispatcher import Dispatcher
from kathikon.runtime.outcome import Returned, decide
from kathikon.runtime.storage_calls import StorageCalls
from kathikon.storage import Storage
from kathikon.storage.memory import MemoryStorage
from tests.runtime.runtime_helpers import OWNER, T0, FlakyStorage, at, capture, claimed, sqlite_storage

PATH = "tests.runtime.test_dispatcher"


class Quick(Worker):
    async def perform(self, job: Job) -> None:
        return None


class CountingStorage:
    """Counts ``ack`` calls (transactions) and the acks they carried."""

    def __init__(self, inner: Storage) -> None:
        self._inner = inner
        self.ack_calls: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def ack(self, acks: list[Any]) -> list[bool]:
        self.ack_calls.append(len(acks))
        return self._inner.ack(acks)


def make(storage: Any, concurrency: int = 2, queue: str = "default") -> tuple[Dispatcher, Acker]:
    calls = StorageCalls(first_delay=0.001)
    acker = Acker(storage, calls)
    return Dispatcher(queue, concurrency, storage=storage, calls=calls, acker=acker, node=OWNER), acker


def insert(storage: Storage, count: int, **options: Any) -> list[Job]:
    return storage.insert([Job.build(f"{PATH}:Quick", {"n": n}, now=T0, **options) for n in range(count)])


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return MemoryStorage() if request.param == "memory" else sqlite_storage(tmp_path)


def test_a_tick_claims_up_to_the_free_slots_by_priority_and_runs_them(store: Storage) -> None:
    low = insert(store, 2, priority=0)
    high = insert(store, 2, priority=5)
    dispatcher, acker = make(store, concurrency=3)

    async def scenario() -> int:
        claimed_count = await dispatcher.tick(at(1))
        assert set(dispatcher.running) == {high[0].id, high[1].id, low[0].id}
        await dispatcher.drain()
        await acker.flush()
        return claimed_count

    with capture("dispatcher", "job") as events:
        assert asyncio.run(scenario()) == 3
    states = {job.id: job.state for job in store.all()}
    assert [states[j.id] for j in (*high, *low)] == [JobState.COMPLETED] * 3 + [JobState.AVAILABLE]
    [(_, measurements, metadata)] = events.named("dispatcher.poll")
    assert measurements == {"claimed": 3, "free_slots": 3, "requested": 3}
    assert metadata == {"queue": "default", "node": OWNER}
    assert len(events.named("job.start")) == len(events.named("job.stop")) == 3


def test_a_tick_without_free_slots_claims_nothing(store: Storage) -> None:
    insert(store, 1)
    dispatcher, _ = make(store, concurrency=1)
    dispatcher.concurrency = 0
    assert asyncio.run(dispatcher.tick(at(1))) == 0
    assert store.all()[0].state == JobState.AVAILABLE


def test_outcomes_written_together_share_one_transaction(tmp_path: Path) -> None:
    storage = CountingStorage(sqlite_storage(tmp_path))
    jobs = [claimed(storage._inner, f"{PATH}:Quick") for _ in range(5)]  # type: ignore[arg-type]
    acker = Acker(storage, StorageCalls())  # type: ignore[arg-type]

    async def scenario() -> None:
        for job in jobs:
            acker.submit(decide(job, Returned(None), now=at(1), owner=OWNER))
        await acker.flush()

    asyncio.run(scenario())
    assert storage.ack_calls == [5]
    assert {j.state for j in storage.all()} == {JobState.COMPLETED}


def test_a_stale_outcome_is_dropped_by_the_fenced_ack_and_reported(store: Storage) -> None:
    job = claimed(store, f"{PATH}:Quick")
    store.cancel(job.id, at(1), running=True)
    decision = decide(job, Returned(Error("late")), now=at(2), owner=OWNER)
    with capture("job") as events:
        assert record(store, [decision]) == [False]
    assert events.names() == ["job.ack_dropped"]
    metadata = events[0][2]
    assert metadata["outcome"] == JobState.RETRYABLE
    assert metadata["reason"] == "fenced"
    stored = store.fetch(job.id)
    assert stored is not None
    assert stored.state == JobState.CANCELLED
    assert stored.errors == []


def test_an_outcome_from_another_owner_is_dropped(store: Storage) -> None:
    job = claimed(store, f"{PATH}:Quick")
    assert record(store, [decide(job, Returned(None), now=at(1), owner="another-node")]) == [False]
    assert store.fetch(job.id).state == JobState.EXECUTING  # type: ignore[union-attr]


def test_outcomes_are_retried_while_the_database_is_unavailable_and_written_once(store: Storage) -> None:
    flaky = FlakyStorage(store, {"ack"}, failures=3)
    jobs = [claimed(store, f"{PATH}:Quick") for _ in range(2)]
    acker = Acker(flaky, StorageCalls(first_delay=0.001))  # type: ignore[arg-type]

    async def scenario() -> None:
        acker.start()
        for job in jobs:
            acker.submit(decide(job, Returned(None), now=at(1), owner=OWNER))
        await acker.close(timeout=10)

    with capture("storage", "job") as events:
        asyncio.run(scenario())
    assert flaky.failed == {"ack": 3}
    assert [md["operation"] for _, _, md in events.named("storage.error")] == ["record"] * 3
    assert len(events.named("job.stop")) == 2
    assert events.named("job.ack_dropped") == []
    assert {j.state for j in store.all()} == {JobState.COMPLETED}


def test_a_claim_is_retried_while_the_database_is_unavailable(store: Storage) -> None:
    insert(store, 1)
    flaky = FlakyStorage(store, {"claim"}, failures=2)
    dispatcher, acker = make(flaky)

    async def scenario() -> int:
        dispatcher._claiming = True  # as when started
        count = await dispatcher.tick(at(1))
        await dispatcher.drain()
        await acker.flush()
        return count

    assert asyncio.run(scenario()) == 1
    assert flaky.failed == {"claim": 2}
    assert store.all()[0].state == JobState.COMPLETED


def test_a_batch_with_a_failing_ack_still_writes_the_others(store: Storage) -> None:
    good, bad = claimed(store, f"{PATH}:Quick"), claimed(store, f"{PATH}:Quick")

    class Refuses:
        def ack(self, acks: list[Any]) -> list[bool]:
            if any(a.job_id == bad.id for a in acks):
                raise ValueError("cannot store this error entry")
            return store.ack(acks)

    decisions = [decide(j, Returned(None), now=at(1), owner=OWNER) for j in (good, bad)]
    with capture("job") as events:
        assert record(Refuses(), decisions) == [True, False]  # type: ignore[arg-type]
    assert events.names() == ["job.stop", "job.ack_dropped"]
    assert events[1][2]["reason"] == "error"


class QuickSync(Worker):
    def perform(self, job: Job) -> int:
        return job.args["n"]


def test_sync_jobs_run_whole_in_pool_threads_and_their_outcomes_come_back_to_the_acker(store: Storage) -> None:
    store.insert([Job.build(f"{PATH}:QuickSync", {"n": n}, now=T0) for n in range(6)])
    calls = StorageCalls(first_delay=0.001)
    acker = Acker(store, calls)

    async def scenario() -> int:
        with ThreadPoolExecutor(4) as pool:
            dispatcher = Dispatcher("default", 6, storage=store, calls=calls, acker=acker, node=OWNER, pool=pool)
            dispatcher.start()
            await dispatcher.tick(at(1))
            running_tasks = [r.task for r in dispatcher.running.values() if r.task is not None]
            await dispatcher.stop_claiming()
            await dispatcher.drain()
            await acker.flush()
            return len(running_tasks)

    assert asyncio.run(scenario()) == 0  # no task waits for a sync perform without a timeout
    assert {j.state for j in store.all()} == {JobState.COMPLETED}
