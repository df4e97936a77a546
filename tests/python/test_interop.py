"""Python and C programs share queues: the C examples from clients/c/examples."""

import os
import subprocess

import pytest

import currant

C_PRODUCER = os.environ.get("CURRANT_C_PRODUCER")
C_CONSUMER = os.environ.get("CURRANT_C_CONSUMER")


@pytest.mark.skipif(not C_CONSUMER, reason="CURRANT_C_CONSUMER not set (run through meson test)")
def test_python_producer_c_consumer(queue):
    payloads = [f"py job {n}".encode() for n in range(50)]
    queue.enqueue_batch("jobs", payloads[:25])
    for payload in payloads[25:]:
        queue.enqueue("jobs", payload)
    done = subprocess.run(
        [C_CONSUMER, queue.name, "jobs", "500", str(len(payloads))],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for payload in payloads:
        assert f": {payload.decode()}\n" in done.stdout
    stats = queue.stats()["jobs"]
    assert (stats["queued"], stats["successful"]) == (0, len(payloads))


@pytest.mark.skipif(not C_PRODUCER, reason="CURRANT_C_PRODUCER not set (run through meson test)")
def test_c_producer_python_consumer(queue):
    count = 40
    done = subprocess.run([C_PRODUCER, queue.name, "jobs", str(count)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = []
    while len(seen) < count:
        jobs = queue.dequeue("jobs", batch_size=16, timeout=2.0)
        assert jobs, f"only {len(seen)} of {count} jobs arrived"
        seen += [bytes(job.payload) for job in jobs]
        queue.ack(jobs)
    assert sorted(seen) == sorted(f"job {n}".encode() for n in range(count))
