"""Job results and waiting from Python (docs/results.md): ack with a result,
Queue.wait across threads and processes, bad input, the worker turning a
handler's return value into the job's result, and a waiter killed."""

import multiprocessing
import os
import signal
import threading
import time

import pytest

import currant

mp = multiprocessing.get_context("fork")


@pytest.fixture
def kept(queue):
    """The fixture's queue with "jobs" keeping results for a minute."""
    queue.declare_entrypoint("jobs", result_retention=60)
    return queue


def test_ack_with_bytes_result_is_returned_by_wait(kept):
    job_id = kept.enqueue("jobs", b"x")
    [job] = kept.dequeue("jobs", timeout=0)
    kept.ack(job, result=b"\x00answer")
    [outcome] = kept.wait(job_id, timeout=0)
    assert outcome.id == job_id
    assert outcome.finished
    assert outcome.status == "successful"
    assert outcome.result == b"\x00answer"
    assert outcome.finished_at is not None


def test_str_result_is_stored_as_utf8(kept):
    job_id = kept.enqueue("jobs", b"x")
    [job] = kept.dequeue("jobs", timeout=0)
    kept.ack(job, result="héllo")
    assert kept.wait([job_id])[0].result == "héllo".encode()


def test_oversized_result_raises_and_the_job_stays_picked(kept):
    job_id = kept.enqueue("jobs", b"x")
    [job] = kept.dequeue("jobs", timeout=0)
    with pytest.raises(currant.InvalidArgument, match="1025.*1024"):
        kept.ack(job, result=b"r" * 1025)
    assert kept.status(job_id) == ["picked"]
    assert not job.finished
    kept.ack(job, result=b"r" * 1024)
    assert kept.wait(job_id)[0].result == b"r" * 1024


def test_result_of_another_type_raises_type_error(kept):
    kept.enqueue("jobs", b"x")
    [job] = kept.dequeue("jobs", timeout=0)
    with pytest.raises(TypeError):
        kept.ack(job, result=42)
    with pytest.raises(TypeError):
        kept.ack([job], result=b"x")
    kept.ack(job)


def test_wait_reports_unknown_ids_and_refuses_impossible_ones(kept):
    started = time.monotonic()
    [outcome] = kept.wait([0x0001000000000FFF], timeout=10)
    assert time.monotonic() - started < 1
    assert outcome.status == "unknown" and not outcome.finished
    for bad in (0, -1, 2**63):
        with pytest.raises(currant.InvalidArgument):
            kept.wait(bad)
    with pytest.raises(TypeError):
        kept.wait(["1"])


def test_wait_times_out_with_the_current_status(kept):
    job_id = kept.enqueue("jobs", b"x")
    started = time.monotonic()
    [outcome] = kept.wait(job_id, timeout=0.05)
    assert time.monotonic() - started >= 0.05
    assert not outcome.finished
    assert outcome.status == "queued"


def test_wait_wakes_when_another_thread_acks(kept):
    job_id = kept.enqueue("jobs", b"x")

    def consume():
        with currant.Queue(kept.name) as consumer:
            [job] = consumer.dequeue("jobs", timeout=5)
            time.sleep(0.1)
            consumer.ack(job, result=b"from the thread")

    thread = threading.Thread(target=consume)
    thread.start()
    [outcome] = kept.wait(job_id, timeout=20)
    thread.join()
    assert outcome.finished
    assert outcome.result == b"from the thread"


def test_interrupt_ends_a_wait(kept):
    job_id = kept.enqueue("jobs", b"x")
    timer = threading.Timer(0.1, kept.interrupt)
    timer.start()
    started = time.monotonic()
    [outcome] = kept.wait(job_id, timeout=20)
    assert time.monotonic() - started < 10
    assert not outcome.finished


def test_failed_job_reports_exception_and_its_error(kept):
    job_id = kept.enqueue("jobs", b"x")
    [job] = kept.dequeue("jobs", timeout=0)
    kept.fail(job, error="boom")
    [outcome] = kept.wait(job_id)
    assert outcome.status == "exception"
    assert outcome.error == "boom"
    assert outcome.result is None


def _ack_in_child(name: str, delay: float) -> None:
    time.sleep(delay)
    with currant.Queue(name) as q:
        [job] = q.dequeue("jobs", timeout=5)
        q.ack(job, result=b"from another process")


def test_wait_wakes_when_another_process_acks(kept):
    job_id = kept.enqueue("jobs", b"x")
    proc = mp.Process(target=_ack_in_child, args=(kept.name, 0.1))
    proc.start()
    [outcome] = kept.wait(job_id, timeout=20)
    proc.join(10)
    assert proc.exitcode == 0
    assert outcome.result == b"from another process"


def _wait_in_child(name: str, job_id: int, ready) -> None:
    with currant.Queue(name) as q:
        ready.set()
        q.wait(job_id, timeout=60)


def test_a_waiter_killed_while_asleep_does_not_stop_completions(kept):
    job_id = kept.enqueue("jobs", b"x")
    ready = mp.Event()
    proc = mp.Process(target=_wait_in_child, args=(kept.name, job_id, ready))
    proc.start()
    assert ready.wait(10)
    time.sleep(0.2)  # asleep in the kernel
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL
    kept.reap()  # the dead waiter is reaped (its wait uncounted)
    [job] = kept.dequeue("jobs", timeout=0)
    kept.ack(job, result=b"still works")
    assert kept.wait(job_id, timeout=5)[0].result == b"still works"


def _safety_stop(manager: currant.QueueManager, seconds: float = 120.0) -> threading.Timer:
    timer = threading.Timer(seconds, manager.stop)
    timer.daemon = True
    timer.start()
    return timer


def test_worker_handler_return_value_becomes_the_result(queue):
    ids = queue.enqueue_batch("jobs", [b"1", b"2", b"3"])
    manager = currant.QueueManager(queue.name)

    @manager.entrypoint("jobs", result_retention=60)
    def handle(job: currant.JobContext):
        n = int(bytes(job.payload))
        if n == 1:
            return b"bytes " + bytes(job.payload)
        if n == 2:
            return "text"
        return None

    timer = _safety_stop(manager)
    manager.run(stop_after=len(ids))
    timer.cancel()
    outcomes = queue.wait(ids, timeout=0)
    assert [o.status for o in outcomes] == ["successful"] * 3
    assert [o.result for o in outcomes] == [b"bytes 1", b"text", None]


def test_worker_async_handler_return_value_becomes_the_result(queue):
    [job_id] = queue.enqueue_batch("jobs", [b"a"])
    manager = currant.QueueManager(queue.name)

    @manager.entrypoint("jobs", result_retention=60)
    async def handle(job: currant.JobContext):
        return bytes(job.payload) * 2

    timer = _safety_stop(manager)
    manager.run(stop_after=1)
    timer.cancel()
    assert queue.wait(job_id, timeout=0)[0].result == b"aa"


def test_worker_unusable_result_fails_the_attempt(queue):
    queue.declare_entrypoint("jobs", max_attempts=1)
    job_id = queue.enqueue("jobs", b"x")
    manager = currant.QueueManager(queue.name)

    @manager.entrypoint("jobs", result_retention=60, max_attempts=1)
    def handle(job: currant.JobContext):
        return b"r" * 2000

    timer = _safety_stop(manager)
    manager.run(stop_after=1)
    timer.cancel()
    [outcome] = queue.wait(job_id, timeout=0)
    assert outcome.status == "exception"
    assert "2000" in outcome.error


def test_create_takes_result_bytes(queue_name):
    with currant.Queue.create(queue_name, slots=64, payload_bytes=64, max_participants=8, result_bytes=4096) as q:
        q.declare_entrypoint("jobs", result_retention=60)
        job_id = q.enqueue("jobs", b"x")
        [job] = q.dequeue("jobs", timeout=0)
        q.ack(job, result=b"r" * 4096)
        assert q.wait(job_id)[0].result == b"r" * 4096
    with pytest.raises(currant.InvalidArgument, match="1 MiB"):
        currant.Queue.create(queue_name + "-big", result_bytes=2**20 + 1)
