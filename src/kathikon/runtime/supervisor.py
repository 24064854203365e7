"""The supervisor behind ``kathikon worker --processes N``: N worker processes sharing one database.

For CPU-bound work one Python process is not enough. The supervisor starts N children (each a complete
``kathikon worker`` with its own node, dispatchers and heartbeat), restarts any child that exits while the
supervisor is not stopping, with exponential backoff (a crash loop does not spin), and forwards SIGTERM/SIGINT
so every child stops gracefully. It runs no jobs and holds no database connection itself.

- Children run in their own process group, so a Ctrl-C in the terminal reaches only the supervisor, which
  forwards exactly one SIGTERM (a second Ctrl-C forwards a second one: children release their jobs at once).
- A child that exits with the start-up error code (2: bad configuration, an app module that does not import)
  stops the whole supervisor with that code: restarting would only repeat the error.
- A child's jobs are never lost when it dies: its node record names its pid, so its siblings see at their
  next heartbeat that the process is gone and the leader's lifeline rescues its jobs (see docs/reliability.md).
- If the supervisor itself is killed with SIGKILL its children keep running as ordinary workers; stop them
  with SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

__all__ = ["STARTUP_ERROR", "Child", "Supervisor"]

logger = logging.getLogger("kathikon.supervisor")

#: The exit code of ``kathikon worker`` for bad input found before anything ran.
STARTUP_ERROR = 2
TICK_SECONDS = 0.2


class Process(Protocol):
    """What the supervisor needs of a child process (``subprocess.Popen`` has it)."""

    pid: int

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...


Spawn = Callable[[], Process]


@dataclass
class Child:
    """One of the N slots: its current process, when it started, and its restart schedule."""

    slot: int
    process: Process | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    backoff: float = 0.0
    restarts: int = 0


class Supervisor:
    """Keeps ``processes`` children of ``spawn`` running. ``start(now)``, ``tick(now)`` often, ``stop()``.

    ``now`` is ``time.monotonic()`` seconds. A child that ran less than ``stable_after`` seconds before
    exiting waits twice as long as last time before its restart (from ``min_backoff`` up to ``max_backoff``);
    one that ran longer restarts after ``min_backoff``.
    """

    def __init__(self, spawn: Spawn, processes: int, *, min_backoff: float = 0.5, max_backoff: float = 10.0,
                 stable_after: float = 5.0) -> None:
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            raise ValueError(f"processes must be a positive integer, got {processes!r}")
        self.spawn = spawn
        self.children = [Child(slot) for slot in range(processes)]
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.stopping = False
        self.exit_code = 0

    @classmethod
    def for_command(cls, command: Sequence[str], processes: int, env: Mapping[str, str] | None = None,
                    **options: float) -> Supervisor:
        """Children run ``command`` in their own process group (see the module docstring)."""
        def spawn() -> Process:
            return subprocess.Popen(list(command), env=None if env is None else dict(env), process_group=0)
        return cls(spawn, processes, **options)

    @property
    def done(self) -> bool:
        """True once stopping and every child has exited."""
        return self.stopping and all(c.process is None for c in self.children)

    def start(self, now: float) -> None:
        if self.stopping:
            return
        for child in self.children:
            self._launch(child, now)

    def tick(self, now: float) -> None:
        """Reap exited children, schedule their restarts, and start those that are due."""
        for child in self.children:
            self._reap(child, now)
            if not self.stopping and child.restart_at is not None and now >= child.restart_at:
                self._launch(child, now)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop restarting and send ``sig`` to every live child (call again to send it again)."""
        self.stopping = True
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(sig)

    def run(self) -> int:
        """Run in the foreground until SIGTERM/SIGINT and every child has stopped; returns the exit code."""
        def forward(signum: int, frame: FrameType | None) -> None:
            logger.info("%s: stopping %d worker process(es)", signal.Signals(signum).name, len(self.children))
            self.stop()

        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start(time.monotonic())
            while not self.done:
                time.sleep(TICK_SECONDS)
                self.tick(time.monotonic())
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.exit_code

    def _launch(self, child: Child, now: float) -> None:
        child.process = self.spawn()
        child.started_at = now
        child.restart_at = None
        logger.info("worker process %d started (pid %d)", child.slot, child.process.pid)

    def _reap(self, child: Child, now: float) -> None:
        code = None if child.process is None else child.process.poll()
        if child.process is None or code is None:
            return
        pid, child.process = child.process.pid, None
        if self.stopping:
            return
        if code == STARTUP_ERROR:
            logger.error("worker process %d (pid %d) failed at start-up; stopping", child.slot, pid)
            self.exit_code = STARTUP_ERROR
            self.stop()
            return
        self._schedule_restart(child, now, pid, code)

    def _schedule_restart(self, child: Child, now: float, pid: int, code: int) -> None:
        ran = now - child.started_at
        child.backoff = (self.min_backoff if ran >= self.stable_after or not child.backoff
                         else min(child.backoff * 2, self.max_backoff))
        child.restart_at = now + child.backoff
        child.restarts += 1
        logger.warning("worker process %d (pid %d) exited with %s after %.1f s; restarting in %.1f s",
                       child.slot, pid, _describe(code), ran, child.backoff)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
