"""asyncio support: awaiting a dequeue without blocking the event loop.

:func:`dequeue_async` runs the blocking :meth:`currant.Queue.dequeue` (which
releases the GIL while it waits) in a worker thread, so the event loop keeps
running other tasks meanwhile.

A :class:`currant.Queue` serialises its calls with an internal mutex and is
not meant to be shared between threads: while a ``dequeue_async`` on a Queue
is in flight, that Queue is busy in a worker thread. Do not use the same
Queue from other threads at the same time (calls from the event loop's own
thread would block the loop until the dequeue returns), and give each
concurrent ``dequeue_async`` its own Queue.

Cancelling the awaiting task does not stop the dequeue already running in
the worker thread: jobs it picks after the cancellation are not returned to
anyone and stay picked until their lease expires or the Queue is closed,
which requeues them. Prefer bounded timeouts to cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:  # pragma: no cover
    from . import Job, Queue

__all__ = ["dequeue_async", "wait_for_cancel_async"]


async def dequeue_async(
    queue: "Queue",
    entrypoints: Union[str, int, Iterable[Union[str, int]]],
    batch_size: int = 1,
    timeout: float | None = None,
) -> "list[Job]":
    """Awaitable :meth:`currant.Queue.dequeue`: pick up to ``batch_size`` jobs.

    Waits up to ``timeout`` seconds (``None``: forever) for the first job in
    a worker thread, never blocking the event loop; returns an empty list on
    timeout. Finish the jobs with ``queue.ack`` / ``fail`` / ``retry`` as
    usual (those calls do not block for long; use ``asyncio.to_thread`` for
    big batches if loop latency matters). The queue must not be used from
    other threads while this call is in flight.
    """
    return await asyncio.to_thread(queue.dequeue, entrypoints, batch_size, timeout)


async def wait_for_cancel_async(
    queue: "Queue",
    jobs: "Union[Job, Iterable[Job]]",
    timeout: float | None = None,
) -> int | None:
    """Awaitable :meth:`currant.Queue.wait_for_cancel` (docs/cancellation.md).

    Waits in a worker thread, never blocking the event loop, until a cancel
    is requested for one of the picked ``jobs`` (returns its index),
    ``timeout`` seconds pass (``None``: forever), none of them is still held,
    or :meth:`currant.Queue.interrupt` is called (then ``None``). The same
    rule as :func:`dequeue_async` applies: the queue is busy in the worker
    thread meanwhile, so finish the jobs after it returns (or interrupt it
    first). For run loops built on :class:`currant.QueueManager`, handlers
    get ``ctx.cancel_event`` instead.
    """
    from . import Job  # late: currant/__init__ imports this module

    job_list = jobs if isinstance(jobs, Job) else list(jobs)
    return await asyncio.to_thread(queue.wait_for_cancel, job_list, timeout)
