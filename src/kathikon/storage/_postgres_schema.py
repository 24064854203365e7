"""Kathikon's tables in one PostgreSQL schema: the SQL with the schema filled in, and the migrations.

Migrations run in the caller's transaction under a transaction-level advisory lock keyed on the schema, so
nodes starting at the same moment apply each migration exactly once and the others then see it done. The
schema is created only when missing (``CREATE SCHEMA IF NOT EXISTS`` would need the CREATE privilege even when
it exists), so an app role that may not create schemas can use one made for it.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import DictRow

from kathikon.exceptions import SchemaVersionError
from kathikon.storage import _sql

__all__ = ["SchemaSql"]


class SchemaSql:
    """The named statements and migrations of the PostgreSQL backend for the schema ``name``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.quoted = sql.Identifier(name).as_string()
        self.queries = {key: self._fill(text) for key, text in _sql.queries("postgres").items()}
        self.migrations = [(m.version, self._fill(m.sql)) for m in _sql.migrations("postgres")]

    def _fill(self, text: str) -> str:
        return text.replace("{schema}", self.quoted)

    def migrate(self, cur: psycopg.Cursor[DictRow]) -> None:
        """Apply the missing migrations; SchemaVersionError (changing nothing) when the stored one is newer."""
        self._lock(cur)
        cur.execute(self.queries["schema_exists"], {"schema": self.name})
        if cur.fetchone() is None:
            cur.execute(self.queries["create_schema"])
        current, latest = self.version(cur), len(self.migrations)
        if current > latest:
            raise SchemaVersionError(
                f"the Kathikon tables in schema {self.name!r} are at schema version {current}, newer than the "
                f"{latest} this Kathikon understands; upgrade Kathikon (nothing was changed)"
            )
        for version, statements in self.migrations[current:]:
            cur.execute(statements)
            cur.execute(self.queries["record_version"], {"version": version})

    def recreate(self, cur: psycopg.Cursor[DictRow]) -> None:
        """Drop Kathikon's tables (no other) and build them again."""
        self._lock(cur)
        cur.execute(self.queries["drop_tables"])
        self.migrate(cur)

    def version(self, cur: psycopg.Cursor[Any]) -> int:
        """The stored schema version; 0 when Kathikon's tables do not exist yet."""
        cur.execute(self.queries["schema_table"], {"table": f"{self.quoted}.kathikon_schema"})
        row = cur.fetchone()
        if row is None or not row["present"]:
            return 0
        cur.execute(self.queries["schema_version"])
        row = cur.fetchone()
        return 0 if row is None else int(row["version"])

    def _lock(self, cur: psycopg.Cursor[Any]) -> None:
        cur.execute(self.queries["migration_lock"], {"key": f"kathikon:{self.name}"})
