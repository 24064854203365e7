"""The public surface is explicit and pinned: a change to it is a deliberate change to this test."""

from __future__ import annotations

import kathikon
from kathikon import exceptions


def test_the_public_names_are_exactly_these() -> None:
    assert sorted(kathikon.__all__) == sorted([
        "Config", "ConfigError", "DatabaseUnavailableError", "Error", "InvalidStateError", "Job",
        "JobExecutingError", "JobNotFoundError", "JobState", "Kathikon", "KathikonError", "NotADatabaseError",
        "QueueConfig", "SchemaVersionError", "Sleep", "StorageError", "Worker", "WorkerError", "__version__",
        "aall", "acancel", "afetch", "ainsert", "ainsert_all", "all", "cancel", "configure", "fetch",
        "get_default", "insert", "insert_all", "start", "start_queue", "stop", "telemetry",
    ])
    for name in kathikon.__all__:
        assert hasattr(kathikon, name), name


def test_every_kathikon_error_descends_from_one_root() -> None:
    for name in exceptions.__all__:
        error = getattr(exceptions, name)
        assert issubclass(error, kathikon.KathikonError), name
        assert error.__doc__, f"{name} needs a one-line docstring"


def test_the_package_is_typed() -> None:
    from importlib.resources import files

    assert files("kathikon").joinpath("py.typed").is_file()
