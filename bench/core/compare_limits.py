#!/usr/bin/python3
"""What a concurrency limit costs, in two builds side by side (BENCHMARKS.md,
"Entrypoint limits (issue 8)").

Interleaved rounds; in each round, for each build: currant_two_process in
`single` and `batch` mode with no limit and with a limit of 1,000,000 that
never binds (pinned, 2,000,000 jobs), and currant_micro's `limited`
benchmarks. The cost is the ratio limit / no limit within one round and one
build (so a load that changes between rounds cancels out), reported as
median (min to max) over the rounds, with the load average at each round.

    /usr/bin/python3 bench/core/compare_limits.py --base /work/base-bin --new build/bench/core --rounds 6
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess


def two_process(binary: str, mode: str, limit: int, jobs: int) -> float:
    out = subprocess.run([binary, "--mode", mode, "--jobs", str(jobs), "--pin", "--concurrency-limit", str(limit),
                          "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["jobs_per_second"]


def micro(binary: str, min_time: float) -> dict[str, float]:
    out = subprocess.run([binary, "--benchmark_filter=limited", "--benchmark_format=json",
                          f"--benchmark_min_time={min_time}"], check=True, capture_output=True, text=True).stdout
    return {b["name"]: b["items_per_second"] for b in json.loads(out)["benchmarks"]}


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f} to {max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="directory with the baseline currant_two_process, currant_micro")
    parser.add_argument("--new", required=True, help="directory with the new build's binaries")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=2_000_000)
    parser.add_argument("--min-time", type=float, default=0.5)
    parser.add_argument("--no-micro", action="store_true")
    parser.add_argument("--modes", default="single,batch", help="two-process modes, comma-separated")
    args = parser.parse_args()
    builds = {"base": args.base, "new": args.new}
    ratios: dict[tuple[str, str], list[float]] = {}
    rates: dict[tuple[str, str, int], list[float]] = {}
    loads = []
    for r in range(args.rounds):
        loads.append(os.getloadavg()[0])
        for build, directory in builds.items():
            for mode in args.modes.split(","):
                plain = two_process(f"{directory}/currant_two_process", mode, 0, args.jobs)
                limited = two_process(f"{directory}/currant_two_process", mode, 1_000_000, args.jobs)
                rates.setdefault((build, mode, 0), []).append(plain)
                rates.setdefault((build, mode, 1), []).append(limited)
                ratios.setdefault((build, "two_process " + mode), []).append(limited / plain)
            if not args.no_micro:
                result = micro(f"{directory}/currant_micro", args.min_time)
                for name, value in result.items():
                    if name.endswith("limited:0"):
                        for variant in ("1", "2"):
                            other = result.get(name[:-1] + variant)
                            if other:
                                ratios.setdefault((build, "micro " + name[:-len("/limited:0")] + " limited:" + variant),
                                                  []).append(other / value)
        print(f"round {r + 1}: load {loads[-1]:.2f}", flush=True)
    print(f"load average (1 min) at the rounds: {', '.join(f'{x:.2f}' for x in loads)}")
    print("| build | mode | no limit, M jobs/s | limit 1,000,000, M jobs/s |")
    print("|---|---|---|---|")
    for (build, mode, limit), values in sorted(rates.items()):
        if limit == 0:
            print(f"| {build} | {mode} | {summary([v / 1e6 for v in values])} | "
                  f"{summary([v / 1e6 for v in rates[(build, mode, 1)]])} |")
    print("| benchmark | base: limit / no limit | new: limit / no limit |")
    print("|---|---|---|")
    names = sorted({name for _, name in ratios})
    for name in names:
        cells = [summary(ratios[(b, name)]) if (b, name) in ratios else "-" for b in builds]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(json.dumps({"loads": loads, "ratios": {f"{b}|{n}": v for (b, n), v in ratios.items()},
                      "rates": {f"{b}|{m}|{l}": v for (b, m, l), v in rates.items()}}))


if __name__ == "__main__":
    main()
