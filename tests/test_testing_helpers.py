"""kathikon.testing: isolated instances, clear/reset, enqueue assertions, perform_job and drain_queue."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Iterator, Mapping
from enum import Enum
from typing import Any

import pytest

import kathikon
import kathikon.testing
from kathikon import Error, Job, JobState, Kathikon, Sleep, Worker, telemetry
from kathikon.storage import Storage
from kathikon.testing import (
    DrainResult,
    assert_enqueued,
    clear_jobs,
    drain_queue,
    isolated,
    make_instance,
    perform_job,
    refute_enqueued,
    reset,
)
from kathikon.testing._json import check_round_trip


class Greet(Worker):
    queue = "greetings"

    def perform(self, job: Job) -> None:
        return None


class Color(Enum):
    RED = "red"


class Echo(Worker):
    """Records what it saw, returns its args' "value"."""

    seen: list[tuple[str, dict[str, Any], str]] = []  # noqa: RUF012 (a test probe)

    def perform(self, job: Job) -> object:
        Echo.seen.append((job.id, job.args, threading.current_thread().name))
        job.args["mutated"] = True
        return job.args.get("value")


class AsyncEcho(Worker):
    async def perform(self, job: Job) -> object:
        await asyncio.sleep(0)
        return job.args.get("value")


class Flaky(Worker):
    queue = "flaky"
    max_attempts = 3

    def perform(self, job: Job) -> Error | None:
        return Error(f"down on attempt {job.attempts}") if job.attempts < job.args.get("succeed_on", 99) else None

    def backoff(self, job: Job) -> float:
        return 30.0


class Crash(Worker):
    def perform(self, job: Job) -> None:
        raise ZeroDivisionError("boom")


class Nap(Worker):
    queue = "naps"

    def perform(self, job: Job) -> Sleep:
        return Sleep(job.args.get("seconds", 60))


class Spawner(Worker):
    """Inserts ``children`` more Spawners (into the default instance) until depth 0."""

    queue = "tree"

    def perform(self, job: Job) -> None:
        if job.args["depth"] > 0:
            kathikon.insert(Spawner, {"depth": job.args["depth"] - 1})


class CancelsItself(Worker):
    def perform(self, job: Job) -> None:
        kathikon.cancel(job.id, running=True)


class Slow(Worker):
    timeout = 0.05

    def perform(self, job: Job) -> None:
        deadline = time.monotonic() + 5
        while not self.cancel_requested and time.monotonic() < deadline:
            time.sleep(0.005)


@pytest.fixture
def events() -> Iterator[list[tuple[str, Mapping[str, Any]]]]:
    seen: list[tuple[str, Mapping[str, Any]]] = []
    telemetry.attach("test-testing-helpers", telemetry.EVENTS, lambda e, m, md: seen.append((e[-1], md)))
    yield seen
    telemetry.detach("test-testing-helpers")


# -- isolated instances and fixtures -------------------------------------------------------------------


def test_the_memory_fixture_is_the_default_instance_for_the_test(kathikon_memory: Kathikon) -> None:
    assert kathikon.get_default() is kathikon_memory
    kathikon.insert(Greet, {"name": "ada"})
    assert [job.args for job in kathikon_memory.all()] == [{"name": "ada"}]


def test_the_sqlite_fixture_uses_a_fresh_file_under_tmp_path(
    kathikon_instance: Kathikon, tmp_path: pytest.TempPathFactory
) -> None:
    assert kathikon_instance.storage.url.endswith("kathikon-test.db")
    assert str(tmp_path) in kathikon_instance.storage.url
    assert kathikon_instance.all() == []


def test_isolated_restores_the_previous_default_and_closes_its_instance() -> None:
    with isolated() as outer:
        with isolated() as inner:
            assert kathikon.get_default() is inner
        assert kathikon.get_default() is outer


def test_isolated_instances_ignore_kathikon_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KATHIKON_QUEUES", "from_env=3")
    with isolated() as k:
        assert list(k.config.queues) == ["default"]


def test_isolated_passes_options_on_to_the_config() -> None:
    with isolated(queues={"a": 2}, poll_interval=0.05) as k:
        assert k.config.concurrency("a") == 2
        assert k.config.poll_interval == 0.05


def test_clear_jobs_deletes_every_job_of_the_default_instance(kathikon_memory: Kathikon) -> None:
    kathikon.insert(Greet, {"name": "ada"})
    clear_jobs()
    assert kathikon_memory.all() == []


def test_clear_jobs_and_reset_act_on_the_instance_given_as_k(kathikon_instance: Kathikon) -> None:
    with isolated() as other:
        other.insert(Greet, {})
        kathikon_instance.insert(Greet, {})
        clear_jobs(k=other)
        assert other.all() == []
        assert len(kathikon_instance.all()) == 1
        reset(k=kathikon_instance)
        assert kathikon_instance.all() == []


def test_a_helper_refuses_something_that_is_not_an_instance() -> None:
    with pytest.raises(TypeError, match=r"k must be a kathikon\.Kathikon instance"):
        clear_jobs(k="memory://")  # type: ignore[arg-type]


# -- assert_enqueued / refute_enqueued ----------------------------------------------------------------


def test_assert_enqueued_matches_args_as_a_subset(kathikon_memory: Kathikon) -> None:
    kathikon.insert(Greet, {"name": "ada", "opts": {"loud": True, "lang": "en"}})
    [job] = assert_enqueued(worker=Greet, args={"opts": {"loud": True}}, queue="greetings")
    assert job.args["name"] == "ada"


def test_assert_enqueued_compares_args_as_storage_returns_them(kathikon_memory: Kathikon) -> None:
    kathikon.insert(Greet, {"ids": (1, 2)})
    assert_enqueued(args={"ids": (1, 2)})
    assert_enqueued(args={"ids": [1, 2]})


def test_assert_enqueued_does_not_take_true_for_one(kathikon_memory: Kathikon) -> None:
    kathikon.insert(Greet, {"n": True, "items": [True]})
    refute_enqueued(args={"n": 1})
    refute_enqueued(args={"items": [1]})


def test_assert_enqueued_accepts_a_worker_path(kathikon_memory: Kathikon) -> None:
    kathikon.insert(Greet, {})
    assert_enqueued(worker="tests.test_testing_helpers:Greet")


def test_a_failing_assert_enqueued_lists_the_jobs_of_the_queue(kathikon_memory: Kathikon) -> None:
    kathikon.insert(Greet, {"name": "ada"})
    kathikon.insert(Greet, {"name": "grace"}, priority=2)
    with pytest.raises(AssertionError) as failure:
        assert_enqueued(worker=Greet, args={"name": "linus"}, queue="greetings")
    message = str(failure.value)
    assert "expected a job with worker=tests.test_testing_helpers:Greet, args⊇{'name': 'linus'}" in message
    assert "Jobs in queue 'greetings' (2):" in message
    assert "{'name': 'grace'} queue=greetings state=available priority=2" in message


def test_a_failing_assert_enqueued_says_when_the_queue_is_empty(kathikon_memory: Kathikon) -> None:
    with pytest.raises(AssertionError, match="No jobs in queue 'emails'"):
        assert_enqueued(queue="emails")


def test_assert_enqueued_ignores_finished_jobs_unless_asked_for_their_state(kathikon_memory: Kathikon) -> None:
    job = kathikon.insert(Greet, {"name": "ada"})
    kathikon.cancel(job.id)
    refute_enqueued(worker=Greet)
    assert_enqueued(worker=Greet, state="cancelled")
    assert_enqueued(worker=Greet, state=[JobState.CANCELLED, JobState.COMPLETED])


def test_assert_enqueued_sees_scheduled_jobs_and_filters_by_priority(kathikon_memory: Kathikon) -> None:
    kathikon.insert(Greet, {}, schedule_in=60, priority=4)
    assert_enqueued(worker=Greet, state=JobState.SCHEDULED, priority=4)
    refute_enqueued(worker=Greet, priority=0)


def test_a_failing_refute_enqueued_lists_the_matching_jobs(kathikon_memory: Kathikon) -> None:
    kathikon.insert(Greet, {"name": "ada"})
    with pytest.raises(
        AssertionError, match=r"expected no job with .*found 1.\nJobs matching \(1\):\n.*\{'name': 'ada'\}"
    ):
        refute_enqueued(args={"name": "ada"})


def test_a_long_listing_is_cut_short(kathikon_memory: Kathikon) -> None:
    kathikon.insert_all([Greet.new({"n": n}) for n in range(25)])
    with pytest.raises(AssertionError, match="… and 5 more"):
        assert_enqueued(args={"n": 99})


def test_the_assertions_act_on_the_instance_given_as_k(kathikon_memory: Kathikon) -> None:
    with isolated() as other:
        other.insert(Greet, {})
        assert_enqueued(worker=Greet, k=other)
    refute_enqueued(worker=Greet)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"args": ["x"]}, TypeError, "args must be a dict"),
        ({"args": {"at": dt.datetime(2026, 1, 1)}}, TypeError, "args must be JSON-serializable"),
        ({"state": "done"}, ValueError, "state must name job states"),
        ({"state": 3}, TypeError, "state must be a JobState"),
        ({"worker": 3}, TypeError, "worker must be a Worker class"),
        ({"priority": "high"}, TypeError, "priority must be an integer"),
        ({"queue": 1}, TypeError, "queue must be a string"),
    ],
)
def test_the_assertions_refuse_bad_filters(
    kathikon_memory: Kathikon, options: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        assert_enqueued(**options)  # type: ignore[arg-type]


# -- perform_job ------------------------------------------------------------------------------------


def test_perform_job_returns_the_value_and_the_completed_outcome() -> None:
    result = perform_job(Echo, {"value": 42})
    assert result.completed
    assert result.state == JobState.COMPLETED
    assert result.value == 42
    assert result.job.state == JobState.COMPLETED
    assert result.job.completed_at is not None
    assert result.error is None


def test_perform_job_runs_a_sync_worker_in_the_calling_thread() -> None:
    Echo.seen.clear()
    perform_job(Echo, {})
    assert Echo.seen[0][2] == threading.current_thread().name


def test_perform_job_gives_the_worker_a_json_copy_of_the_args() -> None:
    args = {"value": 1}
    perform_job(Echo, args)
    assert args == {"value": 1}


def test_perform_job_runs_an_async_worker() -> None:
    assert perform_job(AsyncEcho, {"value": "hi"}).value == "hi"


def test_perform_job_works_inside_a_running_event_loop() -> None:
    async def inside() -> object:
        return perform_job(AsyncEcho, {"value": "loop"}).value

    assert asyncio.run(inside()) == "loop"


def test_perform_job_refuses_args_that_json_would_change_before_running_anything() -> None:
    Echo.seen.clear()
    with pytest.raises(TypeError, match=r"args\['when'\]\['ids'\] = \(1, 2\)"):
        perform_job(Echo, {"when": {"ids": (1, 2)}})
    with pytest.raises(TypeError, match=r"meta\['at'\]"):
        perform_job(Echo, {}, meta={"at": dt.date(2026, 1, 1)})
    assert Echo.seen == []


def test_perform_job_records_a_sleep_without_counting_the_attempt() -> None:
    result = perform_job(Nap, {"seconds": 30})
    assert result.state == JobState.SCHEDULED
    assert result.value == Sleep(30)
    assert result.job.attempts == 0
    assert result.job.scheduled_at is not None
    assert result.job.started_at is not None
    assert (result.job.scheduled_at - result.job.started_at).total_seconds() == pytest.approx(30, abs=1)
    assert result.error is None


def test_perform_job_retries_an_error_after_the_workers_backoff() -> None:
    result = perform_job(Flaky, {})
    assert result.state == JobState.RETRYABLE
    assert result.error is not None
    assert result.error["kind"] == "error"
    assert result.error["error"] == "down on attempt 1"
    assert result.job.available_at is not None
    assert result.job.started_at is not None
    assert (result.job.available_at - result.job.started_at).total_seconds() == pytest.approx(30, abs=1)


def test_perform_job_discards_on_the_last_attempt() -> None:
    result = perform_job(Flaky, {}, attempt=3)
    assert result.state == JobState.DISCARDED
    assert result.job.errors[-1]["attempt"] == 3


def test_perform_job_reraises_an_exception_from_perform() -> None:
    with pytest.raises(ZeroDivisionError, match="boom"):
        perform_job(Crash, {})


def test_perform_job_returns_the_recorded_failure_when_asked_not_to_reraise() -> None:
    result = perform_job(Crash, {}, reraise=False, max_attempts=5)
    assert result.state == JobState.RETRYABLE
    assert isinstance(result.exception, ZeroDivisionError)
    assert result.error is not None
    assert result.error["kind"] == "exception"
    assert result.error["error"] == "ZeroDivisionError: boom"
    assert "raise ZeroDivisionError" in result.error["traceback"]


def test_perform_job_enforces_the_workers_timeout() -> None:
    result = perform_job(Slow, {})
    assert result.state == JobState.RETRYABLE
    assert result.error is not None
    assert result.error["kind"] == "timeout"


def test_perform_job_emits_the_events_of_the_real_path(events: list[tuple[str, Mapping[str, Any]]]) -> None:
    perform_job(Crash, {}, reraise=False)
    assert [name for name, _ in events] == ["start", "exception", "retry"]
    assert events[-1][1]["kind"] == "exception"


def test_perform_job_applies_insert_options() -> None:
    result = perform_job(Echo, {}, queue="other", priority=3, meta={"trace": "t1"}, tags=["x"])
    assert (result.job.queue, result.job.priority, result.job.meta, result.job.tags) == (
        "other",
        3,
        {"trace": "t1"},
        ["x"],
    )


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: perform_job(Echo, {}, attempt=0), ValueError, "attempt must be an integer >= 1"),
        (lambda: perform_job(Echo, {}, schedule_in=5), TypeError, "perform_job runs the job now"),
        (lambda: perform_job(Echo, {}, colour="red"), TypeError, "colour"),
        (lambda: perform_job(object, {}), TypeError, "must be a kathikon.Worker subclass"),  # type: ignore[arg-type]
    ],
)
def test_perform_job_refuses_bad_input(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()


# -- drain_queue --------------------------------------------------------------------------------------


def test_drain_queue_runs_the_available_jobs_in_priority_order(kathikon_instance: Kathikon) -> None:
    Echo.seen.clear()
    low = kathikon.insert(Echo, {"n": 1}, queue="q")
    high = kathikon.insert(Echo, {"n": 2}, queue="q", priority=5)
    assert drain_queue("q") == DrainResult(completed=2)
    assert [job_id for job_id, _, _ in Echo.seen] == [high.id, low.id]
    assert {job.state for job in kathikon_instance.all()} == {JobState.COMPLETED}


def test_drain_queue_runs_sync_jobs_in_the_calling_thread(kathikon_instance: Kathikon) -> None:
    Echo.seen.clear()
    kathikon.insert(Echo, {})
    drain_queue("default")
    assert Echo.seen[0][2] == threading.current_thread().name


def test_drain_queue_leaves_other_queues_alone(kathikon_instance: Kathikon) -> None:
    kathikon.insert(Echo, {}, queue="a")
    kathikon.insert(Echo, {}, queue="b")
    assert drain_queue("a").completed == 1
    assert_enqueued(queue="b", state="available")


def test_drain_queue_runs_jobs_inserted_by_jobs(kathikon_instance: Kathikon) -> None:
    kathikon.insert(Spawner, {"depth": 3})
    assert drain_queue("tree") == DrainResult(completed=4)


def test_drain_queue_without_recursion_runs_only_what_was_available(kathikon_instance: Kathikon) -> None:
    kathikon.insert(Spawner, {"depth": 3})
    assert drain_queue("tree", with_recursion=False) == DrainResult(completed=1)
    assert_enqueued(worker=Spawner, args={"depth": 2})


def test_drain_queue_records_retries_discards_and_sleeps(kathikon_instance: Kathikon) -> None:
    kathikon.insert(Flaky, {}, queue="mix")
    kathikon.insert(Flaky, {}, queue="mix", max_attempts=1)
    kathikon.insert(Nap, {}, queue="mix")
    assert drain_queue("mix") == DrainResult(retried=1, discarded=1, slept=1)
    assert_enqueued(worker=Flaky, state="retryable")
    assert_enqueued(worker=Flaky, state="discarded")
    [napped] = assert_enqueued(worker=Nap, state="scheduled")
    assert napped.attempts == 0


def test_drain_queue_leaves_scheduled_jobs_unless_asked(kathikon_instance: Kathikon) -> None:
    kathikon.insert(Echo, {}, schedule_in=3600)
    assert drain_queue("default") == DrainResult()
    assert drain_queue("default", with_scheduled=True) == DrainResult(completed=1)


def test_drain_queue_with_a_time_runs_only_the_jobs_due_by_then(kathikon_instance: Kathikon) -> None:
    in_ten_minutes = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    soon = kathikon.insert(Echo, {}, schedule_in=60)
    kathikon.insert(Echo, {}, schedule_in=3600)
    assert drain_queue("default", with_scheduled=in_ten_minutes) == DrainResult(completed=1)
    done = kathikon_instance.fetch(soon.id)
    assert done.state == JobState.COMPLETED
    assert done.completed_at is not None
    assert done.completed_at >= in_ten_minutes


def test_each_drain_with_scheduled_runs_the_next_retry_until_the_job_ends(kathikon_instance: Kathikon) -> None:
    job = kathikon.insert(Flaky, {"succeed_on": 3})
    assert drain_queue("flaky") == DrainResult(retried=1)
    assert drain_queue("flaky", with_scheduled=True) == DrainResult(retried=1)
    assert drain_queue("flaky", with_scheduled=True) == DrainResult(completed=1)
    assert [e["attempt"] for e in kathikon_instance.fetch(job.id).errors] == [1, 2]


def test_drain_queue_with_scheduled_ends_although_a_job_keeps_sleeping(kathikon_instance: Kathikon) -> None:
    kathikon.insert(Nap, {"seconds": 1})
    assert drain_queue("naps", with_scheduled=True) == DrainResult(slept=1)
    assert drain_queue("naps", with_scheduled=True) == DrainResult(slept=1)


def test_drain_queue_counts_a_job_cancelled_while_it_ran(kathikon_instance: Kathikon) -> None:
    job = kathikon.insert(CancelsItself, {})
    assert drain_queue("default") == DrainResult(cancelled=1)
    assert kathikon_instance.fetch(job.id).state == JobState.CANCELLED


def test_drain_queue_stops_at_the_limit(kathikon_instance: Kathikon) -> None:
    kathikon.insert_all([Echo.new({"n": n}) for n in range(3)])
    assert drain_queue("default", limit=2).total == 2
    assert len(assert_enqueued(worker=Echo)) == 1


def test_drain_queue_emits_the_job_events(
    kathikon_instance: Kathikon, events: list[tuple[str, Mapping[str, Any]]]
) -> None:
    job = kathikon.insert(Echo, {})
    events.clear()
    drain_queue("default")
    assert [name for name, _ in events] == ["start", "stop"]
    assert events[-1][1]["job"].id == job.id


def test_drain_queue_works_inside_a_running_event_loop(kathikon_instance: Kathikon) -> None:
    kathikon.insert(AsyncEcho, {})

    async def inside() -> DrainResult:
        return drain_queue("default")

    assert asyncio.run(inside()) == DrainResult(completed=1)


def test_drain_queue_acts_on_the_instance_given_as_k(kathikon_memory: Kathikon) -> None:
    with isolated() as other:
        other.insert(Echo, {})
        assert drain_queue("default", k=other) == DrainResult(completed=1)
    kathikon.insert(Echo, {})
    assert drain_queue("default") == DrainResult(completed=1)


def test_drain_queue_works_on_every_backend(storage: Storage) -> None:
    Echo.seen.clear()
    k = make_instance(storage=storage)
    low, high = k.insert(Echo, {}, queue="q"), k.insert(Echo, {}, queue="q", priority=1)
    k.insert(Flaky, {"succeed_on": 2})
    k.insert(Nap, {})
    assert drain_queue("q", k=k) == DrainResult(completed=2)
    assert [job_id for job_id, _, _ in Echo.seen] == [high.id, low.id]
    assert drain_queue("flaky", k=k) == DrainResult(retried=1)
    assert drain_queue("flaky", k=k, with_scheduled=True) == DrainResult(completed=1)
    assert drain_queue("naps", k=k, with_scheduled=True) == DrainResult(slept=1)
    assert_enqueued(worker=Flaky, state="completed", k=k)
    [napped] = assert_enqueued(worker=Nap, state="scheduled", k=k)
    assert napped.attempts == 0


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"queue": "no spaces"}, ValueError, "queue must be"),
        ({"queue": "default", "limit": -1}, ValueError, "limit must be an integer >= 0"),
        ({"queue": "default", "with_scheduled": "yes"}, TypeError, "with_scheduled must be True, False or a datetime"),
        (
            {"queue": "default", "with_scheduled": dt.datetime(2026, 1, 1)},
            ValueError,
            "with_scheduled must be timezone-aware",
        ),
    ],
)
def test_drain_queue_refuses_bad_input(
    kathikon_memory: Kathikon, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        drain_queue(**options)


# -- the running fixture and the public surface ------------------------------------------------------


def test_the_running_fixture_runs_inserted_jobs(kathikon_running: Kathikon) -> None:
    job = kathikon.insert(Echo, {})
    deadline = time.monotonic() + 10
    while kathikon_running.fetch(job.id).state != JobState.COMPLETED:
        assert time.monotonic() < deadline, "the job did not complete within 10 s"
        time.sleep(0.01)


def test_the_testing_surface_is_exactly_these_names() -> None:
    assert sorted(kathikon.testing.__all__) == sorted(
        [
            "ENQUEUED_STATES",
            "DrainResult",
            "PerformResult",
            "assert_enqueued",
            "clear_jobs",
            "drain_queue",
            "isolated",
            "make_instance",
            "perform_job",
            "refute_enqueued",
            "reset",
        ]
    )


# -- the JSON round-trip check -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"ids": (1, 2)}, r"args\['ids'\] = \(1, 2\) .* a tuple comes back as a list"),
        ({"m": {1: "a"}}, r"args\['m'\] has the key 1 \(int\).* would come back as '1'"),
        ({"tags": [{"a", "b"}]}, r"args\['tags'\]\[0\] = .* a set is not a JSON type"),
        ({"at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}, r"args\['at'\] = .*datetime is not a JSON type"),
        ({"color": Color.RED}, r"an enum comes back as its plain value 'red'"),
        ({"x": float("inf")}, r"JSON has no NaN or infinity"),
        ({"obj": object()}, r"object is not a JSON type"),
    ],
)
def test_the_round_trip_check_names_the_value_json_would_change(args: dict[str, object], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        check_round_trip(args)


def test_the_round_trip_check_accepts_plain_json() -> None:
    check_round_trip({"a": [1, 2.5, None, True, {"b": "c"}], "d": {}})


def test_drain_queue_times_out_each_slow_job_on_its_own(kathikon_memory: Kathikon) -> None:
    kathikon.insert_all([Slow.new({}), Slow.new({})])
    assert drain_queue("default") == DrainResult(retried=2)
    assert [job.errors[0]["kind"] for job in kathikon_memory.all()] == ["timeout", "timeout"]
