"""Kathikon: a durable job queue for Python. Every job ends completed, retried, cancelled or discarded.

    import kathikon

    class SendEmail(kathikon.Worker):
        queue = "emails"
        def perform(self, job):
            deliver(job.args["email"])

    k = kathikon.Kathikon(database="sqlite:///jobs.db", queues={"default": 10, "emails": 5})
    k.insert(SendEmail, {"email": "a@b.com"})
    k.start()
"""

from __future__ import annotations

from kathikon import telemetry
from kathikon._default import (
    aall,
    acancel,
    afetch,
    ainsert,
    ainsert_all,
    all,
    cancel,
    configure,
    fetch,
    get_default,
    insert,
    insert_all,
    start,
    start_queue,
    stop,
)
from kathikon.config import Config, QueueConfig
from kathikon.core import Kathikon
from kathikon.exceptions import (
    ConfigError,
    DatabaseUnavailableError,
    InvalidStateError,
    JobExecutingError,
    JobNotFoundError,
    KathikonError,
    NotADatabaseError,
    SchemaVersionError,
    StorageError,
    WorkerError,
)
from kathikon.job import Job, JobState
from kathikon.results import Error, Sleep
from kathikon.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "DatabaseUnavailableError",
    "Error",
    "InvalidStateError",
    "Job",
    "JobExecutingError",
    "JobNotFoundError",
    "JobState",
    "Kathikon",
    "KathikonError",
    "NotADatabaseError",
    "QueueConfig",
    "SchemaVersionError",
    "Sleep",
    "StorageError",
    "Worker",
    "WorkerError",
    "__version__",
    "aall",
    "acancel",
    "afetch",
    "ainsert",
    "ainsert_all",
    "all",
    "cancel",
    "configure",
    "fetch",
    "get_default",
    "insert",
    "insert_all",
    "start",
    "start_queue",
    "stop",
    "telemetry",
]
