#!/usr/bin/python3
"""Runs currant's two-process benchmarks beside the floors, several times,
and prints the Markdown tables recorded in BENCHMARKS.md (medians with the
spread, and ratios to the floors measured in the same run).

    /usr/bin/python3 bench/run_core.py [--build build] [--runs 5] [--out FILE]

Run it on a quiet machine: on 2 vCPUs a concurrent compile makes every
figure several times worse.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys


def run_json(command):
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def spread(values, digits=0, scale=1.0):
    values = [v * scale for v in values]
    median = statistics.median(values)
    fmt = "{:,.%df}" % digits
    return median, f"{fmt.format(median)} ({fmt.format(min(values))} to {fmt.format(max(values))})"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--jobs-single", type=int, default=2_000_000)
    parser.add_argument("--jobs-batch", type=int, default=10_000_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args()

    two_process = os.path.join(args.build, "bench/core/currant_two_process")
    floors = os.path.join(args.build, "bench/floors")
    single, batch, message_queue = [], [], []
    single_pinned, batch_pinned, message_queue_pinned = [], [], []
    wake = {"p50_us": [], "p99_us": []}
    floor_wake = {"p50_us": [], "p99_us": []}
    for run in range(args.runs):
        print(f"run {run + 1}/{args.runs}", file=sys.stderr)
        message_queue += [r["messages_per_sec"] for r in run_json([os.path.join(floors, "floor_message_queue"), "--json"])]
        message_queue_pinned += [r["messages_per_sec"] for r in run_json([os.path.join(floors, "floor_message_queue"), "--pin", "--json"])]
        single_pinned += [r["jobs_per_second"] for r in run_json([two_process, "--mode", "single", "--pin", "--jobs", str(args.jobs_single), "--json"])]
        batch_pinned += [r["jobs_per_second"] for r in run_json([two_process, "--mode", "batch", "--pin", "--batch", "64", "--jobs", str(args.jobs_batch), "--json"])]
        single += [r["jobs_per_second"] for r in run_json([two_process, "--mode", "single", "--jobs", str(args.jobs_single), "--json"])]
        batch += [r["jobs_per_second"] for r in run_json([two_process, "--mode", "batch", "--batch", "64", "--jobs", str(args.jobs_batch), "--json"])]
        for r in run_json([os.path.join(floors, "floor_futex_wakeup"), "--samples", str(args.samples), "--json"]):
            floor_wake["p50_us"].append(r["p50_us"])
            floor_wake["p99_us"].append(r["p99_us"])
        for r in run_json([two_process, "--mode", "wakeup", "--samples", str(args.samples), "--json"]):
            wake["p50_us"].append(r["p50_us"])
            wake["p99_us"].append(r["p99_us"])
    idle = run_json([two_process, "--mode", "idle", "--idle-seconds", "10", "--json"])[0]

    mq_median, mq_text = spread(message_queue)
    single_median, single_text = spread(single)
    batch_median, batch_text = spread(batch)
    mqp_median, mqp_text = spread(message_queue_pinned)
    singlep_median, singlep_text = spread(single_pinned)
    batchp_median, batchp_text = spread(batch_pinned)
    fw50, fw50_text = spread(floor_wake["p50_us"], 1)
    fw99, fw99_text = spread(floor_wake["p99_us"], 1)
    w50, w50_text = spread(wake["p50_us"], 1)
    w99, w99_text = spread(wake["p99_us"], 1)

    lines = []
    lines.append(f"Measured {datetime.date.today().isoformat()} on {platform.node()} "
                 f"({os.cpu_count()} CPUs, Linux {platform.release()}), {args.runs} runs, median (min to max).")
    lines.append("")
    lines.append(f"Command: `/usr/bin/python3 bench/run_core.py --runs {args.runs}`")
    lines.append("")
    lines.append("| figure | target | measured | ratio to floor |")
    lines.append("|---|---|---|---|")
    lines.append(f"| floor: Boost `message_queue`, 2 processes, 64 B | (floor) | {mq_text} msg/s | 1 |")
    lines.append(f"| one job per call: enqueue + dequeue_one + ack_deferred, 64 B | >= 2,000,000 jobs/s and > message_queue | {single_text} jobs/s | {single_median / mq_median:.2f} x message_queue |")
    lines.append(f"| batches of 64: enqueue_batch + dequeue + ack | >= 10,000,000 jobs/s | {batch_text} jobs/s | {batch_median / mq_median:.2f} x message_queue |")
    lines.append(f"| floor: Boost `message_queue`, pinned to CPUs 0 and 1 | (floor) | {mqp_text} msg/s | 1 |")
    lines.append(f"| one job per call, pinned to CPUs 0 and 1 | >= 2,000,000 jobs/s and > message_queue | {singlep_text} jobs/s | {singlep_median / mqp_median:.2f} x message_queue pinned |")
    lines.append(f"| batches of 64, pinned to CPUs 0 and 1 | >= 10,000,000 jobs/s | {batchp_text} jobs/s | {batchp_median / mqp_median:.2f} x message_queue pinned |")
    lines.append(f"| floor: bare futex wake-up p50 / p99 | (floor) | {fw50_text} / {fw99_text} us | 1 |")
    lines.append(f"| sleeping consumer woken by an enqueue, p50 | <= 1.5 x floor p50 | {w50_text} us | {w50 / fw50:.2f} x |")
    lines.append(f"| sleeping consumer woken by an enqueue, p99 | <= 1.5 x floor p99 | {w99_text} us | {w99 / fw99:.2f} x |")
    lines.append(f"| idle consumer blocked in dequeue for {idle['seconds']:.0f} s | no CPU | {idle['cpu_seconds']:.6f} s CPU | |")
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(report + "\n")


if __name__ == "__main__":
    main()
