"""JSON as Kathikon stores it, and a cheap test for values that come back from storage unchanged.

``round_trips(value)`` walks a value looking only at exact types: a dict with str keys, a list, a str, an int,
a bool, None or a finite float is exactly what ``json.loads(json.dumps(value))`` gives back equal. Anything
else (a tuple, which comes back as a list; an int key, which comes back as a string; a subclass; NaN) makes it
False, and the caller takes the slow, exact path: encode, check, decode. The walk costs a fraction of a
microsecond for the small dicts jobs carry, against 1.5-2 µs for each ``json.dumps`` or ``json.loads``.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["ENCODER", "round_trips"]

# One encoder for every call: json.dumps with options builds a new one each time.
ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))

_SCALARS = frozenset({str, int, bool, type(None)})


def round_trips(value: object) -> bool:
    """True when storing ``value`` as JSON and reading it back gives an equal value of the same shape."""
    try:
        return _plain(value)
    except RecursionError:  # a container that holds itself, or deeper than JSON encoders go
        return False


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not (type(item) in _SCALARS or _plain(item)):
                return False
        return True
    if kind is list:
        return all(type(item) in _SCALARS or _plain(item) for item in value)
    if kind is float:
        return math.isfinite(value)
    return kind in _SCALARS

