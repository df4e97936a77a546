"""Chaos run: kill and restart producers, consumers, currantd and PostgreSQL
at random moments, then drain and prove that nothing was lost or recorded twice.

    /usr/bin/python3 tests/chaos/chaos.py --seconds 600 --kills-per-second 2

Needs CURRANTD and CURRANT_CLI (paths of the built programs) and the built
Python package on PYTHONPATH; meson's `chaos` suite sets them. It starts its
own PostgreSQL cluster in a temporary directory.

The proof, after the drain, from the segment and from PostgreSQL:
  * every id a producer recorded (acknowledged as enqueued) has exactly one
    `successful` row in currant_log: lost = 0, duplicates = 0;
  * nothing is left in currant_jobs, nothing queued, picked or unmirrored in
    the segment, and `currant doctor` finds the segment sound.
Prints a summary; exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import currant

HERE = os.path.dirname(os.path.abspath(__file__))
ROLES = os.path.join(HERE, "chaos_roles.py")
PYTHON = "/usr/bin/python3"
# What every program but the Python roles runs with: no LD_PRELOAD.
# Under ASan (scripts/test-sanitizers.sh) the runtime is preloaded into the
# interpreter; PostgreSQL, psql and gdb must not get it, and the sanitized
# currantd and currant load it themselves.
NATIVE_ENV = {key: value for key, value in os.environ.items() if key != "LD_PRELOAD"}


class Cluster:
    """A throwaway PostgreSQL (Unix socket only) in a directory of its own."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.bin = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(directory, "postgres", "postgres")
        self._run([f"{self.bin}/initdb", "-D", f"{directory}/data", "-A", "trust", "-U", "postgres",
                   "--no-sync", "-E", "UTF8", "--locale=C"])
        self.start()
        self.conninfo = f"host={directory} port=5432 user=postgres dbname=postgres"

    def _run(self, argv: list[str]) -> None:
        with open(f"{self.directory}/setup.log", "a") as log:
            subprocess.run(self.prefix + argv, check=True, stdout=log, stderr=log, env=NATIVE_ENV)

    def start(self, wait: bool = True) -> None:
        self._run([f"{self.bin}/pg_ctl", "-D", f"{self.directory}/data", "-w" if wait else "-W", "-t", "60",
                   "-l", f"{self.directory}/server.log", "-o",
                   f"-k {self.directory} -c listen_addresses='' -p 5432", "start"])

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + 60
        while subprocess.run([f"{self.bin}/pg_isready", "-h", self.directory, "-p", "5432"],
                             stdout=subprocess.DEVNULL, env=NATIVE_ENV).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not come back")
            time.sleep(0.1)

    def crash(self) -> bool:
        """An immediate shutdown: no checkpoint, crash recovery at the next start.
        False if there was no server to stop (it was still starting)."""
        try:
            self._run([f"{self.bin}/pg_ctl", "-D", f"{self.directory}/data", "-m", "immediate", "stop"])
            return True
        except subprocess.CalledProcessError:
            return False

    def stop(self) -> None:
        try:
            self._run([f"{self.bin}/pg_ctl", "-D", f"{self.directory}/data", "-m", "fast", "stop"])
        except subprocess.CalledProcessError:
            pass

    def query(self, sql: str) -> list[list[str]]:
        out = subprocess.run([f"{self.bin}/psql", self.conninfo, "-At", "-F", "\t", "-c", sql],
                             check=True, capture_output=True, text=True, env=NATIVE_ENV).stdout
        return [line.split("\t") for line in out.splitlines() if line]


def diagnose_stall(daemon_pid: int, cluster: Cluster, work: str) -> None:
    """The drain did not finish: print where the daemon's threads wait and
    what PostgreSQL's sessions do, so a stall can be understood afterwards."""
    print("chaos: the drain did not finish; diagnostics follow", file=sys.stderr)
    if shutil.which("gdb"):
        trace = subprocess.run(["gdb", "-batch", "-p", str(daemon_pid), "-ex", "thread apply all bt"],
                               capture_output=True, text=True, timeout=120, env=NATIVE_ENV)
        print(trace.stdout, file=sys.stderr)
    try:
        for row in cluster.query("SELECT pid, application_name, state, wait_event_type, wait_event, "
                                 "now() - xact_start, left(query, 200) FROM pg_stat_activity"):
            print("chaos: pg_stat_activity " + " | ".join(row), file=sys.stderr)
        for row in cluster.query("SELECT locktype, relation::regclass, mode, granted, pid FROM pg_locks"):
            print("chaos: pg_locks " + " | ".join(row), file=sys.stderr)
    except subprocess.CalledProcessError as error:
        print(f"chaos: could not query PostgreSQL: {error.stderr}", file=sys.stderr)
    with open(os.path.join(work, "currantd.log"), errors="replace") as log:
        print("chaos: currantd log (last 40 lines):\n" + "".join(log.readlines()[-40:]), file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--kills-per-second", type=float, default=2.0)
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--consumers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, cluster)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    currantd = os.environ["CURRANTD"]
    cli = os.environ["CURRANT_CLI"]

    work = tempfile.mkdtemp(prefix="currant-chaos-")
    queue_name = f"chaos-{os.getpid()}"
    stop_producers = os.path.join(work, "stop-producers")
    stop_consumers = os.path.join(work, "stop-consumers")  # made once every producer has exited
    cluster = Cluster(work)
    subprocess.run([cli, "db", "install", "--db", cluster.conninfo], check=True, stdout=subprocess.DEVNULL,
                   env=NATIVE_ENV)
    currant.Queue.remove(queue_name)
    with currant.Queue.create(queue_name, slots=8192, payload_bytes=64, max_participants=64,
                              log_capacity=2048) as q:
        # Attempts: a job may be delivered to many consumers that all die.
        q.declare_entrypoint("chaos", durability="async", lease=5.0, max_attempts=1_000_000)

    daemon_log = open(os.path.join(work, "currantd.log"), "ab")
    processes: dict[str, subprocess.Popen] = {}

    def start(role: str) -> None:
        if role == "daemon":
            argv = [currantd, "--queue", queue_name, "--db", cluster.conninfo, "--flush-interval-ms", "5"]
            processes[role] = subprocess.Popen(argv, stdout=daemon_log, stderr=daemon_log, env=NATIVE_ENV)
        elif role.startswith("producer"):
            argv = [PYTHON, ROLES, "producer", queue_name, os.path.join(work, f"ids-{role}.txt"), stop_producers]
            processes[role] = subprocess.Popen(argv)
        else:
            processes[role] = subprocess.Popen([PYTHON, ROLES, "consumer", queue_name, stop_consumers])

    roles = ["daemon"] + [f"producer-{i}" for i in range(args.producers)] + \
            [f"consumer-{i}" for i in range(args.consumers)]
    for role in roles:
        start(role)

    kills = collections.Counter()
    postgres_down_until = 0.0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        time.sleep(rng.expovariate(args.kills_per_second))
        now = time.monotonic()
        if postgres_down_until and now >= postgres_down_until:
            cluster.start(wait=False)  # recovers while the run goes on
            postgres_down_until = 0.0
        for role, process in list(processes.items()):  # a role that died on its own is an error
            if process.poll() is not None and process.returncode not in (0, -signal.SIGKILL):
                print(f"chaos: {role} exited with status {process.returncode}", file=sys.stderr)
                return 1
        victim = rng.choice(roles + ["postgres"])
        if victim == "postgres":
            if postgres_down_until:
                continue
            if not cluster.crash():
                continue
            postgres_down_until = now + rng.uniform(0.1, 1.0)
        else:
            processes[victim].kill()
            processes[victim].wait()
            start(victim)
        kills[victim.split("-")[0]] += 1

    # Drain: everything up, producers stop, consumers finish the work.
    if postgres_down_until:
        cluster.start()
    else:
        cluster.wait_until_up()
    open(stop_producers, "w").close()
    deadline = time.monotonic() + 120
    for role, process in processes.items():
        if role.startswith("producer"):
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    open(stop_consumers, "w").close()
    with currant.Queue(queue_name) as q:
        while time.monotonic() < deadline:
            s = q.stats()["chaos"]
            if all(p.poll() is not None for r, p in processes.items() if r != "daemon") and \
                    s["queued"] + s["delayed"] + s["picked"] + s["log_pending"] + s["dirty_slots"] == 0:
                break
            time.sleep(0.1)
        else:
            diagnose_stall(processes["daemon"].pid, cluster, work)
        stats = q.stats()["chaos"]
    processes["daemon"].send_signal(signal.SIGTERM)
    daemon_status = processes["daemon"].wait()

    acknowledged: set[int] = set()
    for path in glob.glob(os.path.join(work, "ids-*.txt")):
        with open(path) as f:
            # One file per producer process: only its last line can have been
            # cut by a kill, and a line without its newline is dropped.
            for line in f.read().split("\n")[:-1]:
                acknowledged.add(int(line))
    successful = collections.Counter(int(row[0]) for row in cluster.query(
        "SELECT job_id FROM currant_log WHERE status = 'successful'"))
    lost = [i for i in acknowledged if successful[i] == 0]
    duplicates = [i for i, n in successful.items() if n > 1]
    left_in_jobs_table = int(cluster.query("SELECT count(*) FROM currant_jobs")[0][0])
    other_final = int(cluster.query("SELECT count(*) FROM currant_log WHERE status IN ('exception', 'canceled')")[0][0])
    doctor = subprocess.run([cli, "doctor", queue_name], capture_output=True, text=True, env=NATIVE_ENV)

    print(f"chaos: seed {seed}, {args.seconds:.0f} s, kills: {sum(kills.values())} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(kills.items()))})")
    print(f"chaos: jobs acknowledged as enqueued {len(acknowledged)}, completed and recorded "
          f"{sum(1 for i in acknowledged if successful[i])}, lost {len(lost)}, duplicates recorded {len(duplicates)}")
    problems = []
    if lost:
        problems.append(f"{len(lost)} acknowledged jobs have no successful row, e.g. {sorted(lost)[:5]}")
    if duplicates:
        problems.append(f"{len(duplicates)} jobs are recorded successful more than once, e.g. {duplicates[:5]}")
    if left_in_jobs_table:
        problems.append(f"{left_in_jobs_table} rows left in currant_jobs (stuck)")
    if other_final:
        problems.append(f"{other_final} jobs ended exception or canceled")
    if stats["queued"] + stats["delayed"] + stats["picked"] + stats["log_pending"] + stats["dirty_slots"]:
        problems.append(f"the segment did not drain: {stats}")
    if doctor.returncode != 0:
        problems.append("currant doctor: " + doctor.stdout.strip() + doctor.stderr.strip())
    if daemon_status != 0:
        problems.append(f"currantd stopped with status {daemon_status}")
    for problem in problems:
        print(f"chaos: FAILED: {problem}", file=sys.stderr)

    currant.Queue.remove(queue_name)
    cluster.stop()
    if args.keep or problems:
        print(f"chaos: work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
