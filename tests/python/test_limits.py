"""Pause and resume, the concurrency limit and the rate limit from Python
(docs/limits.md): one behaviour per test."""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import time

import pytest

import currant


def _fill(q: currant.Queue, count: int, entrypoint: str = "jobs") -> None:
    for n in range(count):
        q.enqueue(entrypoint, f"job {n}".encode())


def test_pause_holds_jobs_back(queue):
    _fill(queue, 3)
    queue.pause("jobs")
    assert queue.dequeue("jobs", batch_size=8, timeout=0) == []
    assert queue.stats()["jobs"]["queued"] == 3


def test_paused_entrypoint_accepts_enqueues(queue):
    queue.pause("jobs")
    job_id = queue.enqueue("jobs", b"while paused")
    assert queue.status(job_id) == ["queued"]


def test_resume_releases_the_held_jobs(queue):
    queue.pause("jobs")
    _fill(queue, 4)
    queue.resume("jobs")
    jobs = queue.dequeue("jobs", batch_size=8, timeout=0)
    assert [bytes(j.payload) for j in jobs] == [f"job {n}".encode() for n in range(4)]
    queue.ack(jobs)


def test_paused_reports_the_flag(queue):
    assert queue.paused("jobs") is False
    queue.pause("jobs")
    assert queue.paused("jobs") is True
    assert queue.stats()["jobs"]["paused"] is True


def test_concurrency_limit_caps_picks(queue):
    queue.set_concurrency_limit("jobs", 2)
    _fill(queue, 5)
    held = queue.dequeue("jobs", batch_size=8, timeout=0)
    assert len(held) == 2
    assert queue.dequeue("jobs", batch_size=8, timeout=0) == []
    queue.ack(held[0])
    assert len(queue.dequeue("jobs", batch_size=8, timeout=0)) == 1


def test_concurrency_limit_on_declare(queue_name):
    with currant.Queue.create(queue_name, slots=64, payload_bytes=64) as q:
        q.declare_entrypoint("limited", concurrency_limit=1)
        _fill(q, 2, "limited")
        assert len(q.dequeue("limited", batch_size=8, timeout=0)) == 1
        assert q.limits("limited")["concurrency"] == 1
        assert q.limits("limited")["in_flight"] == 1


def test_redeclaring_keeps_the_limit(queue):
    queue.set_concurrency_limit("jobs", 3)
    queue.declare_entrypoint("jobs")
    assert queue.limits("jobs")["concurrency"] == 3


def test_none_removes_the_concurrency_limit(queue):
    queue.set_concurrency_limit("jobs", 1)
    _fill(queue, 3)
    assert len(queue.dequeue("jobs", batch_size=8, timeout=0)) == 1
    queue.set_concurrency_limit("jobs", None)
    assert queue.limits("jobs")["concurrency"] is None
    assert len(queue.dequeue("jobs", batch_size=8, timeout=0)) == 2


def test_rate_limit_hands_out_the_burst_then_nothing(queue):
    queue.set_rate_limit("jobs", 0.001, burst=2)  # the next token is 1000 s away
    _fill(queue, 5)
    assert len(queue.dequeue("jobs", batch_size=8, timeout=0)) == 2
    assert queue.dequeue("jobs", batch_size=8, timeout=0) == []
    limits = queue.limits("jobs")
    assert limits["rate"] == pytest.approx(0.001)
    assert limits["burst"] == 2


def test_rate_limit_on_declare(queue_name):
    with currant.Queue.create(queue_name, slots=64, payload_bytes=64) as q:
        q.declare_entrypoint("slow", rate_limit=0.001, rate_burst=1)
        _fill(q, 2, "slow")
        assert len(q.dequeue("slow", batch_size=8, timeout=0)) == 1


@pytest.mark.parametrize("limit", [0, -1])
def test_zero_or_negative_concurrency_limit_is_refused(queue, limit):
    queue.set_concurrency_limit("jobs", 2)
    with pytest.raises(currant.InvalidArgument, match="concurrency limit must be at least 1") as raised:
        queue.set_concurrency_limit("jobs", limit)
    assert "entrypoint 'jobs'" in str(raised.value)
    assert queue.limits("jobs")["concurrency"] == 2


@pytest.mark.parametrize("rate", [0.0, -2.0, math.nan, math.inf])
def test_bad_rate_is_refused(queue, rate):
    with pytest.raises(currant.InvalidArgument, match="rate limit"):
        queue.set_rate_limit("jobs", rate)
    assert queue.limits("jobs")["rate"] is None


def test_zero_burst_is_refused(queue):
    with pytest.raises(currant.InvalidArgument, match="rate burst must be at least 1"):
        queue.set_rate_limit("jobs", 10.0, burst=0)


def test_declare_with_a_zero_limit_declares_nothing(queue):
    with pytest.raises(currant.InvalidArgument):
        queue.declare_entrypoint("other", concurrency_limit=0)
    assert "other" not in queue.entrypoint_names()


def test_limits_of_an_unknown_entrypoint(queue):
    with pytest.raises(currant.EntrypointNotFound):
        queue.pause("nope")
    with pytest.raises(currant.NotFound):
        queue.set_concurrency_limit(42, 2)


def test_limit_of_the_wrong_type(queue):
    with pytest.raises(TypeError):
        queue.set_concurrency_limit("jobs", 2.5)


def _hold_and_wait(name: str, ready, release) -> None:
    with currant.Queue(name) as q:
        jobs = q.dequeue("jobs", batch_size=2, timeout=10)
        assert len(jobs) == 2
        ready.set()
        release.wait(300)  # killed before this returns


def test_killed_consumer_gives_its_limit_slots_back(queue):
    queue.set_concurrency_limit("jobs", 2)
    _fill(queue, 4)
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_and_wait, args=(queue.name, ready, release))
    holder.start()
    assert ready.wait(60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    assert holder.exitcode == -signal.SIGKILL
    assert queue.dequeue("jobs", batch_size=8, timeout=0) == []  # slots still counted
    assert queue.reap() == 2
    assert queue.limits("jobs")["in_flight"] == 0
    assert len(queue.dequeue("jobs", batch_size=8, timeout=0)) == 2


def _wait_until(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def _blocked(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        text = stat.read()
    return text[text.rindex(")") + 2] == "S"


def _wait_for_one(name: str, results) -> None:
    with currant.Queue(name) as q:
        jobs = q.dequeue("jobs", batch_size=1, timeout=None)  # waits until woken
        results.put([bytes(j.payload) for j in jobs])
        q.ack(jobs)


def test_resume_wakes_a_consumer_in_another_process(queue):
    queue.pause("jobs")
    queue.enqueue("jobs", b"held")
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    waiter = ctx.Process(target=_wait_for_one, args=(queue.name, results))
    waiter.start()
    # Resume only once the waiter is attached and blocked in the kernel (its
    # main thread in state S), so that only the wake-up can end its wait.
    assert _wait_until(lambda: queue.info()["participants"] == 2 and _blocked(waiter.pid))
    assert queue.stats()["jobs"]["picked"] == 0  # not handed out while paused
    queue.resume("jobs")
    assert results.get(timeout=60) == [b"held"]
    waiter.join(60)
    assert waiter.exitcode == 0
