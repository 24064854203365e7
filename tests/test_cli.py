"""The ``kathikon`` command: a real worker process on a SQLite file, and one-line errors for bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from kathikon import Job, JobState, Kathikon
from kathikon.cli import main
from tests.runtime.runtime_helpers import wait_for

APP = '''
import threading
import kathikon

class Record(kathikon.Worker):
    def perform(self, job):
        with open(job.args["path"], "a") as out:
            out.write(f"{job.args['n']}\\n")

class Hangs(kathikon.Worker):
    def perform(self, job):
        threading.Event().wait(30)
'''


def write_module(folder: Path, name: str, source: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(source))


def start_worker(tmp_path: Path, *args: str, grace: str = "5") -> subprocess.Popen[str]:
    env = {**os.environ, "KATHIKON_SHUTDOWN_GRACE": grace, "KATHIKON_POLL_INTERVAL": "0.1"}
    return subprocess.Popen([sys.executable, "-m", "kathikon", "worker", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_worker(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    return process.returncode, stderr


@pytest.fixture
def app(tmp_path: Path) -> str:
    write_module(tmp_path, "cliapp", APP)
    return f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.fixture
def k(app: str) -> Iterator[Kathikon]:
    with Kathikon(database=app) as instance:
        yield instance


@pytest.mark.slow
def test_the_worker_command_processes_jobs_and_exits_0_on_sigterm(tmp_path: Path, app: str, k: Kathikon) -> None:
    out = tmp_path / "done.txt"
    k.insert_all([Job.build("cliapp:Record", {"path": str(out), "n": n}) for n in range(5)])
    process = start_worker(tmp_path, "-A", "cliapp", "--database", app, "--queues", "default=3")
    try:
        wait_for(lambda: [j.state for j in k.all()] == [JobState.COMPLETED] * 5, timeout=20, what="5 jobs")
    finally:
        code, stderr = stop_worker(process)
    assert code == 0, stderr
    assert sorted(out.read_text().split()) == ["0", "1", "2", "3", "4"]
    assert "stopped" in stderr


@pytest.mark.slow
def test_sigterm_releases_a_job_that_outlives_the_grace_period(tmp_path: Path, app: str, k: Kathikon) -> None:
    job = k.insert("cliapp:Hangs")
    process = start_worker(tmp_path, "-A", "cliapp", "--database", app, grace="0.2")
    try:
        wait_for(lambda: k.fetch(job.id).state == JobState.EXECUTING, timeout=20, what="the job to run")
    finally:
        code, stderr = stop_worker(process)
    assert code == 0, stderr
    released = k.fetch(job.id)
    assert released.state == JobState.AVAILABLE
    assert released.attempts == 0


def test_migrate_creates_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = CliRunner().invoke(main, ["migrate", "--database", url])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    with Kathikon(database=url, auto_migrate=False) as instance:
        assert instance.all() == []


def test_a_database_that_cannot_be_reached_is_named_without_its_password() -> None:
    pytest.importorskip("psycopg")
    url = "postgresql://app:s3cret@127.0.0.1:1/app?connect_timeout=2"
    result = CliRunner().invoke(main, ["migrate", "--database", url])
    assert result.exit_code == 1
    assert "postgresql://app:***@127.0.0.1:1/app" in result.output
    assert "s3cret" not in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["worker", "--queues", "default=0"], "concurrency must be between 1 and 10000, got 0"),
    (["worker", "--queues", "default=ten"], "concurrency must be an integer"),
    (["worker", "--queues", "default"], "must look like 'name=concurrency'"),
    (["worker", "--database", "mysql://x"], "must start with one of"),
    (["migrate", "--database", "nope"], "must start with one of"),
    (["worker", "-A", "no_such_app_module_kx"], "cannot import app module 'no_such_app_module_kx'"),
])
def test_bad_input_is_a_one_line_error_with_exit_code_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, [*args, "--database", "memory://"] if "--database" not in args else args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_an_app_module_that_fails_to_import_is_named_in_the_error(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(tmp_path, "broken_app_kx", "raise RuntimeError('missing SETTINGS')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    result = CliRunner().invoke(main, ["worker", "-A", "broken_app_kx", "--database", "memory://"])
    assert result.exit_code == 2
    assert "cannot import app module 'broken_app_kx': RuntimeError: missing SETTINGS" in result.output


@pytest.mark.slow
@pytest.mark.parametrize(("source", "message"), [
    ("class NoPerform(kathikon.Worker):\n    pass\n", "NoPerform does not implement perform(self, job)"),
    ("class TwoArgs(kathikon.Worker):\n    def perform(self, job, extra):\n        pass\n",
     "TwoArgs.perform must take (self, job)"),
    ("class BadTimeout(kathikon.Worker):\n    timeout = -1\n    def perform(self, job):\n        pass\n",
     "timeout must be a positive number of seconds"),
])
def test_an_invalid_worker_class_stops_the_worker_at_start_up(tmp_path: Path, source: str, message: str) -> None:
    write_module(tmp_path, "badworkers", "import kathikon\n\n" + source)
    result = subprocess.run([sys.executable, "-m", "kathikon", "worker", "-A", "badworkers", "--database",
                             "memory://"], check=False, cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_move_jobs_moves_every_job_between_databases(tmp_path: Path) -> None:
    source, target = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    with Kathikon(database=source) as k:
        ids = [job.id for job in k.insert_all([Job.build("app.jobs:Work", {"n": n}) for n in range(5)])]
    result = CliRunner().invoke(main, ["move-jobs", "--from", source, "--to", target, "--batch", "2",
                                       "--delete-source"])
    assert result.exit_code == 0, result.output
    assert "moved 5 job(s)" in result.output
    with Kathikon(database=target) as k:
        assert [job.id for job in k.all()] == ids
    with Kathikon(database=source) as k:
        assert k.all() == []


def test_move_jobs_refuses_the_same_database_in_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    result = CliRunner().invoke(main, ["move-jobs", "--from", url, "--to", url])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert url in result.output
