"""``python3 -m currant bench``: currant-bench's workload from Python.

Producer and worker *processes* (fork; each opens its own
:class:`currant.Queue` after the fork) over a fresh queue, then the same
table as the C++ ``currant-bench`` (bench/load/currant_bench.cpp):
throughput, enqueue -> start and enqueue -> completion latency (p50, p95,
p99, p99.9, max), CPU seconds per million jobs, and two checks the C++
program does not print: jobs processed more than once and jobs never
processed (both must be 0).

Workload: each producer enqueues its share of ``--jobs`` (or enqueues
until ``--duration`` has passed; with both, the jobs are spread evenly over
the duration), ``--batch`` jobs per call (``enqueue`` when 1), paced to
``--rate`` when given. Each worker dequeues up to ``--batch`` jobs, reads
the payload's header (the job body is a no-op unless ``--work-us``), acks
the batch; with ``--batch 1`` and ``--prefetch N`` (N > 0, default 64) it
takes one job per call with ``dequeue_one`` (each pick takes up to N ready
jobs, kept as the worker's in the segment) and ends it with
``ack_deferred``, as currant-bench does. Jobs enqueued in the first ``--warmup-percent`` of the run are
left out of the latency figures and the throughput window, as in
currant-bench.

Latency: enqueue -> start is ``time.time_ns()`` when the worker starts the
job minus ``Job.enqueued_at_ns`` (CLOCK_REALTIME, set by the core);
completion is taken after the ack (``ack_deferred``: after it returned, the
end of the job body). Percentiles are exact (sorted samples).
"""

from __future__ import annotations

import argparse
import array
import json
import math
import multiprocessing
import os
import resource
import struct
import sys
import time
from typing import Any, Optional

HEADER = struct.Struct("<II")  # flags, producer
FLAG_MEASURED = 1
QUANTILES = [(0.50, "p50"), (0.95, "p95"), (0.99, "p99"), (0.999, "p99.9"), (1.0, "max")]


def parse_duration(text: str) -> float:
    """'60s', '500ms', '2m' or a plain number of seconds."""
    units = [("ms", 1e-3), ("min", 60.0), ("s", 1.0), ("m", 60.0)]
    for suffix, scale in units:
        if text.endswith(suffix):
            number, factor = text[: -len(suffix)], scale
            break
    else:
        number, factor = text, 1.0
    try:
        value = float(number) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use ms, s or m)") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--duration must be positive, got {text!r}")
    return value


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Plan:
    """What every process of a run agrees on (inherited through fork)."""

    def __init__(self, args: argparse.Namespace, queue: str) -> None:
        self.args = args
        self.queue = queue
        self.entrypoint = "currant-pybench"
        n = args.producers
        jobs = args.jobs or 0
        self.shares = [jobs // n + (1 if i < jobs % n else 0) for i in range(n)]
        self.timed = args.duration is not None
        self.bounded = args.jobs is not None  # stop at the share
        self.rate = args.rate or (jobs / args.duration if self.timed and self.bounded else 0.0)
        ctx = multiprocessing.get_context("fork")
        self.ready = ctx.Value("i", 0, lock=True)
        self.go = ctx.Event()
        self.start_ns = ctx.Value("q", 0, lock=False)
        # CLOCK_REALTIME from which completions count for throughput (0: not
        # known yet): set by the parent before the release (--duration, or no
        # warm-up), else lowered by each producer, under the lock, to the time
        # of its first measured enqueue before that enqueue. Workers read it
        # without the lock at each completion.
        self.window_start_ns = ctx.Value("q", 0, lock=True)
        self.stop = ctx.Value("i", 0, lock=False)
        self.enqueued = ctx.Array("Q", n, lock=False)
        self.completed = ctx.Array("Q", args.workers, lock=False)
        self.results = ctx.SimpleQueue()


def arrive(plan: Plan) -> int:
    with plan.ready.get_lock():
        plan.ready.value += 1
    plan.go.wait()
    return plan.start_ns.value


def producer(plan: Plan, index: int) -> None:
    import currant

    a = plan.args
    report: dict[str, Any] = {"role": "producer", "index": index}
    try:
        q = currant.Queue(plan.queue)
        ep = q.entrypoint(plan.entrypoint)
        share = plan.shares[index]
        warm_jobs = int(share * a.warmup_percent / 100.0)
        rate = plan.rate / a.producers if plan.rate else 0.0
        start_ns = arrive(plan)
        end_ns = start_ns + int((a.duration or 0) * 1e9)
        warm_end_ns = start_ns + int((a.duration or 0) * 1e9 * a.warmup_percent / 100.0)
        filler = bytes(a.payload_bytes - HEADER.size)
        sent = 0
        first_measured_ns = 0
        while True:
            want = a.batch
            if plan.bounded:
                if sent >= share:
                    break
                want = min(want, share - sent)
            if rate:
                due = start_ns + int(sent * 1e9 / rate)
                if plan.timed and not plan.bounded and due >= end_ns:
                    break
                delay = (due - time.time_ns()) / 1e9
                if delay > 0:
                    time.sleep(delay)
            now = time.time_ns()
            if plan.timed and not plan.bounded and now >= end_ns:  # with --jobs every job is sent
                break
            payloads = []
            for i in range(want):
                measured = now >= warm_end_ns if plan.timed else sent + i >= warm_jobs
                if measured and not first_measured_ns:
                    first_measured_ns = now
                    with plan.window_start_ns.get_lock():
                        if not plan.window_start_ns.value or now < plan.window_start_ns.value:
                            plan.window_start_ns.value = now
                payloads.append(HEADER.pack(FLAG_MEASURED if measured else 0, index) + filler)
            while True:
                try:
                    if want == 1:
                        q.enqueue(ep, payloads[0], wait=1.0)
                    else:
                        q.enqueue_batch(ep, payloads, wait=1.0)
                    break
                except currant.ArenaFull as error:  # back-pressure: try again
                    done = getattr(error, "enqueued_ids", [])
                    payloads = payloads[len(done):]
                    sent += len(done)
                    want -= len(done)
                    if plan.stop.value:
                        raise
            sent += want
            plan.enqueued[index] = sent
        q.close()
        report.update(jobs=sent)
    except BaseException as error:  # reported to the parent, which fails the run
        report["error"] = f"{type(error).__name__}: {error}"
    report["cpu_seconds"] = cpu_seconds()
    plan.results.put(report)


def worker(plan: Plan, index: int) -> None:
    import currant

    a = plan.args
    report: dict[str, Any] = {"role": "worker", "index": index}
    to_start = array.array("q")
    to_completion = array.array("q")
    ids = array.array("q")
    window_jobs = 0  # completions at or after plan.window_start_ns
    last_done = 0
    window_start = plan.window_start_ns.get_obj()  # read without the lock
    try:
        q = currant.Queue(plan.queue)
        ep = q.entrypoint(plan.entrypoint)
        # Register with the queue before the start signal, as currant-bench's
        # workers do: the core registers a participant at its first call, which
        # would otherwise land in the measured run. The queue is fresh: no job
        # exists yet.
        q.dequeue(ep, 1, 0)
        arrive(plan)
        completed = 0
        spin_ns = a.work_us * 1000
        one_at_a_time = a.batch == 1 and a.prefetch > 0
        if one_at_a_time:
            q.set_prefetch(a.prefetch)
        while True:
            if one_at_a_time:
                job = q.dequeue_one(ep, 0.2)
                jobs = [job] if job is not None else []
            else:
                jobs = q.dequeue(ep, a.batch, 0.2)
            if not jobs:
                if plan.stop.value:
                    break
                continue
            measured = []
            for job in jobs:
                now = time.time_ns()
                flags, _ = HEADER.unpack_from(job.payload)
                if flags & FLAG_MEASURED:
                    to_start.append(now - job.enqueued_at_ns)
                    measured.append(job.enqueued_at_ns)
                if spin_ns:
                    until = now + spin_ns
                    while time.time_ns() < until:
                        pass
                ids.append(job.id)
            if one_at_a_time:
                q.ack_deferred(jobs[0])
            elif len(jobs) == 1:
                q.ack(jobs[0])
            else:
                q.ack(jobs)
            done = time.time_ns()
            for enqueued_at in measured:
                to_completion.append(done - enqueued_at)
            last_done = done
            if window_start.value and done >= window_start.value:
                window_jobs += len(jobs)
            completed += len(jobs)
            plan.completed[index] = completed
        q.close()
        report.update(jobs=completed)
    except BaseException as error:
        report["error"] = f"{type(error).__name__}: {error}"
    report.update(cpu_seconds=cpu_seconds(), to_start=to_start.tobytes(), to_completion=to_completion.tobytes(),
                  ids=ids.tobytes(), window_jobs=window_jobs, last_done=last_done)
    plan.results.put(report)


def quantile(sorted_values: array.array, q: float) -> float:
    if not sorted_values:
        return 0.0
    if q >= 1.0:
        return float(sorted_values[-1])
    rank = min(max(1, math.ceil(q * len(sorted_values))), len(sorted_values))  # as currant-bench
    return float(sorted_values[rank - 1])


def run(args: argparse.Namespace) -> dict[str, Any]:
    import currant

    name = args.queue or f"currant-pybench-{os.getpid()}"
    currant.Queue.remove(name)
    queue = currant.Queue.create(name, slots=args.slots, payload_bytes=args.payload_bytes,
                                 max_participants=args.producers + args.workers + 8, log_capacity=16)
    queue.declare_entrypoint("currant-pybench", "memory")
    plan = Plan(args, name)
    ctx = multiprocessing.get_context("fork")
    processes = [ctx.Process(target=worker, args=(plan, i), daemon=True) for i in range(args.workers)]
    processes += [ctx.Process(target=producer, args=(plan, i), daemon=True) for i in range(args.producers)]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_start = os.getloadavg()
    try:
        for p in processes:
            p.start()
        total = len(processes)
        while plan.ready.value < total:
            if any(p.exitcode not in (None, 0) for p in processes):
                raise RuntimeError("a bench process failed to start")
            time.sleep(0.001)
        start_ns = time.time_ns()
        plan.start_ns.value = start_ns
        if args.duration is not None or args.warmup_percent <= 0:  # else the producers set it
            plan.window_start_ns.value = start_ns + int((args.duration or 0) * 1e9 * args.warmup_percent / 100.0)
        plan.go.set()
        reports: list[dict[str, Any]] = []
        producers_done = 0
        last_progress = time.monotonic()
        last_completed = -1
        show = args.progress and sys.stderr.isatty()
        while True:
            while not plan.results.empty():
                r = plan.results.get()
                if "error" in r:
                    raise RuntimeError(f"{r['role']} {r['index']}: {r['error']}")
                reports.append(r)
                producers_done += r["role"] == "producer"
            completed = sum(plan.completed)
            enqueued = sum(r["jobs"] for r in reports if r["role"] == "producer")
            if producers_done == args.producers and completed >= enqueued:
                break
            if completed != last_completed:
                last_completed, last_progress = completed, time.monotonic()
            elif time.monotonic() - last_progress > args.stall_seconds and not (plan.timed and plan.rate
                                                                                and producers_done < args.producers):
                raise RuntimeError(f"no job completed for {args.stall_seconds:g} s ({completed} done)")
            if any(p.exitcode not in (None, 0) for p in processes):
                raise RuntimeError("a bench process died: exit codes " + str([p.exitcode for p in processes]))
            if show:
                sys.stderr.write(f"\r\033[Kpython: {(time.time_ns() - start_ns) / 1e9:6.1f} s  enqueued "
                                 f"{sum(plan.enqueued):12d}  completed {completed:12d}")
            time.sleep(0.005)
        if show:
            sys.stderr.write("\r\033[K")
        plan.stop.value = 1
        while len(reports) < total:
            r = plan.results.get()
            if "error" in r:
                raise RuntimeError(f"{r['role']} {r['index']}: {r['error']}")
            reports.append(r)
        for p in processes:
            p.join()
        counters = queue.stats()["currant-pybench"]
    finally:
        plan.stop.value = 1
        for p in processes:
            if p.is_alive():
                p.join(5)
            if p.is_alive():
                p.kill()
        queue.close()
        currant.Queue.remove(name)
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return summarize(args, reports, counters, start_ns, plan.window_start_ns.value,
                     (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime),
                     load_start, os.getloadavg())


def summarize(args: argparse.Namespace, reports: list[dict[str, Any]], counters: dict[str, Any], start_ns: int,
              window_start: int, cpu_total: float,
              load_start: tuple, load_end: tuple) -> dict[str, Any]:
    producers = [r for r in reports if r["role"] == "producer"]
    workers = [r for r in reports if r["role"] == "worker"]
    enqueued = sum(r["jobs"] for r in producers)
    completed = sum(r["jobs"] for r in workers)
    to_start, to_completion, ids = array.array("q"), array.array("q"), array.array("q")
    for r in workers:
        to_start.frombytes(r["to_start"])
        to_completion.frombytes(r["to_completion"])
        ids.frombytes(r["ids"])
    distinct = len(set(ids))
    to_start = array.array("q", sorted(to_start))
    to_completion = array.array("q", sorted(to_completion))
    # Throughput: the completions from the end of the warm-up to the last
    # one, over that window, both to the nanosecond.
    last_done = max((r["last_done"] for r in workers), default=start_ns)
    counted = sum(r["window_jobs"] for r in workers)
    window = (last_done - window_start) / 1e9 if window_start and last_done > window_start else 0.0
    result: dict[str, Any] = {"system": "currant-python"}
    result["jobs_per_second"] = counted / window if window > 0 else 0.0
    for label, values in (("to_start", to_start), ("to_completion", to_completion)):
        for q, qname in QUANTILES:
            result[f"{label}_{qname}_us"] = quantile(values, q) / 1e3
    per_million = 1e6 / completed if completed else 0.0
    result["cpu_seconds_per_million"] = cpu_total * per_million
    result["producer_cpu_seconds_per_million"] = sum(r["cpu_seconds"] for r in producers) * per_million
    result["worker_cpu_seconds_per_million"] = sum(r["cpu_seconds"] for r in workers) * per_million
    result["pg_queries"] = 0
    result["jobs"] = completed
    result["enqueued"] = enqueued
    result["measured_jobs"] = len(to_completion)
    result["processed_more_than_once"] = len(ids) - distinct
    result["never_processed"] = enqueued - distinct
    # The core's own totals for the entrypoint, a second witness to the above.
    for key in ("enqueued", "picks", "successful", "retried", "failed"):
        result[f"queue_{key}"] = counters[key]
    result["seconds"] = (last_done - start_ns) / 1e9
    result["window_seconds"] = window
    config = {k: getattr(args, k) for k in ("producers", "workers", "batch", "payload_bytes", "jobs", "warmup_percent",
                                            "rate", "work_us", "prefetch")}
    config["duration_seconds"] = args.duration or 0
    config["durability"] = "memory"
    return {"bench": "python -m currant bench", "config": config,
            "load_average": {"start": list(load_start), "end": list(load_end)}, "cpus": os.cpu_count(),
            "results": [result]}


LINES = [("throughput (jobs/s)", "jobs_per_second", -1)]
for _which, _label in (("to_start", "enqueue -> start"), ("to_completion", "enqueue -> completion")):
    LINES += [(f"{_label} {name} (us)", f"{_which}_{name}_us", 1) for _, name in QUANTILES]
LINES += [
    ("CPU s per million jobs", "cpu_seconds_per_million", 2),
    ("  of which producers", "producer_cpu_seconds_per_million", 2),
    ("  of which workers", "worker_cpu_seconds_per_million", 2),
    ("PostgreSQL queries issued", "pg_queries", -1),
    ("jobs completed (warm-up included)", "jobs", -1),
    ("jobs in the latency figures", "measured_jobs", -1),
    ("jobs processed more than once", "processed_more_than_once", -1),
    ("jobs never processed", "never_processed", -1),
    ("seconds, start to last completion", "seconds", 6),
    ("seconds counted for throughput", "window_seconds", 6),
]


def describe(args: argparse.Namespace) -> str:
    if args.duration is not None:
        amount = f"{args.jobs:,} jobs over {args.duration:g} s" if args.jobs is not None else f"{args.duration:g} s"
    else:
        amount = f"{args.jobs:,} jobs"
    plural = lambda n, word: f"{n} {word}{'' if n == 1 else 's'}"  # noqa: E731
    rate = f"{args.rate:,.0f} jobs/s" if args.rate else "as fast as possible"
    return (f"{plural(args.producers, 'producer')}, {plural(args.workers, 'worker')} (Python processes), "
            f"1 entrypoint, batch {args.batch}, {args.payload_bytes}-byte payloads, {amount}, warm-up "
            f"{args.warmup_percent:g}%, rate {rate}, durability memory, job body {args.work_us} us"
            + (f", dequeue_one prefetch {args.prefetch} + ack_deferred" if args.batch == 1 and args.prefetch else ""))


def print_table(args: argparse.Namespace, report: dict[str, Any]) -> None:
    result = report["results"][0]
    print(f"python -m currant bench: {describe(args)}")
    s, e = report["load_average"]["start"], report["load_average"]["end"]
    print(f"load average (1, 5, 15 min): {s[0]:.2f} {s[1]:.2f} {s[2]:.2f} at the start, "
          f"{e[0]:.2f} {e[1]:.2f} {e[2]:.2f} at the end, on {report['cpus']} CPUs")
    width = max(len(label) for label, _, _ in LINES)
    print(f"{'':<{width}}  {result['system']:>16}")
    for label, key, decimals in LINES:
        value = result[key]
        text = f"{value:,.0f}" if decimals < 0 else f"{value:.{decimals}f}"
        print(f"{label:<{width}}  {text:>16}")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m currant bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--producers", type=int, default=1, help="producer processes (default 1)")
    ap.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    ap.add_argument("--jobs", type=int, help="jobs to enqueue over all producers (default 10000 without --duration)")
    ap.add_argument("--duration", type=parse_duration, help="enqueue for this long (60s, 500ms, 2m); with --jobs "
                    "the jobs are spread evenly over it")
    ap.add_argument("--warmup-percent", type=float, default=0.0, help="share of the run left out of the figures")
    ap.add_argument("--rate", type=float, default=0.0, help="target enqueue rate over all producers, jobs/s")
    ap.add_argument("--batch", type=int, default=1, help="jobs per enqueue and per dequeue call (default 1)")
    ap.add_argument("--prefetch", type=int, default=64, help="with --batch 1: dequeue_one taking up to this many "
                    "ready jobs per pick, and ack_deferred (default 64, as currant-bench); 0: dequeue and ack "
                    "each job")
    ap.add_argument("--payload-bytes", type=int, default=64, help="payload size (at least 8; default 64)")
    ap.add_argument("--work-us", type=int, default=0, help="job body: spin this many microseconds (0: no-op)")
    ap.add_argument("--slots", type=int, default=65536, help="arena slots of the fresh queue")
    ap.add_argument("--queue", help="name for the fresh queue (default currant-pybench-<pid>; replaced if present)")
    ap.add_argument("--stall-seconds", type=float, default=60.0, help="give up when no job completes for this long")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--no-progress", dest="progress", action="store_false", help="no progress line on stderr")
    args = ap.parse_args(argv)
    problems = []
    if args.producers < 1 or args.workers < 1:
        problems.append("--producers and --workers must be at least 1")
    if args.batch < 1 or args.batch > 4096:
        problems.append("--batch must be between 1 and 4096")
    if not 0 <= args.prefetch <= 1024:
        problems.append("--prefetch must be between 0 and 1024")
    if args.payload_bytes < HEADER.size:
        problems.append(f"--payload-bytes must be at least {HEADER.size} (the header the workers read)")
    if args.jobs is not None and args.jobs < 1:
        problems.append("--jobs must be at least 1")
    if not 0 <= args.warmup_percent <= 90:
        problems.append("--warmup-percent must be between 0 and 90")
    if args.rate < 0:
        problems.append("--rate must not be negative")
    if problems:
        ap.error("; ".join(problems))
    if args.jobs is None and args.duration is None:
        args.jobs = 10_000
    report = run(args)
    if args.json:
        print(json.dumps(report))
    else:
        print_table(args, report)
    r = report["results"][0]
    return 0 if r["processed_more_than_once"] == 0 and r["never_processed"] == 0 else 1
