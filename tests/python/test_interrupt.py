"""Queue.interrupt (the one call that is safe from another thread), and
signals reaching a thread blocked in dequeue."""

import os
import signal
import subprocess
import threading
import time

import pytest

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


# --- signals reach a main thread blocked in dequeue ---

FUTEX_WAITV = 449  # the system call number, the same on every architecture


@pytest.fixture
def start_child():
    """Starts /usr/bin/python3 with the queue open as q; kills it at the end."""
    children = []

    def start(queue_name, body):
        script = f"import signal, currant\nq = currant.Queue({queue_name!r})\n" + body
        child = subprocess.Popen(["/usr/bin/python3", "-c", script], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
            child.communicate()


def _wait_until_asleep_in_futex_waitv(child, limit=20.0):
    """Until the child's main thread is inside futex_waitv (its dequeue sleeps)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert child.poll() is None, child.communicate()
        try:
            with open(f"/proc/{child.pid}/syscall") as f:
                if f.read().split()[0] == str(FUTEX_WAITV):
                    return
        except (FileNotFoundError, IndexError):
            pass
        time.sleep(0.01)
    raise AssertionError("the child never went to sleep in dequeue")


@pytest.mark.parametrize("timeout", [None, 3600.0])
def test_sigint_raises_keyboard_interrupt_in_a_main_thread_blocked_in_dequeue(queue, start_child, timeout):
    child = start_child(queue.name, f"q.dequeue('jobs', timeout={timeout!r})\nprint('returned')\n")
    _wait_until_asleep_in_futex_waitv(child)
    sent = time.monotonic()
    os.kill(child.pid, signal.SIGINT)
    out, err = child.communicate(timeout=10)
    took = time.monotonic() - sent
    assert "KeyboardInterrupt" in err, err
    assert child.returncode == -signal.SIGINT
    assert "returned" not in out
    assert took < 3.0


def test_sigint_raises_keyboard_interrupt_in_dequeue_one(queue, start_child):
    child = start_child(queue.name, "q.dequeue_one('jobs', timeout=None)\n")
    _wait_until_asleep_in_futex_waitv(child)
    os.kill(child.pid, signal.SIGINT)
    _, err = child.communicate(timeout=10)
    assert "KeyboardInterrupt" in err, err
    assert child.returncode == -signal.SIGINT


def test_a_handled_signal_that_does_not_raise_lets_the_dequeue_wait_on(queue, start_child):
    child = start_child(queue.name, (
        "seen = []\n"
        "signal.signal(signal.SIGUSR1, lambda *_: seen.append(1))\n"
        "jobs = q.dequeue('jobs', timeout=None)\n"
        "print(len(seen), bytes(jobs[0].payload).decode())\n"
        "q.ack(jobs[0])\n"
    ))
    _wait_until_asleep_in_futex_waitv(child)
    os.kill(child.pid, signal.SIGUSR1)
    time.sleep(0.2)
    assert child.poll() is None  # the handler ran and the dequeue went back to sleep
    _wait_until_asleep_in_futex_waitv(child)
    queue.enqueue("jobs", b"after the signal")
    out, err = child.communicate(timeout=10)
    assert child.returncode == 0, err
    assert out.split(maxsplit=1) == ["1", "after the signal\n"]


def test_a_signal_does_not_shorten_the_timeout(queue, start_child):
    child = start_child(queue.name, (
        "import time\n"
        "signal.signal(signal.SIGUSR1, lambda *_: None)\n"
        "start = time.monotonic()\n"
        "jobs = q.dequeue('jobs', timeout=1.5)\n"
        "print(len(jobs), time.monotonic() - start)\n"
    ))
    _wait_until_asleep_in_futex_waitv(child)
    os.kill(child.pid, signal.SIGUSR1)
    out, err = child.communicate(timeout=10)
    assert child.returncode == 0, err
    count, took = out.split()
    assert count == "0" and 1.4 < float(took) < 5.0
