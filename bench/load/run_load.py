#!/usr/bin/python3
"""Runs currant-bench scenarios --runs times each (JSON) and prints a
Markdown table per scenario: median (min to max) for currant and
message_queue, and the ratio of the medians. Used for BENCHMARKS.md.

    /usr/bin/python3 bench/load/run_load.py --build build-load --runs 3
    /usr/bin/python3 bench/load/run_load.py --build build-load --runs 3 --async-queue NAME   # + a currantd scenario
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

SCENARIOS = [
    ("backlog, batches of 64", ["--producers", "2", "--workers", "4", "--batch", "64", "--jobs", "2000000",
                                "--warmup-percent", "10", "--compare", "message_queue"]),
    ("50 workers, one job per call", ["--workers", "50", "--jobs", "10000", "--warmup-percent", "10",
                                      "--compare", "message_queue"]),
    ("light load, 50 jobs/s into 10 idle workers", ["--workers", "10", "--rate", "50", "--duration", "10s",
                                                    "--warmup-percent", "10", "--compare", "message_queue"]),
]

FIELDS = [
    ("throughput (jobs/s)", "jobs_per_second", 0),
    ("enqueue -> start p50 (us)", "to_start_p50_us", 1),
    ("enqueue -> start p99 (us)", "to_start_p99_us", 1),
    ("enqueue -> start p99.9 (us)", "to_start_p99.9_us", 1),
    ("enqueue -> start max (us)", "to_start_max_us", 1),
    ("enqueue -> completion p50 (us)", "to_completion_p50_us", 1),
    ("enqueue -> completion p95 (us)", "to_completion_p95_us", 1),
    ("enqueue -> completion p99 (us)", "to_completion_p99_us", 1),
    ("enqueue -> completion p99.9 (us)", "to_completion_p99.9_us", 1),
    ("enqueue -> completion max (us)", "to_completion_max_us", 1),
    ("CPU s per million jobs", "cpu_seconds_per_million", 2),
]


def fmt(value, decimals):
    return f"{value:,.{decimals}f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--async-queue", help="a queue a running currantd serves: adds an async scenario")
    args = parser.parse_args()
    exe = os.path.join(args.build, "bench", "load", "currant-bench")
    scenarios = list(SCENARIOS)
    if args.async_queue:
        scenarios.append(("durability async (currantd, PostgreSQL), batches of 64",
                          ["--queue", args.async_queue, "--durability", "async", "--workers", "4", "--batch", "64",
                           "--jobs", "200000", "--warmup-percent", "10"]))
    for title, options in scenarios:
        runs = []
        for _ in range(args.runs):
            out = subprocess.run([exe, *options, "--json"], check=True, capture_output=True, text=True).stdout
            runs.append(json.loads(out))
        systems = [r["system"] for r in runs[0]["results"]]
        print(f"### {title}\n\n`{exe} {' '.join(options)}`\n")
        header = "| figure | " + " | ".join(systems) + " |" + (" currant / message_queue |" if len(systems) == 2 else "")
        print(header)
        print("|---" * (len(systems) + 1 + (len(systems) == 2)) + "|")
        for label, key, decimals in FIELDS:
            cells, medians = [], []
            for i, _ in enumerate(systems):
                values = [r["results"][i][key] for r in runs]
                median = statistics.median(values)
                medians.append(median)
                cells.append(f"{fmt(median, decimals)} ({fmt(min(values), decimals)} to {fmt(max(values), decimals)})")
            ratio = ""
            if len(systems) == 2:
                ratio = f" {medians[0] / medians[1]:.2f} |" if medians[1] else " - |"
            print(f"| {label} | " + " | ".join(cells) + " |" + ratio)
        print()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
