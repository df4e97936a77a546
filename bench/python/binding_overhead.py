#!/usr/bin/python3
"""What pybind11 costs per call on the single-job hot path, against the raw
CPython API doing the same work.

Run from the project root after building (Debian's /usr/bin/python3):

    PYTHONPATH=build-clients/clients/python:build-clients/bench/python \\
        /usr/bin/python3 bench/python/binding_overhead.py --runs 5

One process, one queue, 64-byte payloads. Each loop does, per iteration,
one enqueue, one dequeue of one job (timeout 0) and one ack, on:

  currant.Queue   the public API (pure-Python wrapper over the extension)
  pybind11        the extension object itself (currant._currant.Queue)
  raw CPython     bench/python/raw_binding.cpp: the same work per call
                  (buffer protocol, GIL released, mutex, job object
                  exporting its payload) on the raw C API, METH_FASTCALL
  C++ core        the same loop in C++ (no Python per call)

Each run times ITERATIONS iterations of every variant in turn (after a
warm-up) with time.perf_counter; the figure is the median over runs of
ns per iteration.
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


def loop_pybind(native, ep: int, n: int) -> None:
    enqueue, dequeue, ack = native.enqueue, native.dequeue, native.ack
    for _ in range(n):
        enqueue(ep, PAYLOAD, 0, 0, 0, 0)
        ack(dequeue(ep, 1, 0)[0])


def loop_raw(raw, ep: int, n: int) -> None:
    enqueue, dequeue, ack = raw.enqueue, raw.dequeue, raw.ack
    for _ in range(n):
        enqueue(ep, PAYLOAD)
        ack(dequeue(ep, 1, 0)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=200_000)
    args = parser.parse_args()

    name = f"bench-binding-{os.getpid()}"
    currant.Queue.remove(name)
    q = currant.Queue.create(name, slots=1024, payload_bytes=64)
    try:
        ep = q.declare_entrypoint("jobs")
        raw = _rawbinding.Queue(name)
        native = q._q
        assert isinstance(native, _currant.Queue)
        variants = {
            "currant.Queue": lambda n: loop_public(q, n),
            "pybind11": lambda n: loop_pybind(native, ep, n),
            "raw CPython": lambda n: loop_raw(raw, ep, n),
            "C++ core": lambda n: raw.native_loop(ep, PAYLOAD, n),
        }
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
            print(f"  {label:14} {statistics.median(values):6.0f}  ({min(values):.0f} to {max(values):.0f})")
        raw.close()
    finally:
        q.close()
        currant.Queue.remove(name)


if __name__ == "__main__":
    main()
