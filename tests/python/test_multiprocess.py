"""Several Python processes (fork) on one queue, each with its own Queue."""

import multiprocessing

import currant

PRODUCERS = 3
CONSUMERS = 3
PER_PRODUCER = 400


def _produce(name: str, index: int) -> None:
    with currant.Queue(name) as q:
        payloads = [f"{index}:{n}".encode() for n in range(PER_PRODUCER)]
        half = PER_PRODUCER // 2
        for payload in payloads[:half]:
            q.enqueue("jobs", payload, wait=5.0)
        for start in range(half, PER_PRODUCER, 50):
            q.enqueue_batch("jobs", payloads[start:start + 50], wait=5.0)


def _consume(name: str, results) -> None:
    seen = []
    with currant.Queue(name) as q:
        while True:
            jobs = q.dequeue("jobs", batch_size=32, timeout=1.5)
            if not jobs:
                break
            seen += [bytes(job.payload).decode() for job in jobs]
            q.ack(jobs)
    results.put(seen)


def test_many_producers_and_consumers(queue):
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    consumers = [ctx.Process(target=_consume, args=(queue.name, results)) for _ in range(CONSUMERS)]
    producers = [ctx.Process(target=_produce, args=(queue.name, i)) for i in range(PRODUCERS)]
    for p in consumers + producers:
        p.start()
    got = [results.get(timeout=120) for _ in consumers]
    for p in consumers + producers:
        p.join(timeout=60)
        assert p.exitcode == 0
    everything = [item for part in got for item in part]
    expected = {f"{i}:{n}" for i in range(PRODUCERS) for n in range(PER_PRODUCER)}
    assert len(everything) == len(expected)  # nothing twice
    assert set(everything) == expected        # nothing lost
    stats = queue.stats()["jobs"]
    assert (stats["queued"], stats["picked"], stats["successful"]) == (0, 0, len(expected))
