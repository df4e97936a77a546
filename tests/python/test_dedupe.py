"""Dedupe keys from Python (docs/dedupe.md): one behaviour per test."""

from __future__ import annotations

import multiprocessing

import pytest

import currant


def _live(q: currant.Queue, entrypoint: str = "jobs") -> int:
    s = q.stats()[entrypoint]
    return s["queued"] + s["delayed"] + s["picked"]


def test_a_held_key_is_skipped_and_returns_the_holder(queue):
    first = queue.enqueue("jobs", b"one", dedupe_key="order-1")
    assert not queue.last_enqueue_skipped
    again = queue.enqueue("jobs", b"two", dedupe_key="order-1")
    assert again == first
    assert queue.last_enqueue_skipped
    assert _live(queue) == 1
    [job] = queue.dequeue("jobs", batch_size=4, timeout=0)
    assert bytes(job.payload) == b"one"


def test_refuse_raises_duplicate_job_naming_key_and_holder(queue):
    first = queue.enqueue("jobs", b"one", dedupe_key="k", on_duplicate="refuse")
    with pytest.raises(currant.DuplicateJob) as raised:
        queue.enqueue("jobs", b"two", dedupe_key="k", on_duplicate="refuse")
    assert "dedupe key 'k'" in str(raised.value)
    assert str(first) in str(raised.value)
    assert raised.value.code == "already_exists"
    assert _live(queue) == 1


def test_the_key_is_held_while_picked_and_free_after_the_ack(queue):
    first = queue.enqueue("jobs", b"one", dedupe_key="k")
    [job] = queue.dequeue("jobs", timeout=0)
    assert queue.enqueue("jobs", b"two", dedupe_key="k") == first
    queue.ack(job)
    second = queue.enqueue("jobs", b"two", dedupe_key="k", on_duplicate="refuse")
    assert second != first


def test_the_key_is_free_after_cancel_and_fail(queue):
    first = queue.enqueue("jobs", b"one", dedupe_key="k")
    assert queue.cancel(first)
    second = queue.enqueue("jobs", b"two", dedupe_key="k", on_duplicate="refuse")
    [job] = queue.dequeue("jobs", timeout=0)
    assert job.id == second
    queue.fail(job)
    third = queue.enqueue("jobs", b"three", dedupe_key="k", on_duplicate="refuse")
    assert third not in (first, second)


def test_a_retried_job_keeps_its_key(queue):
    first = queue.enqueue("jobs", b"one", dedupe_key="k")
    [job] = queue.dequeue("jobs", timeout=0)
    assert queue.retry(job, delay=0)
    assert queue.enqueue("jobs", b"two", dedupe_key="k") == first
    with pytest.raises(currant.DuplicateJob):
        queue.enqueue("jobs", b"two", dedupe_key="k", on_duplicate="refuse")


def test_str_and_bytes_keys_are_the_same_key(queue):
    first = queue.enqueue("jobs", b"one", dedupe_key="café")
    assert queue.enqueue("jobs", b"two", dedupe_key="café".encode()) == first


def test_keys_are_scoped_to_the_entrypoint(queue):
    queue.declare_entrypoint("other")
    a = queue.enqueue("jobs", b"x", dedupe_key="k")
    b = queue.enqueue("other", b"x", dedupe_key="k")
    assert a != b


@pytest.mark.parametrize(
    "key, says",
    [("", "empty"), ("k" * 129, "129 bytes"), ("new\nline", "control character (0x0a)"), ("nul\x00", "0x00")],
)
def test_bad_keys_are_refused_and_nothing_is_lost(queue, key, says):
    kept = queue.enqueue("jobs", b"kept", dedupe_key="good")
    with pytest.raises(currant.InvalidArgument) as raised:
        queue.enqueue("jobs", b"x", dedupe_key=key)
    assert says in str(raised.value)
    assert "'jobs'" in str(raised.value)
    assert queue.status(kept) == ["queued"]
    assert _live(queue) == 1


def test_bad_on_duplicate_and_key_types_are_refused(queue):
    with pytest.raises(currant.InvalidArgument, match="on-duplicate policy 'ignore'"):
        queue.enqueue("jobs", b"x", dedupe_key="k", on_duplicate="ignore")
    with pytest.raises(TypeError, match="dedupe_key must be str, bytes or None"):
        queue.enqueue("jobs", b"x", dedupe_key=17)
    assert _live(queue) == 0


def _racer(name: str, rounds: int, results) -> None:
    q = currant.Queue(name)
    try:
        for r in range(rounds):
            job_id = q.enqueue("jobs", b"x", dedupe_key=f"race-{r}")
            results.put((r, job_id, q.last_enqueue_skipped))
    finally:
        q.close()


def test_processes_racing_on_the_same_keys_create_one_job_per_key(queue, queue_name):
    rounds, racers = 50, 4
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(queue_name, rounds, results)) for _ in range(racers)]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in range(rounds * racers)]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    for r in range(rounds):
        outcomes = [(job_id, skipped) for (rr, job_id, skipped) in got if rr == r]
        assert len({job_id for job_id, _ in outcomes}) == 1
        assert sum(1 for _, skipped in outcomes if not skipped) == 1
    assert _live(queue) == rounds
