"""UTC time helpers: every stored time is an aware UTC datetime."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


def to_utc(value: datetime, field: str = "datetime") -> datetime:
    """Convert an aware datetime to UTC; a naive one is refused (its zone would be a guess)."""
    if not isinstance(value, datetime):
        raise TypeError(f"{field} must be a datetime, got {type(value).__name__} {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field} must be timezone-aware, got naive datetime {value.isoformat()}")
    return value.astimezone(UTC)
