"""The job model: building, validation, states, claimability and backoff."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kathikon import Job, JobState
from kathikon.job import DEFAULT_MAX_ATTEMPTS
from tests.workers import EmailWorker, NoopWorker

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_a_built_job_is_available_now_with_the_defaults() -> None:
    job = Job.build(NoopWorker, {"x": 1}, now=NOW)
    assert job.state == JobState.AVAILABLE
    assert (job.queue, job.priority, job.max_attempts, job.attempts) == ("default", 0, DEFAULT_MAX_ATTEMPTS, 0)
    assert job.available_at == job.inserted_at == NOW
    assert job.scheduled_at is None
    assert job.worker == "tests.workers:NoopWorker"
    assert job.errors == []
    assert job.meta == {}
    assert job.tags == []


def test_job_ids_are_32_hex_digits_and_sort_by_creation_time() -> None:
    ids = [Job.build(NoopWorker).id for _ in range(2000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_worker_class_attributes_are_the_defaults_and_options_override_them() -> None:
    job = EmailWorker.new({"to": "a@b.com"})
    assert (job.queue, job.priority, job.max_attempts) == ("emails", 3, 7)
    job = EmailWorker.new({}, queue="bulk", priority=0, max_attempts=1)
    assert (job.queue, job.priority, job.max_attempts) == ("bulk", 0, 1)


def test_a_worker_given_as_an_import_path_is_stored_as_that_path() -> None:
    assert Job.build("myapp.jobs:SendEmail", {}).worker == "myapp.jobs:SendEmail"


def test_schedule_in_makes_the_job_scheduled_until_then() -> None:
    job = Job.build(NoopWorker, {}, schedule_in=60, now=NOW)
    assert job.state == JobState.SCHEDULED
    assert job.scheduled_at == job.available_at == NOW + timedelta(seconds=60)


def test_schedule_at_is_converted_to_utc() -> None:
    at = datetime(2026, 12, 25, 9, 0, tzinfo=timezone(timedelta(hours=2)))
    job = Job.build(NoopWorker, {}, schedule_at=at, now=NOW)
    assert job.scheduled_at is not None
    assert job.scheduled_at == at
    assert job.scheduled_at.utcoffset() == timedelta(0)


def test_a_schedule_in_the_past_or_zero_makes_the_job_available_now() -> None:
    assert Job.build(NoopWorker, {}, schedule_at=NOW - timedelta(hours=1), now=NOW).state == JobState.AVAILABLE
    assert Job.build(NoopWorker, {}, schedule_in=0, now=NOW).state == JobState.AVAILABLE


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"args": [1, 2]}, TypeError, "args must be a dict"),
        ({"args": {"when": datetime.now()}}, TypeError, "args must be JSON-serializable"),
        ({"args": {"x": float("nan")}}, TypeError, "args must be JSON-serializable"),
        ({"args": {1: "a"}}, TypeError, "args keys must be strings"),
        ({"priority": -1}, ValueError, "priority must be between 0"),
        ({"priority": "high"}, TypeError, "priority must be an integer, got str 'high'"),
        ({"priority": True}, TypeError, "priority must be an integer"),
        ({"max_attempts": 0}, ValueError, "max_attempts must be between 1"),
        ({"schedule_in": -5}, ValueError, "schedule_in must be a finite number of seconds >= 0, got -5"),
        ({"schedule_in": "soon"}, TypeError, "schedule_in must be a number of seconds"),
        ({"schedule_at": datetime(2030, 1, 1)}, ValueError, "schedule_at must be timezone-aware"),
        ({"schedule_in": 5, "schedule_at": NOW}, ValueError, "not both"),
        ({"queue": ""}, ValueError, "queue must be 1-128 characters"),
        ({"queue": 7}, TypeError, "queue must be a string, got int 7"),
        ({"tags": "urgent"}, TypeError, "tags must be a list of non-empty strings"),
        ({"meta": {"f": object()}}, TypeError, "meta must be JSON-serializable"),
    ],
)
def test_bad_options_raise_errors_naming_the_field_and_value(
    options: dict[str, object], error: type[Exception], words: str
) -> None:
    options = dict(options)
    args = options.pop("args", {})
    with pytest.raises(error, match=re.escape(words)):
        Job.build(NoopWorker, args, **options)  # type: ignore[arg-type]


def test_an_unknown_option_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="priorty"):
        Job.build(NoopWorker, {}, priorty=3)  # type: ignore[call-arg]


def test_a_worker_that_is_not_a_worker_subclass_is_refused() -> None:
    with pytest.raises(TypeError, match=r"kathikon\.Worker subclass"):
        Job.build(dict, {})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape("import path like 'package.module:ClassName'")):
        Job.build("not a path", {})


@pytest.mark.parametrize("state", list(JobState))
def test_only_available_and_retryable_jobs_that_are_due_are_claimable(state: JobState) -> None:
    job = Job.build(NoopWorker, {}, now=NOW).with_changes(state=state)
    assert job.claimable(NOW) == (state in (JobState.AVAILABLE, JobState.RETRYABLE))
    assert not job.with_changes(available_at=NOW + timedelta(seconds=1)).claimable(NOW)


def test_terminal_states_are_completed_discarded_and_cancelled() -> None:
    assert {s for s in JobState if s.terminal} == {JobState.COMPLETED, JobState.DISCARDED, JobState.CANCELLED}


def test_job_states_are_strings_as_stored() -> None:
    assert [str(s) for s in JobState] == [
        "scheduled", "available", "executing", "retryable", "completed", "discarded", "cancelled"]


def test_backoff_matches_the_seeds_examples() -> None:
    assert [Job.backoff_seconds(a) for a in (1, 2, 3)] == [5, 20, 45]
    assert Job.backoff_seconds(0) == Job.backoff_seconds(-3) == 1
    assert Job.backoff_seconds(1000) == 86_400


@given(st.integers(min_value=-1000, max_value=10**9))
def test_backoff_is_between_one_second_and_one_day(attempt: int) -> None:
    assert 1 <= Job.backoff_seconds(attempt) <= 86_400


@given(st.integers(min_value=1, max_value=10**6))
def test_backoff_never_shrinks_as_attempts_grow(attempt: int) -> None:
    assert Job.backoff_seconds(attempt) <= Job.backoff_seconds(attempt + 1)


@given(st.integers(min_value=1, max_value=131))
def test_backoff_is_five_times_the_square_below_the_cap(attempt: int) -> None:
    assert Job.backoff_seconds(attempt) == attempt * attempt * 5


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.text(), json_values, max_size=5))
def test_any_json_dict_is_accepted_as_args(args: dict[str, object]) -> None:
    job = Job.build(NoopWorker, args)
    assert json.loads(json.dumps(job.args)) == args


@given(st.sampled_from(list(JobState)), st.integers(min_value=0, max_value=100))
def test_a_job_is_claimable_exactly_when_its_state_allows_and_it_is_due(state: JobState, offset: int) -> None:
    job = Job.build(NoopWorker, {}, now=NOW).with_changes(state=state, available_at=NOW + timedelta(seconds=offset))
    expected = state in (JobState.AVAILABLE, JobState.RETRYABLE) and offset == 0
    assert job.claimable(NOW) == expected


def test_assemble_job_sets_every_field_as_the_constructor_does() -> None:
    from dataclasses import fields

    from kathikon.job import assemble_job

    values = {
        "id": "j1", "queue": "q", "worker": "m:W", "args": {"a": 1}, "state": JobState.RETRYABLE, "priority": 3,
        "max_attempts": 7, "attempts": 2, "scheduled_at": NOW, "available_at": NOW + timedelta(seconds=1),
        "inserted_at": NOW - timedelta(seconds=1), "started_at": NOW + timedelta(seconds=2),
        "completed_at": NOW + timedelta(seconds=3), "cancelled_at": NOW + timedelta(seconds=4),
        "errors": [{"e": 1}], "meta": {"m": 2}, "tags": ["t"], "attempted_by": "node",
        "defaulted": frozenset({"max_attempts"}),
    }
    assert [f.name for f in fields(Job)] == list(values)  # every field, in declaration order

    assembled = assemble_job(Job, *values.values())

    expected = Job(**values)
    assert assembled == expected
    assert [getattr(assembled, name) for name in values] == [getattr(expected, name) for name in values]


def test_a_bad_queue_name_is_refused_even_after_good_ones_were_accepted() -> None:
    EmailWorker.new({}, queue="mail-1")
    EmailWorker.new({}, queue="mail-1")

    with pytest.raises(ValueError, match=r"queue must be .* got '-bad'"):
        EmailWorker.new({}, queue="-bad")
    with pytest.raises(TypeError, match="queue must be a string, got int 5"):
        EmailWorker.new({}, queue=5)  # type: ignore[arg-type]


def test_class_defaults_changed_after_a_first_build_apply_to_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    EmailWorker.new({})
    monkeypatch.setattr(EmailWorker, "queue", "later")
    monkeypatch.setattr(EmailWorker, "priority", 9)

    job = EmailWorker.new({})

    assert (job.queue, job.priority) == ("later", 9)
