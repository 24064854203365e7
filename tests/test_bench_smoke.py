"""The benchmark harness keeps working: a --quick run of Kathikon alone on SQLite (no peers, no timings checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_quick_benchmark_measures_kathikon_on_sqlite(tmp_path: Path) -> None:
    report = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--systems", "kathikon", "--backends",
         "sqlite", "--variants", "sync", "--jobs", "200", "--probes", "5", "--markdown", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    text = report.read_text()
    assert "| Kathikon | sync |" in text
    assert "failed" not in text, text
    row = next(line for line in text.splitlines() if line.startswith("| Kathikon | sync |"))
    assert "—" not in row, row  # every column was measured
