"""Kathikon's pytest plugin (entry point ``kathikon``): fixtures for an isolated instance per test.

    def test_signup_sends_a_welcome_email(kathikon_instance):
        signup("a@b.com")                       # calls kathikon.insert(...) on the default instance
        assert_enqueued(worker=SendWelcome, args={"email": "a@b.com"})

``kathikon_instance`` uses a fresh SQLite file under ``tmp_path``; ``kathikon_memory`` uses MemoryStorage;
``kathikon_running`` is ``kathikon_instance`` with its runtime started (stopped at teardown). Each is the
default instance (``kathikon.insert`` …) for the test's duration; the previous default is restored after.
Kathikon is imported only when a fixture is used, so the plugin costs nothing to projects that don't.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kathikon.core import Kathikon


@pytest.fixture
def kathikon_instance(tmp_path: Path) -> Iterator[Kathikon]:
    """An isolated Kathikon on a fresh SQLite file, set as the default instance for the test."""
    from kathikon.testing import isolated

    with isolated(f"sqlite:///{tmp_path / 'kathikon-test.db'}") as k:
        yield k


@pytest.fixture
def kathikon_memory() -> Iterator[Kathikon]:
    """An isolated Kathikon on MemoryStorage, set as the default instance for the test."""
    from kathikon.testing import isolated

    with isolated("memory://") as k:
        yield k


@pytest.fixture
def kathikon_running(kathikon_instance: Kathikon) -> Iterator[Kathikon]:
    """``kathikon_instance`` with its runtime started; stopped (running jobs given back) at teardown."""
    kathikon_instance.start()
    try:
        yield kathikon_instance
    finally:
        kathikon_instance.stop()
