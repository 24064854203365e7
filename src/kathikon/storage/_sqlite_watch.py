"""Cross-process change detection for SQLite: a thread polling ``PRAGMA data_version``."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

__all__ = ["ChangeWatcher"]

_log = logging.getLogger("kathikon.storage.sqlite")


class ChangeWatcher:
    """A daemon thread polling ``PRAGMA data_version`` on its own read connection.

    The pragma is answered from the connection's shared-memory view of the WAL, so a poll every few
    milliseconds costs microseconds and no disk I/O; it changes when another connection commits.
    """

    def __init__(self, path: str, interval: float, on_change: Callable[[str | None], None],
                 on_close: Callable[[ChangeWatcher], None]) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._version = self._data_version()
        self._on_change, self._on_close, self._interval = on_change, on_close, interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kathikon-sqlite-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self._on_close(self)

    def _data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _run(self) -> None:
        try:
            while not self._stopped.wait(self._interval):
                self._poll()
        finally:
            self._conn.close()

    def _poll(self) -> None:
        try:
            version = self._data_version()
        except sqlite3.Error:
            _log.warning("kathikon: cannot read the SQLite data_version; retrying", exc_info=True)
            return
        if version != self._version:
            self._version = version
            try:
                self._on_change(None)
            except Exception:
                _log.exception("kathikon: a storage change callback raised")
