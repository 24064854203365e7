"""Job ids stay unique across a fork; the plain-JSON test that lets inserts skip decoding is exact."""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

import pytest

from kathikon._ids import new_job_id
from kathikon._json import ENCODER, dumps_plain, loads, round_trips


@pytest.mark.skipif(sys.platform == "win32", reason="needs os.fork")
def test_a_forked_child_never_reuses_the_random_bits_of_its_parent() -> None:
    new_job_id()  # the parent has random bits buffered now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id and leave at once
        os.write(write, new_job_id().encode())
        os._exit(0)
    os.close(write)
    parent_id = new_job_id()
    child_id = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child_id) == 32
    assert child_id[-15:] != parent_id[-15:]


def test_ids_increase_and_never_repeat() -> None:
    ids = [new_job_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("value", [
    {}, [], {"n": 1, "x": 2.5, "s": "ü", "none": None, "ok": False, "list": [1, {"k": [None]}]}, "text", 3,
])
def test_plain_json_values_round_trip(value: Any) -> None:
    assert round_trips(value)


class Key(str):
    pass


def _holding_itself() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["me"] = value
    return value


@pytest.mark.parametrize("value", [
    {"pair": (1, 2)}, {"a": {1: "one"}}, {"x": float("nan")}, {"x": float("inf")}, {Key("k"): 1},
    {"when": object()}, [(1,)], _holding_itself(),
])
def test_values_json_would_change_or_refuse_do_not_round_trip(value: Any) -> None:
    assert not round_trips(value)


def test_ids_have_the_uuid7_layout_with_the_creation_millisecond_first() -> None:
    import time
    import uuid

    before = time.time_ns() // 1_000_000
    job_id = new_job_id()
    after = time.time_ns() // 1_000_000

    parsed = uuid.UUID(job_id)
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert before <= int(job_id[:12], 16) <= after
    assert re.fullmatch(r"[0-9a-f]{32}", job_id)


def test_ids_within_one_millisecond_count_up_and_borrow_the_next_after_4096(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from kathikon import _ids

    monkeypatch.setattr(_ids.time, "time_ns", lambda: 1_700_000_000_000 * 1_000_000)
    monkeypatch.setattr(_ids, "_last_ms", 0)
    ids = [new_job_id() for _ in range(4097)]

    assert ids == sorted(ids)
    assert len(set(ids)) == 4097
    assert {job_id[:12] for job_id in ids[:4096]} == {f"{1_700_000_000_000:012x}"}
    assert [job_id[12:16] for job_id in ids[:2]] == ["7000", "7001"]
    assert ids[4096][:16] == f"{1_700_000_000_001:012x}7000"


@pytest.mark.parametrize("value", [
    {}, [], {"n": 1, "x": 2.5, "big": 1e300, "s": "ü\n\"\\", "none": None, "ok": False, "l": [1, {"k": [None]}]},
    ["a", -0.0, 10**30],
])
def test_plain_json_is_written_as_the_encoder_writes_it_and_read_back_equal(value: Any) -> None:
    text = dumps_plain(value)

    assert text == ENCODER.encode(value)
    assert loads(text) == value == json.loads(text)


def test_reading_json_accepts_what_json_loads_accepts_and_reports_its_errors() -> None:
    assert loads(' {"a": [1, 2]} ') == {"a": [1, 2]}
    with pytest.raises(json.JSONDecodeError):
        loads('{"a": 1} x')
    with pytest.raises(json.JSONDecodeError):
        loads("")
