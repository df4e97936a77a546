"""A worker API in the spirit of PgQueuer: a manager, decorated entrypoints
and a run loop.

::

    from currant import QueueManager

    manager = QueueManager("demo")

    @manager.entrypoint("emails", concurrency_limit=4, lease=30.0, max_attempts=5)
    def send_email(job):                 # runs in a thread pool of 4
        deliver(bytes(job.payload))

    @manager.entrypoint("thumbnails", concurrency_limit=8)
    async def thumbnail(job):            # runs as an asyncio task
        await render(bytes(job.payload))

    manager.run(batch_size=32)           # or: await manager.run_async(...)

The run loop opens the queue (which must exist), declares every registered
entrypoint with its lease and retry settings, dequeues from all entrypoints
that have room, runs handlers, heartbeats the picked jobs it holds every
``lease / 3`` seconds, acks a job when its handler returns and retries it
(the entrypoint's exponential back-off) when the handler raises; past
``max_attempts`` the job ends with status "exception".

Cancellation (docs/cancellation.md): when a job is canceled from any
process while its handler runs, ``ctx.cancelled`` becomes true (one load
from the queue, cheap in a loop) and, for ``async def`` handlers,
``ctx.cancel_event`` (an :class:`asyncio.Event`) is set; the run loop wakes
for it within microseconds. A job whose cancel was requested ends
``canceled`` when its handler returns or raises (it is never retried); a
picked job canceled before its handler started is dropped, ``canceled``.

SIGINT and SIGTERM (or :meth:`QueueManager.stop`) stop it cleanly: no new
jobs are taken, running handlers finish and are acked or retried, and the
queue is closed, which requeues jobs that were picked but not started.

All queue calls of a run happen in one dedicated thread; the event loop is
never blocked by the queue. Handlers get a :class:`JobContext` whose
``payload`` is a zero-copy memoryview that is released when the job is
acked: copy it (``bytes(job.payload)``) to keep the data.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Union

from ._errors import InvalidArgument, StaleHandle

__all__ = ["QueueManager", "JobContext"]

log = logging.getLogger("currant.worker")

Handler = Callable[["JobContext"], Union[None, Awaitable[None]]]


class JobContext:
    """What a handler receives: one picked job.

    ``id``, ``attempts`` (1 on the first delivery), ``priority``,
    ``entrypoint`` (name), ``enqueued_at_ns`` and ``payload`` (read-only
    memoryview into the queue, valid until the handler's job is acked or
    retried; copy it to keep it). ``job`` is the underlying
    :class:`currant.Job`.

    ``cancelled`` is true once the job was canceled from any process
    (:meth:`currant.Queue.cancel`); safe to read from the handler's thread.
    ``cancel_event`` is an :class:`asyncio.Event` of the run's event loop,
    set by the run loop when it learns of the cancel: ``await`` it in an
    ``async def`` handler (from a sync handler, read ``cancelled``).
    """

    __slots__ = ("job", "entrypoint", "_queue", "_cancel_event")

    def __init__(self, job: Any, entrypoint: str, queue: Any = None) -> None:
        self.job = job
        self.entrypoint = entrypoint
        self._queue = queue
        self._cancel_event: Optional[asyncio.Event] = None

    @property
    def cancelled(self) -> bool:
        return self._queue is not None and self._queue.cancel_requested(self.job)

    @property
    def cancel_event(self) -> asyncio.Event:
        if self._cancel_event is None:  # created in the loop's thread by run_one
            self._cancel_event = asyncio.Event()
        return self._cancel_event

    @property
    def id(self) -> int:
        return self.job.id

    @property
    def attempts(self) -> int:
        return self.job.attempts

    @property
    def priority(self) -> int:
        return self.job.priority

    @property
    def enqueued_at_ns(self) -> int:
        return self.job.enqueued_at_ns

    @property
    def payload(self) -> memoryview:
        return self.job.payload

    def __repr__(self) -> str:
        return f"<currant.JobContext {self.entrypoint!r} id={self.id} attempts={self.attempts}>"


class _Entrypoint:
    def __init__(self, name: str, handler: Handler, concurrency_limit: int, lease: float,
                 max_attempts: int, retry_delay: float, max_retry_delay: float, durability: str,
                 result_retention: Optional[float] = None) -> None:
        self.name = name
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)
        self.concurrency_limit = concurrency_limit
        self.lease = lease
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.durability = durability
        self.result_retention = result_retention
        # per run
        self.id = -1
        self.running = 0
        self.buffered: collections.deque[Any] = collections.deque()
        self.executor: Optional[ThreadPoolExecutor] = None

    def room(self) -> int:
        return self.concurrency_limit - self.running - len(self.buffered)


def _ack_with_result(queue: Any, ep: _Entrypoint, job: Any, value: Any) -> None:
    """Acks a job whose handler returned ``value`` (its result, or None).
    A result of another type than bytes/str/None, or one too large for the
    queue, fails the attempt: the job is retried with that error (it is
    still picked: ack refuses a result before changing anything)."""
    if value is None:
        queue.ack(job)
        return
    try:
        queue.ack(job, result=value)
    except (TypeError, InvalidArgument) as e:
        log.error("handler for %r returned an unusable result for job %d: %s", ep.name, job.id, e)
        if not queue.retry(job, error=e):
            log.error("job %d of %r ended 'exception' after %d attempts", job.id, ep.name, job.attempts)


class QueueManager:
    """Runs handlers for the entrypoints of one queue.

    ``QueueManager(queue_name)``; register handlers with :meth:`entrypoint`,
    then :meth:`run` (blocking) or ``await`` :meth:`run_async`. The queue is
    opened when the run starts, so a manager may be built before ``fork()``
    and run in the child. An idle worker waits in the kernel without
    polling: a finished handler and :meth:`stop` end the wait with
    :meth:`currant.Queue.interrupt`.
    """

    def __init__(self, queue_name: str) -> None:
        if not isinstance(queue_name, str):
            raise TypeError(f"queue name must be a str, not {type(queue_name).__name__}")
        self.queue_name = queue_name
        self._entrypoints: dict[str, _Entrypoint] = {}
        self._stopping = False
        self._running = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._wake: Optional[asyncio.Event] = None
        self._queue: Any = None

    def entrypoint(
        self,
        name: str,
        *,
        concurrency_limit: int = 1,
        lease: float = 30.0,
        max_attempts: int = 5,
        retry_delay: float = 1.0,
        max_retry_delay: float = 300.0,
        durability: str = "memory",
        result_retention: Optional[float] = None,
    ) -> Callable[[Handler], Handler]:
        """Decorator registering a sync or ``async def`` handler for ``name``.

        At most ``concurrency_limit`` handlers of this entrypoint run at once
        (sync ones in a thread pool of that size, async ones as tasks).
        ``lease``, ``max_attempts``, ``retry_delay``, ``max_retry_delay`` and
        ``durability`` are declared on the queue when the run starts (see
        :meth:`currant.Queue.declare_entrypoint`). The handler receives a
        :class:`JobContext`; returning acks the job, raising retries it.
        What it returns (bytes, str as UTF-8, or None) becomes the job's
        result (docs/results.md), kept ``result_retention`` seconds for
        :meth:`currant.Queue.wait` (None keeps the entrypoint's own, 0 for a
        new one); another type, or a result larger than
        the queue's result bytes, fails the attempt like a raise (retried
        with that error).
        Jobs take their ``max_attempts`` when enqueued, so the value given
        here applies to jobs enqueued after the run declared it (or pass
        ``max_attempts`` to :meth:`currant.Queue.enqueue`).
        """
        if not isinstance(name, str):
            raise TypeError(f"entrypoint name must be a str, not {type(name).__name__}")
        if isinstance(concurrency_limit, bool) or not isinstance(concurrency_limit, int) or concurrency_limit < 1:
            raise ValueError("concurrency_limit must be an int >= 1")
        if not lease > 0:
            raise ValueError("lease must be positive")
        if name in self._entrypoints:
            raise ValueError(f"entrypoint {name!r} already has a handler")

        def register(handler: Handler) -> Handler:
            if not callable(handler):
                raise TypeError("an entrypoint handler must be callable")
            self._entrypoints[name] = _Entrypoint(
                name, handler, concurrency_limit, float(lease), max_attempts,
                float(retry_delay), float(max_retry_delay), durability,
                None if result_retention is None else float(result_retention))
            return handler

        return register

    def stop(self) -> None:
        """Ask the running loop to stop: take no new jobs, let running
        handlers finish, then close the queue. Safe from any thread and from
        signal handlers; returns at once. Applies to the current run."""
        self._stopping = True
        queue = self._queue
        if queue is not None:
            queue.interrupt()  # ends a dequeue the loop is waiting in
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # loop already closed
                pass

    def run(self, batch_size: int = 10, stop_after: Optional[int] = None,
            install_signal_handlers: bool = True) -> None:
        """Run the worker loop until stopped (blocking); see :meth:`run_async`."""
        asyncio.run(self.run_async(batch_size=batch_size, stop_after=stop_after,
                                   install_signal_handlers=install_signal_handlers))

    async def run_async(self, batch_size: int = 10, stop_after: Optional[int] = None,
                        install_signal_handlers: bool = True) -> None:
        """Run the worker loop in the current event loop until stopped.

        ``batch_size`` is the most jobs picked per dequeue. ``stop_after``
        stops the loop once that many jobs were finished (acked or handed
        back for retry or failure); None runs until :meth:`stop`, SIGINT or
        SIGTERM. Signal handlers are installed only when running in the
        main thread and ``install_signal_handlers`` is true; the previous
        handlers are restored at the end.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError("batch_size must be an int >= 1")
        if not self._entrypoints:
            raise ValueError("no entrypoints registered: decorate a handler with @manager.entrypoint(...)")
        if self._running:
            raise RuntimeError("this QueueManager is already running")
        from . import Queue  # late: currant/__init__ imports this module

        self._running = True
        self._stopping = False
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._wake = wake = asyncio.Event()
        qthread = ThreadPoolExecutor(1, thread_name_prefix="currant-queue")

        async def call(fn: Callable[..., Any], *args: Any) -> Any:
            return await loop.run_in_executor(qthread, functools.partial(fn, *args))

        eps = list(self._entrypoints.values())
        completions: list[tuple[_Entrypoint, Any, Optional[BaseException], Any]] = []
        tasks: set[asyncio.Task[None]] = set()
        held: dict[int, Any] = {}  # picked jobs we hold (buffered or running), by job id
        contexts: dict[int, JobContext] = {}  # running handlers, by job id
        told: set[int] = set()  # running jobs whose cancel the handler was told of
        installed: list[tuple[int, Any]] = []
        queue: Any = None
        finished = 0
        hb_interval = min(ep.lease for ep in eps) / 3.0

        async def run_one(ep: _Entrypoint, job: Any) -> None:
            error: Optional[BaseException] = None
            value: Any = None  # what the handler returned: the job's result
            ctx = JobContext(job, ep.name, queue)
            ctx.cancel_event  # noqa: B018 - created here, in the loop's thread
            contexts[job.id] = ctx
            if job.id in told:
                ctx.cancel_event.set()
            try:
                if ep.is_async:
                    value = await ep.handler(ctx)  # type: ignore[misc]
                else:
                    value = await loop.run_in_executor(ep.executor, ep.handler, ctx)
                    if inspect.isawaitable(value):  # e.g. a partial of an async def
                        value = await value
            except asyncio.CancelledError as e:  # run_async cancelled: hand the job back
                error = e
                raise
            except Exception as e:  # noqa: BLE001 - a handler's failure retries its job
                error = e
            finally:
                contexts.pop(job.id, None)
                ep.running -= 1
                completions.append((ep, job, error, value))
                wake.set()
                if queue is not None:
                    queue.interrupt()  # the loop may be waiting in dequeue: apply this now

        def finish(items: list[tuple[_Entrypoint, Any, Optional[BaseException], Any]]) -> None:
            # Runs in the queue thread.
            for ep, job, error, value in items:
                try:
                    if queue.cancel_requested(job):
                        # Canceled while it ran: it ends "canceled" whether
                        # the handler returned or raised; never retried.
                        log.info("job %d of %r was canceled while it ran", job.id, ep.name)
                        queue.ack_canceled(job)
                    elif error is None:
                        _ack_with_result(queue, ep, job, value)
                    else:
                        log.error("handler for %r failed on job %d (attempt %d)", ep.name, job.id,
                                  job.attempts, exc_info=error)
                        # The handler's traceback becomes the job's last
                        # error (kept with it if it dies; docs/dead-jobs.md).
                        if not queue.retry(job, error=error):
                            log.error("job %d of %r ended 'exception' after %d attempts",
                                      job.id, ep.name, job.attempts)
                except StaleHandle:
                    log.warning("job %d of %r was no longer ours (lease lost)", job.id, ep.name)
                except BufferError:
                    log.error("job %d of %r: a view of its payload is still alive; not finished, "
                              "it will come back when its lease expires", job.id, ep.name)

        async def drain() -> int:
            if not completions:
                return 0
            items = completions[:]
            del completions[:]
            for _, job, _, _ in items:
                held.pop(job.id, None)
                told.discard(job.id)
            await call(finish, items)
            return len(items)

        def give_up(jobs: list[Any]) -> None:
            # Runs in the queue thread: picked jobs canceled before they started.
            for job in jobs:
                try:
                    queue.ack_canceled(job)
                except StaleHandle:
                    log.warning("job %d was no longer ours (lease lost)", job.id)

        async def apply_cancels() -> int:
            # In the loop's thread; cancel_requested reads the queue without
            # its lock, so this never waits for the queue thread.
            dropped = []
            for ep in eps:
                kept = collections.deque()
                for job in ep.buffered:
                    (dropped if queue.cancel_requested(job) else kept).append(job)
                ep.buffered = kept
            for job_id, ctx in list(contexts.items()):
                if job_id not in told and queue.cancel_requested(ctx.job):
                    told.add(job_id)
                    ctx.cancel_event.set()
            if not dropped:
                return 0
            for job in dropped:
                held.pop(job.id, None)
            await call(give_up, dropped)
            return len(dropped)

        try:
            queue = await call(Queue, self.queue_name)
            self._queue = queue
            for ep in eps:
                ep.id = await call(functools.partial(
                    queue.declare_entrypoint, ep.name, ep.durability, lease=ep.lease,
                    max_attempts=ep.max_attempts, retry_delay=ep.retry_delay,
                    max_retry_delay=ep.max_retry_delay, result_retention=ep.result_retention))
                ep.running = 0
                ep.buffered.clear()
                if not ep.is_async:
                    ep.executor = ThreadPoolExecutor(ep.concurrency_limit,
                                                     thread_name_prefix=f"currant-{ep.name}")
            by_id = {ep.id: ep for ep in eps}

            if install_signal_handlers and threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    previous = signal.getsignal(sig)
                    loop.add_signal_handler(sig, self.stop)
                    installed.append((sig, previous))

            next_hb = time.monotonic() + hb_interval
            while True:
                wake.clear()
                finished += await drain()
                if stop_after is not None and finished >= stop_after:
                    self._stopping = True

                now = time.monotonic()
                if not held:
                    next_hb = now + hb_interval
                elif now >= next_hb:
                    await call(queue.heartbeat, list(held.values()))
                    next_hb = time.monotonic() + hb_interval

                if self._stopping:
                    if not tasks and not completions:
                        break
                else:
                    for ep in eps:
                        while ep.buffered and ep.running < ep.concurrency_limit:
                            ep.running += 1
                            task = loop.create_task(run_one(ep, ep.buffered.popleft()))
                            tasks.add(task)
                            task.add_done_callback(tasks.discard)
                    eligible = [ep for ep in eps if ep.room() > 0]
                    if eligible:
                        n = min(batch_size, sum(ep.room() for ep in eligible))
                        # No polling: wait until a job arrives, the next
                        # heartbeat is due, or interrupt() (a handler
                        # finished, or stop()) ends the wait.
                        timeout = max(0.0, next_hb - time.monotonic()) if held else None
                        # A cancel for a job we hold ends it early too.
                        jobs = await call(queue.dequeue, [ep.id for ep in eligible], n, timeout)
                        for job in jobs:
                            held[job.id] = job
                            by_id[job.entrypoint].buffered.append(job)
                        finished += await apply_cancels()
                        continue

                if completions or wake.is_set():
                    continue
                wait = max(0.0, next_hb - time.monotonic()) if held else None
                untold = [job for job_id, job in held.items() if job_id not in told]
                if untold and not self._stopping:
                    # Every handler slot is busy: wait in the kernel for a
                    # cancel of a job we hold; a finished handler and stop()
                    # end the wait with interrupt().
                    await call(queue.wait_for_cancel, untold, wait)
                    finished += await apply_cancels()
                    continue
                try:
                    await asyncio.wait_for(wake.wait(), timeout=wait)
                except asyncio.TimeoutError:
                    pass
        finally:
            self._stopping = True
            if tasks:
                await asyncio.gather(*list(tasks), return_exceptions=True)
            try:
                if queue is not None:
                    await drain()
            finally:
                for sig, previous in installed:
                    loop.remove_signal_handler(sig)
                    signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
                if queue is not None:
                    await call(queue.close)  # requeues picked jobs that never started
                for ep in eps:
                    if ep.executor is not None:
                        ep.executor.shutdown(wait=True)
                        ep.executor = None
                    ep.buffered.clear()
                qthread.shutdown(wait=True)
                self._loop = None
                self._wake = None
                self._queue = None
                self._running = False
