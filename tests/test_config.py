"""Configuration: defaults, environment variables, explicit arguments, and refusal of bad values."""

from __future__ import annotations

import re

import pytest

from kathikon import Config, ConfigError, QueueConfig
from kathikon.config import masked_url


def test_the_defaults_are_the_seeds_defaults_in_seconds() -> None:
    c = Config.load(env={})
    assert c.database == "sqlite:///kathikon.db"
    assert c.queues == {"default": QueueConfig(10)}
    assert (c.poll_interval, c.scheduler_interval, c.prune_interval) == (0.2, 1.0, 60.0)
    assert c.retention_period == 604_800.0
    assert c.max_attempts == 20


def test_every_option_can_come_from_a_kathikon_environment_variable() -> None:
    env = {
        "KATHIKON_DATABASE": "sqlite:///other.db",
        "KATHIKON_QUEUES": "default=10, emails=5",
        "KATHIKON_POLL_INTERVAL": "0.05",
        "KATHIKON_SCHEDULER_INTERVAL": "2",
        "KATHIKON_PRUNE_INTERVAL": "30",
        "KATHIKON_RETENTION_PERIOD": "3600",
        "KATHIKON_MAX_ATTEMPTS": "3",
        "KATHIKON_AUTO_MIGRATE": "false",
    }
    c = Config.load(env=env)
    assert c.database == "sqlite:///other.db"
    assert c.queues == {"default": QueueConfig(10), "emails": QueueConfig(5)}
    assert (c.poll_interval, c.scheduler_interval, c.prune_interval) == (0.05, 2.0, 30.0)
    assert (c.retention_period, c.max_attempts, c.auto_migrate) == (3600.0, 3, False)


def test_explicit_arguments_win_over_the_environment() -> None:
    env = {"KATHIKON_MAX_ATTEMPTS": "3", "KATHIKON_QUEUES": "a=1"}
    c = Config.load(env=env, max_attempts=9, queues={"b": 2})
    assert c.max_attempts == 9
    assert c.queues == {"b": QueueConfig(2)}


def test_queues_accept_a_concurrency_or_a_mapping_with_concurrency() -> None:
    c = Config(queues={"default": 10, "emails": {"concurrency": 5}})
    assert c.concurrency("emails") == 5
    assert c.concurrency("default") == 10
    assert c.concurrency("not-configured") == 10


def test_a_queue_claims_ahead_up_to_forty_jobs_per_slot_unless_prefetch_says_otherwise() -> None:
    c = Config(queues={"default": 3, "reports": {"concurrency": 2, "prefetch": 0}, "bulk": {"prefetch": 50}})
    assert c.prefetch("default") == 120
    assert c.prefetch("reports") == 0
    assert (c.concurrency("bulk"), c.prefetch("bulk")) == (10, 50)
    assert c.prefetch("not-configured") == 400
    assert Config(queues={"a": QueueConfig(4, prefetch=1)}).queues["a"] == QueueConfig(4, prefetch=1)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"queues": {"default": 0}}, "queues['default'] concurrency must be between 1 and 10000, got 0"),
        ({"queues": {"default": "ten"}}, "queues['default'] concurrency must be an integer, got 'ten'"),
        ({"queues": {"emails": {"concurency": 5}}}, "queues['emails']: unknown key 'concurency'"),
        ({"queues": {"emails": {"prefetch": -1}}}, "queues['emails'] prefetch must be between 0 and 10000, got -1"),
        ({"queues": {"emails": {"prefetch": 2.5}}}, "queues['emails'] prefetch must be an integer, got 2.5"),
        ({"queues": {"bad name!": 1}}, "queue name must be 1-128 characters"),
        ({"queues": [1, 2]}, "queues must be a mapping"),
        ({"queues": "default"}, "'default' must look like 'name=concurrency'"),
        ({"poll_interval": 0}, "poll_interval must be > 0 seconds, got 0"),
        ({"poll_interval": "fast"}, "poll_interval must be a finite number of seconds, got 'fast'"),
        ({"retention_period": -1}, "retention_period must be >= 0 seconds, got -1"),
        ({"max_attempts": 0}, "max_attempts must be an integer between 1"),
        ({"database": "mysql://x"}, "database URL 'mysql://x' must start with one of"),
        ({"database": "jobs.db"}, "database URL 'jobs.db' must start with one of"),
        ({"database": "sqlite://jobs.db"}, "a SQLite URL is 'sqlite:///relative.db'"),
        ({"database": 5}, "database must be a URL string"),
        ({"rescue_after": 1.0, "heartbeat_interval": 2.0}, "rescue_after (1.0) must be longer than"),
    ],
)
def test_bad_values_raise_a_config_error_naming_the_option_and_value(options: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        Config.load(env={}, **options)


def test_config_errors_are_value_errors() -> None:
    assert issubclass(ConfigError, ValueError)


def test_an_unknown_option_is_a_type_error_that_names_it() -> None:
    with pytest.raises(TypeError, match="unknown Kathikon option 'pol_interval'"):
        Config.load(env={}, pol_interval=1)


@pytest.mark.parametrize(
    ("name", "raw", "words"),
    [
        ("KATHIKON_POLL_INTERVAL", "fast", "KATHIKON_POLL_INTERVAL='fast' is not a valid float"),
        ("KATHIKON_MAX_ATTEMPTS", "3.5", "KATHIKON_MAX_ATTEMPTS='3.5' is not a valid int"),
        ("KATHIKON_AUTO_MIGRATE", "maybe", "KATHIKON_AUTO_MIGRATE='maybe' is not a valid bool"),
        ("KATHIKON_QUEUES", "default=x", "queues['default'] concurrency must be an integer, got 'x'"),
        ("KATHIKON_DATABASE", "nope", "database URL 'nope' must start with one of"),
    ],
)
def test_malformed_environment_values_name_the_variable_and_value(name: str, raw: str, words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        Config.load(env={name: raw})


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://app:s3cret@db.example.com:5432/app?schema=jobs",
     "postgresql://app:***@db.example.com:5432/app?schema=jobs"),
    ("postgresql://db.example.com/app?user=app&password=s3cret", "postgresql://db.example.com/app?user=app&password=***"),
    ("postgresql://app@db.example.com/app", "postgresql://app@db.example.com/app"),
    ("sqlite:///jobs.db", "sqlite:///jobs.db"),
])
def test_a_url_shown_in_a_message_has_its_password_masked(url: str, shown: str) -> None:
    assert masked_url(url) == shown


def test_a_database_url_of_an_unknown_scheme_is_refused_without_showing_its_password() -> None:
    with pytest.raises(ConfigError) as refused:
        Config(database="postgres-ql://app:s3cret@db.example.com/app")
    assert "s3cret" not in str(refused.value)
    assert "app:***@" in str(refused.value)
