"""job.payload is a zero-copy view released when the job is finished."""

import pytest

import currant


def _one(q):
    (job,) = q.dequeue("jobs", timeout=1.0)
    return job


def test_payload_released_after_ack(queue):
    queue.enqueue("jobs", b"secret")
    job = _one(queue)
    view = job.payload
    assert bytes(view) == b"secret"
    queue.ack(job)
    with pytest.raises(ValueError):
        bytes(view)  # the memoryview handed out is released
    with pytest.raises(ValueError):
        job.payload


def test_payload_released_after_fail_and_retry(queue):
    queue.enqueue_batch("jobs", [b"a", b"b"])
    first, second = queue.dequeue("jobs", batch_size=2, timeout=1.0)
    views = [first.payload, second.payload]
    queue.fail(first)
    queue.retry(second, delay=10)
    for view in views:
        with pytest.raises(ValueError):
            view.tobytes()


def test_reused_slot_is_never_visible_through_an_old_view(queue):
    queue.enqueue("jobs", b"old")
    job = _one(queue)
    view = job.payload
    queue.ack(job)
    queue.enqueue("jobs", b"new")  # may reuse the slot
    newer = _one(queue)
    assert bytes(newer.payload) == b"new"
    with pytest.raises(ValueError):
        view[0]
    queue.ack(newer)


def test_ack_refused_while_a_derived_view_lives(queue):
    job_id = queue.enqueue("jobs", b"abcdef")
    job = _one(queue)
    part = job.payload[2:4]
    with pytest.raises(BufferError):
        queue.ack(job)
    assert queue.status([job_id]) == ["picked"]  # nothing applied
    part.release()
    queue.ack(job)
    assert queue.status([job_id]) == ["successful"]


def test_payload_invalid_after_close(queue):
    queue.enqueue("jobs", b"x")
    job = _one(queue)
    queue.close()
    with pytest.raises(ValueError):
        job.payload


def test_copy_survives_ack(queue):
    queue.enqueue("jobs", b"keep me")
    job = _one(queue)
    kept = bytes(job.payload)
    queue.ack(job)
    assert kept == b"keep me"
