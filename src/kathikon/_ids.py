"""Time-ordered job ids: UUIDv7 layout rendered as 32 lowercase hex digits.

The first 48 bits are milliseconds since the epoch, so ids sort by creation time (and claim order uses
``id`` as the last tie-breaker). Within one millisecond a per-process counter keeps them increasing.
"""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_seq = 0


def new_job_id() -> str:
    """A new unique, time-ordered 32-hex-digit id."""
    global _last_ms, _seq
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _seq += 1
            if _seq >= 1 << 12:  # 4096 ids in one millisecond: borrow the next millisecond
                ms += 1
                _seq = 0
        else:
            _seq = 0
        _last_ms = ms
        seq = _seq
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | rand
    return f"{value:032x}"
