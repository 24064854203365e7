"""Kathikon workers for the benchmark: importable by path from any process (``bench.workloads:NoopSync``)."""

from __future__ import annotations

from bench.common import noop_ran, probe_ran
from kathikon import Worker
from kathikon.job import Job


class NoopSync(Worker):
    """A no-op job run in the runtime's thread pool."""

    def perform(self, job: Job) -> None:
        noop_ran()


class NoopAsync(Worker):
    """A no-op job run as an asyncio task."""

    async def perform(self, job: Job) -> None:
        noop_ran()


class ProbeSync(Worker):
    """Records insert→start latency (args: t0 = CLOCK_MONOTONIC ns at insert, out = sample file or "")."""

    def perform(self, job: Job) -> None:
        probe_ran(job.args["t0"], job.args["out"])


class ProbeAsync(Worker):
    async def perform(self, job: Job) -> None:
        probe_ran(job.args["t0"], job.args["out"])


class CpuBound(Worker):
    """Burns a fixed amount of pure-Python CPU (for ``--processes``): about 1 ms per job on this machine
    (30,000 loops; 5,000 until 2026-11-25, which was 0.16 ms, so the check measured queue overhead)."""

    def perform(self, job: Job) -> None:
        total = 0
        for i in range(job.args.get("loops", 30_000)):
            total += i * i
        noop_ran()


NOOP: dict[str, type[Worker]] = {"sync": NoopSync, "async": NoopAsync, "cpu": CpuBound}
PROBE: dict[str, type[Worker]] = {"sync": ProbeSync, "async": ProbeAsync, "cpu": ProbeSync}
