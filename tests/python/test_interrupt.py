"""Queue.interrupt: the one call that is safe from another thread."""

import threading
import time

import currant


def test_interrupt_ends_a_dequeue_that_waits_forever(queue):
    consumer = currant.Queue(queue.name)
    results = []
    waiter = threading.Thread(target=lambda: results.append(consumer.dequeue("jobs", timeout=None)))
    waiter.start()
    while waiter.is_alive():
        consumer.interrupt()
        time.sleep(0.01)
    waiter.join()
    assert results == [[]]
    consumer.close()


def test_a_queue_interrupted_earlier_returns_from_its_next_dequeue_at_once(queue):
    queue.interrupt()
    assert queue.dequeue("jobs", timeout=None) == []
