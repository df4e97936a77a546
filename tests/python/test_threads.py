"""Blocking calls release the GIL, so other threads keep running."""

import threading
import time

import currant


def test_dequeue_wait_releases_the_gil(queue):
    result = []
    waiter = threading.Thread(target=lambda: result.append(queue.dequeue("jobs", timeout=0.5)))
    start = time.monotonic()
    waiter.start()
    spins = 0
    while waiter.is_alive():
        spins += 1  # pure Python: runs only while the waiter does not hold the GIL
    assert time.monotonic() - start >= 0.4
    assert result == [[]]
    assert spins > 1000


def _produce_in_own_queue(name):
    with currant.Queue(name) as q:  # one Queue per thread: calls on one Queue are serialised
        q.enqueue("jobs", b"from a thread")


def test_producer_thread_wakes_a_waiting_consumer(queue):
    timer = threading.Timer(0.1, _produce_in_own_queue, args=(queue.name,))
    timer.start()
    jobs = queue.dequeue("jobs", timeout=5.0)
    timer.join()
    assert [bytes(j.payload) for j in jobs] == [b"from a thread"]
    queue.ack(jobs)
