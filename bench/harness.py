"""The orchestrator behind bench/run.py: fresh databases, one subprocess per measurement, the result rows."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench import peer_venv, report

ROOT = Path(__file__).resolve().parent.parent
Row = dict[str, Any]
Step = Callable[["Spec", str, str, "Options"], Row]


@dataclass(frozen=True)
class Options:
    jobs: int
    probes: int
    quick: bool
    backends: list[str]
    systems: list[str]
    variants: list[str]
    scale: bool
    scale_completed: int
    scale_available: int
    processes: int
    repeat: int
    pg_url: str
    markdown: Path | None


@dataclass(frozen=True)
class Spec:
    """One system under test: its measurement module, where it runs and what it needs installed.

    ``python`` is the interpreter its subprocesses run under: this one ("") unless the peer lives in its own
    virtualenv (``own_venv``, see bench/peer_venv.py), whose interpreter is filled in when it is available.
    """

    name: str
    label: str
    module: str
    backends: tuple[str, ...]
    variants: tuple[str, ...]
    requires: tuple[str, ...]
    own_venv: bool = False
    python: str = ""


SPECS = (
    Spec("kathikon", "Kathikon", "bench.kathikon_bench", ("sqlite", "postgres"), ("sync", "async"), ("kathikon",)),
    Spec("huey", "Huey", "bench.peers.huey_bench", ("sqlite",), ("sync",), ("huey",)),
    Spec(
        "pgqueuer", "PgQueuer", "bench.peers.pgqueuer_bench", ("postgres",), ("sync", "async"), ("pgqueuer", "asyncpg")
    ),
    Spec(
        "oban",
        "Oban-py",
        "bench.peers.oban_bench",
        ("postgres",),
        ("sync", "async"),
        (),
        own_venv=True,
    ),
)


class MeasurementError(RuntimeError):
    """A measurement subprocess failed; the message ends with its last stderr lines."""


@dataclass
class Results:
    """Rows per backend plus notes about what was skipped or failed."""

    rows: dict[str, list[Row]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


# -- entry point ------------------------------------------------------------------------------------------


def run(opts: Options) -> int:
    results = Results()
    backends = [b for b in opts.backends if _backend_ready(b, opts, results)]
    if opts.scale:
        for backend in backends:
            results.extra.setdefault("scale", {})[backend] = measure_scale(backend, opts, results)
    elif opts.processes:
        for backend in backends:
            results.extra.setdefault("processes", {})[backend] = measure_processes(opts, results, backend)
    else:
        for backend in backends:
            results.rows[backend] = measure_backend(backend, opts, results)
    text = report.render(results.rows, results.extra, results.notes, workload(opts))
    print(text)
    if opts.markdown is not None:
        opts.markdown.parent.mkdir(parents=True, exist_ok=True)
        opts.markdown.write_text(text)
        print(f"written to {opts.markdown}", file=sys.stderr)
    return 0


def workload(opts: Options) -> str:
    if opts.scale:
        return (
            f"{opts.scale_available:,} available no-op jobs (sync), in an otherwise empty table and next to "
            f"{opts.scale_completed:,} completed ones; one worker process, concurrency 10"
        )
    if opts.processes:
        return f"{opts.jobs:,} CPU-bound jobs (about 1 ms of pure Python each), concurrency 10 per process"
    return (
        f"{opts.jobs:,} no-op jobs with a small dict argument, one worker process, concurrency 10 "
        f"(processing: median of {opts.repeat} run(s)); latency: {opts.probes} probes inserted one at a "
        "time into an idle worker"
    )


def _backend_ready(backend: str, opts: Options, results: Results) -> bool:
    if backend == "sqlite":
        return True
    try:
        _pg_admin(opts.pg_url, "SELECT 1")
    except Exception as exc:
        results.notes.append(f"PostgreSQL skipped: cannot reach {opts.pg_url} ({exc})")
        return False
    return True


def _available(spec: Spec, results: Results) -> Spec | None:
    """The spec ready to run (with its own interpreter filled in), or None with a note saying why not."""
    if spec.own_venv:
        return _in_own_venv(spec, results)
    missing = [m for m in spec.requires if importlib.util.find_spec(m) is None]
    if missing:
        results.notes.append(f"{spec.label} skipped: {', '.join(missing)} cannot be imported (not installed)")
        return None
    return spec


def _in_own_venv(spec: Spec, results: Results) -> Spec | None:
    peer = peer_venv.oban_python()
    if not peer.python:
        results.notes.append(f"{spec.label} not measured: {peer.problem}")
        return None
    note = f"{spec.label} {peer_venv.dist_version(peer.python, 'oban')} ran under Python {peer.version} ({peer.python})"
    if note not in results.notes:
        results.notes.append(note)
    return replace(spec, python=peer.python)


# -- the main table ---------------------------------------------------------------------------------------


def measure_backend(backend: str, opts: Options, results: Results) -> list[Row]:
    rows: list[Row] = []
    for spec in SPECS:
        if spec.name in opts.systems and backend in spec.backends:
            ready = _available(spec, results)
            if ready is not None:
                rows.extend(measure_system(ready, backend, opts, results))
    return rows


def measure_system(spec: Spec, backend: str, opts: Options, results: Results) -> list[Row]:
    print(f"== {spec.label} on {backend}", file=sys.stderr, flush=True)
    inserts: Row = {}
    _attempt(results, spec, backend, "insert", lambda: inserts.update(_measure_inserts(spec, backend, opts)))
    rows = []
    for variant in [v for v in spec.variants if v in opts.variants]:
        row: Row = {"system": spec.name, "label": spec.label, "variant": variant, **inserts}
        for name, step in (
            ("process", _measure_process),
            ("latency-local", _measure_local),
            ("latency-remote", _measure_remote),
        ):

            def action(step: Step = step, row: Row = row, variant: str = variant) -> None:
                row.update(step(spec, backend, variant, opts))

            _attempt(results, spec, backend, f"{name} ({variant})", action)
        rows.append(row)
    return rows


def _attempt(results: Results, spec: Spec, backend: str, what: str, action: Callable[[], None]) -> None:
    started = time.perf_counter()
    try:
        action()
    except (MeasurementError, subprocess.TimeoutExpired, TimeoutError) as exc:
        results.notes.append(f"{spec.label} on {backend}, {what}: failed: {exc}")
    print(f"   {what}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)


def _measure_inserts(spec: Spec, backend: str, opts: Options) -> Row:
    single = min(opts.jobs, 1000)
    with fresh_db(backend, opts.pg_url) as db:
        row = measure(spec.module, "insert-single", db, python=spec.python, count=single)
    with fresh_db(backend, opts.pg_url) as db:
        row.update(measure(spec.module, "insert-bulk", db, python=spec.python, count=opts.jobs, batch=1000))
    return row


def _measure_process(spec: Spec, backend: str, variant: str, opts: Options) -> Row:
    """The median throughput of ``opts.repeat`` runs (each on a fresh database), and the highest peak RSS."""
    runs = []
    for _ in range(opts.repeat):
        with fresh_db(backend, opts.pg_url) as db:
            measure(spec.module, "seed", db, python=spec.python, variant=variant, count=opts.jobs, batch=1000)
            runs.append(measure(spec.module, "process", db, python=spec.python, variant=variant, count=opts.jobs))
    return {
        "process_per_s": statistics.median(r["process_per_s"] for r in runs),
        "rss_mb": max(r["rss_mb"] for r in runs),
    }


def _measure_local(spec: Spec, backend: str, variant: str, opts: Options) -> Row:
    with fresh_db(backend, opts.pg_url) as db:
        r = measure(spec.module, "latency-local", db, python=spec.python, variant=variant, probes=opts.probes)
    return {"local_p50": r["p50_ms"], "local_p99": r["p99_ms"]}


def _measure_remote(spec: Spec, backend: str, variant: str, opts: Options) -> Row:
    with (
        fresh_db(backend, opts.pg_url) as db,
        tempfile.TemporaryDirectory() as tmp,
        worker_process(spec.module, db, variant, python=spec.python) as worker,
    ):
        out = str(Path(tmp) / "latencies.txt")
        r = measure(
            spec.module, "latency-remote", db, python=spec.python, variant=variant, probes=opts.probes, out=out
        )
        row: Row = {"remote_p50": r["p50_ms"], "remote_p99": r["p99_ms"]}
        if variant == spec.variants[0]:
            row["idle_cpu"] = idle_cpu_percent(worker.pid, 1.0 if opts.quick else 3.0)
    return row


# -- scale and processes ----------------------------------------------------------------------------------


def measure_scale(backend: str, opts: Options, results: Results) -> Row:
    """Processing ``scale_available`` jobs on an otherwise empty table, then next to ``scale_completed``."""
    spec = SPECS[0]
    row: Row = {"completed": opts.scale_completed, "available": opts.scale_available}
    for key, completed in (("empty", 0), ("full", opts.scale_completed)):

        def step(key: str = key, completed: int = completed) -> None:
            with fresh_db(backend, opts.pg_url) as db:
                seeded = measure(
                    spec.module, "seed", db, count=opts.scale_available, completed=completed, batch=10_000, timeout=3600
                )
                r = measure(spec.module, "process", db, count=opts.scale_available, timeout=3600)
            row.update(
                {f"{key}_per_s": r["process_per_s"], f"{key}_rss": r["rss_mb"], f"{key}_seed_s": seeded["seed_s"]}
            )

        _attempt(results, spec, backend, f"scale ({key})", step)
    return row


def measure_processes(opts: Options, results: Results, backend: str) -> Row:
    """CPU-bound jobs through ``kathikon worker --processes P`` against ``--processes 1``."""
    from bench import processes

    row: Row = {"processes": opts.processes}
    if not processes.supported():
        results.notes.append("--processes skipped: `kathikon worker` has no --processes option yet")
        return row
    for count in sorted({1, opts.processes}):

        def step(count: int = count) -> None:
            with fresh_db(backend, opts.pg_url) as db:
                row[f"p{count}_per_s"] = processes.measure(db, count, opts.jobs)

        _attempt(results, SPECS[0], backend, f"--processes {count}", step)
    return row


# -- plumbing ---------------------------------------------------------------------------------------------


def measure(
    module: str, command: str, db: str, *, python: str = "", variant: str = "sync", timeout: float = 600, **flags: Any
) -> Row:
    """Run one measurement subprocess (under ``python``, default this interpreter) and return its RESULT."""
    argv = [python or sys.executable, "-m", module, command, "--db", db, "--variant", variant]
    argv += ["--timeout", str(timeout)]
    for name, value in flags.items():
        argv += [f"--{name}", str(value)]
    proc = subprocess.run(
        argv, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=timeout + 60, check=False
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result: Row = json.loads(line.removeprefix("RESULT "))
            return result
    raise MeasurementError(f"{module} {command} exited {proc.returncode}: {_tail(proc.stderr)}")


@contextlib.contextmanager
def worker_process(
    module: str, db: str, variant: str, *, python: str = "", ready_timeout: float = 60
) -> Iterator[subprocess.Popen[str]]:
    """A worker in its own process (under ``python``, default this interpreter), from READY until SIGTERM."""
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            [python or sys.executable, "-m", module, "worker", "--db", db, "--variant", variant],
            cwd=ROOT,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        try:
            _wait_ready(proc, ready_timeout, errors)
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(proc: subprocess.Popen[str], timeout: float, errors: Any) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.1)[0]:
            line = proc.stdout.readline()
            if line.strip() == "READY":
                return
            if not line:
                break
    errors.seek(0)
    raise MeasurementError(f"worker did not start (exit {proc.poll()}): {_tail(errors.read())}")


def idle_cpu_percent(pid: int, seconds: float) -> float:
    """CPU used by an idle process over ``seconds``, in percent of one core."""
    import psutil

    process = psutil.Process(pid)
    time.sleep(1.0)  # let the last probe's work and any backoff settle
    before = process.cpu_times()
    time.sleep(seconds)
    after = process.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return 100.0 * used / seconds


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.setdefault("PYTHONHASHSEED", "0")
    return env


@contextlib.contextmanager
def fresh_db(backend: str, pg_url: str) -> Iterator[str]:
    """A new SQLite file path, or the URL of a new PostgreSQL database dropped afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="kathikon-bench-") as tmp:
            yield str(Path(tmp) / "jobs.db")
        return
    name = f"kathikon_bench_{uuid.uuid4().hex[:12]}"
    _pg_admin(pg_url, f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(pg_url)._replace(path=f"/{name}", query=""))
    finally:
        _pg_admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_admin(pg_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.encode())


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"
