#!/usr/bin/env python3
"""Set up a local virtual environment and run Kathikon's main tasks.

Needs only python3 (3.11 or newer):

    python3 dev.py demo     # create .venv, install Kathikon, run the demo worker on SQLite
    python3 dev.py test     # create .venv, install Kathikon with test extras, run the whole suite
    python3 dev.py lint     # ruff + mypy
    python3 dev.py bench    # the side-by-side benchmark (see docs/benchmarks.md)

Extra arguments after the task name are passed on (e.g. ``python3 dev.py test -k sqlite``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".kathikon-installed"


def ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be started by an older python3
        sys.exit(f"Kathikon needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = f"{extras}:{(ROOT / 'pyproject.toml').stat().st_mtime_ns}"
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print(f"installing kathikon[{extras}] into {VENV}", flush=True)
    run([str(PYTHON), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run([str(PYTHON), "-m", "pip", "install", "--quiet", "-e", f".[{extras}]"])
    STAMP.write_text(wanted)


def run(cmd: list[str]) -> None:
    code = subprocess.call(cmd, cwd=ROOT)
    if code:
        sys.exit(code)


def main(argv: list[str]) -> None:
    task, rest = (argv[0], argv[1:]) if argv else ("demo", [])
    if task == "demo":
        ensure_venv("dev")
        run([str(BIN / "kathikon"), "demo", *rest])
    elif task == "test":
        ensure_venv("dev,postgres")
        run([str(PYTHON), "-m", "pytest", *rest])
    elif task == "lint":
        ensure_venv("dev,postgres")
        run([str(PYTHON), "-m", "ruff", "check", "."])
        run([str(PYTHON), "-m", "mypy"])
    elif task == "bench":
        ensure_venv("dev,postgres,bench")
        run([str(PYTHON), "bench/run.py", *rest])
    else:
        sys.exit(f"unknown task {task!r}; use one of: demo, test, lint, bench")


if __name__ == "__main__":
    main(sys.argv[1:])
