"""The processes a chaos run kills: producers and consumers over the Python client.

    chaos_roles.py producer QUEUE IDS_FILE STOP_FILE
    chaos_roles.py consumer QUEUE STOP_FILE

(The driver gives consumers a stop file it creates only after every
producer has exited, so no job is enqueued after the consumers left.)

A producer enqueues batches on the entrypoint "chaos" and, after each
enqueue_batch returned, appends the ids to its own file, IDS_FILE with its
pid inserted before the extension (ids-producer-0-PID.txt): an id in such a
file was acknowledged as enqueued. A kill in the middle of a write() can cut
it short (the kernel stops at a page boundary of the file for a fatal
signal), so each process has a file of its own: the cut line is then the
file's last, without its newline, and the driver drops it. With one file
shared by the restarted producers, the next one appended to the cut line
and made a phantom id of two halves (seen: "515" + "6913"). A consumer dequeues and acks
until the queue is drained and STOP_FILE exists. Either may be SIGKILLed at
any instruction; the driver restarts them.
"""

from __future__ import annotations

import os
import sys
import time

import currant


def open_queue(name: str) -> currant.Queue:
    # The daemon may be rebuilding or restarting: retry briefly.
    deadline = time.monotonic() + 30
    while True:
        try:
            return currant.Queue(name)
        except currant.CurrantError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def producer(name: str, ids_file: str, stop_file: str) -> None:
    queue = open_queue(name)
    root, extension = os.path.splitext(ids_file)
    fd = os.open(f"{root}-{os.getpid()}{extension}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    payloads = [b"chaos job payload"] * 16
    while not os.path.exists(stop_file):
        try:
            ids = queue.enqueue_batch("chaos", payloads)
        except currant.CurrantError as error:
            if error.code not in ("arena_full", "log_full", "timed_out"):
                raise
            ids = getattr(error, "enqueued_ids", [])  # those before the push-back are queued
            time.sleep(0.01)
        record = memoryview("".join(f"{i}\n" for i in ids).encode())
        while record:  # os.write may write less than asked
            record = record[os.write(fd, record):]
        time.sleep(0.002)


def consumer(name: str, stop_file: str) -> None:
    queue = open_queue(name)
    while True:
        jobs = queue.dequeue("chaos", batch_size=16, timeout=0.2)
        if jobs:
            queue.ack(jobs)
        elif os.path.exists(stop_file):
            return


def main() -> None:
    role = sys.argv[1]
    if role == "producer":
        producer(sys.argv[2], sys.argv[3], sys.argv[4])
    elif role == "consumer":
        consumer(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main()
