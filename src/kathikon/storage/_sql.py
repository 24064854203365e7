"""SQL kept in ``.sql`` files beside the backends, loaded once with importlib.resources.

Layout per backend (``sql/<backend>/``):
  ``migrations/NNN_description.sql``  one file per schema version, applied in order, never edited once released
  ``queries.sql``                     named statements, each introduced by a line ``-- name: <query_name>``
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

__all__ = ["Migration", "migrations", "queries"]

_NAME_LINE = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_MIGRATION_FILE = re.compile(r"^(\d{3})_(\w+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@cache
def queries(backend: str) -> dict[str, str]:
    """The named statements of ``sql/<backend>/queries.sql``."""
    text = files("kathikon.storage").joinpath("sql", backend, "queries.sql").read_text(encoding="utf-8")
    parts = _NAME_LINE.split(text)
    return {name: body.strip().rstrip(";") for name, body in zip(parts[1::2], parts[2::2], strict=True)}


@cache
def migrations(backend: str) -> tuple[Migration, ...]:
    """The migrations of ``sql/<backend>/migrations``, ordered by version (1, 2, …, no gaps)."""
    folder = files("kathikon.storage").joinpath("sql", backend, "migrations")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{backend} migrations must be numbered 001, 002, … without gaps")
    return tuple(found)
