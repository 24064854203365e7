"""The public API of issue 2 on every backend: insert, insert_all, fetch, cancel, all and their async twins."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import kathikon
from kathikon import InvalidStateError, Job, JobExecutingError, JobNotFoundError, JobState, Kathikon
from kathikon._clock import utcnow
from tests.workers import EmailWorker, NoopWorker


@pytest.fixture
def k(database_url: str) -> Iterator[Kathikon]:
    instance = Kathikon(database=database_url, queues={"default": 10, "emails": 5})
    instance.storage.reset()
    yield instance
    instance.storage.reset()
    instance.close()


def test_insert_stores_an_available_job_with_the_given_options(k: Kathikon) -> None:
    job = k.insert(NoopWorker, {"email": "a@b.com"}, queue="emails", priority=5, max_attempts=10)
    stored = k.fetch(job.id)
    assert stored == job
    assert (stored.queue, stored.priority, stored.max_attempts, stored.state) == ("emails", 5, 10, JobState.AVAILABLE)
    assert stored.args == {"email": "a@b.com"}


def test_insert_with_schedule_in_or_schedule_at_stores_a_scheduled_job(k: Kathikon) -> None:
    later = k.insert(NoopWorker, {}, schedule_in=60)
    at = datetime.now(UTC) + timedelta(hours=2)
    fixed = k.insert(NoopWorker, {}, schedule_at=at)
    assert k.fetch(later.id).state == JobState.SCHEDULED
    assert k.fetch(fixed.id).scheduled_at == at


def test_insert_takes_a_worker_import_path_so_producers_need_not_import_workers(k: Kathikon) -> None:
    job = k.insert("myapp.jobs:SendEmail", {"to": "x"})
    assert k.fetch(job.id).worker == "myapp.jobs:SendEmail"


def test_the_configured_max_attempts_applies_when_neither_the_call_nor_the_worker_sets_it(database_url: str) -> None:
    with Kathikon(database=database_url, max_attempts=4) as k:
        k.storage.reset()
        assert k.insert(NoopWorker, {}).max_attempts == 4
        assert k.insert_all([NoopWorker.new({})])[0].max_attempts == 4
        assert k.insert(EmailWorker, {}).max_attempts == 7
        assert k.insert(NoopWorker, {}, max_attempts=2).max_attempts == 2


def test_insert_all_stores_every_job_in_one_transaction(k: Kathikon) -> None:
    jobs = k.insert_all([NoopWorker.new({"n": i}) for i in range(2_000)])
    assert len(jobs) == 2_000
    assert [j.args["n"] for j in k.all()] == list(range(2_000))


def test_insert_all_stores_nothing_when_one_job_is_bad(k: Kathikon) -> None:
    good = NoopWorker.new({"n": 1})
    with pytest.raises(TypeError, match="insert_all takes Job objects"):
        k.insert_all([good, {"n": 2}])  # type: ignore[list-item]
    with pytest.raises(Exception, match=good.id):
        k.insert_all([NoopWorker.new({}), good, good])
    assert k.all() == []


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"args": [1]}, TypeError),
        ({"args": {"x": object()}}, TypeError),
        ({"priority": -1}, ValueError),
        ({"max_attempts": 0}, ValueError),
        ({"schedule_in": -1}, ValueError),
        ({"schedule_at": datetime(2030, 1, 1)}, ValueError),
        ({"schedule_in": 1, "schedule_at": datetime(2030, 1, 1, tzinfo=UTC)}, ValueError),
        ({"queue_name": "emails"}, TypeError),
    ],
)
def test_bad_input_raises_and_stores_nothing(k: Kathikon, options: dict[str, object], error: type[Exception]) -> None:
    options = dict(options)  # the parameters are shared by every backend's run
    args = options.pop("args", {})
    with pytest.raises(error):
        k.insert(NoopWorker, args, **options)  # type: ignore[arg-type]
    assert k.all() == []


def test_a_worker_without_perform_or_not_a_worker_is_refused(k: Kathikon) -> None:
    class Abstract(kathikon.Worker):
        abstract = True

    with pytest.raises(TypeError, match="does not implement perform"):
        k.insert(Abstract, {})
    with pytest.raises(TypeError, match=r"kathikon\.Worker subclass"):
        k.insert(object, {})  # type: ignore[arg-type]
    assert k.all() == []


def test_fetch_of_an_unknown_id_raises_job_not_found(k: Kathikon) -> None:
    with pytest.raises(JobNotFoundError, match="'nope'") as info:
        k.fetch("nope")
    assert info.value.job_id == "nope"


def test_cancel_moves_a_pending_job_to_cancelled(k: Kathikon) -> None:
    for job in (k.insert(NoopWorker, {}), k.insert(NoopWorker, {}, schedule_in=60)):
        cancelled = k.cancel(job.id)
        assert cancelled.state == JobState.CANCELLED
        assert cancelled.cancelled_at is not None
        assert k.fetch(job.id).state == JobState.CANCELLED


def test_cancel_of_an_executing_job_raises_job_executing(k: Kathikon) -> None:
    job = k.insert(NoopWorker, {})
    k.storage.claim("default", 1, utcnow(), "node-a")
    with pytest.raises(JobExecutingError):
        k.cancel(job.id)
    assert k.fetch(job.id).state == JobState.EXECUTING


def test_cancel_of_a_finished_job_raises_invalid_state_with_the_state(k: Kathikon) -> None:
    job = k.insert(NoopWorker, {})
    k.cancel(job.id)
    with pytest.raises(InvalidStateError) as info:
        k.cancel(job.id)
    assert info.value.state == "cancelled"


def test_cancel_of_an_unknown_id_raises_job_not_found(k: Kathikon) -> None:
    with pytest.raises(JobNotFoundError):
        k.cancel("0" * 32)


def test_all_lists_jobs_oldest_first_and_filters_by_queue_and_state(k: Kathikon) -> None:
    a = k.insert(NoopWorker, {})
    b = k.insert(EmailWorker, {})
    c = k.insert(NoopWorker, {}, schedule_in=60)
    assert [j.id for j in k.all()] == [a.id, b.id, c.id]
    assert [j.id for j in k.all(queue="emails")] == [b.id]
    assert [j.id for j in k.all(state="scheduled")] == [c.id]


def test_the_async_twins_do_what_the_blocking_calls_do(k: Kathikon) -> None:
    async def scenario() -> tuple[Job, Job, Job, list[Job], list[Job]]:
        job = await k.ainsert(NoopWorker, {"a": 1})
        many = await k.ainsert_all([NoopWorker.new({"n": 1})])
        fetched = await k.afetch(job.id)
        cancelled = await k.acancel(job.id)
        return job, fetched, cancelled, await k.aall(), many

    job, fetched, cancelled, everything, many = asyncio.run(scenario())
    assert fetched == job
    assert cancelled.state == JobState.CANCELLED
    assert {j.id for j in everything} == {job.id, many[0].id}


def test_the_async_twins_raise_the_same_errors(k: Kathikon) -> None:
    with pytest.raises(JobNotFoundError):
        asyncio.run(k.afetch("missing"))
    with pytest.raises(ValueError, match="priority"):
        asyncio.run(k.ainsert(NoopWorker, {}, priority=-1))
