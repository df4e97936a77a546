#!/usr/bin/python3
"""Python client throughput: one producer process, one consumer process.

Run from the project root after building (Debian's /usr/bin/python3):

    PYTHONPATH=build/clients/python /usr/bin/python3 bench/python/two_process.py --mode batch --runs 5
    PYTHONPATH=build/clients/python /usr/bin/python3 bench/python/two_process.py --mode single --runs 5

Each run creates a fresh queue (unique name) in the parent, declares one
entrypoint, closes its handle and forks two children with multiprocessing's
"fork" start method; each child opens its own currant.Queue after the fork.
Payloads are 64 bytes.

  --mode batch   producer: enqueue_batch of 64 payloads per call;
                 consumer: dequeue(batch_size=64, timeout=...) + ack(list).
  --mode single  producer: enqueue one payload per call;
                 consumer: dequeue(batch_size=1, timeout=...) + ack(job)
                 (the Python API has no cheaper one-at-a-time path).

Throughput = jobs / (time from the producer's start to the consumer having
acked the last job), both read from time.perf_counter (CLOCK_MONOTONIC,
shared by the processes). Both children open the queue and meet at a barrier
before the clock starts, so process start and queue open are not timed.

Back-pressure: the producer passes wait=ARENA_WAIT to enqueue/enqueue_batch
(the client's arena_wait: it blocks in the core until a slot is free), and
if ArenaFull is still raised it retries the rest after a short sleep,
counting those events (reported as "arena_full").

--in-process runs the same calls in one process (enqueue a batch, then
dequeue and ack it; or one enqueue, dequeue and ack), to separate the
per-call cost of the Python layer from cross-process effects; --native does
the same in-process loop on the extension object (currant._currant) directly,
skipping the pure-Python wrapper.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time

import currant

PAYLOAD = bytes(range(64))
BATCH = 64
ARENA_WAIT = 1.0  # seconds the core waits for a free slot before ArenaFull
CONSUMER_IDLE_LIMIT = 30.0  # give up if no job arrives for this long


def _usage() -> tuple[float, float, int, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_nvcsw, r.ru_nivcsw


def _usage_since(u0: tuple[float, float, int, int]) -> dict:
    u1 = _usage()
    return {"user_s": u1[0] - u0[0], "sys_s": u1[1] - u0[1], "vol_cs": u1[2] - u0[2], "invol_cs": u1[3] - u0[3]}


def producer(name: str, ep: int, mode: str, jobs: int, barrier, out) -> None:
    q = currant.Queue(name)
    arena_full = 0
    barrier.wait()
    u0 = _usage()
    t0 = time.perf_counter()
    if mode == "batch":
        payloads = [PAYLOAD] * BATCH
        sent = 0
        while sent < jobs:
            chunk = payloads if jobs - sent >= BATCH else payloads[: jobs - sent]
            try:
                q.enqueue_batch(ep, chunk, wait=ARENA_WAIT)
                sent += len(chunk)
            except currant.ArenaFull as e:
                arena_full += 1
                # enqueued_ids is the prefix that was queued; retry the rest
                sent += len(e.enqueued_ids)
                time.sleep(0.0005)
    else:
        enqueue = q.enqueue
        sent = 0
        while sent < jobs:
            try:
                enqueue(ep, PAYLOAD, wait=ARENA_WAIT)
                sent += 1
            except currant.ArenaFull:
                arena_full += 1
                time.sleep(0.0005)
    t_done = time.perf_counter()
    usage = _usage_since(u0)
    q.close()
    out.send({"t0": t0, "t_produced": t_done, "arena_full": arena_full, "usage": usage})
    out.close()


def consumer(name: str, ep: int, mode: str, jobs: int, barrier, out) -> None:
    q = currant.Queue(name)
    batch_size = BATCH if mode == "batch" else 1
    dequeue, ack = q.dequeue, q.ack
    done = 0
    empty_since = None
    calls = 0
    barrier.wait()
    u0 = _usage()
    while done < jobs:
        got = dequeue(ep, batch_size, 0.1)
        calls += 1
        if not got:
            now = time.perf_counter()
            if empty_since is None:
                empty_since = now
            elif now - empty_since > CONSUMER_IDLE_LIMIT:
                break
            continue
        empty_since = None
        if batch_size == 1:
            ack(got[0])
            done += 1
        else:
            done += ack(got)
    t1 = time.perf_counter()
    usage = _usage_since(u0)
    q.close()
    out.send({"t1": t1, "done": done, "dequeue_calls": calls, "usage": usage})
    out.close()


def run_two_process(mode: str, jobs: int, slots: int) -> dict:
    ctx = mp.get_context("fork")
    name = f"bench-py-{os.getpid()}-{time.monotonic_ns()}"
    q = currant.Queue.create(name, slots=slots, payload_bytes=len(PAYLOAD))
    try:
        ep = q.declare_entrypoint("bench")
        q.close()  # no Queue is carried across fork
        barrier = ctx.Barrier(2)
        p_recv, p_send = ctx.Pipe(duplex=False)
        c_recv, c_send = ctx.Pipe(duplex=False)
        cons = ctx.Process(target=consumer, args=(name, ep, mode, jobs, barrier, c_send))
        prod = ctx.Process(target=producer, args=(name, ep, mode, jobs, barrier, p_send))
        cons.start()
        prod.start()
        p_send.close()
        c_send.close()
        p = p_recv.recv()
        c = c_recv.recv()
        prod.join()
        cons.join()
        if prod.exitcode or cons.exitcode:
            raise RuntimeError(f"child failed: producer {prod.exitcode}, consumer {cons.exitcode}")
        if c["done"] != jobs:
            raise RuntimeError(f"consumer acked {c['done']} of {jobs} jobs")
        elapsed = c["t1"] - p["t0"]
        return {
            "mode": mode,
            "jobs": jobs,
            "seconds": elapsed,
            "jobs_per_s": jobs / elapsed,
            "producer_seconds": p["t_produced"] - p["t0"],
            "arena_full": p["arena_full"],
            "dequeue_calls": c["dequeue_calls"],
            "producer_usage": p["usage"],
            "consumer_usage": c["usage"],
        }
    finally:
        currant.Queue.remove(name)


def run_in_process(mode: str, jobs: int, slots: int, native: bool) -> dict:
    """The same calls in one process: no cache line crosses CPUs, no waiting."""
    name = f"bench-py-{os.getpid()}-{time.monotonic_ns()}"
    q = currant.Queue.create(name, slots=slots, payload_bytes=len(PAYLOAD))
    try:
        ep = q.declare_entrypoint("bench")
        t_enq = t_deq = t_ack = 0.0
        pc = time.perf_counter
        if native:
            nq = q._q  # the pybind11 object: enqueue_batch, ack_many
            fq = getattr(q, "_fast", nq)  # enqueue, dequeue, ack (raw CPython; pybind11 in older builds)
        if mode == "batch":
            payloads = [PAYLOAD] * BATCH
            for _ in range(jobs // BATCH):
                a = pc()
                if native:
                    nq.enqueue_batch(ep, payloads, 0, 0, 0, 0)
                else:
                    q.enqueue_batch(ep, payloads)
                b = pc()
                got = fq.dequeue(ep, BATCH, 0) if native else q.dequeue(ep, BATCH, 0)
                c = pc()
                nq.ack_many(got) if native else q.ack(got)
                d = pc()
                t_enq += b - a
                t_deq += c - b
                t_ack += d - c
            n = (jobs // BATCH) * BATCH
        else:
            for _ in range(jobs):
                a = pc()
                if native:
                    fq.enqueue(ep, PAYLOAD, 0, 0, 0, 0)
                else:
                    q.enqueue(ep, PAYLOAD)
                b = pc()
                got = fq.dequeue(ep, 1, 0) if native else q.dequeue(ep, 1, 0)
                c = pc()
                fq.ack(got[0]) if native else q.ack(got[0])
                d = pc()
                t_enq += b - a
                t_deq += c - b
                t_ack += d - c
            n = jobs
        total = t_enq + t_deq + t_ack
        q.close()
        return {
            "mode": mode + ("-in-process-native" if native else "-in-process"),
            "jobs": n,
            "seconds": total,
            "jobs_per_s": n / total,
            "ns_per_job_enqueue": t_enq / n * 1e9,
            "ns_per_job_dequeue": t_deq / n * 1e9,
            "ns_per_job_ack": t_ack / n * 1e9,
        }
    finally:
        currant.Queue.remove(name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("batch", "single"), default="batch")
    ap.add_argument("--jobs", type=int, default=None,
                    help="jobs per run (default 4,000,000 batch, 1,000,000 single)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--slots", type=int, default=65536, help="arena slots of the queue")
    ap.add_argument("--in-process", action="store_true",
                    help="same calls in one process, timed per call (no second process)")
    ap.add_argument("--native", action="store_true",
                    help="with --in-process: call the extension object directly, bypassing currant/__init__.py")
    ap.add_argument("--json", action="store_true", help="one JSON object per run, then a summary object")
    args = ap.parse_args()
    jobs = args.jobs or (4_000_000 if args.mode == "batch" else 1_000_000)
    if args.mode == "batch" and jobs % BATCH and args.in_process:
        jobs -= jobs % BATCH

    results = []
    for i in range(args.runs):
        if args.in_process:
            r = run_in_process(args.mode, jobs, args.slots, args.native)
        else:
            r = run_two_process(args.mode, jobs, args.slots)
        r["run"] = i + 1
        results.append(r)
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            extra = ""
            if "ns_per_job_enqueue" in r:
                extra = (f"  enqueue {r['ns_per_job_enqueue']:.0f} + dequeue {r['ns_per_job_dequeue']:.0f}"
                         f" + ack {r['ns_per_job_ack']:.0f} ns/job")
            else:
                pu, cu = r["producer_usage"], r["consumer_usage"]
                extra = (f"  (producer done at {r['producer_seconds']:.3f} s, arena_full {r['arena_full']},"
                         f" dequeue calls {r['dequeue_calls']}; CPU user/sys s, voluntary/involuntary"
                         f" switches: producer {pu['user_s']:.2f}/{pu['sys_s']:.2f} {pu['vol_cs']}/{pu['invol_cs']},"
                         f" consumer {cu['user_s']:.2f}/{cu['sys_s']:.2f} {cu['vol_cs']}/{cu['invol_cs']})")
            print(f"run {i + 1}: {r['mode']} {r['jobs']} jobs in {r['seconds']:.3f} s:"
                  f" {r['jobs_per_s']:,.0f} jobs/s{extra}", flush=True)

    rates = [r["jobs_per_s"] for r in results]
    summary = {"mode": results[0]["mode"], "runs": len(rates), "median_jobs_per_s": statistics.median(rates),
               "min_jobs_per_s": min(rates), "max_jobs_per_s": max(rates)}
    if args.json:
        print(json.dumps({"summary": summary}))
    else:
        print(f"{summary['mode']}: median {summary['median_jobs_per_s']:,.0f} jobs/s"
              f" ({summary['min_jobs_per_s']:,.0f} to {summary['max_jobs_per_s']:,.0f}), {len(rates)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
