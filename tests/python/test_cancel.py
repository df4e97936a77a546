"""Cancellation of running jobs from Python (docs/cancellation.md): the
outcomes, the holder's flag, wake-ups of wait_for_cancel and dequeue by a
canceller in another process, bad input, and the worker's ctx.cancelled and
ctx.cancel_event."""

import asyncio
import multiprocessing
import threading
import time

import pytest

import currant

mp = multiprocessing.get_context("fork")


def _cancel_in_child(name: str, job_id: int, delay: float, results) -> None:
    time.sleep(delay)  # lets the parent fall asleep first; the test does not depend on it
    with currant.Queue(name) as q:
        results.put(str(q.cancel(job_id)))


def _cancel_from_another_process(name: str, job_id: int, delay: float = 0.1):
    results = mp.Queue()
    proc = mp.Process(target=_cancel_in_child, args=(name, job_id, delay, results))
    proc.start()
    return proc, results


def test_cancel_of_a_queued_job_is_canceled_now(queue):
    job_id = queue.enqueue("jobs", b"x")
    outcome = queue.cancel(job_id)
    assert outcome is currant.CancelOutcome.CANCELED
    assert outcome and str(outcome) == "canceled"
    assert queue.status(job_id) == ["canceled"]
    assert queue.dequeue("jobs", timeout=0) == []


def test_cancel_of_a_picked_job_is_requested_and_sets_the_flag(queue):
    job_id = queue.enqueue("jobs", b"x")
    [job] = queue.dequeue("jobs", timeout=0)
    assert not queue.cancel_requested(job)
    with currant.Queue(queue.name) as canceller:
        outcome = canceller.cancel(job_id)
    assert outcome is currant.CancelOutcome.REQUESTED
    assert queue.cancel_requested(job)
    assert queue.status(job_id) == ["picked"]
    queue.ack_canceled(job)
    assert queue.status(job_id) == ["canceled"]


def test_cancel_of_a_finished_or_unknown_job_is_not_cancelable(queue):
    job_id = queue.enqueue("jobs", b"x")
    [job] = queue.dequeue("jobs", timeout=0)
    queue.ack(job)
    outcome = queue.cancel(job_id)
    assert outcome is currant.CancelOutcome.NOT_CANCELABLE
    assert not outcome
    assert queue.cancel(0x0001000000000FFF) is currant.CancelOutcome.NOT_CANCELABLE
    assert queue.status(job_id) == ["successful"]


def test_a_retry_after_the_request_ends_the_job_canceled(queue):
    job_id = queue.enqueue("jobs", b"x")
    [job] = queue.dequeue("jobs", timeout=0)
    assert queue.cancel(job_id) is currant.CancelOutcome.REQUESTED
    assert queue.retry(job, delay=0) is False
    assert queue.status(job_id) == ["canceled"]
    assert queue.dequeue("jobs", timeout=0.1) == []


def test_bad_ids_raise_and_nothing_queued_is_lost(queue):
    job_id = queue.enqueue("jobs", b"kept")
    for bad in (0, -1, 2**63):
        with pytest.raises(currant.InvalidArgument, match="not a job id"):
            queue.cancel(bad)
    with pytest.raises(TypeError, match="job id must be an int"):
        queue.cancel("17")
    with pytest.raises(TypeError):
        queue.cancel(True)
    assert queue.status(job_id) == ["queued"]


def test_wait_for_cancel_is_woken_by_a_canceller_process(queue):
    job_id = queue.enqueue("jobs", b"x")
    [job] = queue.dequeue("jobs", timeout=0)
    proc, results = _cancel_from_another_process(queue.name, job_id)
    start = time.monotonic()
    assert queue.wait_for_cancel(job, timeout=20) == 0
    assert time.monotonic() - start < 10  # not its timeout
    proc.join(10)
    assert proc.exitcode == 0
    assert results.get(timeout=5) == "requested"
    queue.ack_canceled(job)
    assert queue.status(job_id) == ["canceled"]


def test_wait_for_cancel_times_out_without_a_request(queue):
    queue.enqueue("jobs", b"x")
    [job] = queue.dequeue("jobs", timeout=0)
    assert queue.wait_for_cancel([job], timeout=0.05) is None
    queue.ack(job)
    assert queue.wait_for_cancel(job, timeout=None) is None  # nothing held: returns at once


def test_a_dequeue_blocked_while_holding_a_job_returns_early_for_its_cancel(queue):
    job_id = queue.enqueue("jobs", b"x")
    [job] = queue.dequeue("jobs", timeout=0)
    proc, _ = _cancel_from_another_process(queue.name, job_id)
    start = time.monotonic()
    assert queue.dequeue("jobs", timeout=20) == []
    assert time.monotonic() - start < 10
    proc.join(10)
    assert queue.cancel_requested(job)
    queue.ack_canceled(job)


def test_wait_for_cancel_async_does_not_block_the_loop(queue):
    job_id = queue.enqueue("jobs", b"x")
    [job] = queue.dequeue("jobs", timeout=0)

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.create_task(ticker())
        proc, _ = _cancel_from_another_process(queue.name, job_id, delay=0.2)
        index = await currant.wait_for_cancel_async(queue, [job], timeout=20)
        t.cancel()
        proc.join(10)
        return index, ticks

    index, ticks = asyncio.run(main())
    assert index == 0
    assert ticks >= 5  # the loop kept running while it waited
    queue.ack_canceled(job)


def _safety_stop(manager: currant.QueueManager, seconds: float = 60.0) -> threading.Timer:
    timer = threading.Timer(seconds, manager.stop)
    timer.daemon = True
    timer.start()
    return timer


def test_worker_sync_handler_sees_ctx_cancelled_and_the_job_ends_canceled(queue):
    doomed = queue.enqueue("jobs", b"long")
    others = queue.enqueue_batch("jobs", [b"a", b"b"])
    manager = currant.QueueManager(queue.name)
    started = threading.Event()
    saw = []

    @manager.entrypoint("jobs", concurrency_limit=2)
    def handle(ctx: currant.JobContext) -> None:
        if ctx.id != doomed:
            assert not ctx.cancelled
            return
        started.set()
        deadline = time.monotonic() + 30
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.001)
        saw.append(ctx.cancelled)

    def cancel_when_running():
        started.wait(30)
        with currant.Queue(queue.name) as q:
            assert q.cancel(doomed) is currant.CancelOutcome.REQUESTED

    t = threading.Thread(target=cancel_when_running)
    t.start()
    timer = _safety_stop(manager)
    manager.run(batch_size=2, stop_after=3)
    timer.cancel()
    t.join()
    assert saw == [True]
    assert queue.status(doomed) == ["canceled"]
    assert queue.status(others) == ["successful", "successful"]


def test_worker_async_handler_awaits_cancel_event(queue):
    doomed = queue.enqueue("jobs", b"long")
    manager = currant.QueueManager(queue.name)
    woke = []

    @manager.entrypoint("jobs", concurrency_limit=1)
    async def handle(ctx: currant.JobContext) -> None:
        proc, _ = _cancel_from_another_process(queue.name, ctx.id, delay=0.05)
        start = time.monotonic()
        await asyncio.wait_for(ctx.cancel_event.wait(), timeout=30)
        woke.append(time.monotonic() - start)
        assert ctx.cancelled
        await asyncio.get_running_loop().run_in_executor(None, proc.join, 10)
        raise RuntimeError("stopped because canceled")  # not retried: the job was canceled

    timer = _safety_stop(manager)
    asyncio.run(manager.run_async(stop_after=1))
    timer.cancel()
    assert len(woke) == 1 and woke[0] < 10
    assert queue.status(doomed) == ["canceled"]
    assert queue.stats()["jobs"]["retried"] == 0
