#!/usr/bin/python3
"""Cost of the entrypoint limits in the core micro-benchmark (BENCHMARKS.md).

Runs currant_micro (bench/core/micro.cpp) in interleaved rounds: each
benchmark plain (limited:0), with a concurrency limit that never binds
(limited:1) and with a concurrency and a rate limit that never bind
(limited:2); optionally also a baseline binary built from the commit before
the limits (its benchmarks have no /limited argument). Prints the median
(min to max) of items per second (CPU time, Google Benchmark's default) and
the cost of each variant against limited:0 and against the baseline.

    /usr/bin/python3 bench/core/run_limits.py --micro build-limits/bench/core/currant_micro \
        [--baseline /tmp/currant-base/build/bench/core/currant_micro] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess

BENCHMARKS = ["enqueue_dequeue_ack_single", "enqueue_dequeue_one_ack_deferred", "enqueue_dequeue_ack_batch"]


def run(binary: str, min_time: float) -> dict[str, float]:
    out = subprocess.run(
        [binary, f"--benchmark_min_time={min_time}", "--benchmark_format=json",
         "--benchmark_filter=" + "|".join(BENCHMARKS)],
        check=True, capture_output=True, text=True,
    ).stdout
    return {b["name"]: b["items_per_second"] for b in json.loads(out)["benchmarks"]}


def key(name: str) -> tuple[str, str]:
    """(benchmark, variant) from a name like enqueue_dequeue_ack_batch/batch:64/limited:1."""
    parts = name.split("/")
    variant = next((p for p in parts if p.startswith("limited:")), "baseline")
    return parts[0], variant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--micro", required=True, help="currant_micro with the limits")
    parser.add_argument("--baseline", help="currant_micro built from the commit before the limits")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.5)
    args = parser.parse_args()

    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        binaries = [args.micro] + ([args.baseline] if args.baseline else [])
        for binary in binaries:
            for name, rate in run(binary, args.min_time).items():
                samples.setdefault(key(name), []).append(rate)

    labels = {"baseline": "before the limits (baseline build)", "limited:0": "no limit set",
              "limited:1": "concurrency limit 1,000,000", "limited:2": "concurrency 1,000,000 + rate 1e9/s"}
    print(f"{args.rounds} interleaved rounds, median (min to max) of M items/s (CPU time)")
    for bench in BENCHMARKS:
        print(f"\n{bench}")
        plain = statistics.median(samples[(bench, "limited:0")])
        base = statistics.median(samples[(bench, "baseline")]) if (bench, "baseline") in samples else None
        for variant in ["baseline", "limited:0", "limited:1", "limited:2"]:
            values = samples.get((bench, variant))
            if not values:
                continue
            median = statistics.median(values)
            line = (f"  {labels[variant]:<38} {median / 1e6:7.3f} ({min(values) / 1e6:.3f} to "
                    f"{max(values) / 1e6:.3f})")
            if variant in ("limited:1", "limited:2"):
                line += f"  cost vs no limit {100 * (1 - median / plain):+5.1f} %"
            if base and variant != "baseline":
                line += f"  vs baseline {100 * (1 - median / base):+5.1f} %"
            print(line)


if __name__ == "__main__":
    main()
