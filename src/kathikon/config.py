"""Configuration: one validated dataclass, every option also settable as ``KATHIKON_<NAME>``.

Explicit arguments win over environment variables, which win over defaults. Durations are seconds (float).
An unknown option or a malformed value is an error naming the option and the value, never ignored.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kathikon.exceptions import ConfigError
from kathikon.job import DEFAULT_MAX_ATTEMPTS, MAX_INT, check_queue_name

__all__ = ["DEFAULT_DATABASE", "Config", "QueueConfig", "masked_url", "parse_queues"]

DEFAULT_DATABASE = "sqlite:///kathikon.db"
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres", "memory")
ENV_PREFIX = "KATHIKON_"
# Default claim-ahead cap per slot of a queue; the dispatcher holds fewer unless jobs are very short.
PREFETCH_PER_SLOT = 40


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """How one queue runs on this node. Given as ``{"emails": 5}`` or ``{"emails": {"concurrency": 5}}``.

    ``prefetch``: at most how many jobs beyond the free slots the dispatcher may claim ahead while this
    queue's jobs run short (see ``kathikon.runtime.dispatcher``); None means 40 × ``concurrency``, 0 never.
    """

    concurrency: int = 10
    prefetch: int | None = None

    @property
    def prefetch_limit(self) -> int:
        """``prefetch``, or its default when None."""
        return PREFETCH_PER_SLOT * self.concurrency if self.prefetch is None else self.prefetch


@dataclass(frozen=True)
class Config:
    """Kathikon's options and their defaults (seconds for durations)."""

    database: str = DEFAULT_DATABASE
    queues: Mapping[str, QueueConfig] = field(default_factory=lambda: {"default": QueueConfig(10)})
    poll_interval: float = 0.2
    scheduler_interval: float = 1.0
    prune_interval: float = 60.0
    retention_period: float = 604_800.0
    prune_limit: int = 10_000
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    shutdown_grace: float = 15.0
    heartbeat_interval: float = 5.0
    rescue_after: float = 60.0
    auto_migrate: bool = True
    node: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "database", check_database_url(self.database))
        object.__setattr__(self, "queues", parse_queues(self.queues))
        for name in ("poll_interval", "scheduler_interval", "prune_interval", "heartbeat_interval",
                     "rescue_after"):
            _check_seconds(name, getattr(self, name), positive=True)
        _check_seconds("retention_period", self.retention_period, positive=False)
        _check_seconds("shutdown_grace", self.shutdown_grace, positive=False)
        _check_count("max_attempts", self.max_attempts)
        _check_count("prune_limit", self.prune_limit)
        if not isinstance(self.auto_migrate, bool):
            raise ConfigError(f"auto_migrate must be true or false, got {self.auto_migrate!r}")
        if self.node is not None and (not isinstance(self.node, str) or not self.node.strip()):
            raise ConfigError(f"node must be a non-empty string, got {self.node!r}")
        if self.rescue_after <= self.heartbeat_interval:
            raise ConfigError(
                f"rescue_after ({self.rescue_after!r}) must be longer than heartbeat_interval "
                f"({self.heartbeat_interval!r}), or live nodes would be rescued"
            )

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **explicit: Any) -> Config:
        """Defaults, overridden by ``KATHIKON_*`` environment variables, overridden by ``explicit``."""
        names = {f.name: f for f in fields(cls)}
        unknown = sorted(set(explicit) - set(names))
        if unknown:
            raise TypeError(f"unknown Kathikon option {unknown[0]!r}; known options: {', '.join(names)}")
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name in names:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and explicit.get(name) is None:
                values[name] = _from_env(name, raw)
        values.update({k: v for k, v in explicit.items() if v is not None})
        return cls(**values)

    def concurrency(self, queue: str) -> int:
        """Concurrency of ``queue`` (a queue started at run time and not configured gets 10)."""
        qc = self.queues.get(queue)
        return qc.concurrency if qc else QueueConfig().concurrency

    def prefetch(self, queue: str) -> int:
        """How many jobs ``queue`` may claim ahead of its free slots (see ``QueueConfig``)."""
        return self.queues.get(queue, QueueConfig()).prefetch_limit


def parse_queues(value: object) -> dict[str, QueueConfig]:
    """Normalize queue config: a mapping name -> concurrency | {"concurrency": n}, or "a=10,b=5"."""
    if isinstance(value, str):
        value = _parse_queue_string(value)
    if not isinstance(value, Mapping):
        raise ConfigError(f"queues must be a mapping like {{'default': 10}}, got {value!r}")
    result: dict[str, QueueConfig] = {}
    for name, spec in value.items():
        try:
            check_queue_name(name, "queue name")
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"queues: {exc}") from None
        result[name] = _queue_config(name, spec)
    return result


def check_database_url(url: object) -> str:
    """Refuse anything that is not a URL of a known scheme (``sqlite:///path``, ``postgresql://…``)."""
    if not isinstance(url, str) or not url:
        raise ConfigError(f"database must be a URL string such as 'sqlite:///jobs.db', got {url!r}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"database URL {url!r} is malformed: {exc}") from None
    if parts.scheme not in DATABASE_SCHEMES or "://" not in url:
        raise ConfigError(
            f"database URL {masked_url(url)!r} must start with one of "
            + ", ".join(f"'{s}://'" for s in DATABASE_SCHEMES)
        )
    if parts.scheme == "sqlite" and (parts.netloc or not parts.path.lstrip("/")):
        raise ConfigError(
            f"database URL {url!r}: a SQLite URL is 'sqlite:///relative.db', 'sqlite:////absolute.db' or "
            "'sqlite:///:memory:'"
        )
    return url


def masked_url(url: str) -> str:
    """``url`` with any password (in the user info or a ``password`` parameter) replaced by ``***``, for messages."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = f"{userinfo.partition(':')[0]}:***@{hosts}" if at and ":" in userinfo else parts.netloc
    query = re.sub(r"(^|&)(password|sslpassword)=[^&]*", r"\1\2=***", parts.query)
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # nothing to hide; urlunsplit would also turn 'sqlite:///x' into 'sqlite:/x'
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _queue_config(name: str, spec: object) -> QueueConfig:
    concurrency: object = spec
    prefetch: object = None
    if isinstance(spec, QueueConfig):
        concurrency, prefetch = spec.concurrency, spec.prefetch
    elif isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"concurrency", "prefetch"})
        if unknown:
            raise ConfigError(f"queues[{name!r}]: unknown key {unknown[0]!r} (known: 'concurrency', 'prefetch')")
        concurrency, prefetch = spec.get("concurrency", QueueConfig().concurrency), spec.get("prefetch")
    return QueueConfig(concurrency=_queue_number(name, "concurrency", concurrency, 1),
                       prefetch=None if prefetch is None else _queue_number(name, "prefetch", prefetch, 0))


def _queue_number(queue: str, key: str, value: object, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"queues[{queue!r}] {key} must be an integer, got {value!r}")
    if not least <= value <= 10_000:
        raise ConfigError(f"queues[{queue!r}] {key} must be between {least} and 10000, got {value!r}")
    return value


def _parse_queue_string(text: str) -> dict[str, int]:
    result: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, number = item.partition("=")
        if not sep:
            raise ConfigError(f"queues: {item!r} must look like 'name=concurrency' (in {text!r})")
        try:
            result[name.strip()] = int(number)
        except ValueError:
            raise ConfigError(f"queues[{name.strip()!r}] concurrency must be an integer, got {number!r}") from None
    if not result:
        raise ConfigError(f"queues must name at least one queue, got {text!r}")
    return result


def _from_env(name: str, raw: str) -> object:
    var = ENV_PREFIX + name.upper()
    kind = {f.name: f.type for f in fields(Config)}[name]
    try:
        if kind == "float":
            return float(raw)
        if kind == "int":
            return int(raw)
        if kind == "bool":
            return _parse_bool(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a valid {kind}") from None
    if name == "queues":
        return _parse_queue_string(raw)
    return raw


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _check_seconds(name: str, value: object, *, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number of seconds, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ConfigError(f"{name} must be {'> 0' if positive else '>= 0'} seconds, got {value!r}")


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INT:
        raise ConfigError(f"{name} must be an integer between 1 and {MAX_INT}, got {value!r}")
