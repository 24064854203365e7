"""What ``Worker.perform`` may return besides ``None`` (which means completed).

    return None                   -> completed
    return kathikon.Sleep(60)     -> scheduled again in 60 s; not a failure (no attempt, no error)
    return kathikon.Error(reason) -> retryable after backoff, or discarded at max_attempts
    raise SomeException(...)      -> the same as Error, with the traceback recorded

``Sleep`` takes a positive whole number of seconds; any other value is recorded as the error
``invalid_sleep`` (with the value) and retried like any error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Error", "Sleep"]


@dataclass(frozen=True, slots=True)
class Sleep:
    """Put the job back to sleep for ``seconds`` without counting an attempt."""

    seconds: Any

    @property
    def valid(self) -> bool:
        s = self.seconds
        return isinstance(s, int) and not isinstance(s, bool) and s > 0


@dataclass(frozen=True, slots=True)
class Error:
    """An expected failure: the job is retried after backoff (``reason`` is recorded as text)."""

    reason: Any
