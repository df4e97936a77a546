"""python3 -m currant bench: it runs, every job is processed exactly once,
and its output (table and JSON) parses. Behaviour only: no figure is
checked against a speed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import unique_name


def bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "currant", "bench", "--no-progress", *args],
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def test_json_every_job_once() -> None:
    name = unique_name("bench")
    p = bench("--workers", "3", "--jobs", "600", "--warmup-percent", "10", "--queue", name, "--json")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    (r,) = report["results"]
    assert r["system"] == "currant-python"
    assert r["jobs"] == 600 and r["enqueued"] == 600
    assert r["processed_more_than_once"] == 0 and r["never_processed"] == 0
    # The core's own totals agree: each job picked once and acked once.
    assert r["queue_enqueued"] == 600 and r["queue_picks"] == 600 and r["queue_successful"] == 600
    assert r["queue_retried"] == 0 and r["queue_failed"] == 0
    assert r["measured_jobs"] == 540  # the first 10% (60 jobs) are the warm-up
    assert r["jobs_per_second"] > 0
    # The throughput window starts at the end of the warm-up, after the start.
    assert 0 < r["window_seconds"] < r["seconds"]
    assert 0 <= r["to_start_p50_us"] <= r["to_start_p99_us"] <= r["to_start_max_us"]
    assert r["to_start_p50_us"] <= r["to_completion_p50_us"]  # the same jobs, each started before done
    assert report["config"]["workers"] == 3
    assert len(report["load_average"]["start"]) == 3
    # The queue it made is gone.
    import currant

    with pytest.raises(currant.QueueNotFound):
        currant.Queue(name)


@pytest.mark.parametrize("prefetch", ["0", "64"])
def test_every_job_once_whichever_way_workers_take_one_job(prefetch: str) -> None:
    # 0: dequeue and ack per job; 64: dequeue_one's prefetch and ack_deferred.
    p = bench("--workers", "3", "--jobs", "500", "--prefetch", prefetch, "--json")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    (r,) = report["results"]
    assert report["config"]["prefetch"] == int(prefetch)
    assert r["jobs"] == 500 and r["never_processed"] == 0 and r["processed_more_than_once"] == 0
    assert r["queue_picks"] == 500 and r["queue_successful"] == 500


def test_table_parses_with_batches_and_two_producers() -> None:
    p = bench("--producers", "2", "--workers", "2", "--jobs", "401", "--batch", "8", "--warmup-percent", "0")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("python -m currant bench: 2 producers, 2 workers")
    assert lines[1].startswith("load average")
    values = {}
    for line in lines[3:]:
        m = re.fullmatch(r"(.+?)\s{2,}([0-9,.]+)", line.strip())
        assert m, line
        values[m.group(1).strip()] = float(m.group(2).replace(",", ""))
    assert values["jobs completed (warm-up included)"] == 401
    assert values["jobs in the latency figures"] == 401
    assert values["jobs processed more than once"] == 0
    assert values["jobs never processed"] == 0
    assert values["throughput (jobs/s)"] > 0
    assert values["enqueue -> start p50 (us)"] <= values["enqueue -> start max (us)"]


def test_jobs_spread_over_a_duration() -> None:
    p = bench("--workers", "2", "--jobs", "50", "--duration", "500ms", "--json")
    assert p.returncode == 0, p.stderr
    (r,) = json.loads(p.stdout)["results"]
    assert r["jobs"] == 50 and r["never_processed"] == 0 and r["processed_more_than_once"] == 0


@pytest.mark.parametrize("args, named", [
    (["--workers", "0", "--jobs", "10"], "--workers"),
    (["--jobs", "10", "--payload-bytes", "4"], "--payload-bytes"),
    (["--jobs", "10", "--duration", "soon"], "--duration"),
    (["--jobs", "10", "--prefetch", "2000"], "--prefetch"),
])
def test_bad_options_are_named(args: list[str], named: str) -> None:
    p = bench(*args)
    assert p.returncode == 2
    assert named in p.stderr


def test_unknown_command() -> None:
    p = subprocess.run([sys.executable, "-m", "currant", "frobnicate"], capture_output=True, text=True)
    assert p.returncode == 2 and "unknown command 'frobnicate'" in p.stderr
