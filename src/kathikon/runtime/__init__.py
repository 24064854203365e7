"""The runtime: what runs jobs in a process. ``Runtime`` is what ``Kathikon.start`` and ``kathikon worker``
run; ``execute``, ``decide`` and ``record`` are the steps of one job, usable without a running Runtime:

    decision = await execute(job, owner="me")   # run perform and decide (claim the job first)
    record(storage, [decision])                 # write the fenced ack, then emit the decision's events
"""

from __future__ import annotations

from kathikon.runtime.acker import Acker, record
from kathikon.runtime.dispatcher import Dispatcher
from kathikon.runtime.executor import Control, execute, run_perform
from kathikon.runtime.loops import LOOP_FACTORIES, Loop, LoopContext, LoopRunner
from kathikon.runtime.outcome import Decision, Emission, Failure, Result, Returned, decide, release
from kathikon.runtime.pruner import Pruner
from kathikon.runtime.runtime import Runtime, default_node_name
from kathikon.runtime.scheduler import Scheduler
from kathikon.runtime.storage_calls import StorageCalls

__all__ = [
    "LOOP_FACTORIES",
    "Acker",
    "Control",
    "Decision",
    "Dispatcher",
    "Emission",
    "Failure",
    "Loop",
    "LoopContext",
    "LoopRunner",
    "Pruner",
    "Result",
    "Returned",
    "Runtime",
    "Scheduler",
    "StorageCalls",
    "decide",
    "default_node_name",
    "execute",
    "record",
    "release",
    "run_perform",
]
