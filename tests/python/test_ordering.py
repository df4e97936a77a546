"""Order of delivery: priority first, then FIFO; delayed jobs wait."""

import datetime
import time


def test_higher_priority_first_then_fifo(queue):
    queue.enqueue("jobs", b"low-1", priority=0)
    queue.enqueue("jobs", b"high", priority=5)
    queue.enqueue("jobs", b"low-2", priority=0)
    queue.enqueue("jobs", b"negative", priority=-3)
    queue.enqueue("jobs", b"mid", priority=2)
    jobs = queue.dequeue("jobs", batch_size=10, timeout=1.0)
    assert [bytes(j.payload) for j in jobs] == [b"high", b"mid", b"low-1", b"low-2", b"negative"]
    queue.ack(jobs)


def test_execute_after_hides_the_job_until_due(queue):
    queue.enqueue("jobs", b"later", execute_after=0.3)
    assert queue.dequeue("jobs", timeout=0) == []
    start = time.monotonic()
    jobs = queue.dequeue("jobs", timeout=5.0)
    assert [bytes(j.payload) for j in jobs] == [b"later"]
    assert time.monotonic() - start > 0.1
    queue.ack(jobs)


def test_execute_after_accepts_datetime(queue):
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    job_id = queue.enqueue("jobs", b"x", execute_after=when)
    assert queue.dequeue("jobs", timeout=0) == []
    assert queue.stats()["jobs"]["delayed"] == 1
    assert queue.cancel(job_id)
