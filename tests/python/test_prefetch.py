"""dequeue_one with prefetch, and deferred acks."""

import pytest

import currant


def enqueue_texts(queue, count):
    return [queue.enqueue("jobs", f"job {i}".encode()) for i in range(count)]


def test_dequeue_one_picks_the_prefetch_count_and_hands_them_out_in_order(queue):
    ids = enqueue_texts(queue, 6)
    queue.set_prefetch(4)
    first = queue.dequeue_one("jobs", timeout=0)
    assert first.id == ids[0] and bytes(first.payload) == b"job 0"
    stats = queue.stats()["jobs"]
    assert stats["picked"] == 4 and stats["queued"] == 2
    with currant.Queue(queue.name) as other:
        assert [j.id for j in other.dequeue("jobs", batch_size=8, timeout=0)] == ids[4:]
    queue.ack(first)
    for expected in ids[1:4]:
        job = queue.dequeue_one("jobs", timeout=0)
        assert job.id == expected
        queue.ack(job)
    # The other consumer's close requeued its two (in no promised order).
    rest = [queue.dequeue_one(["jobs"], timeout=0) for _ in range(2)]
    assert sorted(j.id for j in rest) == ids[4:] and all(j.attempts == 2 for j in rest)
    queue.ack(rest)
    assert queue.dequeue_one("jobs", timeout=0) is None


def test_dequeue_one_waits_for_its_timeout(queue):
    assert queue.dequeue_one("jobs", timeout=0.05) is None


def test_set_prefetch_checks_its_argument(queue):
    with pytest.raises(ValueError):
        queue.set_prefetch(0)
    with pytest.raises(ValueError):
        queue.set_prefetch(1025)
    with pytest.raises(TypeError):
        queue.set_prefetch(2.0)


def test_prefetched_jobs_not_handed_out_are_requeued_at_close(queue):
    enqueue_texts(queue, 3)
    with currant.Queue(queue.name) as consumer:
        consumer.ack(consumer.dequeue_one("jobs", timeout=0))
    stats = queue.stats()["jobs"]
    assert stats["successful"] == 1 and stats["queued"] == 2 and stats["picked"] == 0


def test_ack_deferred_is_not_a_fact_until_flush(queue):
    ids = enqueue_texts(queue, 3)
    jobs = queue.dequeue("jobs", batch_size=3, timeout=0)
    view = jobs[0].payload
    for job in jobs:
        queue.ack_deferred(job)
    with pytest.raises(ValueError):
        bytes(view)  # released at once, like ack
    assert queue.status(ids) == ["picked"] * 3
    assert queue.flush() == 3
    assert queue.status(ids) == ["successful"] * 3
    assert queue.stats()["jobs"]["picked"] == 0
    assert queue.flush() == 0


def test_deferred_acks_are_applied_before_the_consumer_sleeps(queue):
    enqueue_texts(queue, 1)
    queue.ack_deferred(queue.dequeue_one("jobs", timeout=0))
    assert queue.stats()["jobs"]["successful"] == 0
    assert queue.dequeue("jobs", timeout=0.05) == []
    assert queue.stats()["jobs"]["successful"] == 1


def test_deferred_acks_are_applied_at_close(queue):
    enqueue_texts(queue, 2)
    with currant.Queue(queue.name) as consumer:
        for job in consumer.dequeue("jobs", batch_size=2, timeout=0):
            consumer.ack_deferred(job)
    stats = queue.stats()["jobs"]
    assert stats["successful"] == 2 and stats["retried"] == 0


def test_ack_deferred_refuses_a_job_whose_payload_has_a_derived_view(queue):
    enqueue_texts(queue, 1)
    job = queue.dequeue_one("jobs", timeout=0)
    part = job.payload[:2]
    with pytest.raises(BufferError):
        queue.ack_deferred(job)
    part.release()
    queue.ack_deferred(job)
    assert queue.flush() == 1
