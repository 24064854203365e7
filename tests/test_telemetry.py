"""Telemetry: attaching handlers, the insert and cancel events, and handlers that fail."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from kathikon import Kathikon, telemetry
from kathikon.storage.memory import MemoryStorage
from tests.workers import NoopWorker

Seen = list[tuple[tuple[str, ...], Mapping[str, Any], Mapping[str, Any]]]


@pytest.fixture
def seen() -> Iterator[Seen]:
    events: Seen = []
    telemetry.attach("test-recorder", telemetry.EVENTS, lambda e, m, md: events.append((e, m, md)))
    yield events
    telemetry.detach("test-recorder")


@pytest.fixture
def k() -> Iterator[Kathikon]:
    with Kathikon(storage=MemoryStorage()) as instance:
        yield instance


def test_insert_emits_one_insert_event_per_job_with_the_job(k: Kathikon, seen: Seen) -> None:
    jobs = k.insert_all([NoopWorker.new({"n": i}) for i in range(3)])
    inserts = [md["job"] for e, _, md in seen if e == ("kathikon", "job", "insert")]
    assert inserts == jobs


def test_cancel_emits_a_cancel_event_with_the_cancelled_job(k: Kathikon, seen: Seen) -> None:
    job = k.insert(NoopWorker, {})
    cancelled = k.cancel(job.id)
    assert [md["job"] for e, _, md in seen if e == ("kathikon", "job", "cancel")] == [cancelled]


def test_a_raising_handler_is_logged_and_detached_and_never_breaks_the_caller(
        k: Kathikon, caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("handler bug")

    telemetry.attach("broken", [("kathikon", "job", "insert")], broken)
    with caplog.at_level(logging.ERROR, logger="kathikon"):
        k.insert(NoopWorker, {})
        k.insert(NoopWorker, {})
    assert "broken" not in telemetry.handlers()
    assert sum("handler bug" in r.exc_text for r in caplog.records if r.exc_text) == 1


def test_attach_refuses_unknown_events_duplicate_ids_and_non_callables() -> None:
    with pytest.raises(ValueError, match="unknown telemetry event"):
        telemetry.attach("x", [("kathikon", "job", "explode")], lambda *a: None)
    telemetry.attach("dup", [("kathikon", "job", "insert")], lambda *a: None)
    try:
        with pytest.raises(ValueError, match="'dup' is already attached"):
            telemetry.attach("dup", [("kathikon", "job", "insert")], lambda *a: None)
    finally:
        telemetry.detach("dup")
    with pytest.raises(TypeError, match="handler must be callable"):
        telemetry.attach("y", [("kathikon", "job", "insert")], "print")  # type: ignore[arg-type]


def test_detach_says_whether_a_handler_was_attached() -> None:
    telemetry.attach("once", [("kathikon", "job", "insert")], lambda *a: None)
    assert telemetry.detach("once") is True
    assert telemetry.detach("once") is False


def test_the_default_logger_prints_one_readable_line_per_event(
        k: Kathikon, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="kathikon"):
        telemetry.attach_default_logger()
        try:
            job = k.insert(NoopWorker, {"a": 1}, queue="emails")
            k.cancel(job.id)
        finally:
            telemetry.detach(telemetry.DEFAULT_LOGGER_ID)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith(f"job.insert job={job.id} worker=tests.workers:NoopWorker queue=emails")
               for line in lines)
    assert any(line.startswith(f"job.cancel job={job.id}") and "state=cancelled" in line for line in lines)


@pytest.mark.parametrize(("event", "level"), [
    (("kathikon", "job", "start"), logging.DEBUG),
    (("kathikon", "node", "start"), logging.INFO),
    (("kathikon", "job", "discard"), logging.ERROR),
    (("kathikon", "scheduler", "tick"), logging.DEBUG),
    (("kathikon", "lifeline", "rescue"), logging.WARNING),
])
def test_the_default_logger_picks_the_level_by_the_whole_event(
        event: tuple[str, ...], level: int, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="kathikon"):
        telemetry.attach_default_logger()
        try:
            telemetry.emit(event, {}, {"queue": "default"})
        finally:
            telemetry.detach(telemetry.DEFAULT_LOGGER_ID)
    assert [r.levelno for r in caplog.records] == [level]


def test_the_default_logger_listens_only_to_the_events_its_level_would_print() -> None:
    kathikon_logger = logging.getLogger("kathikon")
    previous = kathikon_logger.level
    kathikon_logger.setLevel(logging.WARNING)
    try:
        telemetry.attach_default_logger()
        assert not telemetry.listening(("kathikon", "job", "stop"))
        assert telemetry.listening(("kathikon", "job", "discard"))
    finally:
        telemetry.detach(telemetry.DEFAULT_LOGGER_ID)
        kathikon_logger.setLevel(previous)
