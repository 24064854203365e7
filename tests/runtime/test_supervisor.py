"""The supervisor of ``kathikon worker --processes N``: ticks with fake processes, then real ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kathikon.runtime.supervisor import STARTUP_ERROR, Supervisor


class FakeProcess:
    pids = iter(range(1000, 100_000))

    def __init__(self) -> None:
        self.pid = next(self.pids)
        self.code: int | None = None
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return self.code

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        self.code = 0


def fake_supervisor(processes: int = 2) -> tuple[Supervisor, list[FakeProcess]]:
    spawned: list[FakeProcess] = []

    def spawn() -> FakeProcess:
        spawned.append(FakeProcess())
        return spawned[-1]

    return Supervisor(spawn, processes, min_backoff=1, max_backoff=8, stable_after=30), spawned


def test_start_runs_one_process_per_slot() -> None:
    sup, spawned = fake_supervisor(3)
    sup.start(0)
    assert [c.process for c in sup.children] == spawned
    assert len(spawned) == 3


def test_a_crashed_child_is_restarted_after_a_backoff() -> None:
    sup, spawned = fake_supervisor()
    sup.start(0)
    spawned[0].code = -signal.SIGKILL
    sup.tick(10)
    assert sup.children[0].process is None
    sup.tick(10.5)
    assert len(spawned) == 2
    sup.tick(11)
    assert sup.children[0].process is spawned[2]
    assert sup.children[1].process is spawned[1]
    assert sup.children[0].restarts == 1


def test_a_crash_loop_backs_off_exponentially_up_to_the_maximum() -> None:
    sup, spawned = fake_supervisor(1)
    sup.start(0)
    now, waits = 0.0, []
    for _ in range(6):
        spawned[-1].code = 1
        sup.tick(now)
        restart_at = sup.children[0].restart_at
        assert restart_at is not None
        waits.append(restart_at - now)
        now = restart_at
        sup.tick(now)
    assert waits == [1, 2, 4, 8, 8, 8]


def test_a_child_that_ran_stably_restarts_after_the_minimum_backoff() -> None:
    sup, spawned = fake_supervisor(1)
    sup.start(0)
    for now in (1.0, 3.0):
        spawned[-1].code = 1
        sup.tick(now)
        sup.tick(now + 10)
    spawned[-1].code = 1
    sup.tick(100)
    assert sup.children[0].restart_at == 101


def test_stop_forwards_the_signal_and_restarts_nothing() -> None:
    sup, spawned = fake_supervisor()
    sup.start(0)
    sup.stop()
    assert [p.signals for p in spawned] == [[signal.SIGTERM], [signal.SIGTERM]]
    sup.tick(100)
    assert sup.done
    assert len(spawned) == 2
    assert sup.exit_code == 0


def test_a_child_failing_at_start_up_stops_everything_with_its_code() -> None:
    sup, spawned = fake_supervisor()
    sup.start(0)
    spawned[0].code = STARTUP_ERROR
    sup.tick(1)
    assert spawned[1].signals == [signal.SIGTERM]
    sup.tick(2)
    assert sup.done
    assert sup.exit_code == STARTUP_ERROR
    assert len(spawned) == 2


def test_processes_must_be_a_positive_integer() -> None:
    with pytest.raises(ValueError, match="processes must be a positive integer, got 0"):
        Supervisor(FakeProcess, 0)


# -- real processes -------------------------------------------------------------------------------

CHILD = """
import os, signal, sys, time
from pathlib import Path
out = Path(sys.argv[1])
(out / f"started-{os.getpid()}").touch()
signal.signal(signal.SIGTERM, lambda *_: ((out / f"stopped-{os.getpid()}").touch(), sys.exit(0)))
while True:
    time.sleep(0.05)
"""


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def pids(directory: Path, prefix: str) -> set[int]:
    return {int(p.name.split("-")[1]) for p in directory.glob(f"{prefix}-*")}


@pytest.mark.slow
def test_a_real_supervisor_restarts_a_killed_child_and_forwards_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    runner = (f"import sys, logging; from kathikon.runtime.supervisor import Supervisor; "
              f"logging.basicConfig(level='INFO'); "
              f"sys.exit(Supervisor.for_command([sys.executable, {str(script)!r}, {str(tmp_path)!r}], 2, "
              f"min_backoff=0.1).run())")
    with subprocess.Popen([sys.executable, "-c", runner], stderr=subprocess.PIPE, text=True) as sup:
        try:
            wait_for(lambda: len(pids(tmp_path, "started")) == 2, "two children")
            victim = min(pids(tmp_path, "started"))
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: len(pids(tmp_path, "started")) == 3, "the killed child's replacement")
            sup.send_signal(signal.SIGTERM)
            _, log = sup.communicate(timeout=20)
        finally:
            if sup.poll() is None:
                sup.kill()
    assert sup.returncode == 0
    assert pids(tmp_path, "stopped") == pids(tmp_path, "started") - {victim}
    assert "restarting in" in log


def test_the_worker_command_refuses_zero_processes() -> None:
    from click.testing import CliRunner

    from kathikon.cli import main

    result = CliRunner().invoke(main, ["worker", "--processes", "0"])
    assert result.exit_code == 2
    assert "--processes" in result.output
