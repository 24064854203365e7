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
# Random bits are read from os.urandom 4 KiB at a time (one syscall per 512 ids instead of one per id); a
# forked child drops what it inherited, so two processes never share random bits.
_RANDOM_CHUNK = 4096
_random = b""
_random_at = 0


def _drop_random() -> None:
    global _random, _random_at
    _random, _random_at = b"", 0


os.register_at_fork(after_in_child=_drop_random)


def _random_bits() -> int:
    """64 random bits from the buffer (called with ``_lock`` held)."""
    global _random, _random_at
    if _random_at >= len(_random):
        _random, _random_at = os.urandom(_RANDOM_CHUNK), 0
    _random_at += 8
    return int.from_bytes(_random[_random_at - 8:_random_at], "big")


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
        rand = _random_bits() & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | rand
    return value.to_bytes(16, "big").hex()
