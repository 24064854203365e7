"""Workers: subclasses of ``kathikon.Worker`` that implement ``perform(self, job)``.

A job stores its worker as an import path ``"package.module:ClassName"``, never as a pickled object. Every
subclass registers itself under that path when its class statement runs, so classes defined in ``__main__``
or inside functions resolve within the process that defined them; others are imported on first use.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Awaitable
from typing import Any, ClassVar

from kathikon.exceptions import WorkerError
from kathikon.job import Job
from kathikon.results import Error, Sleep

__all__ = ["Worker", "WorkerResult", "resolve_worker", "validate_worker", "worker_path"]

WorkerResult = None | Sleep | Error | object

_registry: dict[str, type[Worker]] = {}
_registry_lock = threading.Lock()


class Worker:
    """Base class for workers. Override ``perform``; it may be ``def`` (runs in a thread) or ``async def``.

    Class attributes give per-worker defaults for ``insert``: ``queue``, ``priority``, ``max_attempts``;
    ``timeout`` (seconds) bounds one attempt. Override ``backoff(job)`` to change the retry delay.
    Set ``abstract = True`` on a shared base class that has no ``perform`` of its own.
    """

    queue: ClassVar[str | None] = None
    priority: ClassVar[int | None] = None
    max_attempts: ClassVar[int | None] = None
    timeout: ClassVar[float | None] = None
    abstract: ClassVar[bool] = False
    # Set by the runtime on each execution's instance; read through ``cancel_requested``.
    _cancel_event: threading.Event | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.abstract = bool(cls.__dict__.get("abstract", False))
        if "perform" in cls.__dict__:
            _check_perform_signature(cls)
        with _registry_lock:
            _registry[worker_path(cls)] = cls

    def perform(self, job: Job) -> WorkerResult | Awaitable[WorkerResult]:
        """Do the job's work. Return None, ``Sleep(seconds)`` or ``Error(reason)``, or raise."""
        raise NotImplementedError(f"{type(self).__qualname__} does not implement perform(self, job)")

    @property
    def cancel_requested(self) -> bool:
        """True once this execution should stop: its job was cancelled, it timed out, or the runtime is
        shutting down. A long sync ``perform`` checks it between steps; an async one is cancelled instead."""
        return self._cancel_event is not None and self._cancel_event.is_set()

    def backoff(self, job: Job) -> float:
        """Seconds to wait before the next attempt after ``job.attempts`` failed attempts."""
        return Job.backoff_seconds(job.attempts)

    @classmethod
    def new(cls, args: dict[str, Any] | None = None, **opts: Any) -> Job:
        """Build an unsaved job for this worker (insert it with ``Kathikon.insert_all``)."""
        validate_worker(cls)
        return Job.build(cls, args, **opts) if opts else Job.build(cls, args)  # without options: 0.3 µs less

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The insert options this class sets (``queue``, ``priority``, ``max_attempts``)."""
        # Read in every Job.build: spelled out, as a comprehension over the names costs twice as much.
        options: dict[str, Any] = {}
        if cls.queue is not None:
            options["queue"] = cls.queue
        if cls.priority is not None:
            options["priority"] = cls.priority
        if cls.max_attempts is not None:
            options["max_attempts"] = cls.max_attempts
        return options


def worker_path(cls: type) -> str:
    """The import path a job stores for ``cls``: ``"module:QualName"``."""
    return f"{cls.__module__}:{cls.__qualname__}"


def is_async_worker(cls: type[Worker]) -> bool:
    """True when ``perform`` is a coroutine function (run as a task, not in a thread)."""
    return inspect.iscoroutinefunction(cls.perform)


def validate_worker(cls: object) -> type[Worker]:
    """Refuse anything that is not a concrete Worker subclass with a ``perform(self, job)``."""
    if not (isinstance(cls, type) and issubclass(cls, Worker)):
        raise TypeError(f"worker must be a kathikon.Worker subclass, got {cls!r}")
    if cls.perform is Worker.perform:
        raise TypeError(f"worker {worker_path(cls)} does not implement perform(self, job)")
    return cls


def resolve_worker(path: str) -> type[Worker]:
    """The Worker class stored as ``path``: registered classes first, then an import. Raises WorkerError."""
    found: object = _registry.get(path) or _import_worker(path)
    try:
        return validate_worker(found)
    except TypeError as exc:
        raise WorkerError(str(exc)) from None


def registered_workers() -> dict[str, type[Worker]]:
    """Every Worker subclass defined so far in this process, by path."""
    with _registry_lock:
        return dict(_registry)


def _import_worker(path: str) -> object:
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise WorkerError(f"worker path must look like 'package.module:ClassName', got {path!r}")
    try:
        obj: object = importlib.import_module(module_name)
    except Exception as exc:
        raise WorkerError(f"cannot import worker module {module_name!r} for {path!r}: {exc!r}") from exc
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise WorkerError(f"module {module_name!r} has no worker {qualname!r} (from {path!r})") from None
    return obj


def _check_perform_signature(cls: type) -> None:
    perform = cls.__dict__["perform"]
    try:
        params = list(inspect.signature(perform).parameters.values())
    except (TypeError, ValueError):
        return  # a callable object or builtin: checked when it runs
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
    if not (len(required) <= 2 <= len(positional) or varargs):
        sig = ", ".join(p.name for p in params)
        raise TypeError(f"{cls.__qualname__}.perform must take (self, job), got perform({sig})")
