"""Storage: the behaviour (``base.Storage``) and the backend chosen by the database URL.

``open_storage(url)`` imports only the backend module the URL names, so a driver (psycopg) is needed only
when its backend is used.
"""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from kathikon.config import check_database_url
from kathikon.storage.base import Ack, NodeRecord, Storage, Subscription

__all__ = ["Ack", "NodeRecord", "Storage", "Subscription", "open_storage"]

_BACKENDS = {
    "sqlite": "kathikon.storage.sqlite:SQLiteStorage",
    "postgresql": "kathikon.storage.postgres:PostgresStorage",
    "postgres": "kathikon.storage.postgres:PostgresStorage",
    "memory": "kathikon.storage.memory:MemoryStorage",
}


def open_storage(url: str) -> Storage:
    """Open (but do not set up) the storage backend that ``url`` names."""
    check_database_url(url)
    module_name, _, class_name = _BACKENDS[urlsplit(url).scheme].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    storage: Storage = cls.from_url(url)
    return storage
