"""The PostgreSQL database URL: Kathikon's own query parameters, the libpq connection string, a masked form.

    postgresql://user:secret@db.example.com:5432/app?schema=jobs&pool_max=20&sslmode=require

Kathikon's parameters (stripped before connecting):
  schema        where every Kathikon table lives (default ``public``); created if missing, so two apps can
                share one database in two schemas
  pool_min      connections the pool keeps open (default 1)
  pool_max      most connections the pool opens (default 10)
  pool_timeout  seconds to wait for a pooled connection before DatabaseUnavailableError (default 10)
  notify        ``true``/``false``: LISTEN/NOTIFY wake-ups (default true; false behind a transaction pooler)
  prepare       ``true``/``false``: let psycopg prepare frequent statements (default true; false behind a
                transaction-mode pooler that cannot keep prepared statements)

Any other parameter must be one libpq knows (``sslmode``, ``connect_timeout``, ``application_name`` …);
anything else is a ConfigError naming it, never silently dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import conninfo as pg_conninfo

from kathikon.exceptions import ConfigError

__all__ = ["PostgresSettings", "parse_postgres_url"]

KATHIKON_PARAMS = ("schema", "pool_min", "pool_max", "pool_timeout", "notify", "prepare")
_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# Sensible connection defaults that the URL may override: fail fast on an unreachable host and notice a
# silently dead peer (a LISTEN connection idles for hours).
_CONNECT_DEFAULTS = {"connect_timeout": "10", "keepalives": "1", "keepalives_idle": "30",
                     "keepalives_interval": "10", "keepalives_count": "3"}


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """A parsed PostgreSQL URL."""

    conninfo: str
    masked_url: str
    schema: str = "public"
    pool_min: int = 1
    pool_max: int = 10
    pool_timeout: float = 10.0
    notify: bool = True
    connect_kwargs: dict[str, Any] = field(default_factory=dict)


def parse_postgres_url(url: str) -> PostgresSettings:
    """Split ``url`` into Kathikon's settings and a libpq URL; ConfigError names any bad parameter."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"a PostgreSQL database URL starts with 'postgresql://', got {_mask(url)!r}")
    params = _query_params(url, parts.query)
    ours = {name: params.pop(name) for name in KATHIKON_PARAMS if name in params}
    _check_libpq_params(url, params)
    conninfo = urlunsplit(parts._replace(query=urlencode(params)))
    given = _conninfo_dict(url, conninfo)
    settings = PostgresSettings(
        conninfo=conninfo,
        masked_url=_mask(url),
        schema=_schema(url, ours.get("schema", "public")),
        pool_min=_integer(url, ours, "pool_min", 1, minimum=0),
        pool_max=_integer(url, ours, "pool_max", 10, minimum=1),
        pool_timeout=_seconds(url, ours.get("pool_timeout", "10")),
        notify=_boolean(url, "notify", ours.get("notify", "true")),
        connect_kwargs=_connect_kwargs(given, prepare=_boolean(url, "prepare", ours.get("prepare", "true"))),
    )
    if settings.pool_min > settings.pool_max:
        raise ConfigError(f"database URL {settings.masked_url!r}: pool_min ({settings.pool_min}) must not exceed "
                          f"pool_max ({settings.pool_max})")
    return settings


def _query_params(url: str, query: str) -> dict[str, str]:
    pairs = parse_qsl(query, keep_blank_values=True)
    names = [name for name, _ in pairs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"database URL {_mask(url)!r}: parameter {repeated[0]!r} is given more than once")
    return dict(pairs)


@cache
def _libpq_keywords() -> frozenset[str]:
    return frozenset(option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults())


def _check_libpq_params(url: str, params: dict[str, str]) -> None:
    unknown = sorted(set(params) - _libpq_keywords())
    if unknown:
        raise ConfigError(
            f"database URL {_mask(url)!r}: unknown parameter {unknown[0]!r}; Kathikon's are "
            f"{', '.join(KATHIKON_PARAMS)}, and any other must be a libpq connection parameter"
        )


def _conninfo_dict(url: str, conninfo: str) -> dict[str, Any]:
    try:
        return pg_conninfo.conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        raise ConfigError(f"database URL {_mask(url)!r} is malformed: {exc}") from None


def _schema(url: str, value: str) -> str:
    if not _SCHEMA_RE.match(value):
        raise ConfigError(f"database URL {_mask(url)!r}: schema must be 1-63 letters, digits or '_' (not starting "
                          f"with a digit), got {value!r}")
    return value


def _integer(url: str, params: dict[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"\d{1,6}", raw) or int(raw) < minimum:
        raise ConfigError(f"database URL {_mask(url)!r}: {name} must be an integer >= {minimum}, got {raw!r}")
    return int(raw)


def _seconds(url: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise ConfigError(f"database URL {_mask(url)!r}: pool_timeout must be seconds in (0, 3600], got {raw!r}")
    return value


def _boolean(url: str, name: str, raw: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigError(f"database URL {_mask(url)!r}: {name} must be true or false, got {raw!r}")


def _connect_kwargs(given: dict[str, Any], *, prepare: bool) -> dict[str, Any]:
    """psycopg.connect keyword arguments: our connection defaults the URL leaves open, and prepare_threshold."""
    kwargs: dict[str, Any] = {k: v for k, v in _CONNECT_DEFAULTS.items() if k not in given}
    if not prepare:
        kwargs["prepare_threshold"] = None
    return kwargs


def _mask(url: str) -> str:
    """``url`` with any password (in the user info or a ``password`` parameter) replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}{':***' if colon else ''}@{hosts}"
    query = re.sub(r"(^|&)(password|sslpassword)=[^&]*", r"\1\2=***", parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))
