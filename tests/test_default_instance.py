"""The module-level facade (``kathikon.insert`` …) acts on the instance ``kathikon.configure`` sets up."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import kathikon
from kathikon import _default
from tests.workers import NoopWorker


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[kathikon.Kathikon]:
    previous = _default.set_default(None)
    instance = kathikon.configure(database=f"sqlite:///{tmp_path / 'default.db'}", queues={"default": 2})
    yield instance
    instance.close()
    _default.set_default(previous)


def test_configure_sets_up_the_default_instance_used_by_the_module_functions(
        configured: kathikon.Kathikon) -> None:
    job = kathikon.insert(NoopWorker, {"x": 1})
    assert kathikon.get_default() is configured
    assert kathikon.fetch(job.id) == job
    assert [j.id for j in kathikon.all()] == [job.id]
    assert kathikon.all(limit=0) == []
    assert kathikon.cancel(job.id).state == kathikon.JobState.CANCELLED
    assert kathikon.insert_all([NoopWorker.new({})])[0].state == kathikon.JobState.AVAILABLE


def test_the_module_async_twins_act_on_the_default_instance(configured: kathikon.Kathikon) -> None:
    async def scenario() -> list[kathikon.Job]:
        job = await kathikon.ainsert(NoopWorker, {})
        await kathikon.afetch(job.id)
        await kathikon.acancel(job.id)
        return await kathikon.aall()

    assert [j.state for j in asyncio.run(scenario())] == [kathikon.JobState.CANCELLED]


def test_configure_again_replaces_and_closes_the_previous_instance(configured: kathikon.Kathikon,
                                                                  tmp_path: Path) -> None:
    second = kathikon.configure(database=f"sqlite:///{tmp_path / 'second.db'}")
    try:
        assert kathikon.get_default() is second
        assert kathikon.all() == []
    finally:
        _default.set_default(configured)
        second.close()


def test_without_configure_the_default_instance_comes_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KATHIKON_DATABASE", f"sqlite:///{tmp_path / 'env.db'}")
    previous = _default.set_default(None)
    try:
        instance = kathikon.get_default()
        assert instance.storage.url.endswith("env.db")
        instance.close()
    finally:
        _default.set_default(previous)
