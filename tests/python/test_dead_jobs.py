"""Dead jobs from Python (docs/dead-jobs.md): one behaviour per test."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
import threading

import pytest

import currant

ctx = multiprocessing.get_context("fork")


def _pick(q: currant.Queue, entrypoint: str = "jobs") -> currant.Job:
    [job] = q.dequeue(entrypoint, timeout=0)
    return job


def _dead_one(q: currant.Queue, payload: bytes, error: str | BaseException | None) -> int:
    job_id = q.enqueue("jobs", payload)
    job = _pick(q)
    assert job.id == job_id
    q.fail(job, error=error)
    return job_id


def test_fail_keeps_the_job_with_its_error(queue):
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    job_id = _dead_one(queue, b"the payload", "ValueError: bad input")
    assert queue.status(job_id) == ["exception"]
    [dead] = queue.dead_jobs("jobs")
    assert dead.id == job_id
    assert dead.entrypoint == "jobs"
    assert dead.attempts == 1
    assert dead.error == "ValueError: bad input"
    assert not dead.error_truncated
    assert dead.payload == b"the payload"
    assert dead.died_at >= before and dead.enqueued_at <= dead.died_at
    assert "ValueError: bad input" in repr(dead)
    assert [d.id for d in queue.dead_jobs()] == [job_id]  # all entrypoints


def test_an_exception_is_kept_as_its_traceback(queue):
    try:
        raise KeyError("missing-field")
    except KeyError as e:
        _dead_one(queue, b"x", e)
    [dead] = queue.dead_jobs("jobs")
    assert dead.error.startswith("Traceback (most recent call last):")
    assert dead.error.endswith("KeyError: 'missing-field'")


def test_a_long_error_is_cut_and_marked(queue):
    _dead_one(queue, b"x", "é" * 2000)  # 4000 bytes, more than the 1024-byte area
    [dead] = queue.dead_jobs("jobs")
    assert dead.error_truncated
    assert dead.error == "é" * 512


def test_retry_past_the_attempt_limit_keeps_the_last_error(queue):
    job_id = queue.enqueue("jobs", b"x", max_attempts=2)
    assert queue.retry(_pick(queue), delay=0, error="first")
    assert not queue.retry(_pick(queue), delay=0, error="second")
    [dead] = queue.dead_jobs("jobs")
    assert (dead.id, dead.attempts, dead.error) == (job_id, 2, "second")


def test_requeue_by_id_and_by_entrypoint(queue):
    ids = [_dead_one(queue, f"job {i}".encode(), f"error {i}") for i in range(3)]
    assert [d.id for d in queue.dead_jobs("jobs")] == ids  # oldest first
    assert queue.requeue(ids[0]) == 1
    assert queue.requeue(ids[0]) == 0  # no longer dead
    assert queue.status(ids[0]) == ["queued"]
    job = _pick(queue)
    assert (job.id, job.attempts, bytes(job.payload)) == (ids[0], 1, b"job 0")
    queue.ack(job)
    assert queue.requeue(entrypoint="jobs") == 2
    assert queue.dead_jobs("jobs") == []
    assert sorted(j.id for j in queue.dequeue("jobs", batch_size=8, timeout=0)) == ids[1:]


def test_purge_by_id_and_by_entrypoint(queue):
    ids = [_dead_one(queue, b"x", "boom") for _ in range(3)]
    assert queue.stats()["jobs"]["dead"] == 3
    assert queue.purge_dead([ids[0], ids[0], 123456789]) == 1
    assert queue.status(ids[0]) == ["unknown"]
    assert queue.stats()["jobs"]["dead"] == 2
    assert queue.purge_dead(entrypoint="jobs") == 2
    assert queue.dead_jobs() == []


def test_requeue_of_a_dead_job_whose_key_is_held_raises_and_keeps_it(queue):
    dead_id = queue.enqueue("jobs", b"first", dedupe_key="order-9")
    queue.fail(_pick(queue), error="boom")
    holder = queue.enqueue("jobs", b"second", dedupe_key="order-9")
    assert holder != dead_id
    with pytest.raises(currant.DuplicateJob) as raised:
        queue.requeue(dead_id)
    assert "dedupe key 'order-9' is held by job %d" % holder in str(raised.value)
    assert "stays dead" in str(raised.value)
    assert queue.requeue(entrypoint="jobs") == 0  # skipped, not lost
    assert [d.id for d in queue.dead_jobs()] == [dead_id]


def test_max_dead_keeps_the_newest(queue):
    queue.declare_entrypoint("capped", max_dead=2)
    ids = []
    for i in range(4):
        ids.append(queue.enqueue("capped", b"x"))
        queue.fail(_pick(queue, "capped"), error=str(i))
    assert [d.id for d in queue.dead_jobs("capped")] == ids[2:]
    queue.declare_entrypoint("none", max_dead=0)
    queue.enqueue("none", b"x")
    queue.fail(_pick(queue, "none"), error="gone")
    assert queue.dead_jobs("none") == []


def test_bad_input_is_refused_and_nothing_queued_is_lost(queue):
    queued = queue.enqueue("jobs", b"keep me")
    with pytest.raises(currant.EntrypointNotFound):
        queue.dead_jobs("nope")
    with pytest.raises(currant.EntrypointNotFound):
        queue.requeue(entrypoint="nope")
    with pytest.raises(currant.InvalidArgument, match="ids or entrypoint=, not both"):
        queue.requeue([queued], entrypoint="jobs")
    with pytest.raises(currant.InvalidArgument, match="needs job ids or entrypoint="):
        queue.purge_dead()
    with pytest.raises(TypeError, match="job ids must be ints"):
        queue.requeue(["1"])
    with pytest.raises(currant.InvalidArgument, match="out of range"):
        queue.requeue(-1)
    with pytest.raises(TypeError, match="error must be a str"):
        queue.fail(_pick(queue), error=42)
    with pytest.raises(currant.InvalidArgument, match="max_dead 100000 is more than the arena's 256 slots"):
        queue.declare_entrypoint("huge", max_dead=100000)
    with pytest.raises(currant.InvalidArgument, match="max_dead must be between"):
        queue.declare_entrypoint("negative", max_dead=-1)
    assert queue.requeue(queued) == 0  # still picked (the bad fail above did nothing)
    assert queue.status(queued) == ["picked"]


def test_a_raising_worker_handler_leaves_its_traceback_as_the_last_error(queue):
    job_id = queue.enqueue("jobs", b"boom", max_attempts=2)
    manager = currant.QueueManager(queue.name)

    @manager.entrypoint("jobs", max_attempts=2, retry_delay=0.01, max_retry_delay=0.02)
    def handle(job: currant.JobContext) -> None:
        raise RuntimeError(f"handler failure on attempt {job.attempts}")

    timer = threading.Timer(120.0, manager.stop)
    timer.daemon = True
    timer.start()
    manager.run(stop_after=2)
    timer.cancel()
    [dead] = queue.dead_jobs("jobs")
    assert dead.id == job_id
    assert "RuntimeError: handler failure on attempt 2" in dead.error
    assert "Traceback (most recent call last):" in dead.error


def _fail_then_hang(name: str, ready) -> None:
    q = currant.Queue(name)
    [job] = q.dequeue("jobs", timeout=10)
    q.fail(job, error="failed in the child")
    ready.set()
    signal.pause()


def test_a_dead_job_outlives_the_process_that_failed_it(queue_name):
    q = currant.Queue.create(queue_name, slots=64, payload_bytes=64, max_participants=16)
    q.declare_entrypoint("jobs", "async")
    job_id = q.enqueue("jobs", b"x")
    ready = ctx.Event()
    child = ctx.Process(target=_fail_then_hang, args=(queue_name, ready))
    child.start()
    assert ready.wait(60)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    q.reap()
    [dead] = q.dead_jobs("jobs")
    assert (dead.id, dead.error) == (job_id, "failed in the child")
    assert q.requeue(job_id) == 1
    q.close()
