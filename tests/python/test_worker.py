"""The PgQueuer-style worker API: QueueManager, @entrypoint, run loop."""

import asyncio
import multiprocessing
import os
import signal
import threading
import time

import pytest

import currant

ctx = multiprocessing.get_context("fork")


def _safety_stop(manager: currant.QueueManager, seconds: float = 120.0) -> threading.Timer:
    """Stop a run that would otherwise hang on a bug (the test then fails on its asserts)."""
    timer = threading.Timer(seconds, manager.stop)
    timer.daemon = True
    timer.start()
    return timer


def test_sync_handler_jobs_are_acked(queue):
    ids = queue.enqueue_batch("jobs", [b"a", b"b", b"c", b"d", b"e"])
    manager = currant.QueueManager(queue.name)
    seen = []

    @manager.entrypoint("jobs")
    def handle(job: currant.JobContext) -> None:
        seen.append((job.id, bytes(job.payload), job.attempts))

    timer = _safety_stop(manager)
    manager.run(batch_size=4, stop_after=len(ids))
    timer.cancel()
    assert sorted(seen) == sorted(zip(ids, [b"a", b"b", b"c", b"d", b"e"], [1] * 5))
    assert queue.status(ids) == ["successful"] * 5


def test_async_handler_jobs_are_acked(queue):
    ids = queue.enqueue_batch("jobs", [b"1", b"2", b"3", b"4"])
    manager = currant.QueueManager(queue.name)
    seen = []

    @manager.entrypoint("jobs", concurrency_limit=2)
    async def handle(job: currant.JobContext) -> None:
        data = bytes(job.payload)
        await asyncio.sleep(0.01)
        seen.append(data)

    timer = _safety_stop(manager)
    asyncio.run(manager.run_async(stop_after=len(ids)))
    timer.cancel()
    assert sorted(seen) == [b"1", b"2", b"3", b"4"]
    assert queue.status(ids) == ["successful"] * 4


def test_raising_handler_retries_then_ends_exception(queue):
    # A job takes its max_attempts when enqueued (the entrypoint's default
    # then); this one was queued before the manager declared its settings.
    job_id = queue.enqueue("jobs", b"boom", max_attempts=3)
    manager = currant.QueueManager(queue.name)
    attempts = []

    @manager.entrypoint("jobs", max_attempts=3, retry_delay=0.01, max_retry_delay=0.05)
    def handle(job: currant.JobContext) -> None:
        attempts.append(job.attempts)
        raise RuntimeError("handler failure")

    timer = _safety_stop(manager)
    manager.run(stop_after=3)
    timer.cancel()
    assert attempts == [1, 2, 3]
    assert queue.status(job_id) == ["exception"]
    assert queue.stats()["jobs"]["retried"] == 2


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_concurrency_limit_bounds_running_handlers(queue, kind):
    ids = queue.enqueue_batch("jobs", [b"x"] * 8)
    manager = currant.QueueManager(queue.name)
    lock = threading.Lock()
    current = 0
    peak = 0

    def enter() -> None:
        nonlocal current, peak
        with lock:
            current += 1
            peak = max(peak, current)

    def leave() -> None:
        nonlocal current
        with lock:
            current -= 1

    if kind == "sync":
        @manager.entrypoint("jobs", concurrency_limit=2)
        def handle(job: currant.JobContext) -> None:
            enter()
            time.sleep(0.2)
            leave()
    else:
        @manager.entrypoint("jobs", concurrency_limit=2)
        async def handle(job: currant.JobContext) -> None:
            enter()
            await asyncio.sleep(0.2)
            leave()

    timer = _safety_stop(manager)
    manager.run(batch_size=8, stop_after=len(ids))
    timer.cancel()
    assert queue.status(ids) == ["successful"] * 8
    assert peak == 2


def _sigterm_worker(name: str, started, release) -> None:
    manager = currant.QueueManager(name)

    @manager.entrypoint("jobs", lease=5.0)
    def handle(job: currant.JobContext) -> None:
        started.set()
        release.wait(60)  # still running when SIGTERM arrives

    manager.run(batch_size=4)  # returns only when stopped by the signal


def test_sigterm_stops_worker_cleanly_without_losing_jobs(queue):
    ids = queue.enqueue_batch("jobs", [b"%d" % i for i in range(6)])
    started, release = ctx.Event(), ctx.Event()
    worker = ctx.Process(target=_sigterm_worker, args=(queue.name, started, release))
    worker.start()
    assert started.wait(60)
    os.kill(worker.pid, signal.SIGTERM)
    time.sleep(0.3)  # the signal is handled while the handler still runs
    release.set()
    worker.join(timeout=60)
    assert worker.exitcode == 0

    statuses = queue.status(ids)
    assert set(statuses) <= {"successful", "queued"}  # nothing left picked by the dead worker
    assert statuses.count("successful") >= 1  # the running handler finished and was acked
    left = statuses.count("queued")

    second = currant.QueueManager(queue.name)
    done = []

    @second.entrypoint("jobs", lease=5.0)
    def handle(job: currant.JobContext) -> None:
        done.append(job.id)

    if left:
        timer = _safety_stop(second)
        second.run(batch_size=4, stop_after=left)
        timer.cancel()
    assert len(done) == left
    assert queue.status(ids) == ["successful"] * len(ids)


def _slow_worker(name: str, started, finished) -> None:
    manager = currant.QueueManager(name)

    @manager.entrypoint("jobs", lease=0.3)
    def handle(job: currant.JobContext) -> None:
        started.set()
        time.sleep(1.0)
        finished.set()

    manager.run(stop_after=1)


def test_heartbeat_keeps_long_job_from_being_repicked(queue):
    [job_id] = queue.enqueue_batch("jobs", [b"slow"])
    started, finished = ctx.Event(), ctx.Event()
    worker = ctx.Process(target=_slow_worker, args=(queue.name, started, finished))
    worker.start()
    assert started.wait(60)
    stolen = []
    while not finished.is_set():  # another consumer, trying to take it over meanwhile
        queue.reap()
        stolen += queue.dequeue("jobs", batch_size=4, timeout=0.05)
    worker.join(timeout=60)
    assert worker.exitcode == 0
    assert stolen == []
    assert queue.status(job_id) == ["successful"]


def test_an_idle_worker_waiting_without_timeout_stops_when_asked(queue):
    # The idle loop waits in the kernel with no timeout; stop() must end
    # that wait (Queue.interrupt), not a poll.
    manager = currant.QueueManager(queue.name)

    @manager.entrypoint("jobs")
    def handle(job: currant.JobContext) -> None:  # pragma: no cover - no jobs
        pass

    runner = threading.Thread(target=manager.run, kwargs={"install_signal_handlers": False})
    runner.start()
    time.sleep(0.3)  # let it reach its wait
    manager.stop()
    runner.join(60)
    assert not runner.is_alive()
