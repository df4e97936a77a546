"""Bad input and misuse raise clear exceptions."""

import time

import pytest

import currant
from conftest import unique_name


def test_dequeue_timeout_returns_empty_list(queue):
    start = time.monotonic()
    assert queue.dequeue("jobs", batch_size=4, timeout=0.2) == []
    assert time.monotonic() - start >= 0.15


def test_oversized_payload_raises_and_queues_nothing(queue):
    with pytest.raises(currant.PayloadTooLarge) as info:
        queue.enqueue("jobs", b"x" * 65)
    assert info.value.code == "payload_too_large"
    assert isinstance(info.value, currant.CurrantError)
    assert queue.stats()["jobs"]["enqueued"] == 0


def test_oversized_payload_in_batch_queues_nothing(queue):
    with pytest.raises(currant.PayloadTooLarge):
        queue.enqueue_batch("jobs", [b"ok", b"x" * 65, b"ok"])
    assert queue.stats()["jobs"]["enqueued"] == 0
    assert queue.dequeue("jobs", timeout=0) == []


def test_unknown_entrypoint_raises(queue):
    with pytest.raises(currant.EntrypointNotFound) as info:
        queue.enqueue("no-such-entrypoint", b"x")
    assert info.value.code == "not_found"
    with pytest.raises(currant.NotFound):
        queue.dequeue("no-such-entrypoint", timeout=0)


def test_unknown_queue_raises():
    with pytest.raises(currant.QueueNotFound):
        currant.Queue(unique_name("missing"))


def test_create_existing_queue_raises(queue):
    with pytest.raises(currant.QueueExists):
        currant.Queue.create(queue.name, slots=16)


@pytest.mark.parametrize("payload", [42, "text", None, [b"a"]], ids=["int", "str", "none", "list"])
def test_wrong_payload_type_raises_type_error(queue, payload):
    with pytest.raises(TypeError):
        queue.enqueue("jobs", payload)
    assert queue.stats()["jobs"]["enqueued"] == 0


def test_wrong_argument_types_raise_type_error(queue):
    with pytest.raises(TypeError):
        queue.enqueue(1.5, b"x")
    with pytest.raises(TypeError):
        queue.dequeue("jobs", timeout="soon")
    with pytest.raises(TypeError):
        queue.ack("not a job")
    with pytest.raises(TypeError):
        queue.declare_entrypoint(5)
    with pytest.raises(TypeError):
        currant.Queue(123)
    with pytest.raises(TypeError):
        queue.enqueue_batch("jobs", [b"ok", 3])


def test_bad_durability_raises_value_error(queue):
    with pytest.raises(ValueError):
        queue.declare_entrypoint("other", durability="forever")


def test_closed_queue_raises(queue):
    queue.close()
    assert queue.closed
    for call in (
        lambda: queue.enqueue("jobs", b"x"),
        lambda: queue.dequeue("jobs", timeout=0),
        lambda: queue.stats(),
        lambda: queue.declare_entrypoint("more"),
    ):
        with pytest.raises(currant.QueueClosed):
            call()
    queue.close()  # idempotent


def test_removed_queue_raises_queue_retired(queue):
    currant.Queue.remove(queue.name)
    with pytest.raises(currant.QueueRetired) as info:
        queue.enqueue("jobs", b"x")
    assert info.value.code == "segment_retired"


def test_double_ack_raises_stale_handle(queue):
    queue.enqueue("jobs", b"x")
    (job,) = queue.dequeue("jobs", timeout=1.0)
    queue.ack(job)
    with pytest.raises(currant.StaleHandle) as info:
        queue.ack(job)
    assert info.value.code == "stale_handle"


def test_ack_after_lease_lost_raises_stale_handle(queue):
    queue.declare_entrypoint("short", lease=0.2)
    queue.enqueue("short", b"x")
    (job,) = queue.dequeue("short", timeout=1.0)
    time.sleep(0.4)
    with currant.Queue(queue.name) as other:
        (again,) = other.dequeue("short", timeout=3.0)
        assert again.id == job.id and again.attempts == 2
        with pytest.raises(currant.StaleHandle) as info:
            queue.ack(job)
        assert info.value.code == "not_owner"
        other.ack(again)


def test_full_queue_raises_arena_full(queue_name):
    with currant.Queue.create(queue_name, slots=4, payload_bytes=16) as q:
        q.declare_entrypoint("jobs")
        q.enqueue_batch("jobs", [b"x"] * 4)
        with pytest.raises(currant.ArenaFull):
            q.enqueue("jobs", b"one too many")


def test_batch_into_full_queue_reports_what_was_queued(queue_name):
    with currant.Queue.create(queue_name, slots=4, payload_bytes=16) as q:
        q.declare_entrypoint("jobs")
        with pytest.raises(currant.ArenaFull) as info:
            q.enqueue_batch("jobs", [b"x"] * 6)
        assert len(info.value.enqueued_ids) == 4
        assert q.status(info.value.enqueued_ids) == ["queued"] * 4
