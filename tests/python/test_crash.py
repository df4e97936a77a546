"""A Python worker SIGKILLed mid-job: its job comes back to a survivor."""

import multiprocessing
import os
import signal
import time

import currant


def _worker(name: str, picked) -> None:
    q = currant.Queue(name)
    jobs = q.dequeue("work", batch_size=4, timeout=5.0)
    picked.put([job.id for job in jobs])
    time.sleep(60)  # "working" until killed; never acks


def test_killed_worker_jobs_come_back(queue):
    queue.declare_entrypoint("work", lease=0.3)
    ids = queue.enqueue_batch("work", [b"a", b"b", b"c"])
    ctx = multiprocessing.get_context("fork")
    picked = ctx.Queue()
    worker = ctx.Process(target=_worker, args=(queue.name, picked))
    worker.start()
    assert sorted(picked.get(timeout=30)) == sorted(ids)
    assert queue.status(ids) == ["picked"] * 3
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(timeout=30)
    assert worker.exitcode == -signal.SIGKILL

    survivors = []
    deadline = time.monotonic() + 30
    while len(survivors) < len(ids) and time.monotonic() < deadline:
        jobs = queue.dequeue("work", batch_size=4, timeout=5.0)
        survivors += jobs
    assert sorted(job.id for job in survivors) == sorted(ids)
    assert all(job.attempts == 2 for job in survivors)
    assert sorted(bytes(job.payload) for job in survivors) == [b"a", b"b", b"c"]
    queue.ack(survivors)
    assert queue.status(ids) == ["successful"] * 3
