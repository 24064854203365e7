"""``kathikon demo``: the README's first command runs the real runtime on a fresh SQLite file and exits 0."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from kathikon.cli import main
from kathikon.demo import Display, Rates, Snapshot, _stop_within, busy_rate, run_demo
from kathikon.job import Job, JobState


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def summary_rows(output: str) -> dict[str, list[float]]:
    """The summary table's rows: queue -> completed, retried, discarded, cancelled, slept, jobs/s."""
    table = output[output.index("queue       completed") :].splitlines()[1:5]
    return {row.split()[0]: [float(v) for v in row.split()[1:]] for row in table}


@pytest.fixture(scope="module")
def small_run_output() -> str:
    out = io.StringIO()
    assert run_demo(small=True, out=out) == 0, out.getvalue()
    return out.getvalue()


def test_the_small_demo_ends_with_every_job_where_the_rules_say(small_run_output: str) -> None:
    rows = summary_rows(small_run_output)
    assert rows["emails"][:5] == [14, 0, 0, 1, 0]  # 12 newsletters + 2 resets; the reminder was cancelled
    assert rows["webhooks"][:5] == [6, 5, 1, 0, 0]  # 1+2 retries among 6, the dead endpoint: 2 retries, discarded
    assert rows["digests"][:4] == [1, 0, 0, 0]
    assert rows["exports"][:4] == [1, 0, 0, 0]
    assert rows["exports"][4] >= 1  # it slept until its export was ready
    assert re.search(r"24 jobs, every job ended as expected, in [\d.]+ s\.", small_run_output)


def test_the_demo_shows_high_priority_emails_jumping_the_backlog(small_run_output: str) -> None:
    match = re.search(r"the 2 password resets .* finished by email #(\d+) of 14", small_run_output)
    assert match is not None
    assert int(match.group(1)) < 14


def test_the_demo_prints_progress_lines_when_stdout_is_not_a_terminal(small_run_output: str) -> None:
    assert "\x1b[" not in small_run_output
    assert re.search(r"emails \d+/15 settled \(\d+ executing\) · webhooks \d+/7 settled", small_run_output)


def test_the_demo_gives_up_at_its_deadline_with_a_message() -> None:
    out = io.StringIO()
    assert run_demo(small=True, deadline=0.3, out=out) == 1
    assert re.search(r"kathikon demo: \d+ jobs had not settled after [\d.]+ s; giving up", out.getvalue())


def test_the_demo_keeps_a_database_file_it_was_given(tmp_path: Path) -> None:
    target = tmp_path / "demo.db"
    target.write_text("an old demo")
    assert run_demo(str(target), small=True, replace=True, out=io.StringIO()) == 0
    assert target.read_bytes().startswith(b"SQLite format 3")


def test_the_demo_refuses_to_overwrite_a_file_unless_asked(tmp_path: Path) -> None:
    target = tmp_path / "precious.db"
    target.write_text("keep me")
    out = io.StringIO()
    assert run_demo(str(target), small=True, out=out) == 2
    assert "exists; choose another --database or pass --replace" in out.getvalue()
    assert target.read_text() == "keep me"


def test_the_demo_refuses_a_directory_as_its_database(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_demo(str(tmp_path), small=True, replace=True, out=out) == 2
    assert "is a directory" in out.getvalue()


def test_the_demo_is_a_kathikon_command() -> None:
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    assert "--small" in result.output


@pytest.mark.slow
def test_kathikon_demo_runs_as_a_command_and_exits_zero(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kathikon", "demo", "--small", "--database", str(tmp_path / "d.db")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every job ended as expected" in done.stdout


# -- pieces -------------------------------------------------------------------------------------------


def snapshot(elapsed: float, completed: int) -> Snapshot:
    counts = {("emails", JobState.COMPLETED): completed, ("emails", JobState.AVAILABLE): 10 - completed}
    return Snapshot(("emails",), elapsed, counts, {}, {}, {"emails": 2.5})


def test_on_a_terminal_the_progress_table_is_redrawn_in_place() -> None:
    out = FakeTerminal()
    display = Display(out)
    display.show(snapshot(0.25, 1))
    display.show(snapshot(0.5, 2))
    text = out.getvalue()
    assert text.count("\x1b[3F") == 1  # the second frame moves up over the 3 lines of the first
    assert "\x1b[2Kemails              8          0          0          0          2" in text
    assert text.rstrip().endswith("2.5")


def test_without_a_terminal_progress_is_printed_once_a_second() -> None:
    out = io.StringIO()
    display = Display(out)
    for tenth in range(25):
        display.show(snapshot(tenth / 10, 1))
    display.show(snapshot(2.5, 10), force=True)
    assert len(out.getvalue().splitlines()) == 4  # at 0 s, 1 s, 2 s and the final one


def test_live_throughput_counts_completions_over_the_last_second() -> None:
    rates = Rates(window=1.0)
    assert rates.update(0.0, {("q", JobState.COMPLETED): 0}) == {}
    rates.update(0.5, {("q", JobState.COMPLETED): 5})
    assert rates.update(1.0, {("q", JobState.COMPLETED): 10}) == {"q": 10.0}
    assert rates.update(2.0, {("q", JobState.COMPLETED): 10}) == {"q": 0.0}


def test_the_summary_throughput_runs_from_first_insert_to_last_completion() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    jobs = [
        Job.build("m:W", {}, now=start).with_changes(
            state=JobState.COMPLETED, completed_at=start + timedelta(seconds=s)
        )
        for s in (1, 2, 4)
    ]
    assert busy_rate(jobs) == pytest.approx(3 / 4)
    assert busy_rate([]) == 0.0


def test_a_runtime_that_does_not_stop_in_time_is_reported() -> None:
    release = threading.Event()

    class Stuck:
        def stop(self, grace: float) -> None:
            release.wait(5)

    started = time.monotonic()
    assert _stop_within(Stuck(), 0.05) is False  # type: ignore[arg-type]
    assert time.monotonic() - started < 1
    release.set()
