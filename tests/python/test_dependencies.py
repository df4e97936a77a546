"""Job dependencies from Python (docs/job-dependencies.md): one behaviour per test."""

from __future__ import annotations

import multiprocessing
import time

import pytest

import currant


def _pick(q: currant.Queue) -> currant.Job:
    jobs = q.dequeue("jobs", batch_size=4, timeout=0)
    assert len(jobs) == 1
    return jobs[0]


def test_a_dependent_waits_and_runs_after_its_dependency_is_acked(queue):
    a = queue.enqueue("jobs", b"a")
    b = queue.enqueue("jobs", b"b", depends_on=[a])
    assert queue.status(b) == ["waiting"]
    info = queue.job_info(b)
    assert info["depends_on"] == [a]
    assert info["waiting_on"] == 1
    assert queue.stats()["jobs"]["waiting"] == 1
    job = _pick(queue)
    assert job.id == a
    queue.ack(job)
    assert queue.status(b) == ["queued"]
    assert _pick(queue).id == b


def test_a_failed_dependency_cancels_the_chain_with_the_reason(queue):
    a = queue.enqueue("jobs", b"a")
    b = queue.enqueue("jobs", b"b", depends_on=[a])
    c = queue.enqueue("jobs", b"c", depends_on=(b,))
    queue.fail(_pick(queue), "boom")
    assert queue.status([b, c]) == ["canceled", "canceled"]
    assert queue.job_info(b)["reason"] == f"canceled: dependency job {a} ended exception"
    assert queue.job_info(c)["reason"] == f"canceled: dependency job {b} ended canceled"
    assert queue.dequeue("jobs", timeout=0) == []


def test_an_unknown_dependency_raises_not_found_and_enqueues_nothing(queue):
    a = queue.enqueue("jobs", b"a")
    with pytest.raises(currant.NotFound) as raised:
        queue.enqueue("jobs", b"b", depends_on=[a + 1000])
    assert f"dependency job {a + 1000} was never issued" in str(raised.value)
    assert queue.stats()["jobs"]["enqueued"] == 1


def test_bad_dependency_lists_are_refused(queue):
    ids = [queue.enqueue("jobs", b"x") for _ in range(17)]
    with pytest.raises(currant.InvalidArgument, match="at most 16"):
        queue.enqueue("jobs", b"b", depends_on=ids)
    with pytest.raises(currant.InvalidArgument, match="not a job id"):
        queue.enqueue("jobs", b"b", depends_on=[0])
    with pytest.raises(TypeError):
        queue.enqueue("jobs", b"b", depends_on=["1"])
    with pytest.raises(currant.InvalidArgument, match="dedupe key and dependencies"):
        queue.enqueue("jobs", b"b", depends_on=[ids[0]], dedupe_key="k")
    assert queue.stats()["jobs"]["enqueued"] == 17


def test_cancel_of_a_waiting_job_cancels_it(queue):
    a = queue.enqueue("jobs", b"a")
    b = queue.enqueue("jobs", b"b", depends_on=[a])
    assert queue.cancel(b) == currant.CancelOutcome.CANCELED
    assert queue.status(b) == ["canceled"]
    queue.ack(_pick(queue))
    assert queue.dequeue("jobs", timeout=0) == []


def _consume(name: str, count: int) -> None:
    q = currant.Queue(name)
    for _ in range(count):
        [job] = q.dequeue("jobs", timeout=10)
        q.ack(job)


def test_a_consumer_process_releases_the_dependent(queue, queue_name):
    a = queue.enqueue("jobs", b"a")
    b = queue.enqueue("jobs", b"b", depends_on=[a])
    child = multiprocessing.get_context("fork").Process(target=_consume, args=(queue_name, 2))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert queue.stats()["jobs"]["successful"] == 2
    assert queue.stats()["jobs"]["waiting"] == 0


def test_every_job_of_enqueue_batch_waits_for_depends_on(queue):
    a = queue.enqueue("jobs", b"a")
    ids = queue.enqueue_batch("jobs", [b"x", b"y", b"z"], depends_on=[a])
    assert len(ids) == 3
    assert queue.status(ids) == ["waiting"] * 3
    assert all(queue.job_info(i)["depends_on"] == [a] for i in ids)
    assert queue.stats()["jobs"]["waiting"] == 3
    queue.ack(_pick(queue))
    assert queue.status(ids) == ["queued"] * 3
    jobs = queue.dequeue("jobs", batch_size=4, timeout=0)
    assert [job.id for job in jobs] == ids  # released in the batch's order


def test_enqueue_batch_after_a_failed_dependency_ends_every_job_canceled(queue):
    a = queue.enqueue("jobs", b"a")
    queue.fail(_pick(queue), "boom")
    ids = queue.enqueue_batch("jobs", [b"x", b"y"], depends_on=(a,))
    assert len(ids) == 2
    # The first one's memory slot may hold the second by now: the counts
    # and the last one tell.
    assert queue.status(ids[1]) == ["canceled"]
    assert queue.job_info(ids[1])["reason"] == f"canceled: dependency job {a} ended exception"
    assert queue.stats()["jobs"]["canceled"] == 2
    assert queue.stats()["jobs"]["waiting"] == 0
    assert queue.dequeue("jobs", timeout=0) == []


def test_enqueue_batch_with_an_unknown_dependency_enqueues_nothing(queue):
    a = queue.enqueue("jobs", b"a")
    with pytest.raises(currant.NotFound, match="was never issued"):
        queue.enqueue_batch("jobs", [b"x", b"y"], depends_on=[a + 1000])
    assert queue.stats()["jobs"]["enqueued"] == 1


def test_a_reservation_committed_with_depends_on_waits(queue):
    a = queue.enqueue("jobs", b"a")
    r = queue.reserve("jobs")
    r.payload[:1] = b"r"
    rid = r.commit(1, depends_on=[a])
    assert rid == r.id
    assert queue.status(rid) == ["waiting"]
    assert queue.job_info(rid)["depends_on"] == [a]
    queue.ack(_pick(queue))
    job = _pick(queue)
    assert job.id == rid
    assert bytes(job.payload) == b"r"


def test_a_reservation_depending_on_itself_is_refused_and_stays_open(queue):
    r = queue.reserve("jobs")
    with pytest.raises(currant.InvalidArgument, match="cannot depend on itself"):
        r.commit(0, depends_on=[r.id])
    assert r.open
    with pytest.raises(TypeError):
        r.commit(0, depends_on=["x"])
    assert r.open
    r.abandon()
    assert queue.stats()["jobs"]["enqueued"] == 0


def test_a_dependency_whose_slot_was_reused_still_counts_as_successful(queue):
    a = queue.enqueue("jobs", b"a")
    queue.ack(_pick(queue))
    for _ in range(3 * 256):  # every slot reused: a's slot forgot it
        queue.enqueue("jobs", b"x")
        queue.ack(_pick(queue))
    assert queue.job_info(a)["slot_reused"]
    b = queue.enqueue("jobs", b"b", depends_on=[a])
    assert queue.status(b) == ["queued"]


def test_status_and_wait_of_a_job_whose_slot_was_reused_give_its_final_status(queue):
    a = queue.enqueue("jobs", b"a")
    queue.cancel(a)
    for _ in range(3 * 256):  # every slot reused: a's slot forgot it
        queue.enqueue("jobs", b"x")
        queue.ack(_pick(queue))
    assert queue.status(a) == ["canceled"]
    info = queue.job_info(a)
    assert info["slot_reused"] is True
    assert info["reason"] == "" and info["depends_on"] == []
    start = time.monotonic()
    [outcome] = queue.wait(a, timeout=10)
    assert time.monotonic() - start < 1
    assert outcome.status == "canceled" and outcome.finished
    assert outcome.result is None
