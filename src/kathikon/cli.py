"""The ``kathikon`` command (also ``python -m kathikon``).

    kathikon worker -A myapp.jobs [-A …] [--database URL] [--queues default=10,emails=5] [--log-level INFO]
                    [--processes N]
    kathikon migrate [--database URL]
    kathikon move-jobs --from URL --to URL [--batch N] [--delete-source]
    kathikon demo [--small] [--database PATH [--replace]] [--deadline SECONDS]

Options not given on the command line come from ``KATHIKON_*`` environment variables (see
docs/configuration.md). Bad input (an invalid option, an app module that does not import, an invalid worker
class) is reported in one line with exit code 2 before anything runs.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
from collections.abc import Iterable
from typing import Any

import click

from kathikon import __version__, telemetry
from kathikon.config import Config, masked_url
from kathikon.demo import demo_command
from kathikon.exceptions import ConfigError, KathikonError
from kathikon.runtime import Runtime
from kathikon.runtime.supervisor import Supervisor
from kathikon.storage import Storage, open_storage
from kathikon.transfer import move_jobs
from kathikon.worker import Worker, registered_workers, validate_worker, worker_path

__all__ = ["main"]

logger = logging.getLogger("kathikon.cli")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class StartupError(click.ClickException):
    """Bad input found before anything ran: one line on stderr, exit code 2."""

    exit_code = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kathikon")
def main() -> None:
    """Kathikon: a durable job queue. Every job ends completed, retried, cancelled or discarded."""


@main.command()
@click.option("-A", "--app", "apps", multiple=True, metavar="MODULE",
              help="Module to import so its workers are known (repeatable), e.g. -A myapp.jobs.")
@click.option("--database", metavar="URL", help="sqlite:///jobs.db or postgresql://… [env KATHIKON_DATABASE]")
@click.option("--queues", metavar="NAME=N,…", help="Queues and their concurrency, e.g. default=10,emails=5.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False), default="INFO",
              show_default=True)
@click.option("--processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run N worker processes under a supervisor that restarts any that crashes (CPU-bound work).")
def worker(apps: tuple[str, ...], database: str | None, queues: str | None, log_level: str,
           processes: int) -> None:
    """Run the queues in this process until SIGTERM or SIGINT, then stop gracefully."""
    config = _load_config(database=database, queues=queues)
    _import_apps(apps)
    workers = _check_workers(registered_workers().values())
    _setup_logging(log_level)
    if processes > 1:
        _supervise(processes, config, _worker_args(apps, database=database, queues=queues, log_level=log_level))
    storage = _open_storage(config)
    runtime = Runtime(config, storage)
    logger.info("kathikon worker %s: %s, queues %s, %d worker classes", runtime.node, storage.url,
                ",".join(f"{q}={c.concurrency}" for q, c in config.queues.items()), len(workers))
    try:
        asyncio.run(_serve(runtime))
    finally:
        storage.close()
    _exit_cleanly(runtime)


@main.command()
@click.option("--database", metavar="URL", help="sqlite:///jobs.db or postgresql://… [env KATHIKON_DATABASE]")
def migrate(database: str | None) -> None:
    """Create Kathikon's tables or bring them up to date (safe to run again)."""
    config = _load_config(database=database)
    storage = _open_storage(config, migrate=True)
    storage.close()
    click.echo(f"{storage.url}: the Kathikon schema is up to date")


@main.command("move-jobs")
@click.option("--from", "source", required=True, metavar="URL", help="Database to read jobs from.")
@click.option("--to", "target", required=True, metavar="URL", help="Database to write them to.")
@click.option("--batch", type=click.IntRange(min=1), default=1000, show_default=True, help="Jobs per transaction.")
@click.option("--delete-source", is_flag=True,
              help="Delete each batch from the source once the target has committed it (a move, not a copy).")
def move_jobs_command(source: str, target: str, batch: int, delete_source: bool) -> None:
    """Copy (or move) every job between databases, keeping ids, states and times; safe to run again.

    Stop the workers of both databases first. Example: moving from SQLite to PostgreSQL when scaling out.
    """
    try:
        count = move_jobs(source, target, batch=batch, delete_source=delete_source)
    except (KathikonError, TypeError, ValueError) as exc:
        raise StartupError(str(exc)) from None
    click.echo(f"{'moved' if delete_source else 'copied'} {count} job(s) to {masked_url(target)}")


# ``kathikon demo`` is defined in the demo module.
main.add_command(demo_command)


# -- steps of `kathikon worker` ----------------------------------------------------------------------


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    telemetry.attach_default_logger()


def _load_config(**options: Any) -> Config:
    try:
        return Config.load(**options)
    except (ConfigError, TypeError) as exc:
        raise StartupError(str(exc)) from None


def _import_apps(apps: Iterable[str]) -> None:
    """Import the app modules; the current directory comes first on the path, as for ``python -m``."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in apps:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise StartupError(f"cannot import app module {name!r}: {type(exc).__name__}: {exc}") from None


def _check_workers(classes: Iterable[type[Worker]]) -> list[type[Worker]]:
    """Every concrete worker must have a valid ``perform`` and ``timeout``; returns them."""
    workers = [cls for cls in classes if not cls.abstract]
    for cls in workers:
        try:
            validate_worker(cls)
        except TypeError as exc:
            raise StartupError(f"{exc} (set abstract = True on a base class without perform)") from None
        timeout = cls.timeout
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not 0 < timeout < float("inf")):
            raise StartupError(f"worker {worker_path(cls)}: timeout must be a positive number of seconds or "
                               f"None, got {timeout!r}")
    return workers


def _open_storage(config: Config, *, migrate: bool | None = None) -> Storage:
    try:
        storage = open_storage(config.database)
        if config.auto_migrate if migrate is None else migrate:
            storage.setup()
    except KathikonError as exc:
        raise click.ClickException(f"{masked_url(config.database)}: {exc}") from None
    return storage


def _supervise(processes: int, config: Config, worker_args: list[str]) -> None:
    """Migrate once here, then run ``processes`` children ``kathikon worker <worker_args>``; exits."""
    _open_storage(config).close()
    logger.info("kathikon worker: supervising %d worker processes", processes)
    command = [sys.executable, "-m", "kathikon", "worker", *worker_args]
    sys.exit(Supervisor.for_command(command, processes).run())


def _worker_args(apps: Iterable[str], *, database: str | None, queues: str | None, log_level: str) -> list[str]:
    """The command-line options of this worker, for its supervised children (other options: environment)."""
    args = ["--log-level", log_level, *(arg for app in apps for arg in ("-A", app))]
    args += ["--database", database] if database else []
    return args + (["--queues", queues] if queues else [])


async def _serve(runtime: Runtime) -> None:
    """Run until the first SIGTERM/SIGINT (graceful stop); a second one releases running jobs at once."""
    loop = asyncio.get_running_loop()
    received: list[str] = []

    def on_signal(name: str) -> None:
        received.append(name)
        if len(received) == 1:
            logger.info("%s: stopping (running jobs get %.1f s to finish; send it again to release them now)",
                        name, runtime.config.shutdown_grace)
            runtime.request_stop()
        else:
            runtime.request_stop(0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    await runtime.run()


def _exit_cleanly(runtime: Runtime) -> None:
    """Python waits for every pool thread at exit; do not wait for performs the runtime already gave up."""
    abandoned = runtime.abandoned_threads()
    if abandoned:
        logger.warning("exiting with %d sync perform(s) still running in abandoned threads", abandoned)
        logging.shutdown()
        os._exit(0)
    logger.info("kathikon worker %s stopped", runtime.node)
