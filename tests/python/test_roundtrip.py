"""Enqueue and dequeue within one process: payload kinds and metadata."""

import array

import pytest

import currant


def _one(q: currant.Queue) -> currant.Job:
    jobs = q.dequeue("jobs", batch_size=1, timeout=1.0)
    assert len(jobs) == 1
    return jobs[0]


@pytest.mark.parametrize(
    "payload",
    [b"hello", bytearray(b"a bytearray"), memoryview(b"a memoryview"), b"\x00nul\x00bytes\x00", b""],
    ids=["bytes", "bytearray", "memoryview", "nul-bytes", "empty"],
)
def test_round_trip_of_buffer_payloads(queue, payload):
    job_id = queue.enqueue("jobs", payload)
    job = _one(queue)
    assert job.id == job_id
    assert bytes(job.payload) == bytes(payload)
    queue.ack(job)


def test_round_trip_of_array_payload(queue):
    payload = array.array("i", [1, 2, 3])
    queue.enqueue("jobs", payload)
    job = _one(queue)
    assert bytes(job.payload) == payload.tobytes()
    queue.ack(job)


def test_job_metadata(queue):
    ep = queue.entrypoint("jobs")
    job_id = queue.enqueue(ep, b"x", priority=7)
    job = _one(queue)
    assert (job.id, job.entrypoint, job.priority, job.attempts) == (job_id, ep, 7, 1)
    queue.ack(job)


def test_payload_is_read_only(queue):
    queue.enqueue("jobs", b"abc")
    job = _one(queue)
    assert job.payload.readonly
    with pytest.raises(TypeError):
        job.payload[0] = 1
    queue.ack(job)


def test_enqueue_batch_returns_ids_in_order(queue):
    ids = queue.enqueue_batch("jobs", [b"a", bytearray(b"b"), memoryview(b"c")])
    jobs = queue.dequeue("jobs", batch_size=10, timeout=1.0)
    assert [j.id for j in jobs] == ids
    assert [bytes(j.payload) for j in jobs] == [b"a", b"b", b"c"]
    assert queue.ack(jobs) == 3


def test_status_follows_the_job(queue):
    job_id = queue.enqueue("jobs", b"x")
    assert queue.status([job_id]) == ["queued"]
    job = _one(queue)
    assert queue.status(job_id) == ["picked"]
    queue.ack(job)
    assert queue.status([job_id]) == ["successful"]


def test_cancel_a_queued_job(queue):
    job_id = queue.enqueue("jobs", b"x")
    # Queue.cancel returns a CancelOutcome (docs/cancellation.md), true
    # unless it is NOT_CANCELABLE.
    outcome = queue.cancel(job_id)
    assert outcome is currant.CancelOutcome.CANCELED and outcome
    assert queue.status([job_id]) == ["canceled"]
    assert queue.dequeue("jobs", timeout=0) == []
    again = queue.cancel(job_id)
    assert again is currant.CancelOutcome.NOT_CANCELABLE and not again


def test_stats_counts_per_entrypoint(queue):
    queue.enqueue_batch("jobs", [b"1", b"2"])
    queue.ack(_one(queue))
    stats = queue.stats()["jobs"]
    assert (stats["queued"], stats["enqueued"], stats["successful"]) == (1, 2, 1)


def test_fail_ends_in_exception(queue):
    job_id = queue.enqueue("jobs", b"x")
    queue.fail(_one(queue))
    assert queue.status([job_id]) == ["exception"]


def test_retry_requeues_with_attempt_counted(queue):
    queue.enqueue("jobs", b"x")
    assert queue.retry(_one(queue), delay=0) is True
    again = _one(queue)
    assert again.attempts == 2
    queue.ack(again)


def test_open_existing_queue_by_name(queue):
    with currant.Queue(queue.name) as other:
        other.enqueue("jobs", b"from other")
    assert bytes(_one(queue).payload) == b"from other"
