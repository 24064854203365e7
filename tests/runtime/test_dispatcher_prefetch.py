"""Claiming ahead: a dispatcher holds claimed jobs beyond its free slots only while jobs run short."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from kathikon import Job, JobState, Worker
from kathikon.runtime.acker import Acker
from kathikon.runtime.dispatcher import HOLD_TARGET, Dispatcher
from kathikon.runtime.storage_calls import StorageCalls
from kathikon.storage import Storage
from kathikon.storage.memory import MemoryStorage
from tests.runtime.runtime_helpers import OWNER, T0, at, capture, sqlite_storage

PATH = "tests.runtime.test_dispatcher_prefetch"
RAN: list[int] = []
TASKS: list[object] = []


class Quick(Worker):
    async def perform(self, job: Job) -> None:
        RAN.append(job.args["n"])


class Tracked(Worker):
    """Records the task it runs in; ``n == 0`` waits to be cancelled."""

    async def perform(self, job: Job) -> None:
        TASKS.append(asyncio.current_task())
        if job.args["n"] == 0:
            await asyncio.sleep(30)
        RAN.append(job.args["n"])


class Brief(Worker):
    async def perform(self, job: Job) -> None:
        await asyncio.sleep(0.005)


class Slow(Worker):
    async def perform(self, job: Job) -> None:
        await asyncio.sleep(HOLD_TARGET * 3)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    RAN.clear()
    TASKS.clear()
    return MemoryStorage() if request.param == "memory" else sqlite_storage(tmp_path)


def make(storage: Storage, concurrency: int, prefetch: int) -> tuple[Dispatcher, Acker]:
    calls = StorageCalls(first_delay=0.001)
    acker = Acker(storage, calls)
    dispatcher = Dispatcher("default", concurrency, storage=storage, calls=calls, acker=acker, node=OWNER,
                            prefetch=prefetch)
    return dispatcher, acker


def insert(storage: Storage, worker: str, count: int, **options: Any) -> list[Job]:
    return storage.insert([Job.build(f"{PATH}:{worker}", {"n": n}, now=T0, **options) for n in range(count)])


async def run_one_wave(dispatcher: Dispatcher) -> None:
    """Claim and run until nothing runs: gives the dispatcher a measured run time."""
    await dispatcher.tick(at(1))
    await dispatcher.drain()


def second_claim(dispatcher: Dispatcher, acker: Acker) -> int:
    """After one wave, how many jobs the next claim takes (then everything runs and is written)."""

    async def scenario() -> int:
        await run_one_wave(dispatcher)
        claimed = await dispatcher.tick(at(2))
        await dispatcher.drain()
        await acker.flush()
        return claimed

    return asyncio.run(scenario())


def test_nothing_is_claimed_ahead_before_a_job_has_shown_how_long_jobs_run(store: Storage) -> None:
    insert(store, "Quick", 20)
    dispatcher, _ = make(store, concurrency=2, prefetch=5)

    async def scenario() -> int:
        return await dispatcher.tick(at(1))

    assert asyncio.run(scenario()) == 2
    assert not dispatcher.ready


def test_after_short_jobs_a_tick_claims_the_free_slots_plus_prefetch_and_holds_the_extra(store: Storage) -> None:
    insert(store, "Quick", 20)
    dispatcher, acker = make(store, concurrency=2, prefetch=5)

    async def scenario() -> int:
        await run_one_wave(dispatcher)
        claimed = await dispatcher.tick(at(2))
        assert len(dispatcher.running) == 2
        assert len(dispatcher.ready) == 5
        await dispatcher.stop_claiming()
        await dispatcher.drain()
        await acker.flush()
        return claimed

    with capture("dispatcher") as events:
        assert asyncio.run(scenario()) == 7
    assert events.named("dispatcher.poll")[-1][1] == {"claimed": 7, "free_slots": 2, "requested": 7}


def test_held_jobs_start_as_slots_free_in_claim_order(store: Storage) -> None:
    low = insert(store, "Quick", 6, priority=0)
    high = insert(store, "Quick", 3, priority=5)
    dispatcher, acker = make(store, concurrency=1, prefetch=8)

    async def scenario() -> None:
        await run_one_wave(dispatcher)  # runs high[0]
        await dispatcher.tick(at(2))  # claims the other eight, starts one, holds seven
        while dispatcher.running or dispatcher.ready:
            await dispatcher.drain()
        await acker.flush()

    asyncio.run(scenario())
    assert RAN == [0, 1, 2, 0, 1, 2, 3, 4, 5]  # high by n, then low by n: the claim order
    assert {j.state for j in store.all()} == {JobState.COMPLETED}
    assert len(high) + len(low) == len(RAN)


def test_a_slot_runs_the_held_jobs_one_after_another_in_one_task(store: Storage) -> None:
    insert(store, "Quick", 7)
    dispatcher, acker = make(store, concurrency=1, prefetch=5)
    tasks: list[object] = []

    async def scenario() -> None:
        await run_one_wave(dispatcher)
        await dispatcher.tick(at(2))  # the first of six starts in a new task, the others wait in ready
        tasks.extend({id(r.task) for r in dispatcher.running.values()})
        while dispatcher.running or dispatcher.ready:
            assert {id(r.task) for r in dispatcher.running.values()} <= set(tasks)
            await asyncio.sleep(0)
        await acker.flush()

    asyncio.run(scenario())
    assert len(tasks) == 1
    assert sorted(RAN) == list(range(7))


def test_cancelling_a_job_in_a_slot_task_leaves_the_next_held_jobs_to_run(store: Storage) -> None:
    jobs = insert(store, "Tracked", 5)
    dispatcher, acker = make(store, concurrency=1, prefetch=3)
    dispatcher._mean_run = 0.001  # as after short jobs: hold ahead from the first claim
    dispatcher._update_ahead()

    async def scenario() -> None:
        await dispatcher.tick(at(1))  # n=0 runs, n=1..3 are held
        while not TASKS:
            await asyncio.sleep(0)
        store.cancel(jobs[0].id, at(2), running=True)
        assert dispatcher.cancel_job(jobs[0].id)
        while dispatcher.running or dispatcher.ready:
            await asyncio.sleep(0.001)
        await acker.flush()

    asyncio.run(scenario())
    assert RAN == [1, 2, 3]
    assert len(set(map(id, TASKS))) == 1  # one task ran all four, the cancel stopped only the first
    states = [store.fetch(job.id).state for job in jobs]  # type: ignore[union-attr]
    assert states == [JobState.CANCELLED, *[JobState.COMPLETED] * 3, JobState.AVAILABLE]


def test_with_jobs_longer_than_the_hold_target_nothing_is_held(store: Storage) -> None:
    insert(store, "Slow", 6)
    dispatcher, acker = make(store, concurrency=1, prefetch=5)

    assert second_claim(dispatcher, acker) == 1
    assert dispatcher.ahead == 0
    assert not dispatcher.ready


class SlowClaims:
    """Claims that take ``delay`` seconds, as in a busy process or over a slow network."""

    def __init__(self, inner: Storage, delay: float) -> None:
        self._inner, self._delay = inner, delay

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def claim(self, *args: Any) -> list[Job]:
        time.sleep(self._delay)
        return self._inner.claim(*args)


def test_slow_claims_widen_the_hold_window_so_slots_do_not_wait_for_them(store: Storage) -> None:
    insert(store, "Brief", 40)
    fast, _ = make(store, concurrency=1, prefetch=30)
    slow, _ = make(SlowClaims(store, HOLD_TARGET * 4), concurrency=1, prefetch=30)  # type: ignore[arg-type]

    async def scenario() -> None:
        for dispatcher in (fast, slow):
            await run_one_wave(dispatcher)

    asyncio.run(scenario())
    assert slow.hold_window >= HOLD_TARGET * 8  # two claim round trips
    assert fast.hold_window < slow.hold_window
    assert slow.ahead > fast.ahead


def test_prefetch_zero_never_claims_beyond_the_free_slots(store: Storage) -> None:
    insert(store, "Quick", 10)
    dispatcher, acker = make(store, concurrency=2, prefetch=0)

    assert second_claim(dispatcher, acker) == 2


def test_stopping_gives_held_jobs_back_as_available_without_counting_the_attempt(store: Storage) -> None:
    insert(store, "Quick", 12)
    dispatcher, acker = make(store, concurrency=1, prefetch=5)

    async def scenario() -> list[str]:
        await run_one_wave(dispatcher)
        await dispatcher.tick(at(2))
        held = [job.id for _, job in dispatcher.ready]
        await dispatcher.stop_claiming()
        assert not dispatcher.ready
        await dispatcher.drain()
        await acker.flush()
        return held

    held = asyncio.run(scenario())
    assert len(held) == 5
    jobs = {job.id: job for job in store.all()}
    assert {(jobs[i].state, jobs[i].attempts) for i in held} == {(JobState.AVAILABLE, 0)}


def test_cancelling_a_held_job_drops_it_so_it_never_runs(store: Storage) -> None:
    jobs = insert(store, "Quick", 7)
    dispatcher, acker = make(store, concurrency=1, prefetch=5)

    async def scenario() -> str:
        await run_one_wave(dispatcher)
        await dispatcher.tick(at(2))
        victim = dispatcher.ready[-1][1].id
        assert victim in dispatcher.held_ids()
        store.cancel(victim, at(3), running=True)
        assert dispatcher.cancel_job(victim)
        assert victim not in dispatcher.held_ids()
        while dispatcher.running or dispatcher.ready:
            await dispatcher.drain()
        await acker.flush()
        return victim

    victim = asyncio.run(scenario())
    assert store.fetch(victim).state == JobState.CANCELLED  # type: ignore[union-attr]
    victim_n = next(job.args["n"] for job in jobs if job.id == victim)
    assert sorted(RAN) == [n for n in range(7) if n != victim_n]


def test_jobs_held_longer_than_the_hold_limit_are_given_back_and_the_next_claims_hold_less(
        store: Storage) -> None:
    insert(store, "Quick", 8)
    dispatcher, acker = make(store, concurrency=1, prefetch=5)

    async def scenario() -> None:
        await run_one_wave(dispatcher)
        await dispatcher.tick(at(2))
        dispatcher._release_stale_ready()  # the loop does this every turn; held for less than HOLD_LIMIT yet
        assert len(dispatcher.ready) == 5
        # As if the held jobs had waited, and the running one run, for a whole second:
        past = time.monotonic() - 1.0
        dispatcher.ready = deque((past, job) for _, job in dispatcher.ready)
        for running in dispatcher.running.values():
            running.started = past
        dispatcher._release_stale_ready()
        assert not dispatcher.ready
        assert dispatcher.ahead == 0  # the running job's age counts now: nothing more is held for now
        await dispatcher.drain()
        await acker.flush()

    asyncio.run(scenario())
    counts: dict[JobState, int] = {}
    for job in store.all():
        counts[job.state] = counts.get(job.state, 0) + 1
    assert counts == {JobState.COMPLETED: 2, JobState.AVAILABLE: 6}
