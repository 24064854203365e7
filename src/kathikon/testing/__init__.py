"""Helpers for testing code that uses Kathikon. See docs/testing.md.

Every helper acts on the instance given as ``k=``, or on the default instance (``kathikon.get_default()``),
which the pytest fixtures ``kathikon_instance`` / ``kathikon_memory`` replace with an isolated one per test.
``clear_jobs`` and ``reset`` are for tests only, never production code.
"""

from __future__ import annotations

from kathikon.testing._assertions import ENQUEUED_STATES, assert_enqueued, refute_enqueued
from kathikon.testing._instances import clear_jobs, isolated, make_instance, reset

__all__ = ["ENQUEUED_STATES", "assert_enqueued", "clear_jobs", "isolated", "make_instance", "refute_enqueued", "reset"]
