#!/usr/bin/python3
"""What pybind11 costs per call on the single-job hot path, against the raw
CPython API doing the same work.

Run from the project root after building (Debian's /usr/bin/python3):

    PYTHONPATH=build-clients/clients/python:build-clients/bench/python \\
        /usr/bin/python3 bench/python/binding_overhead.py --runs 5

One process, one queue, 64-byte payloads. Each loop does, per iteration,
one enqueue, one dequeue of one job (timeout 0) and one ack, on:

  currant.Queue   the public API (pure-Python wrapper over the extension)
  extension       the extension object the wrapper calls for these three:
                  Queue._fast (raw CPython) since the hot path moved off
                  pybind11, Queue._q (pybind11) before; the label says which
  _rawbinding     bench/python/raw_binding.cpp: the same work per call
                  (buffer protocol, GIL released, mutex, job object
                  exporting its payload) on the raw C API, METH_FASTCALL;
                  a fixed reference between builds
  C++ core        the same loop in C++ (no Python per call)

To measure the pybind11 hot path after the switch, build commit 15d3433's
clients/python/src/module.cpp into a separate package directory and put it
first on PYTHONPATH (clients/python/README.md has the commands).

Each run times ITERATIONS iterations of every variant in turn (after a
warm-up) with time.perf_counter; the figure is the median over runs of
ns per iteration.

--per-call times the three calls apart instead, on the extension object and
_rawbinding: blocks of 1,000 enqueues, then 1,000 dequeues, then 1,000 acks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import currant
from currant import _currant

import _rawbinding

PAYLOAD = bytes(range(64))


def loop_public(q: currant.Queue, n: int) -> None:
    enqueue, dequeue, ack = q.enqueue, q.dequeue, q.ack
    for _ in range(n):
        enqueue("jobs", PAYLOAD)
        ack(dequeue("jobs", 1, 0)[0])


def loop_extension(native, ep: int, n: int) -> None:
    enqueue, dequeue, ack = native.enqueue, native.dequeue, native.ack
    for _ in range(n):
        enqueue(ep, PAYLOAD, 0, 0, 0, 0)
        ack(dequeue(ep, 1, 0)[0])


def loop_raw(raw, ep: int, n: int) -> None:
    enqueue, dequeue, ack = raw.enqueue, raw.dequeue, raw.ack
    for _ in range(n):
        enqueue(ep, PAYLOAD)
        ack(dequeue(ep, 1, 0)[0])


def per_call(native, ep: int, iterations: int) -> tuple[float, float, float]:
    """ns per enqueue, dequeue, ack, timed apart in blocks of 1,000."""
    block = 1000
    enqueue, dequeue, ack = native.enqueue, native.dequeue, native.ack
    args = (ep, PAYLOAD) if isinstance(native, _rawbinding.Queue) else (ep, PAYLOAD, 0, 0, 0, 0)
    pc = time.perf_counter
    t_enq = t_deq = t_ack = 0.0
    for _ in range(iterations // block):
        a = pc()
        for _ in range(block):
            enqueue(*args)
        b = pc()
        jobs = [dequeue(ep, 1, 0)[0] for _ in range(block)]
        c = pc()
        for job in jobs:
            ack(job)
        d = pc()
        t_enq += b - a
        t_deq += c - b
        t_ack += d - c
    n = (iterations // block) * block
    return t_enq / n * 1e9, t_deq / n * 1e9, t_ack / n * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=200_000)
    parser.add_argument("--per-call", action="store_true", help="time enqueue, dequeue and ack apart")
    args = parser.parse_args()

    name = f"bench-binding-{os.getpid()}"
    currant.Queue.remove(name)
    q = currant.Queue.create(name, slots=1024, payload_bytes=64)
    try:
        ep = q.declare_entrypoint("jobs")
        raw = _rawbinding.Queue(name)
        native = getattr(q, "_fast", None)
        label = "ext. raw CPython"
        if native is None:
            native = q._q
            assert isinstance(native, _currant.Queue)
            label = "ext. pybind11"
        variants = {
            "currant.Queue": lambda n: loop_public(q, n),
            label: lambda n: loop_extension(native, ep, n),
            "_rawbinding": lambda n: loop_raw(raw, ep, n),
            "C++ core": lambda n: raw.native_loop(ep, PAYLOAD, n),
        }
        if args.per_call:
            targets = {label: native, "_rawbinding": raw}
            split: dict[str, list[tuple[float, float, float]]] = {label: [] for label in targets}
            for r in range(args.runs):
                for name_, target in targets.items():
                    split[name_].append(per_call(target, ep, args.iterations))
            print(f"ns per call, enqueue / dequeue / ack, median of {args.runs} runs:")
            for name_, values in split.items():
                medians = [statistics.median(v[k] for v in values) for k in range(3)]
                print(f"  {name_:16} " + " / ".join(f"{m:.0f}" for m in medians))
            raw.close()
            return
        for run in variants.values():
            run(args.iterations // 10)
        results: dict[str, list[float]] = {label: [] for label in variants}
        for r in range(args.runs):
            for label, run in variants.items():
                start = time.perf_counter()
                run(args.iterations)
                results[label].append((time.perf_counter() - start) / args.iterations * 1e9)
            print(f"run {r + 1}: " + ", ".join(f"{label} {v[-1]:.0f}" for label, v in results.items()), flush=True)
        print(f"\nns per enqueue + dequeue + ack, median of {args.runs} runs (min to max), "
              f"{args.iterations} iterations each:")
        for label, values in results.items():
            print(f"  {label:16} {statistics.median(values):6.0f}  ({min(values):.0f} to {max(values):.0f})")
        raw.close()
    finally:
        q.close()
        currant.Queue.remove(name)


if __name__ == "__main__":
    main()
