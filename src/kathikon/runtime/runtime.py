"""The runtime of one process: an asyncio event loop running the dispatchers, the acker and the loops.

``start_in_background()`` runs it in a daemon thread (scripts, web apps, notebooks); ``kathikon worker``
awaits ``run()`` in the main thread. Every public method except ``run`` may be called from any thread.

Shutdown (``stop(grace)`` or ``request_stop``): stop claiming, let running jobs finish within ``grace``
seconds, give the rest back to ``available`` (attempt not counted, ``job.release`` event), write every
outcome, then stop the loops (last, so a node's heartbeat keeps beating while its jobs finish).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from kathikon._clock import utcnow
from kathikon.config import Config, parse_queues
from kathikon.job import check_queue_name
from kathikon.runtime.acker import Acker
from kathikon.runtime.dispatcher import Dispatcher, RecentCancels
from kathikon.runtime.loops import LOOP_FACTORIES, LoopContext, LoopRunner
from kathikon.runtime.node import node_name
from kathikon.runtime.storage_calls import StorageCalls
from kathikon.storage.base import Storage, Subscription

__all__ = ["Runtime", "default_node_name"]

logger = logging.getLogger("kathikon.runtime")
# Threads are created on demand and never exceed the sum of the queues' concurrency.
MAX_JOB_THREADS = 100_000
IO_THREADS = 4
MIN_FLUSH_SECONDS = 10.0


# Runtimes started in the background and not stopped yet, stopped gracefully when the program exits.
_live: weakref.WeakSet[Runtime] = weakref.WeakSet()
_exit_hook = threading.Lock()
_exit_hook_registered = False


def _stop_at_exit() -> None:
    for runtime in list(_live):
        runtime.stop()


def _stop_live_runtimes_at_exit(runtime: Runtime) -> None:
    """A script that ends without ``k.stop()`` still finishes or releases its jobs. The hook runs before
    Python shuts the thread pools down (``concurrent.futures`` uses the same private hook list)."""
    global _exit_hook_registered
    register = getattr(threading, "_register_atexit", None)
    with _exit_hook:
        _live.add(runtime)
        if register is not None and not _exit_hook_registered:
            register(_stop_at_exit)
            _exit_hook_registered = True


def default_node_name(prefix: str | None = None) -> str:
    """host-pid-random (or prefix-pid-random): unique per process, and readable in ``attempted_by``."""
    return node_name(prefix)


class Runtime:
    """Runs the queues of ``config`` on ``storage`` in this process. One start, one stop."""

    def __init__(self, config: Config, storage: Storage) -> None:
        self.config = config
        self.storage = storage
        self.node = default_node_name(config.node)
        self._state = "new"  # new → starting → running → stopping → stopped
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stopped = threading.Event()
        self._start_error: BaseException | None = None
        self._grace = config.shutdown_grace
        self._stop_requested = asyncio.Event()
        self._hurry = asyncio.Event()
        self._stop_lock = threading.Lock()
        self._stop_requests = 0
        self._job_pool = ThreadPoolExecutor(MAX_JOB_THREADS, thread_name_prefix="kathikon-job")
        self._io_pool = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="kathikon-io")
        self._calls = StorageCalls(self._io_pool)
        self._acker = Acker(storage, self._calls)
        self._dispatchers: dict[str, Dispatcher] = {}
        self._runners: list[LoopRunner] = []
        self._subscription: Subscription | None = None
        self._recent_cancels = RecentCancels()

    def __repr__(self) -> str:
        return f"<Runtime {self.node} {self._state} queues={self.queues()}>"

    # -- lifecycle -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._state == "running"

    def start_in_background(self) -> None:
        """Run in a daemon thread with its own event loop; returns once the dispatchers run."""
        self._claim_start()
        self._thread = threading.Thread(target=self._thread_main, name="kathikon-runtime", daemon=True)
        self._thread.start()
        _stop_live_runtimes_at_exit(self)
        self._started.wait()
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run on the current event loop until ``stop`` is set or ``request_stop`` is called, then shut
        down gracefully."""
        if self._state == "new":
            self._claim_start()
        try:
            await self._start()
        except BaseException as exc:
            self._start_error = exc
            await self._shutdown()
            raise
        finally:
            self._started.set()
        try:
            await self._wait_for_stop(stop)
        finally:
            await self._shutdown()

    def request_stop(self, grace: float | None = None) -> None:
        """Begin a graceful stop without waiting (thread-safe). A second request cuts the grace short."""
        with self._stop_lock:
            self._stop_requests += 1
            hurry = self._stop_requests > 1 or grace == 0
        if hurry:
            self._call_soon(self._hurry.set)
        if grace is not None:
            self._grace = grace
        self._call_soon(self._stop_requested.set)

    def stop(self, grace: float | None = None) -> None:
        """Stop gracefully (see the module docstring) and wait until done. Idempotent; any thread but the
        runtime's own."""
        if self._state == "new":
            self._state = "stopped"
            self._close_pools()
            return
        if self._on_loop_thread():
            raise RuntimeError("Runtime.stop() would wait for itself; use request_stop() on its event loop")
        self.request_stop(grace)
        self._stopped.wait()
        if self._thread is not None:
            self._thread.join()
        _live.discard(self)

    def abandoned_threads(self) -> int:
        """Sync performs still running in threads this runtime stopped waiting for (after ``stop``)."""
        return sum(d.abandoned() for d in self._dispatchers.values())

    # -- queues and jobs (thread-safe) ---------------------------------------------------------------

    def queues(self) -> dict[str, int]:
        """The queues this runtime runs and their concurrency."""
        return {name: d.concurrency for name, d in list(self._dispatchers.items())}

    def start_queue(self, queue: str, concurrency: int | None = None) -> None:
        """Ensure a dispatcher runs ``queue`` (idempotent); a given ``concurrency`` resizes it."""
        check_queue_name(queue)
        if concurrency is not None:
            concurrency = parse_queues({queue: concurrency})[queue].concurrency
        if not self.running or self._loop is None:
            raise RuntimeError(f"the runtime is {self._state}; start it before starting queue {queue!r}")
        if self._on_loop_thread():
            self._ensure_dispatcher(queue, concurrency)
            return
        asyncio.run_coroutine_threadsafe(self._ensure_dispatcher_async(queue, concurrency), self._loop).result()

    def jobs_inserted(self, queues: set[str]) -> None:
        """Jobs became available in ``queues`` in this process: start those dispatchers if needed, wake them."""
        self._call_soon(self._wake_local, set(queues), True)

    def wake(self, queues: Iterable[str]) -> None:
        """Wake the dispatchers of ``queues`` that run here (the scheduler staged jobs for them)."""
        self._call_soon(self._wake_local, set(queues), False)

    def job_cancelled(self, job_id: str) -> None:
        """The job was cancelled in storage; if it runs here, stop it (async: cancelled; sync: flag set)."""
        self._call_soon(self._cancel_local, job_id)

    # -- on the event loop ---------------------------------------------------------------------------

    def _claim_start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"this Runtime is {self._state}; a Runtime runs once, create a new one")
        self._state = "starting"

    def _thread_main(self) -> None:
        try:
            asyncio.run(self.run())
        except BaseException:
            if self._start_error is None:
                logger.exception("the Kathikon runtime stopped on an error")

    async def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread_id = threading.get_ident()
        self._acker.start()
        context = LoopContext(self.config, self.storage, self.node, self.wake, self.queues,
                              executing=self._executing_ids, cancel=self.job_cancelled)
        for factory in LOOP_FACTORIES:
            runner = LoopRunner(factory(context), self._calls)
            await runner.start()
            self._runners.append(runner)
        for queue, queue_config in self.config.queues.items():
            self._ensure_dispatcher(queue, queue_config.concurrency)
        self._subscription = self.storage.subscribe(self._on_storage_change)
        self._state = "running"

    async def _wait_for_stop(self, stop: asyncio.Event | None) -> None:
        waits = [asyncio.ensure_future(self._stop_requested.wait())]
        if stop is not None:
            waits.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _shutdown(self) -> None:
        self._state = "stopping"
        try:
            await asyncio.gather(*(d.stop_claiming() for d in self._dispatchers.values()))
            await self._finish_jobs()
            await self._acker.close(max(MIN_FLUSH_SECONDS, self._grace))
            for runner in reversed(self._runners):
                await runner.stop()
            if self._subscription is not None:
                self._subscription.close()
        finally:
            self._close_pools()
            self._state = "stopped"
            self._stopped.set()

    async def _finish_jobs(self) -> None:
        """Wait up to the grace period for running jobs, then release the rest."""
        jobs: asyncio.Future[object] = asyncio.ensure_future(self._drain_all())
        hurry: asyncio.Future[object] = asyncio.ensure_future(self._hurry.wait())
        await asyncio.wait({jobs, hurry}, timeout=self._grace, return_when=asyncio.FIRST_COMPLETED)
        jobs.cancel()
        hurry.cancel()
        now = utcnow()
        released = [job for d in self._dispatchers.values() for job in d.release_unfinished(now)]
        if released:
            logger.info("released %d unfinished job(s) back to available", len(released))
        await self._drain_all()

    async def _drain_all(self) -> None:
        await asyncio.gather(*(d.drain() for d in self._dispatchers.values()))

    def _ensure_dispatcher(self, queue: str, concurrency: int | None) -> Dispatcher:
        dispatcher = self._dispatchers.get(queue)
        if dispatcher is not None:
            if concurrency is not None and concurrency != dispatcher.concurrency:
                dispatcher.resize(concurrency)
            return dispatcher
        dispatcher = Dispatcher(queue, concurrency or self.config.concurrency(queue), storage=self.storage,
                                calls=self._calls, acker=self._acker, node=self.node, pool=self._job_pool,
                                poll_interval=self.config.poll_interval, prefetch=self.config.prefetch(queue),
                                recent_cancels=self._recent_cancels)
        self._dispatchers[queue] = dispatcher
        dispatcher.start()
        return dispatcher

    async def _ensure_dispatcher_async(self, queue: str, concurrency: int | None) -> None:
        self._ensure_dispatcher(queue, concurrency)

    def _wake_local(self, queues: set[str] | None, start: bool) -> None:
        for queue in self._dispatchers if queues is None else queues:
            dispatcher = self._dispatchers.get(queue)
            if dispatcher is None and start and self.running:
                dispatcher = self._ensure_dispatcher(queue, None)
            if dispatcher is not None:
                dispatcher.wake()

    def _executing_ids(self) -> list[str]:
        """The ids of the jobs running here (read from the coordinator's I/O thread: copies, no await)."""
        return [job_id for d in list(self._dispatchers.values()) for job_id in d.held_ids()]

    def _cancel_local(self, job_id: str) -> None:
        if not any(d.cancel_job(job_id) for d in self._dispatchers.values()):
            self._recent_cancels.add(job_id)  # its claim may be in flight

    def _on_storage_change(self, queue: str | None) -> None:
        """Called by the storage from its own thread when another process made jobs available."""
        self._call_soon(self._wake_local, None if queue is None else {queue}, False)

    def _call_soon(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` on the runtime's loop, from any thread; dropped once the loop is gone."""
        loop = self._loop
        if loop is not None and loop.is_closed():
            return
        if loop is None or self._on_loop_thread():  # before the loop runs, nothing else touches the state
            fn(*args)
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the runtime has stopped
            loop.call_soon_threadsafe(fn, *args)

    def _on_loop_thread(self) -> bool:
        return self._thread_id == threading.get_ident()

    def _close_pools(self) -> None:
        self._job_pool.shutdown(wait=False, cancel_futures=True)
        self._io_pool.shutdown(wait=False)
