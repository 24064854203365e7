"""Helpers for testing code that uses Kathikon. See docs/testing.md.

    from kathikon.testing import assert_enqueued, drain_queue, perform_job

    def test_signup_sends_a_welcome_email(kathikon_instance):       # pytest fixture: isolated instance
        signup("a@b.com")
        assert_enqueued(worker=SendWelcome, args={"email": "a@b.com"})
        assert drain_queue("emails") == DrainResult(completed=1)

Every helper acts on the instance given as ``k=``, or on the default instance (``kathikon.get_default()``),
which the pytest fixtures ``kathikon_instance`` / ``kathikon_memory`` / ``kathikon_running`` replace with an
isolated one per test. ``clear_jobs`` and ``reset`` are for tests only, never production code.
"""

from __future__ import annotations

from kathikon.testing._assertions import ENQUEUED_STATES, assert_enqueued, refute_enqueued
from kathikon.testing._drain import DrainResult, drain_queue
from kathikon.testing._instances import clear_jobs, isolated, make_instance, reset
from kathikon.testing._perform import PerformResult, perform_job

__all__ = [
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
