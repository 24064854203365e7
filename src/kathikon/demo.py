"""``kathikon demo``: a realistic job mix on a fresh SQLite file, with live progress and a summary.

Emails (a plain ``def`` in the thread pool, priorities), webhooks (``async def``; some fail and are retried,
one endpoint is dead and its job is discarded), scheduled digests, exports that ``Sleep`` until ready and one
cancelled reminder. The real runtime runs them (``Kathikon.start()``). Every job states the final state it
must reach; the demo exits 0 only when all of them got there, and gives up with exit code 1 at a deadline.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from kathikon import telemetry
from kathikon._clock import utcnow
from kathikon.config import Config
from kathikon.core import Kathikon
from kathikon.job import Job, JobState

if TYPE_CHECKING:
    from kathikon.demo_workers import DemoPlan

__all__ = ["DEFAULT_DEADLINE", "STOP_TIMEOUT_EXIT", "demo_command", "run_demo"]

DEFAULT_DEADLINE = 45.0
STOP_TIMEOUT_EXIT = 3  # the runtime did not stop: the process must exit without waiting for its threads
REFRESH = 0.25
PLAIN_EVERY = 1.0  # seconds between progress lines when stdout is not a terminal
_STOP_GRACE = 2.0
_LIVE_STATES = (
    JobState.AVAILABLE,
    JobState.SCHEDULED,
    JobState.EXECUTING,
    JobState.RETRYABLE,
    JobState.COMPLETED,
    JobState.DISCARDED,
    JobState.CANCELLED,
)
_TALLY_ID = "kathikon-demo-tally"


class Rates:
    """Live throughput: completions per second per queue over the last ``window`` seconds."""

    def __init__(self, window: float = 1.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, dict[str, int]]] = deque()

    def update(self, elapsed: float, counts: Mapping[tuple[str, JobState], int]) -> dict[str, float]:
        completed = {queue: n for (queue, state), n in counts.items() if state == JobState.COMPLETED}
        self._samples.append((elapsed, completed))
        while len(self._samples) > 2 and elapsed - self._samples[1][0] >= self.window:
            self._samples.popleft()
        then, before = self._samples[0]
        span = elapsed - then
        if span <= 0:
            return {}
        return {queue: (n - before.get(queue, 0)) / span for queue, n in completed.items()}


class Tally:
    """Counts the retry and sleep events per queue (they are transitions, not final states)."""

    EVENTS = (("kathikon", "job", "retry"), ("kathikon", "job", "sleep"))

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.retried: Counter[str] = Counter()
        self.slept: Counter[str] = Counter()

    def __call__(self, event: telemetry.Event, measurements: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
        counter = self.retried if event[-1] == "retry" else self.slept
        with self._lock:
            counter[metadata["job"].queue] += 1

    def copy(self) -> tuple[dict[str, int], dict[str, int]]:
        with self._lock:
            return dict(self.retried), dict(self.slept)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the demo shows at one moment: job counts per (queue, state) and the tallied transitions."""

    queues: tuple[str, ...]
    elapsed: float
    counts: Mapping[tuple[str, JobState], int]
    retried: Mapping[str, int]
    slept: Mapping[str, int]
    rates: Mapping[str, float]  # completions per second per queue, over the last second

    def count(self, queue: str, state: JobState) -> int:
        return self.counts.get((queue, state), 0)

    def unsettled(self) -> int:
        return sum(n for (_, state), n in self.counts.items() if not state.terminal)


@click.command("demo")
@click.option(
    "--database",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="SQLite file to create for the demo (default: a temporary one, removed afterwards).",
)
@click.option("--replace", is_flag=True, help="Delete the --database file first if it exists.")
@click.option("--small", is_flag=True, help="A smaller, faster run (a few seconds).")
@click.option(
    "--deadline",
    type=click.FloatRange(min=1),
    default=DEFAULT_DEADLINE,
    show_default=True,
    metavar="SECONDS",
    help="Give up (exit 1) if the jobs have not settled by then.",
)
def demo_command(database: str | None, replace: bool, small: bool, deadline: float) -> None:
    """Run a realistic job mix on a fresh SQLite file and show it live: emails with priorities, webhooks that
    fail and retry, scheduled digests, sleeping exports, a cancelled and a discarded job."""
    try:
        code = run_demo(database, small=small, replace=replace, deadline=deadline)
    except BrokenPipeError:  # the reader went away (``kathikon demo | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    exit_after(code)


def run_demo(
    database: str | None = None,
    *,
    small: bool = False,
    replace: bool = False,
    deadline: float = DEFAULT_DEADLINE,
    out: TextIO | None = None,
) -> int:
    """Run the demo; returns the exit code (0: every job ended as expected). ``database`` is a file path."""
    out = sys.stdout if out is None else out
    try:
        with _fresh_database(database, replace) as url:
            return _run(url, small, deadline, out)
    except FileExistsError as exc:
        print(f"kathikon demo: {exc}", file=out)
        return 2


def exit_after(code: int) -> None:
    """Leave the process with ``code``; without waiting for runtime threads when the runtime did not stop."""
    sys.stdout.flush()
    if code == STOP_TIMEOUT_EXIT:
        os._exit(code)
    sys.exit(code)


def _run(url: str, small: bool, deadline: float, out: TextIO) -> int:
    # Imported here so that importing the command (every ``kathikon`` run) does not register demo workers.
    from kathikon.demo_workers import QUEUES, DemoPlan

    plan = DemoPlan.small() if small else DemoPlan()
    config = Config.load(
        env={}, database=url, queues=QUEUES, poll_interval=0.05, scheduler_interval=0.1, shutdown_grace=_STOP_GRACE
    )
    k = Kathikon(config=config)
    tally = Tally()
    telemetry.attach(_TALLY_ID, Tally.EVENTS, tally)
    stopped = False
    try:
        jobs = _insert(k, plan)
        print(f"Kathikon demo on {url}\n{_introduction(jobs)}\n", file=out)
        snapshot = _watch(k, tally, deadline, out)
    finally:  # also on Ctrl-C or a closed stdout: never leave the runtime running
        stopped = _stop_within(k, _STOP_GRACE + 5.0)
        telemetry.detach(_TALLY_ID)
        if stopped:
            k.storage.close()
    if not stopped:
        print(f"kathikon demo: the runtime did not stop within {_STOP_GRACE + 5.0:.0f} s", file=out)
        return STOP_TIMEOUT_EXIT
    return _report(k, snapshot, len(jobs), out)


def _insert(k: Kathikon, plan: DemoPlan) -> list[Job]:
    """Insert the mix in one transaction, then cancel the reminder the user withdrew."""
    from kathikon.demo_workers import demo_jobs

    stored = k.insert_all(demo_jobs(plan, utcnow(), random.Random(7)))
    for job in stored:
        if "to-cancel" in job.tags:
            k.cancel(job.id)
    return stored


def _introduction(jobs: list[Job]) -> str:
    per_queue = Counter(job.queue for job in jobs)
    return "\n".join(
        [
            f"Inserted {len(jobs)} jobs in one transaction: " + ", ".join(f"{q} {n}" for q, n in per_queue.items()),
            "  emails    password resets at priority 9 behind a newsletter backlog; a reminder cancelled before due",
            "  webhooks  some endpoints fail for a while and are retried; one is dead: its job is discarded",
            "  digests   scheduled seconds ahead;  exports: Sleep until the export is ready",
        ]
    )


def _watch(k: Kathikon, tally: Tally, deadline: float, out: TextIO) -> Snapshot:
    """Start the runtime and redraw progress until every job is settled or the deadline passes."""
    started = time.monotonic()
    display = Display(out)
    rates = Rates()
    k.start()
    while True:
        snapshot = _snapshot(k, tally, rates, time.monotonic() - started)
        display.show(snapshot)
        if snapshot.unsettled() == 0 or snapshot.elapsed >= deadline:
            display.show(snapshot, force=True)
            return snapshot
        time.sleep(REFRESH)


def _snapshot(k: Kathikon, tally: Tally, rates: Rates, elapsed: float) -> Snapshot:
    retried, slept = tally.copy()
    counts = k.storage.counts()
    return Snapshot(tuple(k.config.queues), elapsed, counts, retried, slept, rates.update(elapsed, counts))


def _stop_within(k: Kathikon, seconds: float) -> bool:
    stopper = threading.Thread(target=k.stop, args=(_STOP_GRACE,), name="kathikon-demo-stop", daemon=True)
    stopper.start()
    stopper.join(seconds)
    return not stopper.is_alive()


def _report(k: Kathikon, snapshot: Snapshot, inserted: int, out: TextIO) -> int:
    final = k.all()
    print("", *summary_table(snapshot, final), "", priority_line(final), sep="\n", file=out)
    if snapshot.unsettled():
        print(
            f"\nkathikon demo: {snapshot.unsettled()} jobs had not settled after {snapshot.elapsed:.1f} s; giving up",
            file=out,
        )
        return 1
    wrong = [job for job in final if job.state != job.meta.get("demo_expect")]
    for job in wrong:
        print(
            f"  unexpected: {job.worker} {job.args} ended {job.state}, expected {job.meta.get('demo_expect')}", file=out
        )
    verdict = "every job ended as expected" if not wrong else f"{len(wrong)} jobs ended unexpectedly"
    print(f"\n{len(final)} jobs, {verdict}, in {snapshot.elapsed:.1f} s.", file=out)
    return 0 if not wrong and len(final) == inserted else 1


# -- rendering -----------------------------------------------------------------------------------------


class Display:
    """Live progress: redrawn in place on a terminal, one line per second otherwise (logs, CI, pipes)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._tty = out.isatty()
        self._drawn = 0
        self._last_plain = float("-inf")

    def show(self, snapshot: Snapshot, *, force: bool = False) -> None:
        if self._tty:
            self._redraw(progress_table(snapshot))
        elif force or snapshot.elapsed - self._last_plain >= PLAIN_EVERY:
            self._last_plain = snapshot.elapsed
            print(progress_line(snapshot), file=self._out, flush=True)

    def _redraw(self, lines: list[str]) -> None:
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self._out.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self._out.flush()
        self._drawn = len(lines)


def progress_table(snapshot: Snapshot) -> list[str]:
    header = f"{'queue':<10}" + "".join(f"{s.value:>11}" for s in _LIVE_STATES) + f"{'jobs/s':>9}"
    rows = [
        f"{queue:<10}"
        + "".join(f"{snapshot.count(queue, s):>11}" for s in _LIVE_STATES)
        + f"{snapshot.rates.get(queue, 0.0):>9.1f}"
        for queue in snapshot.queues
    ]
    return [f"{snapshot.elapsed:5.1f} s", header, *rows]


def progress_line(snapshot: Snapshot) -> str:
    parts = []
    for queue in snapshot.queues:
        total = sum(snapshot.count(queue, s) for s in _LIVE_STATES)
        done = sum(snapshot.count(queue, s) for s in _LIVE_STATES if s.terminal)
        parts.append(f"{queue} {done}/{total} settled ({snapshot.count(queue, JobState.EXECUTING)} executing)")
    return f"{snapshot.elapsed:5.1f} s  " + " · ".join(parts)


def summary_table(snapshot: Snapshot, jobs: list[Job]) -> list[str]:
    """Per queue: how the jobs ended, the transitions on the way, and the throughput."""
    columns = ("completed", "retried", "discarded", "cancelled", "slept", "jobs/s")
    lines = [f"{'queue':<10}" + "".join(f"{c:>11}" for c in columns)]
    for queue in snapshot.queues:
        values = (
            snapshot.count(queue, JobState.COMPLETED),
            snapshot.retried.get(queue, 0),
            snapshot.count(queue, JobState.DISCARDED),
            snapshot.count(queue, JobState.CANCELLED),
            snapshot.slept.get(queue, 0),
        )
        rate = busy_rate([j for j in jobs if j.queue == queue])
        lines.append(f"{queue:<10}" + "".join(f"{v:>11}" for v in values) + f"{rate:>11.1f}")
    return lines


def busy_rate(jobs: list[Job]) -> float:
    """Completions per second from the queue's first insert to its last completion."""
    starts = [j.inserted_at for j in jobs if j.inserted_at is not None]
    ends = [j.completed_at for j in jobs if j.state == JobState.COMPLETED and j.completed_at is not None]
    if not starts or not ends:
        return 0.0
    span = (max(ends) - min(starts)).total_seconds()
    return len(ends) / span if span > 0 else 0.0


def priority_line(jobs: list[Job]) -> str:
    """Where the high-priority emails, inserted after the backlog, finished among all emails."""
    emails = sorted(
        (j for j in jobs if j.queue == "emails" and j.completed_at is not None),
        key=lambda j: j.completed_at or utcnow(),
    )
    ranks = [rank for rank, job in enumerate(emails, start=1) if job.priority > 0]
    if not ranks:
        return "priority: no high-priority email completed"
    return (
        f"priority: the {len(ranks)} password resets (priority 9, inserted after the newsletters) "
        f"finished by email #{max(ranks)} of {len(emails)}"
    )


# -- the database file ---------------------------------------------------------------------------------


@contextmanager
def _fresh_database(path: str | None, replace: bool) -> Iterator[str]:
    """A SQLite URL on a new file: in a temporary directory (removed after), or at ``path``."""
    if path is None:
        with tempfile.TemporaryDirectory(prefix="kathikon-demo-") as directory:
            yield f"sqlite:///{Path(directory) / 'demo.db'}"
        return
    target = Path(path).resolve()
    if target.is_dir():
        raise FileExistsError(f"{target} is a directory; --database takes a file path")
    if target.exists():
        if not replace:
            raise FileExistsError(f"{target} exists; choose another --database or pass --replace to recreate it")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
    yield f"sqlite:///{target}"
