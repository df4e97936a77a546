"""asyncio: awaiting a dequeue never blocks the event loop."""

import asyncio
import multiprocessing
import time

import currant


def test_event_loop_keeps_running_while_dequeue_waits(queue):
    ticks = 0

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    async def main() -> list:
        stop = asyncio.Event()
        task = asyncio.create_task(ticker(stop))
        jobs = await currant.dequeue_async(queue, "jobs", timeout=0.5)
        stop.set()
        await task
        return jobs

    assert asyncio.run(main()) == []
    assert ticks >= 5


def _produce_later(name: str) -> None:
    time.sleep(0.2)
    with currant.Queue(name) as q:
        q.enqueue("jobs", b"from another process")


def test_dequeue_async_returns_job_enqueued_by_another_process(queue):
    producer = multiprocessing.get_context("fork").Process(target=_produce_later, args=(queue.name,))

    producer.start()  # before any thread exists here; it enqueues 0.2 s later

    async def main() -> list:
        return await currant.dequeue_async(queue, "jobs", batch_size=4, timeout=30.0)

    jobs = asyncio.run(main())
    producer.join(timeout=30)
    assert producer.exitcode == 0
    assert [bytes(job.payload) for job in jobs] == [b"from another process"]
    queue.ack(jobs)
