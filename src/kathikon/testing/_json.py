"""Check that job args survive the trip through JSON unchanged, naming the first value that would not.

``Job.build`` already refuses what JSON cannot encode at all; this stricter check, used by ``perform_job``,
also catches what JSON silently changes (a tuple comes back as a list, an int key as a string, an enum as its
value), which would make a test pass on values the worker never sees in production.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any

__all__ = ["check_round_trip"]

_SCALARS = (str, int, float, bool, type(None))


def check_round_trip(value: object, where: str = "args") -> None:
    """Raise TypeError naming the path and the value of the first part that JSON would not return as is."""
    problem = _problem(value)
    if problem is not None:
        raise TypeError(f"{where} = {value!r:.200} does not survive a JSON round trip unchanged: {problem}")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{where} has the key {key!r} ({type(key).__name__}); JSON object keys are strings, so it "
                    f"would come back as {str(key)!r}"
                )
            check_round_trip(item, f"{where}[{key!r}]")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_round_trip(item, f"{where}[{index}]")


def _problem(value: object) -> str | None:
    """Why ``value`` itself (not its items) would not come back from JSON unchanged, or None."""
    if isinstance(value, Enum):
        return f"an enum comes back as its plain value {value.value!r}"
    if isinstance(value, tuple):
        return "a tuple comes back as a list"
    if isinstance(value, float) and not math.isfinite(value):
        return "JSON has no NaN or infinity"
    if type(value) in _SCALARS or type(value) in (dict, list):
        return None
    return _hint(value)


def _hint(value: Any) -> str:
    name = type(value).__name__
    if hasattr(value, "isoformat"):
        return f"{name} is not a JSON type; pass value.isoformat() and parse it in the worker"
    if isinstance(value, (set, frozenset)):
        return f"a {name} is not a JSON type; pass a sorted list"
    if isinstance(value, (dict, list, *_SCALARS)):
        return f"{name} (a subclass) comes back as a plain {type(value).__mro__[1].__name__}"
    return f"{name} is not a JSON type (use str, int, float, bool, None, list or dict with string keys)"
