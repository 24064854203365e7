#!/usr/bin/env python3
"""Kathikon's side-by-side benchmark: one command, one table per backend, Kathikon/peer ratios.

    python bench/run.py                  # N=5,000 jobs, every backend and peer that is available
    python bench/run.py --quick          # a smoke run (N=500, few latency probes)
    python bench/run.py --jobs 20000 --backends sqlite --systems kathikon,huey
    python bench/run.py --scale          # 1,000,000 completed + 100,000 available jobs vs an empty table
    python bench/run.py --processes 2    # CPU-bound jobs: `kathikon worker --processes 2` vs 1

Every measurement runs in its own subprocess on a fresh database (a new SQLite file, a new PostgreSQL
database that is dropped afterwards), so memory and state never leak between them. The table is printed as
markdown and written to ``--markdown`` (default bench/results/latest.md). See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make ``bench`` importable as a package
    sys.path.insert(0, str(ROOT))

from bench.harness import Options, run  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def parse(argv: list[str]) -> Options:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", type=int, default=None, help="jobs per processing run (default 5000; --quick 500)")
    p.add_argument("--quick", action="store_true", help="a short smoke run")
    p.add_argument("--probes", type=int, default=None, help="latency probes per run (default 100; --quick 15)")
    p.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    p.add_argument(
        "--systems",
        default="kathikon,huey,pgqueuer,oban",
        help="comma-separated: kathikon, huey, pgqueuer, oban (peers missing here are skipped)",
    )
    p.add_argument("--variants", default="sync,async", help="comma-separated: sync, async")
    p.add_argument("--scale", action="store_true", help="run the scale check instead of the main table")
    p.add_argument("--scale-completed", type=int, default=1_000_000)
    p.add_argument("--scale-available", type=int, default=100_000)
    p.add_argument("--processes", type=int, default=0, help="run the CPU-bound multi-process check instead")
    p.add_argument("--repeat", type=int, default=1, help="processing runs per row; the median is reported")
    p.add_argument(
        "--pg-url",
        default=os.environ.get("KATHIKON_BENCH_DATABASE_URL", DEFAULT_PG),
        help="PostgreSQL server; each measurement creates and drops its own database there",
    )
    p.add_argument(
        "--markdown",
        default=str(ROOT / "bench" / "results" / "latest.md"),
        help="where to write the markdown report ('' to skip)",
    )
    a = p.parse_args(argv)
    return Options(
        jobs=a.jobs or (500 if a.quick else 5000),
        probes=a.probes or (15 if a.quick else 100),
        quick=a.quick,
        backends=_split(a.backends, {"sqlite", "postgres"}),
        systems=_split(a.systems, {"kathikon", "huey", "pgqueuer", "oban"}),
        variants=_split(a.variants, {"sync", "async"}),
        scale=a.scale,
        scale_completed=a.scale_completed // (50 if a.quick else 1),
        scale_available=a.scale_available // (50 if a.quick else 1),
        processes=a.processes,
        repeat=a.repeat,
        pg_url=a.pg_url,
        markdown=Path(a.markdown) if a.markdown else None,
    )


def _split(text: str, known: set[str]) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    unknown = sorted(set(items) - known)
    if unknown:
        sys.exit(f"unknown name {unknown[0]!r}; choose from {', '.join(sorted(known))}")
    return items


if __name__ == "__main__":
    sys.exit(run(parse(sys.argv[1:])))
