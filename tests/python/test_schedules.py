"""Cron schedules from Python (docs/schedules.md): add, list, remove, the
errors, a tick fired by a dequeue (the job's enqueued_at_ns is the tick),
catch_up after a gap, and ticks fired exactly once by several processes."""

from __future__ import annotations

import multiprocessing
import time

import pytest

import currant

SECOND = 1_000_000_000


def sleep_until_realtime(at_ns: int) -> None:
    while time.time_ns() < at_ns:
        time.sleep(0.01)


def test_add_list_remove(queue):
    queue.add_schedule("nightly", "0 30 2 * * *", "jobs", b"run", priority=-2, missed="catch_up", catch_up_max=7)
    (info,) = queue.schedules()
    assert info["name"] == "nightly"
    assert info["expression"] == "0 30 2 * * *"
    assert info["entrypoint"] == "jobs"
    assert info["payload"] == b"run"
    assert info["priority"] == -2
    assert info["missed"] == "catch_up"
    assert info["catch_up_max"] == 7
    assert info["fired"] == 0
    assert info["next_tick_ns"] % (86400 * SECOND) == (2 * 3600 + 30 * 60) * SECOND
    queue.remove_schedule("nightly")
    assert queue.schedules() == []


def test_errors_and_the_queue_keeps_working(queue):
    with pytest.raises(currant.InvalidArgument) as info:
        queue.add_schedule("bad", "* * 25 * * *", "jobs")
    assert "hour field '25'" in str(info.value)
    assert info.value.code == "invalid_argument"
    with pytest.raises(currant.InvalidArgument, match="has 2 fields"):
        queue.add_schedule("bad", "* *", "jobs")
    with pytest.raises(currant.InvalidArgument, match="skip or catch_up"):
        queue.add_schedule("bad", "@daily", "jobs", missed="sometimes")
    with pytest.raises(currant.EntrypointNotFound):
        queue.add_schedule("bad", "@daily", "nope")
    with pytest.raises(currant.PayloadTooLarge):
        queue.add_schedule("bad", "@daily", "jobs", b"x" * 65)
    assert queue.schedules() == []
    queue.add_schedule("good", "* * * * * *", "jobs", b"tick")
    with pytest.raises(currant.ScheduleExists) as exists:
        queue.add_schedule("good", "@daily", "jobs")
    assert exists.value.code == "already_exists"
    with pytest.raises(currant.ScheduleNotFound) as missing:
        queue.remove_schedule("nope")
    assert isinstance(missing.value, currant.NotFound)
    assert "unknown schedule 'nope'" in str(missing.value)
    # Still works: the good schedule fires into a waiting dequeue.
    (job,) = queue.dequeue("jobs", timeout=10)
    assert bytes(job.payload) == b"tick"
    assert job.enqueued_at_ns % SECOND == 0
    queue.ack(job)


def test_catch_up_after_a_gap(queue):
    queue.add_schedule("s", "* * * * * *", "jobs", missed="catch_up")
    first = queue.schedules()[0]["next_tick_ns"]
    sleep_until_realtime(first + 3 * SECOND + 200_000_000)
    fired = queue.run_schedules()
    info = queue.schedules()[0]
    ticks = []
    for job in queue.dequeue("jobs", batch_size=64, timeout=0):
        if job.enqueued_at_ns <= info["last_tick_ns"]:
            ticks.append(job.enqueued_at_ns)
        queue.ack(job)
    ticks.sort()
    assert len(ticks) == fired >= 4
    assert ticks == [first + i * SECOND for i in range(len(ticks))]
    assert info["next_tick_ns"] == ticks[-1] + SECOND


def _consume(name: str, until_ns: int, results) -> None:
    q = currant.Queue(name)
    while time.time_ns() < until_ns:
        for job in q.dequeue("jobs", batch_size=8, timeout=0.2):
            results.put(job.enqueued_at_ns)
            q.ack(job)
    q.close()


def test_several_processes_fire_each_tick_once(queue, queue_name):
    queue.add_schedule("s", "* * * * * *", "jobs", missed="catch_up")
    first = queue.schedules()[0]["next_tick_ns"]
    context = multiprocessing.get_context("fork")
    results = context.SimpleQueue()
    until = first + 4 * SECOND
    workers = [context.Process(target=_consume, args=(queue_name, until, results)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    queue.remove_schedule("s")
    ticks = []
    while not results.empty():
        ticks.append(results.get())
    for job in queue.dequeue("jobs", batch_size=64, timeout=0):  # fired but not yet taken
        ticks.append(job.enqueued_at_ns)
        queue.ack(job)
    ticks.sort()
    assert len(ticks) >= 3
    assert len(set(ticks)) == len(ticks)  # none twice
    assert ticks == [first + i * SECOND for i in range(len(ticks))]  # none lost
