"""Cross-process change detection for SQLite: a thread polling ``PRAGMA data_version``.

The pragma is read on the storage's own writer connection, where it changes only when *another* connection
commits (another process, or the application's connection passed as ``insert(conn=…)``): this instance's
own claims and acks never wake it, so a busy worker is not woken by itself every few milliseconds.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable

__all__ = ["ChangeWatcher"]

_log = logging.getLogger("kathikon.storage.sqlite")


class ChangeWatcher:
    """A daemon thread polling ``read_version`` (the writer connection's ``PRAGMA data_version``, or None
    while that connection is busy: the next poll sees the change then).

    The pragma is answered from the connection's shared-memory view of the WAL (no disk I/O). Polls run
    every ``interval`` while commits keep coming; after
    ``IDLE_AFTER`` quiet polls the watcher slows to ``IDLE_FACTOR`` × interval, because on a virtual machine
    each wake-up of a sleeping thread costs tens of microseconds and 200 of them a second add up. The first
    commit after a quiet spell is seen within the slow interval, every following one within ``interval``.
    """

    IDLE_AFTER = 200
    IDLE_FACTOR = 10

    def __init__(self, read_version: Callable[[bool], int | None], interval: float,
                 on_change: Callable[[str | None], None], on_close: Callable[[ChangeWatcher], None]) -> None:
        self._read_version = read_version
        self._version = read_version(True)  # the baseline: wait for the connection rather than miss a commit
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

    def _run(self) -> None:
        # time.sleep wakes up for about half the CPU of Event.wait; close() waits one interval at most.
        quiet = 0
        while not self._stopped.is_set():
            slow = quiet >= self.IDLE_AFTER
            time.sleep(self._interval * self.IDLE_FACTOR if slow else self._interval)
            quiet = 0 if self._poll() else quiet + 1

    def _poll(self) -> bool:
        """Call on_change if another connection committed since the last poll; True when one did."""
        try:
            version = self._read_version(False)
        except sqlite3.Error:
            _log.warning("kathikon: cannot read the SQLite data_version; retrying", exc_info=True)
            return False
        if version is None or version == self._version:
            return False
        self._version = version
        try:
            self._on_change(None)
        except Exception:
            _log.exception("kathikon: a storage change callback raised")
        return True
