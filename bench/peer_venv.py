"""Peers that cannot run in the project's interpreter get their own virtualenv, built on demand.

Oban for Python requires Python ≥ 3.12 while the project supports 3.11, so its measurements run under
bench/.venv-oban (gitignored), created with the first Python ≥ 3.12 found: ``$KATHIKON_BENCH_PYTHON312``,
then ``python3.12`` / ``python3.13`` on PATH (each is run, since a pyenv shim may exist and fail), then
pyenv's installs (``$PYENV_ROOT`` or ~/.pyenv, and /root/.pyenv). Without one the peer is skipped with a note.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIN_VERSION = (3, 12)
CHECK = "import sys; print('%d.%d.%d' % sys.version_info[:3]); sys.exit(sys.version_info < (3, 12))"


@dataclass(frozen=True)
class PeerPython:
    """The interpreter of a peer's virtualenv, or why there is none."""

    python: str = ""
    version: str = ""
    problem: str = ""


@dataclass(frozen=True)
class Venv:
    path: Path
    packages: tuple[str, ...]
    imports: tuple[str, ...]


OBAN = Venv(ROOT / "bench" / ".venv-oban", ("oban", "psycopg"), ("oban", "psycopg", "psycopg_pool"))


@functools.cache
def oban_python() -> PeerPython:
    return ensure(OBAN)


def ensure(venv: Venv) -> PeerPython:
    """The venv's interpreter, creating the venv and installing its packages when it does not work yet."""
    python = venv.path / "bin" / "python"
    version = _importable(python, venv.imports)
    if version:
        return PeerPython(str(python), version)
    base = find_python312()
    if base is None:
        return PeerPython(problem="it needs Python ≥ 3.12 and none was found (set KATHIKON_BENCH_PYTHON312)")
    print(f"building {venv.path} with {base} …", file=sys.stderr, flush=True)
    problem = _build(venv, base)
    version = "" if problem else _importable(python, venv.imports)
    if not version:
        return PeerPython(problem=problem or f"{', '.join(venv.imports)} cannot be imported in {venv.path}")
    return PeerPython(str(python), version)


def find_python312() -> str | None:
    """The first candidate interpreter that runs and is Python ≥ 3.12."""
    return next((c for c in _candidates() if _version(c)), None)


def _candidates() -> list[str]:
    found = [os.environ.get("KATHIKON_BENCH_PYTHON312", "")]
    found += [shutil.which(name) or "" for name in ("python3.12", "python3.13")]
    roots = {Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")), Path("/root/.pyenv")}
    for root in sorted(roots):
        found += [str(p) for p in sorted((root / "versions").glob("3.1[2-9]*/bin/python"))]
    return [c for c in found if c]


def _version(python: str | Path) -> str:
    """``python``'s version when it runs and is ≥ 3.12, else ""."""
    try:
        proc = subprocess.run([str(python), "-c", CHECK], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _importable(python: Path, imports: tuple[str, ...]) -> str:
    version = _version(python) if python.exists() else ""
    if not version:
        return ""
    proc = subprocess.run([str(python), "-c", f"import {', '.join(imports)}"], capture_output=True, check=False)
    return version if proc.returncode == 0 else ""


def dist_version(python: str, dist: str) -> str:
    """The version of distribution ``dist`` installed for ``python`` ("" when unknown)."""
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _build(venv: Venv, base: str) -> str:
    """Create the venv and pip-install its packages; a description of the failure, or ""."""
    steps = [
        [base, "-m", "venv", "--clear", str(venv.path)],
        [str(venv.path / "bin" / "python"), "-m", "pip", "install", "--quiet", *venv.packages],
    ]
    for argv in steps:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            return f"`{' '.join(argv[:4])} …` failed: {tail}"
    return ""
