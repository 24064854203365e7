"""Job ids stay unique across a fork; the plain-JSON test that lets inserts skip decoding is exact."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from kathikon._ids import new_job_id
from kathikon._json import round_trips


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
