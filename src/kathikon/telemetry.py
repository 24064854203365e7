"""Telemetry: named events with measurements and metadata, sent to attached handlers.

Every event Kathikon emits is listed in ``EVENTS`` and documented in ``docs/telemetry.md``. A handler is
``handler(event, measurements, metadata)``; ``event`` is a tuple such as ``("kathikon", "job", "insert")``
and, for job events, ``metadata["job"]`` is the ``Job``. A handler that raises is logged and detached; it
never breaks the caller.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["EVENTS", "Event", "Handler", "attach", "attach_default_logger", "detach", "emit", "handlers"]

Event = tuple[str, ...]
Handler = Callable[[Event, Mapping[str, Any], Mapping[str, Any]], None]

EVENTS: frozenset[Event] = frozenset(
    {
        ("kathikon", "job", "insert"),
        ("kathikon", "job", "start"),
        ("kathikon", "job", "stop"),
        ("kathikon", "job", "exception"),
        ("kathikon", "job", "sleep"),
        ("kathikon", "job", "retry"),
        ("kathikon", "job", "discard"),
        ("kathikon", "job", "cancel"),
        ("kathikon", "job", "prune"),
        ("kathikon", "job", "release"),
        ("kathikon", "job", "ack_dropped"),
        ("kathikon", "scheduler", "tick"),
        ("kathikon", "pruner", "tick"),
        ("kathikon", "dispatcher", "poll"),
        ("kathikon", "lifeline", "rescue"),
        ("kathikon", "lifeline", "tick"),
        ("kathikon", "leader", "elected"),
        ("kathikon", "leader", "resigned"),
        ("kathikon", "node", "start"),
        ("kathikon", "node", "stop"),
        ("kathikon", "node", "dead"),
        ("kathikon", "storage", "error"),
    }
)

logger = logging.getLogger("kathikon")
_lock = threading.Lock()
_handlers: dict[str, tuple[frozenset[Event], Handler]] = {}
# Copy-on-write index so emit() takes no lock: event -> handlers attached to it.
_index: dict[Event, tuple[tuple[str, Handler], ...]] = {}


def attach(handler_id: str, events: Iterable[Event], handler: Handler) -> None:
    """Call ``handler`` for each of ``events``. ``handler_id`` must be unique among attached handlers."""
    wanted = frozenset(tuple(e) for e in events)
    unknown = sorted(wanted - EVENTS)
    if unknown:
        raise ValueError(f"unknown telemetry event {unknown[0]!r}; see kathikon.telemetry.EVENTS")
    if not callable(handler):
        raise TypeError(f"handler must be callable, got {handler!r}")
    with _lock:
        if handler_id in _handlers:
            raise ValueError(f"a telemetry handler with id {handler_id!r} is already attached")
        _handlers[handler_id] = (wanted, handler)
        _rebuild_index()


def detach(handler_id: str) -> bool:
    """Detach a handler; False when no handler had that id."""
    with _lock:
        found = _handlers.pop(handler_id, None) is not None
        _rebuild_index()
    return found


def handlers() -> dict[str, frozenset[Event]]:
    """The attached handler ids and the events each listens to."""
    with _lock:
        return {hid: events for hid, (events, _) in _handlers.items()}


def listening(event: Event) -> bool:
    """True when some handler is attached to ``event`` (lets hot paths skip building metadata)."""
    return event in _index


def emit(event: Event, measurements: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
    """Send an event to its handlers. Never raises: a failing handler is logged and detached."""
    for handler_id, handler in _index.get(event, ()):
        try:
            handler(event, measurements, metadata)
        except Exception:
            logger.exception("telemetry handler %r failed on %s; detaching it", handler_id, ".".join(event))
            detach(handler_id)


def _rebuild_index() -> None:
    global _index
    index: dict[Event, list[tuple[str, Handler]]] = {}
    for hid, (events, handler) in _handlers.items():
        for event in events:
            index.setdefault(event, []).append((hid, handler))
    _index = {event: tuple(hs) for event, hs in index.items()}


DEFAULT_LOGGER_ID = "kathikon-default-logger"
# Levels by event; events not listed log at INFO. Keyed by the whole event: "start" is chatty for jobs,
# not for nodes.
_LEVELS: dict[Event, int] = {
    ("kathikon", "job", "exception"): logging.WARNING,
    ("kathikon", "job", "discard"): logging.ERROR,
    ("kathikon", "job", "retry"): logging.WARNING,
    ("kathikon", "job", "ack_dropped"): logging.WARNING,
    ("kathikon", "job", "start"): logging.DEBUG,
    ("kathikon", "lifeline", "rescue"): logging.WARNING,
    ("kathikon", "node", "dead"): logging.WARNING,
    ("kathikon", "storage", "error"): logging.ERROR,
    ("kathikon", "dispatcher", "poll"): logging.DEBUG,
    ("kathikon", "scheduler", "tick"): logging.DEBUG,
    ("kathikon", "pruner", "tick"): logging.DEBUG,
    ("kathikon", "lifeline", "tick"): logging.DEBUG,
}


def attach_default_logger(level: int | None = None) -> None:
    """Log one readable line per event to the ``kathikon`` logger (idempotent).

    Failures log at WARNING/ERROR, lifecycle events at INFO, chatty ones (start, poll, tick) at DEBUG;
    ``level`` forces one level for all. Only the events the ``kathikon`` logger would print at the time of
    the call are attached (an unheard event costs the hot path nothing): call it again after lowering the
    logger's level.
    """
    detach(DEFAULT_LOGGER_ID)
    wanted = [e for e in EVENTS if logger.isEnabledFor(level if level is not None else _LEVELS.get(e, logging.INFO))]
    attach(DEFAULT_LOGGER_ID, wanted, lambda e, m, md: _log_event(e, m, md, level))


def _log_event(event: Event, measurements: Mapping[str, Any], metadata: Mapping[str, Any],
               level: int | None) -> None:
    lvl = level if level is not None else _LEVELS.get(event, logging.INFO)
    if not logger.isEnabledFor(lvl):
        return
    logger.log(lvl, "%s %s", ".".join(event[1:]), describe(measurements, metadata))


def describe(measurements: Mapping[str, Any], metadata: Mapping[str, Any]) -> str:
    """One line of ``key=value`` pairs for an event, job first."""
    parts: list[str] = []
    job = metadata.get("job")
    if job is not None:
        parts.append(f"job={job.id} worker={job.worker} queue={job.queue} state={job.state} "
                     f"attempt={job.attempts}/{job.max_attempts}")
    for key, value in metadata.items():
        if key != "job" and value is not None:
            parts.append(f"{key}={value}")
    for key, value in measurements.items():
        parts.append(f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)
