#!/usr/bin/env python3
"""Chaos: SIGKILL random worker processes while 10,000 jobs drain, then count what was lost.

    python scripts/chaos.py                                   # SQLite file in a temporary directory
    python scripts/chaos.py --database postgresql://postgres@127.0.0.1:5432/test

Runs ``kathikon worker --processes 3`` (the supervisor restarts every killed child) and SIGKILLs a random
child every few seconds until every job is done. Each execution appends ``<job id>`` to a log file when it
starts, so the script can tell executions from outcomes. It prints:

- lost: jobs that will never complete (missing, discarded or cancelled) or completed without running — must be 0
- stuck: jobs still not finished when the deadline passed — must be 0
- duplicate executions: executions beyond one per job, against the bound kills × 2 × concurrency (per kill:
  the jobs running, plus at most one finished job per slot whose ack was still in flight; see
  docs/reliability.md)
- the time to drain

Exits 1 when a job was lost or stuck or duplicates exceed the bound. Linux only (finds the supervisor's
children in /proc). On PostgreSQL it uses its own schema (``kathikon_chaos``), reset before the run.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from kathikon import Job, JobState, Kathikon, Worker  # noqa: E402
from kathikon.storage import Storage, open_storage  # noqa: E402

WORKER_PATH = "scripts.chaos:ChaosJob"


class ChaosJob(Worker):
    """Logs that an execution started, then works for ``args["seconds"]``."""

    def perform(self, job: Job) -> None:
        with open(job.args["log"], "a", encoding="utf-8") as log:
            log.write(f"{job.id}\n")
        time.sleep(job.args["seconds"])


@dataclass
class Run:
    """What happened during one chaos run."""

    kills: int = 0
    drained_in: float | None = None
    counts: Counter[str] = field(default_factory=Counter)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", help="database URL (default: a fresh SQLite file in a temporary directory)")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=10, help="per worker process")
    parser.add_argument("--job-seconds", type=float, default=0.05, help="how long each job works")
    parser.add_argument("--kill-every", type=float, default=2.0, help="mean seconds between SIGKILLs")
    parser.add_argument("--heartbeat", type=float, default=1.0, help="KATHIKON_HEARTBEAT_INTERVAL")
    parser.add_argument("--rescue-after", type=float, default=10.0, help="KATHIKON_RESCUE_AFTER")
    parser.add_argument("--deadline", type=float, default=300.0, help="give up after this many seconds")
    parser.add_argument("--seed", type=int, default=None)
    return parser.parse_args(argv)


def fresh_database(url: str | None, workdir: Path) -> str:
    """A URL of an empty, migrated database."""
    if url is None:
        url = f"sqlite:///{workdir / 'chaos.db'}"
    elif url.startswith("postgres"):
        url += ("&" if "?" in url else "?") + "schema=kathikon_chaos"
    storage = open_storage(url)
    storage.setup()
    storage.reset()
    storage.close()
    return url


def insert_jobs(url: str, count: int, log: Path, seconds: float) -> list[str]:
    with Kathikon(database=url) as k:
        jobs = k.insert_all([Job.build(WORKER_PATH, {"log": str(log), "seconds": seconds}) for _ in range(count)])
    return [job.id for job in jobs]


def start_supervisor(url: str, args: argparse.Namespace, workdir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KATHIKON_HEARTBEAT_INTERVAL": str(args.heartbeat),
           "KATHIKON_RESCUE_AFTER": str(args.rescue_after), "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    command = [sys.executable, "-m", "kathikon", "worker", "-A", "scripts.chaos", "--database", url,
               "--queues", f"default={args.concurrency}", "--processes", str(args.processes),
               "--log-level", "WARNING"]
    with open(workdir / "workers.log", "wb") as output:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def kill_random_child(supervisor: int, rng: random.Random) -> bool:
    pids = children(supervisor)
    if not pids:
        return False
    try:
        os.kill(rng.choice(pids), signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def unfinished(storage: Storage) -> int:
    return sum(n for (_, state), n in storage.counts().items() if not state.terminal)


def drain_with_chaos(storage: Storage, supervisor: subprocess.Popen[bytes], args: argparse.Namespace,
                     rng: random.Random) -> Run:
    run = Run()
    started = time.monotonic()
    next_kill = started + rng.uniform(0.5, 1.5) * args.kill_every
    last_report = started
    while time.monotonic() - started < args.deadline:
        left = unfinished(storage)
        if left == 0:
            run.drained_in = time.monotonic() - started
            break
        now = time.monotonic()
        if now >= next_kill:
            run.kills += kill_random_child(supervisor.pid, rng)
            next_kill = now + rng.uniform(0.5, 1.5) * args.kill_every
        if now - last_report >= 5:
            print(f"  {now - started:6.1f} s  {left:6d} jobs left  {run.kills} kills", flush=True)
            last_report = now
        time.sleep(0.1)
    return run


def stop(supervisor: subprocess.Popen[bytes]) -> int:
    supervisor.send_signal(signal.SIGTERM)
    try:
        return supervisor.wait(timeout=60)
    except subprocess.TimeoutExpired:
        supervisor.kill()
        return supervisor.wait()


def report(storage: Storage, ids: list[str], log: Path, run: Run, args: argparse.Namespace) -> bool:
    """Print the results; True when nothing was lost or stuck and duplicates are within the bound."""
    states = storage.states(ids)
    executions = Counter(log.read_text().split()) if log.exists() else Counter()
    lost = sum(1 for i in ids if states.get(i) in (None, JobState.DISCARDED, JobState.CANCELLED)
               or (states.get(i) == JobState.COMPLETED and executions[i] == 0))
    stuck = sum(1 for i in ids if states.get(i) is not None and not states[i].terminal)
    duplicates = sum(executions.values()) - len(executions)
    # Per kill: the jobs running (one per slot) and, at most, one finished job per slot whose ack had not
    # committed yet (a job here takes far longer than an ack round trip).
    bound = run.kills * 2 * args.concurrency
    rescued = sum(1 for job in storage.all() if any(e["kind"] == "rescued" for e in job.errors))
    drained = f"{run.drained_in:.1f} s" if run.drained_in is not None else f"not drained in {args.deadline:.0f} s"
    print(f"""
chaos run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs,
  Python {platform.python_version()}), database {storage.url}
jobs: {len(ids)} of {args.job_seconds} s each; {args.processes} worker processes x concurrency {args.concurrency};
  heartbeat {args.heartbeat} s, rescue_after {args.rescue_after} s; a SIGKILL every ~{args.kill_every} s
kills:                 {run.kills}
jobs rescued:          {rescued}
jobs lost:             {lost}
jobs stuck:            {stuck}
duplicate executions:  {duplicates} (bound: kills x 2 x concurrency = {bound}; kills x concurrency = {bound // 2})
time to drain:         {drained}""")
    return lost == 0 and stuck == 0 and duplicates <= bound


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="kathikon-chaos-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(args.database, workdir)
        log = workdir / "executions.log"
        print(f"inserting {args.jobs} jobs into {url}", flush=True)
        ids = insert_jobs(url, args.jobs, log, args.job_seconds)
        supervisor = start_supervisor(url, args, workdir)
        storage = open_storage(url)
        try:
            run = drain_with_chaos(storage, supervisor, args, rng)
        finally:
            code = stop(supervisor)
        ok = report(storage, ids, log, run, args) and code == 0
        if code != 0:
            print(f"the supervisor exited with {code}")
        if not ok:
            print(f"last worker output:\n{(workdir / 'workers.log').read_text()[-5000:]}")
        storage.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
