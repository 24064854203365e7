"""The benchmark report: machine header, one markdown table per backend, Kathikon/peer ratios, targets."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import sqlite3
import sys
from collections.abc import Callable
from typing import Any

Row = dict[str, Any]

COLUMNS: list[tuple[str, str, Callable[[Row], str]]] = [
    ("System", "label", lambda r: r["label"]),
    ("Jobs", "variant", lambda r: r["variant"]),
    ("Insert/s", "insert_per_s", lambda r: _int(r.get("insert_per_s"))),
    ("Bulk insert/s", "bulk_per_s", lambda r: _int(r.get("bulk_per_s"))),
    ("Processing jobs/s", "process_per_s", lambda r: _int(r.get("process_per_s"))),
    ("Latency same process p50 / p99 ms", "local_p50", lambda r: _pair(r.get("local_p50"), r.get("local_p99"))),
    ("Latency across processes p50 / p99 ms", "remote_p50", lambda r: _pair(r.get("remote_p50"), r.get("remote_p99"))),
    ("Idle CPU %", "idle_cpu", lambda r: _num(r.get("idle_cpu"), 1)),
    ("Peak RSS MB", "rss_mb", lambda r: _num(r.get("rss_mb"), 0)),
]
BACKEND_TITLES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def render(rows: dict[str, list[Row]], extra: dict[str, Any], notes: list[str], workload: str) -> str:
    parts = [machine_header(workload)]
    for backend, backend_rows in rows.items():
        parts.append(f"### {BACKEND_TITLES[backend]}\n\n{table(backend_rows)}\n\n{ratios(backend_rows)}")
    if "scale" in extra:
        parts.append(scale_section(extra["scale"]))
    if "processes" in extra:
        parts.append(processes_section(extra["processes"]))
    checks = targets(rows, extra)
    if checks:
        parts.append("### Targets\n\n" + "\n".join(checks))
    if notes:
        parts.append("### Notes\n\n" + "\n".join(f"- {n}" for n in notes))
    return "\n\n".join(parts) + "\n"


def machine_header(workload: str) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    versions = ", ".join(
        f"{name} {_version(name)}" for name in ("kathikon", "huey", "pgqueuer", "oban") if _version(name)
    )
    return (
        f"## Benchmark run {now}\n\n"
        f"- machine: `{' '.join(platform.uname())}`, {os.cpu_count()} CPUs\n"
        f"- Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}; {versions}\n"
        f"- workload: {workload}"
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| " + " | ".join(c[0] for c in COLUMNS) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|",
    ]
    previous = None
    for row in rows:
        cells = [render_cell(row) for _, _, render_cell in COLUMNS]
        if row["label"] == previous:  # the inserts are measured once per system
            cells[2] = cells[3] = "″"
        previous = row["label"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratios(rows: list[Row]) -> str:
    """Kathikon ÷ each peer, same job variant where the peer has it."""
    ours = [r for r in rows if r["system"] == "kathikon"]
    peers = [r for r in rows if r["system"] != "kathikon"]
    lines = []
    for peer_label in dict.fromkeys(r["label"] for r in peers):
        for k in ours:
            p = _matching(peers, peer_label, k["variant"])
            lines.append(
                f"- Kathikon {k['variant']} ÷ {peer_label} {p['variant']}: "
                + ", ".join(
                    filter(
                        None,
                        [
                            _ratio("insert", k, p, "insert_per_s"),
                            _ratio("bulk insert", k, p, "bulk_per_s"),
                            _ratio("processing", k, p, "process_per_s"),
                            _ratio("latency p50 same process", p, k, "local_p50", lower=True),
                            _ratio("latency p50 across processes", p, k, "remote_p50", lower=True),
                        ],
                    )
                )
            )
    return "\n".join(lines) or "(no peer in this run)"


def scale_section(scale: dict[str, Row]) -> str:
    lines = [
        "### Scale (Kathikon, sync jobs)",
        "",
        "| Backend | Table | Processing jobs/s | Peak RSS MB | Seeding s |",
        "|---|---|---:|---:|---:|",
    ]
    for backend, r in scale.items():
        title = BACKEND_TITLES[backend]
        lines.append(
            f"| {title} | {r['available']:,} available only | {_int(r.get('empty_per_s'))} | "
            f"{_num(r.get('empty_rss'), 0)} | {_num(r.get('empty_seed_s'), 1)} |"
        )
        lines.append(
            f"| {title} | {r['available']:,} available + {r['completed']:,} completed | "
            f"{_int(r.get('full_per_s'))} | {_num(r.get('full_rss'), 0)} | "
            f"{_num(r.get('full_seed_s'), 1)} |"
        )
    return "\n".join(lines)


def processes_section(rows: dict[str, Row]) -> str:
    lines = [
        "### CPU-bound jobs, `kathikon worker --processes`",
        "",
        "| Backend | Processes | jobs/s |",
        "|---|---:|---:|",
    ]
    for backend, row in rows.items():
        for count in sorted({1, row["processes"]}):
            lines.append(f"| {BACKEND_TITLES[backend]} | {count} | {_int(row.get(f'p{count}_per_s'))} |")
    return "\n".join(lines)


# -- targets (issue 6) ------------------------------------------------------------------------------------


def targets(rows: dict[str, list[Row]], extra: dict[str, Any]) -> list[str]:
    checks: list[str] = []
    sqlite, pg = rows.get("sqlite", []), rows.get("postgres", [])
    for k in _ours(sqlite):
        v = k["variant"]
        huey = _best(sqlite, ("huey",), "process_per_s")
        if huey and k.get("process_per_s"):
            checks.append(_check(f"SQLite processing ({v}) ≥ 10× Huey", k["process_per_s"] / huey, 10, "×"))
        checks.append(
            _check(f"SQLite latency same process p50 ({v}) ≤ 2 ms", k.get("local_p50"), 2, " ms", higher=False)
        )
        checks.append(
            _check(f"SQLite latency across processes p50 ({v}) ≤ 10 ms", k.get("remote_p50"), 10, " ms", higher=False)
        )
    for k in _ours(sqlite)[:1]:
        checks.append(_check("SQLite bulk insert ≥ 100,000 jobs/s", k.get("bulk_per_s"), 100_000, "/s"))
        checks.append(_check("SQLite idle worker CPU < 2%", k.get("idle_cpu"), 2, "%", higher=False))
    for k in _ours(pg):
        best = _best(pg, ("pgqueuer", "oban"), "process_per_s")
        if best and k.get("process_per_s"):
            checks.append(
                _check(f"PostgreSQL processing ({k['variant']}) ≥ 5× best peer", k["process_per_s"] / best, 5, "×")
            )
        checks.append(
            _check(
                f"PostgreSQL latency across processes p50 ({k['variant']}) ≤ 5 ms",
                k.get("remote_p50"),
                5,
                " ms",
                higher=False,
            )
        )
    for k in _ours(pg)[:1]:
        checks.append(_check("PostgreSQL bulk insert ≥ 50,000 jobs/s", k.get("bulk_per_s"), 50_000, "/s"))
    for backend, r in extra.get("scale", {}).items():
        if r.get("empty_per_s") and r.get("full_per_s"):
            checks.append(
                _check(
                    f"{BACKEND_TITLES[backend]} scale: throughput with history ≥ 80% of empty",
                    100 * r["full_per_s"] / r["empty_per_s"],
                    80,
                    "%",
                )
            )
        checks.append(
            _check(f"{BACKEND_TITLES[backend]} scale: worker RSS < 150 MB", r.get("full_rss"), 150, " MB", higher=False)
        )
    for backend, procs in extra.get("processes", {}).items():
        many = procs.get(f"p{procs['processes']}_per_s")
        if procs.get("p1_per_s") and many:
            name = f"{BACKEND_TITLES[backend]} --processes {procs['processes']} ≥ 1.7× one process"
            checks.append(_check(name, many / procs["p1_per_s"], 1.7, "×"))
    return checks


def _check(name: str, value: float | None, bound: float, unit: str, *, higher: bool = True) -> str:
    if value is None:
        return f"- [ ] {name}: not measured"
    met = value >= bound if higher else value <= bound
    return f"- [{'x' if met else ' '}] {name}: {_fmt(value)}{unit} ({'met' if met else 'NOT met'})"


def _ours(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r["system"] == "kathikon"]


def _best(rows: list[Row], systems: tuple[str, ...], key: str) -> float | None:
    values = [r[key] for r in rows if r["system"] in systems and r.get(key)]
    return max(values) if values else None


def _matching(peers: list[Row], label: str, variant: str) -> Row:
    same = [r for r in peers if r["label"] == label]
    return next((r for r in same if r["variant"] == variant), same[0])


def _ratio(name: str, num: Row, den: Row, key: str, *, lower: bool = False) -> str:
    a, b = num.get(key), den.get(key)
    if not a or not b:
        return ""
    return f"{name} {a / b:.1f}×{' lower' if lower else ''}"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _int(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _num(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _pair(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "—"
    return f"{_fmt(a)} / {_fmt(b)}"
