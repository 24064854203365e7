"""The measurement protocol every system module shares (Kathikon and each peer).

A system module defines a ``System`` subclass and calls ``main(SystemClass)``. ``bench/run.py`` then runs one
measurement per subprocess on a fresh database: ``python -m bench.<module> <command> --db DB ...``. Each
command prints one ``RESULT {json}`` line on stdout; ``worker`` prints ``READY`` and runs until SIGTERM.

Clocks: every duration inside one process uses ``time.perf_counter``; insert→start latency uses
``CLOCK_MONOTONIC``, which is system-wide on Linux, so a job inserted by one process and started by another
is timed on the same clock.
"""

from __future__ import annotations

import abc
import argparse
import itertools
import json
import os
import random
import resource
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["System", "main", "noop_ran", "payload", "probe_ran"]

# A no-op job's argument: a small dict, as a typical "send this email" job would carry.
PAYLOAD_TEMPLATE = {"user_id": 0, "email": "user@example.com", "template": "welcome"}


def payload(i: int) -> dict[str, Any]:
    return {**PAYLOAD_TEMPLATE, "user_id": i}


def monotonic_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class _Tracker:
    """Counts no-op jobs run in this process: the first start and the moment the target count is reached."""

    def __init__(self) -> None:
        self.first_start: float | None = None
        self.target = 0
        self.counter = itertools.count(1)
        self.reached = threading.Event()

    def ran(self) -> None:
        if self.first_start is None:
            self.first_start = time.perf_counter()
        if next(self.counter) >= self.target > 0:
            self.reached.set()


class _Probes:
    """Insert→start latencies of probe jobs: kept in memory (same process) or appended to a file."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self.arrived = threading.Condition()

    def ran(self, t0_ns: int, out: str) -> None:
        latency = monotonic_ns() - t0_ns
        if out:
            with open(out, "a", encoding="ascii") as f:
                f.write(f"{latency}\n")
            return
        with self.arrived:
            self.samples.append(latency)
            self.arrived.notify_all()

    def wait_local(self, count: int, timeout: float) -> None:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.samples) >= count, timeout):
                raise TimeoutError(f"probe {count} did not start within {timeout} s")


TRACKER = _Tracker()
PROBES = _Probes()


def noop_ran() -> None:
    """Called by every system's no-op job."""
    TRACKER.ran()


def probe_ran(t0_ns: int, out: str) -> None:
    """Called first thing by every system's probe job with the insert time and the sample file ("" = local)."""
    PROBES.ran(t0_ns, out)


class System(abc.ABC):
    """One job system under test, bound to one database and one variant ("sync" or "async" jobs)."""

    name = ""
    variants: tuple[str, ...] = ("sync", "async")

    def __init__(self, db: str, variant: str) -> None:
        self.db = db
        self.variant = variant

    @abc.abstractmethod
    def insert_one(self, args: dict[str, Any]) -> None:
        """Insert one no-op job, durable when this returns."""

    @abc.abstractmethod
    def insert_many(self, args: list[dict[str, Any]]) -> None:
        """Insert many no-op jobs in the system's bulk form (raise NotImplementedError when it has none)."""

    @abc.abstractmethod
    def insert_probe(self, t0_ns: int, out: str) -> None:
        """Insert one probe job that calls ``probe_ran(t0_ns, out)`` first thing."""

    @abc.abstractmethod
    def start_worker(self) -> None:
        """Start processing in the background of this process (one worker, concurrency 10)."""

    @abc.abstractmethod
    def stop_worker(self) -> None:
        """Stop processing (graceful)."""

    @abc.abstractmethod
    def finished(self) -> int:
        """How many no-op jobs are durably finished (read from the database)."""

    def seed_many(self, args: list[dict[str, Any]]) -> None:
        """Store no-op jobs before a processing run (the bulk insert, unless the system has none)."""
        self.insert_many(args)

    def seed_completed(self, count: int) -> None:
        """Store ``count`` already-completed jobs (scale mode)."""
        raise NotImplementedError(f"{self.name} has no completed-job history to seed")

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections."""


# -- measurements ------------------------------------------------------------------------------------------


def measure_insert_single(system: System, count: int) -> dict[str, float]:
    start = time.perf_counter()
    for i in range(count):
        system.insert_one(payload(i))
    return {"insert_per_s": count / (time.perf_counter() - start)}


def measure_insert_bulk(system: System, count: int, batch: int) -> dict[str, float]:
    """Bulk inserts of ``batch`` jobs; an empty result when the system has no bulk insert."""
    batches = _batches(count, batch)
    start = time.perf_counter()
    try:
        for rows in batches:
            system.insert_many(rows)
    except NotImplementedError:
        return {}
    return {"bulk_per_s": count / (time.perf_counter() - start)}


def seed(system: System, count: int, completed: int, batch: int) -> dict[str, float]:
    start = time.perf_counter()
    if completed:
        system.seed_completed(completed)
    for rows in _batches(count, batch):
        system.seed_many(rows)
    return {"seed_s": time.perf_counter() - start}


def _batches(count: int, batch: int) -> list[list[dict[str, Any]]]:
    return [[payload(i) for i in range(n, min(n + batch, count))] for n in range(0, count, batch)]


def measure_process(system: System, count: int, timeout: float) -> dict[str, float]:
    """Run ``count`` seeded jobs; throughput is counted from the first start to the last durable finish."""
    TRACKER.target = count
    system.start_worker()
    try:
        if not TRACKER.reached.wait(timeout):
            raise TimeoutError(f"{system.name}: {count} jobs did not run within {timeout} s")
        _poll(lambda: system.finished() >= count, timeout, interval=0.001)
        end = time.perf_counter()
    finally:
        system.stop_worker()
    assert TRACKER.first_start is not None
    return {"process_per_s": count / (end - TRACKER.first_start), "rss_mb": peak_rss_mb()}


def measure_latency_local(system: System, probes: int, timeout: float) -> dict[str, float]:
    system.start_worker()
    try:
        time.sleep(0.2)  # let the runtime settle into its idle state
        for i in range(probes):
            _idle_gap()
            system.insert_probe(monotonic_ns(), "")
            PROBES.wait_local(i + 1, timeout)
    finally:
        system.stop_worker()
    return percentiles(PROBES.samples)


def measure_latency_remote(system: System, probes: int, out: str, timeout: float) -> dict[str, float]:
    """Insert probes one at a time for a worker in another process, which appends each latency to ``out``."""
    path = Path(out)
    for i in range(probes):
        _idle_gap()
        system.insert_probe(monotonic_ns(), out)
        _poll(lambda n=i + 1: _lines(path) >= n, timeout, interval=0.0005)  # type: ignore[misc]
    return percentiles([int(line) for line in path.read_text().split()])


def run_worker(system: System) -> None:
    """Process jobs until SIGTERM or SIGINT (the other-process side of the cross-process latency)."""
    stop = threading.Event()
    system.start_worker()  # before our handlers: some systems install their own (Huey does)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("READY", flush=True)
    while not stop.wait(0.5):
        pass
    system.stop_worker()


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ms = sorted(s / 1e6 for s in samples_ns)
    if len(ms) < 2:
        return {"p50_ms": ms[0], "p99_ms": ms[0]}
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50_ms": cuts[49], "p99_ms": cuts[98]}


def peak_rss_mb() -> float:
    """Peak resident set size of this process (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _idle_gap() -> None:
    # A random pause, so the worker is idle when the probe arrives and probes do not phase-lock with polls.
    time.sleep(random.uniform(0.02, 0.06))


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _poll(ready: Callable[[], bool], timeout: float, interval: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not reached within {timeout} s")
        time.sleep(interval)


# -- command line --------------------------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="One benchmark measurement (normally run by bench/run.py).")
    p.add_argument(
        "command",
        choices=["insert-single", "insert-bulk", "seed", "process", "latency-local", "latency-remote", "worker"],
    )
    p.add_argument("--db", required=True, help="database URL or SQLite file path")
    p.add_argument("--variant", default="sync", choices=["sync", "async", "cpu"])
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--completed", type=int, default=0, help="seed: completed jobs to store first")
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--probes", type=int, default=100)
    p.add_argument("--out", default="", help="latency-remote: file the worker appends latencies to")
    p.add_argument("--timeout", type=float, default=300.0)
    return p.parse_args(argv)


def main(system_class: Callable[[str, str], System], argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    system = system_class(args.db, args.variant)
    try:
        result = _dispatch(system, args)
    finally:
        system.close()
    if result is not None:
        print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: peers may leave non-daemon threads behind


def _dispatch(system: System, args: argparse.Namespace) -> dict[str, float] | None:
    match args.command:
        case "insert-single":
            return measure_insert_single(system, args.count)
        case "insert-bulk":
            return measure_insert_bulk(system, args.count, args.batch)
        case "seed":
            return seed(system, args.count, args.completed, args.batch)
        case "process":
            return measure_process(system, args.count, args.timeout)
        case "latency-local":
            return measure_latency_local(system, args.probes, args.timeout)
        case "latency-remote":
            return measure_latency_remote(system, args.probes, args.out, args.timeout)
        case _:
            run_worker(system)
            return None
