"""Queue.reserve: writing a payload in place, then commit or abandon."""

import gc

import pytest

import currant


def test_payload_written_in_place_is_the_committed_job(queue):
    r = queue.reserve("jobs")
    assert r.capacity == 64
    assert r.payload.nbytes == 64 and not r.payload.readonly
    r.payload[:5] = b"hello"
    job_id = r.commit(5, priority=3)
    assert job_id == r.id
    [job] = queue.dequeue("jobs", timeout=0)
    assert job.id == job_id and job.priority == 3
    assert bytes(job.payload) == b"hello"
    queue.ack(job)


def test_commit_without_size_takes_the_whole_capacity(queue):
    r = queue.reserve("jobs")
    r.payload[:] = bytes(range(64))
    r.commit()
    [job] = queue.dequeue("jobs", timeout=0)
    assert bytes(job.payload) == bytes(range(64))
    queue.ack(job)


def test_payload_view_is_released_at_commit(queue):
    r = queue.reserve("jobs")
    view = r.payload
    view[0] = 1
    r.commit(1)
    with pytest.raises(ValueError):
        view[0] = 2
    with pytest.raises(ValueError):
        r.payload
    assert not r.open


def test_payload_view_is_released_at_abandon_and_nothing_is_queued(queue):
    r = queue.reserve("jobs")
    view = r.payload
    r.abandon()
    with pytest.raises(ValueError):
        view[0] = 2
    r.abandon()  # idempotent
    assert queue.dequeue("jobs", timeout=0) == []
    assert queue.stats()["jobs"]["enqueued"] == 0


def test_with_block_that_raises_abandons(queue):
    with pytest.raises(KeyError):
        with queue.reserve("jobs") as r:
            view = r.payload
            view[:3] = b"abc"
            raise KeyError("render failed")
    assert not r.open
    with pytest.raises(ValueError):
        view[0] = 1
    assert queue.dequeue("jobs", timeout=0) == []


def test_with_block_that_commits(queue):
    with queue.reserve("jobs") as r:
        r.payload[:2] = b"ok"
        r.commit(2)
    [job] = queue.dequeue("jobs", timeout=0)
    assert bytes(job.payload) == b"ok"
    queue.ack(job)


def test_with_block_left_without_commit_abandons_and_says_so(queue):
    with pytest.raises(RuntimeError, match="without commit"):
        with queue.reserve("jobs") as r:
            r.payload[:1] = b"x"
    assert not r.open
    assert queue.dequeue("jobs", timeout=0) == []


def test_commit_beyond_capacity_is_refused_and_the_reservation_stays_usable(queue):
    r = queue.reserve("jobs")
    with pytest.raises(currant.PayloadTooLarge):
        r.commit(65)
    assert r.open
    r.payload[:1] = b"y"
    r.commit(1)
    [job] = queue.dequeue("jobs", timeout=0)
    assert bytes(job.payload) == b"y"
    queue.ack(job)


def test_commit_refused_while_a_derived_view_lives(queue):
    r = queue.reserve("jobs")
    part = r.payload[:4]
    part[:] = b"abcd"
    with pytest.raises(BufferError):
        r.commit(4)
    assert r.open and queue.dequeue("jobs", timeout=0) == []
    part.release()
    r.commit(4)
    [job] = queue.dequeue("jobs", timeout=0)
    assert bytes(job.payload) == b"abcd"
    queue.ack(job)


def test_second_commit_is_refused(queue):
    r = queue.reserve("jobs")
    r.commit(0)
    with pytest.raises(currant.InvalidArgument):
        r.commit(0)


def test_bad_size_types(queue):
    r = queue.reserve("jobs")
    with pytest.raises(TypeError):
        r.commit("4")
    with pytest.raises(ValueError):
        r.commit(-1)
    r.abandon()


def test_abandoned_or_dropped_reservations_give_their_slot_back(queue_name):
    # 16 slots and 4 participants: the slot cache takes one slot at a time.
    with currant.Queue.create(queue_name, slots=16, payload_bytes=16, max_participants=4) as q:
        q.declare_entrypoint("jobs")
        held = [q.reserve("jobs") for _ in range(16)]
        with pytest.raises(currant.ArenaFull):
            q.reserve("jobs")
        held.pop().abandon()
        held.append(q.reserve("jobs"))
        del held[0]
        gc.collect()
        held.append(q.reserve("jobs"))
        with pytest.raises(currant.ArenaFull):
            q.reserve("jobs")
        for r in held:
            r.abandon()
