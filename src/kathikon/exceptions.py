"""Kathikon's errors, all under one root.

    KathikonError                     root of every error Kathikon raises on purpose
    ├── JobNotFoundError              fetch/cancel of an id that is not stored
    ├── JobExecutingError             cancel of a job that is executing (without running=True)
    ├── InvalidStateError             cancel of a job already completed/discarded/cancelled (.state)
    ├── ConfigError (also ValueError) a configuration value is invalid (names the field and value)
    ├── WorkerError                   a worker path cannot be imported or the class is not a valid worker
    └── StorageError                  the database failed or refused
        ├── SchemaVersionError        the stored schema is newer than this Kathikon understands
        ├── NotADatabaseError         the file is not a SQLite database (left untouched)
        └── DatabaseUnavailableError  the database cannot be reached (retried by the runtime)

Bad arguments to the public API raise the built-in ``TypeError`` or ``ValueError`` with a message naming
the field and the value; nothing is stored when they do.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatabaseUnavailableError",
    "InvalidStateError",
    "JobExecutingError",
    "JobNotFoundError",
    "KathikonError",
    "NotADatabaseError",
    "SchemaVersionError",
    "StorageError",
    "WorkerError",
]


class KathikonError(Exception):
    """Root of every error Kathikon raises on purpose."""


class JobNotFoundError(KathikonError, LookupError):
    """No job with this id is stored."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class JobExecutingError(KathikonError):
    """The job is executing; cancel it with ``running=True`` to stop it."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} is executing; pass running=True to stop it")
        self.job_id = job_id


class InvalidStateError(KathikonError):
    """The job is in a state the operation does not accept (``.state`` says which)."""

    def __init__(self, job_id: str, state: str) -> None:
        super().__init__(f"job {job_id!r} is already {state}")
        self.job_id = job_id
        self.state = state


class ConfigError(KathikonError, ValueError):
    """A configuration value is invalid."""


class WorkerError(KathikonError):
    """A worker cannot be imported, or is not a valid ``kathikon.Worker``."""


class StorageError(KathikonError):
    """The storage backend failed or refused an operation."""


class SchemaVersionError(StorageError):
    """The stored Kathikon schema is newer than this version of Kathikon understands."""


class NotADatabaseError(StorageError):
    """The database file is not a SQLite database; it was left untouched."""


class DatabaseUnavailableError(StorageError):
    """The database cannot be reached right now; the runtime retries with backoff."""
