"""Opening a SQLite file safely: URL options, the refusal checks, migrations and error mapping.

The checks run before sqlite3 writes anything: a file without the SQLite header is refused before sqlite3
opens it, and a newer Kathikon schema is refused before the switch to WAL (which rewrites the header).
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from kathikon._clock import utcnow
from kathikon.exceptions import (
    ConfigError,
    DatabaseUnavailableError,
    NotADatabaseError,
    SchemaVersionError,
    StorageError,
)
from kathikon.storage import _sql
from kathikon.storage._sqlite_rows import encode_time

__all__ = ["MIN_SQLITE", "SYNCHRONOUS_LEVELS", "check_header", "check_schema_version", "check_seconds",
           "check_sqlite_version", "check_synchronous", "mapped_errors", "migrate", "url_options", "when_free"]

T = TypeVar("T")

MIN_SQLITE = (3, 35, 0)  # UPDATE … RETURNING
SYNCHRONOUS_LEVELS = ("off", "normal", "full", "extra")
_HEADER = b"SQLite format 3\x00"
_Q = _sql.queries("sqlite")


# -- schema


def _schema_version(conn: sqlite3.Connection) -> int:
    if not conn.execute(_Q["schema_table_exists"]).fetchone()[0]:
        return 0
    return int(conn.execute(_Q["schema_version"]).fetchone()[0])


def check_schema_version(conn: sqlite3.Connection) -> int:
    version, known = _schema_version(conn), len(_sql.migrations("sqlite"))
    if version > known:
        raise SchemaVersionError(
            f"the Kathikon schema in this SQLite file is version {version}, newer than the newest this "
            f"Kathikon knows ({known}); upgrade Kathikon. The file was left untouched."
        )
    return version


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the pending migrations inside the caller's write transaction (so concurrent setups serialize)."""
    current = check_schema_version(conn)
    for migration in _sql.migrations("sqlite")[current:]:
        for statement in _statements(migration.sql):
            conn.execute(statement)
        conn.execute(_Q["record_migration"], (migration.version, migration.name, encode_time(utcnow(), "now")))


def _statements(script: str) -> Iterator[str]:
    """Split a script into complete statements (sqlite3.complete_statement knows about triggers and quotes)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""


def check_header(path: str) -> None:
    """Refuse a non-empty file that does not start with the SQLite header; sqlite3 has not opened it yet."""
    try:
        with open(path, "rb") as file:
            header = file.read(len(_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise DatabaseUnavailableError(f"cannot read the SQLite file {path}: {exc}") from exc
    if header and header != _HEADER:
        raise NotADatabaseError(
            f"{path} is not a SQLite database (it does not start with the SQLite header); "
            "Kathikon refused to use it and left it untouched"
        )


# -- a busy database


BUSY_FIRST_SLEEP = 0.0001
BUSY_LONGEST_SLEEP = 0.005


def when_free(attempt: Callable[[], T], timeout: float) -> T:
    """``attempt()`` (one SQLite call), run again after a short sleep while the database is busy (another
    process holds the write lock), for up to ``timeout`` seconds; then the busy error is raised.

    Sleeps start at 100 µs and double up to 5 ms. SQLite's own busy handler sleeps 1, 2, 5, 10 … 100 ms, so
    two processes taking turns on transactions of a few hundred µs each mostly slept instead of writing.
    """
    deadline, pause = 0.0, BUSY_FIRST_SLEEP
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            now = time.monotonic()
            deadline = deadline or now + timeout
            if now >= deadline:
                raise
            time.sleep(min(pause, deadline - now))
            pause = min(pause * 2, BUSY_LONGEST_SLEEP)


# -- errors


@contextmanager
def mapped_errors(path: str) -> Iterator[None]:
    """Raise sqlite3 errors as kathikon errors at the boundary."""
    try:
        yield
    except sqlite3.Error as exc:
        raise _storage_error(exc, path) from exc


def _storage_error(exc: sqlite3.Error, path: str) -> StorageError:
    message = str(exc)
    if "file is not a database" in message:
        return NotADatabaseError(f"{path} is not a SQLite database ({message}); Kathikon refused to use it")
    if isinstance(exc, sqlite3.OperationalError) and any(
            word in message for word in ("locked", "busy", "unable to open", "disk I/O")):
        return DatabaseUnavailableError(f"SQLite database {path} is unavailable: {message}")
    return StorageError(f"SQLite database {path}: {message}")


# -- options


def check_sqlite_version() -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise StorageError(
            f"Kathikon needs SQLite {'.'.join(map(str, MIN_SQLITE))} or newer (for UPDATE … RETURNING); "
            f"this Python is linked with SQLite {sqlite3.sqlite_version}"
        )


def url_options(query: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "synchronous":
            options[name] = check_synchronous(value)
        elif name == "busy_timeout":
            options[name] = _parse_seconds(value, name)
        else:
            raise ConfigError(f"database URL: unknown SQLite parameter {name!r} (value {value!r}); "
                              "known: 'synchronous', 'busy_timeout'")
    return options


def check_synchronous(value: object) -> str:
    if not isinstance(value, str) or value.lower() not in SYNCHRONOUS_LEVELS:
        raise ConfigError(f"synchronous must be one of {', '.join(SYNCHRONOUS_LEVELS)}, got {value!r}")
    return value.lower()


def _parse_seconds(text: str, field: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{field} must be a number of seconds, got {text!r}") from None
    return check_seconds(value, field)


def check_seconds(value: object, field: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{field} must be a number of seconds, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ConfigError(f"{field} must be a finite number of seconds {bound}, got {value!r}")
    return float(value)
