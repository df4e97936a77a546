#!/usr/bin/python3
"""currant beside its peers on one machine, in one run (issue 6).

Starts a throwaway PostgreSQL cluster (initdb under /var/tmp, on disk, Unix
socket only; the server's default durability unless --synchronous-commit
off) and a throwaway redis-server (Unix socket, no persistence), then runs
each system on two scenarios, --runs times, interleaved:

  backlog  --workers W --jobs K --warmup-percent P
  light    --workers W --rate R --duration D --warmup-percent P
           (R jobs/s into idle workers, one job per enqueue call)

Systems:
  currant          currant-bench, memory durability (a fresh queue)
  currant-async    currant-bench --durability async against a queue that a
                   currantd started for the run mirrors into the cluster
  skip-locked      currant-bench-skip-locked, PgQueuer's schema, dequeue and
                   notify trigger over libpq (backlog: --prefill, 100 jobs
                   per INSERT; light: one job per INSERT)
  graphile-worker, graphile-worker-batched, pg-boss, pg-boss-batched, bullmq
                   bench/peers/node/<peer>.mjs (backlog: prefilled in bulk
                   calls of 100, then drained)

Each PostgreSQL system gets a fresh database per run and scenario. Printed:
the median over the runs of each figure, and the ratios to currant (memory).
Queries: statements the system's clients sent in the measured window
(skip-locked: every statement of the run; graphile-worker and pg-boss:
pg Client.query calls from the workers' start, plus the light producer's),
redis commands processed (BullMQ, server side, Lua-internal calls
included), and for currant-async the transactions the database committed
between currantd's start and its stop (pg_stat_database.xact_commit,
which PostgreSQL flushes when the daemon's connection closes).
CPU: the client processes' CPU (currant-bench: producers + workers;
Node: the worker process) and, separately, the server's (every PostgreSQL
process of the cluster, exited backends included via the postmaster's
cutime/cstime; redis-server), per million jobs.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TICKS = os.sysconf("SC_CLK_TCK")


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- servers

class Postgres:
    def __init__(self, base, synchronous_commit):
        self.bin = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))[-1]
        self.dir = Path(tempfile.mkdtemp(prefix="currant-peers-pg-", dir=base))
        self.root = os.geteuid() == 0
        if self.root:
            shutil.chown(self.dir, "postgres", "postgres")
        self.run_as([self.bin / "initdb", "-D", self.dir / "data", "-A", "trust", "-U", "postgres", "-E", "UTF8",
                     "--locale=C"], quiet=True)
        opts = (f"-k {self.dir} -c listen_addresses='' -p 5432 -c max_connections=300 "
                f"-c synchronous_commit={synchronous_commit}")
        self.run_as([self.bin / "pg_ctl", "-D", self.dir / "data", "-w", "-l", self.dir / "server.log", "-o", opts,
                     "start"], quiet=True)
        self.synchronous_commit = synchronous_commit
        self.version = self.sql("postgres", "show server_version").strip()

    def run_as(self, argv, quiet=False, **kw):
        argv = [str(a) for a in argv]
        if self.root:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        return subprocess.run(argv, check=True, stdout=subprocess.DEVNULL if quiet else None, **kw)

    def conninfo(self, db):
        return f"host={self.dir} port=5432 user=postgres dbname={db}"

    def url(self, db):
        return f"postgresql://postgres@/{db}?host={self.dir}&port=5432"

    def sql(self, db, query):
        return subprocess.run([str(self.bin / "psql"), "-XAtq", self.conninfo(db), "-c", query], check=True,
                              capture_output=True, text=True).stdout

    def create_database(self, name):
        self.sql("postgres", f"DROP DATABASE IF EXISTS {name}")
        self.sql("postgres", f"CREATE DATABASE {name}")

    def postmaster_pid(self):
        return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])

    def cpu_seconds(self):
        pm = self.postmaster_pid()
        total = proc_cpu(pm, children_reaped=True)
        for pid in children_of(pm):
            total += proc_cpu(pid)
        return total

    def stop(self):
        try:
            self.run_as([self.bin / "pg_ctl", "-D", self.dir / "data", "-m", "fast", "stop"], quiet=True)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="currant-peers-redis-"))
        self.socket = self.dir / "redis.sock"
        self.proc = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(self.socket),
                                      "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                                      "--dir", str(self.dir)], stdout=subprocess.DEVNULL)
        for _ in range(200):
            if self.socket.exists():
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("redis-server did not start")
        self.version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]

    def cpu_seconds(self):
        return proc_cpu(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def proc_cpu(pid, children_reaped=False):
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children_reaped:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / TICKS


def children_of(parent):
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    out.append(int(d.name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    return out


# ---------------------------------------------------------------- systems

def last_json(text):
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError("no JSON in output:\n" + text[-2000:])


def run_json(argv, timeout, env=None):
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed ({p.returncode}):\n{p.stderr[-3000:]}{p.stdout[-1000:]}")
    return last_json(p.stdout)


class Bench:
    def __init__(self, args, pg, redis):
        self.args, self.pg, self.redis = args, pg, redis
        self.build = Path(args.build)
        self.counter = 0
        self.databases = []

    def scenario_args(self, scenario, skip_locked=False):
        a = self.args
        if scenario == "backlog":
            return ["--workers", a.workers, "--jobs", a.jobs, "--warmup-percent", a.warmup_percent]
        return ["--workers", a.workers, "--rate", a.rate, "--duration", a.duration, "--warmup-percent",
                a.warmup_percent]

    def database(self, system, scenario):
        self.counter += 1
        name = f"peers_{system.replace('-', '_')}_{scenario}_{self.counter}"
        self.pg.create_database(name)
        self.databases.append(name)
        return name

    def settle(self):
        """Drops the last run's databases (so that autovacuum does not clean
        them up during the next system's run) and checkpoints."""
        for name in self.databases:
            self.pg.sql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.databases = []
        self.pg.sql("postgres", "CHECKPOINT")

    def run(self, system, scenario):
        timeout = self.args.timeout
        self.settle()
        server_before = self.pg.cpu_seconds() + self.redis.cpu_seconds()
        extra = {}
        if system == "currant":
            r = run_json([self.build / "bench/load/currant-bench", *self.scenario_args(scenario), "--json"], timeout)
            result = r["results"][0]
            result["queries"], result["query_unit"] = 0, "none (memory)"
        elif system == "currant-async":
            result = self.run_currant_async(scenario, timeout)
        elif system == "skip-locked":
            db = self.database(system, scenario)
            argv = [self.build / "bench/peers/currant-bench-skip-locked", "--db", self.pg.conninfo(db),
                    *self.scenario_args(scenario), "--json"]
            if scenario == "backlog":
                argv += ["--prefill", "--enqueue-batch", "100"]
            result = run_json(argv, timeout)["results"][0]
            result["queries"], result["query_unit"] = result["pg_statements"], "PostgreSQL statements"
        else:
            script, _, variant = system.partition("-batched")
            script = {"graphile-worker": "graphile_worker", "pg-boss": "pg_boss", "bullmq": "bullmq"}[script]
            argv = ["node", ROOT / "bench/peers/node" / f"{script}.mjs", *self.scenario_args(scenario), "--json"]
            if system.endswith("-batched"):
                argv += ["--variant", "batched"]
            if script == "bullmq":
                argv += ["--redis", self.redis.socket]
                subprocess.run(["redis-cli", "-s", str(self.redis.socket), "FLUSHALL"], check=True,
                               capture_output=True)
            else:
                argv += ["--db", self.pg.url(self.database(system, scenario))]
            env = dict(os.environ, CURRANT_PEERS_DIR=str(Path(self.args.peers).resolve()))
            r = run_json(argv, timeout, env)
            result = r["results"][0]
            extra["version"] = r["version"]
        result.update(extra)
        jobs = result.get("jobs") or 0
        server = self.pg.cpu_seconds() + self.redis.cpu_seconds() - server_before
        result["server_cpu_seconds_per_million"] = server * 1e6 / jobs if jobs else 0
        result["queries_per_job"] = result["queries"] / jobs if jobs else 0
        return result

    def run_currant_async(self, scenario, timeout):
        db = self.database("currant-async", scenario)
        tools = self.build / "tools/currant"
        subprocess.run([tools, "db", "install", "--db", self.pg.conninfo(db)], check=True, capture_output=True)
        self.pg.sql("postgres", "CHECKPOINT")
        queue = f"currant-peers-{os.getpid()}-{self.counter}"
        subprocess.run([tools, "rm", queue], capture_output=True)
        before = int(self.pg.sql(db, f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'"))
        daemon_log = open(Path(self.pg.dir) / f"currantd-{self.counter}.log", "w")
        daemon = subprocess.Popen([self.build / "daemon/currantd", "--queue", queue, "--db", self.pg.conninfo(db),
                                   "--host-id", "1", "--payload-bytes", "64"], stdout=daemon_log,
                                  stderr=subprocess.STDOUT)
        try:
            for _ in range(300):
                if subprocess.run([tools, "info", queue], capture_output=True).returncode == 0:
                    break
                if daemon.poll() is not None:
                    raise RuntimeError("currantd exited; see its log in " + daemon_log.name)
                time.sleep(0.05)
            time.sleep(0.5)  # attached and waiting for the feed
            # --db: currant-bench also measures the bare COPY floor of this cluster after its run.
            r = run_json([self.build / "bench/load/currant-bench", *self.scenario_args(scenario), "--queue", queue,
                          "--durability", "async", "--db", self.pg.conninfo(db), "--json"], timeout)
            result = r["results"][0]
            copy = r.get("floors", {}).get("copy")
            if copy:
                result["copy_floor_rows_per_s"] = copy["rows_per_sec"]
                result["throughput_to_copy_floor"] = result["jobs_per_second"] / copy["rows_per_sec"]
            # Let the mirror catch up, then stop the daemon (it flushes what is pending).
            time.sleep(1.0)
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            daemon_log.close()
            subprocess.run([tools, "rm", queue], capture_output=True)
        time.sleep(0.2)
        after = int(self.pg.sql(db, f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'"))
        # The two reading sessions commit one transaction each... minus the one of the first read.
        result["queries"] = after - before - 1
        result["query_unit"] = "PostgreSQL transactions committed (daemon start to stop)"
        mirrored = self.pg.sql(db, "SELECT count(*) FROM currant_log WHERE status = 'successful'").strip()
        result["mirrored_successful_rows"] = int(mirrored)
        return result


# ---------------------------------------------------------------- report

KEYS = ["jobs_per_second", "to_start_p50_us", "to_start_p95_us", "to_start_p99_us", "to_start_max_us",
        "queries", "queries_per_job", "cpu_seconds_per_million", "server_cpu_seconds_per_million", "jobs"]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else 0


def fmt(v, digits=0):
    if v >= 100 or digits == 0:
        return f"{v:,.0f}"
    if 0 < v < 1:
        return f"{v:.2g}"
    return f"{v:,.{digits}f}"


def table(results, scenario, systems, runs):
    rows = []
    base = {k: median([r[k] for r in results[("currant", scenario)]]) for k in KEYS} \
        if ("currant", scenario) in results else None
    if scenario == "backlog":
        head = ["system", "jobs/s", "currant ÷ this", "start p50 µs", "p95 µs", "p99 µs", "max µs", "p50: this ÷ currant",
                "p99: this ÷ currant", "queries", "per job", "client CPU s/M", "server CPU s/M"]
    else:
        head = ["system", "start p50 µs", "p95 µs", "p99 µs", "max µs", "p50: this ÷ currant",
                "p99: this ÷ currant", "queries", "per job", "client CPU s/M", "server CPU s/M"]
    for system in systems:
        rs = results.get((system, scenario))
        if not rs:
            continue
        m = {k: median([r.get(k, 0) for r in rs]) for k in KEYS}
        tput = [fmt(m["jobs_per_second"]),
                fmt(base["jobs_per_second"] / m["jobs_per_second"], 1) if base and m["jobs_per_second"] else "-"]
        lat = [fmt(m["to_start_p50_us"], 1), fmt(m["to_start_p95_us"], 1), fmt(m["to_start_p99_us"], 1),
               fmt(m["to_start_max_us"], 1),
               fmt(m["to_start_p50_us"] / base["to_start_p50_us"], 1) if base and base["to_start_p50_us"] else "-",
               fmt(m["to_start_p99_us"] / base["to_start_p99_us"], 1) if base and base["to_start_p99_us"] else "-"]
        rest = [fmt(m["queries"]), f"{m['queries_per_job']:.3f}", fmt(m["cpu_seconds_per_million"], 1),
                fmt(m["server_cpu_seconds_per_million"], 1)]
        name = system + (f" {rs[0]['version']}" if rs[0].get("version") else "")
        rows.append([name] + (tput if scenario == "backlog" else []) + lat + rest)
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def print_tables(started, machine, a, results, systems, scenarios):
    print(f"Measured {started} UTC on {machine}; {a['runs']} runs, median.")
    for scenario in scenarios:
        if scenario == "backlog":
            print(f"\nBacklog: --workers {a['workers']} --jobs {a['jobs']} --warmup-percent {a['warmup_percent']:g}\n")
        else:
            print(f"\nLight load: --workers {a['workers']} --rate {a['rate']:g} --duration {a['duration']} "
                  f"--warmup-percent {a['warmup_percent']:g}\n")
        print(table(results, scenario, systems, a["runs"]))
        floor_runs = results.get(("currant-async", scenario), [])
        ratios = [r["throughput_to_copy_floor"] for r in floor_runs if "throughput_to_copy_floor" in r]
        if ratios and scenario == "backlog":
            copies = [r["copy_floor_rows_per_s"] for r in floor_runs if "copy_floor_rows_per_s" in r]
            print(f"\nBare COPY floor of the same cluster, measured right after each currant-async run "
                  f"(currant_log-shaped rows, 20,000 per transaction): median {median(copies):,.0f} rows/s; "
                  f"currant-async jobs/s ÷ COPY rows/s: median {median(ratios):.2f} (target >= 0.5).")


def report_only(path):
    data = json.loads(path.read_text())
    a = data["args"]
    results = {}
    for r in data["runs"]:
        if "result" in r:
            results.setdefault((r["system"], r["scenario"]), []).append(r["result"])
        else:
            print(f"(run {r['run']} {r['scenario']} {r['system']} failed: {r['error'].splitlines()[0]})")
    started = datetime.fromisoformat(data["started"]).strftime("%Y-%m-%d %H:%M")
    print_tables(started, data["machine"], a, results, a["systems"].split(","), a["scenarios"].split(","))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(ROOT / "build-peers-cxx"), help="meson build dir with currant-bench, "
                    "currant-bench-skip-locked, currantd and currant")
    ap.add_argument("--peers", default=str(ROOT / "build-peers"), help="directory holding node_modules of the peers")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--warmup-percent", type=float, default=10)
    ap.add_argument("--rate", type=float, default=50)
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--scenarios", default="backlog,light")
    ap.add_argument("--systems", default="currant,currant-async,skip-locked,graphile-worker,graphile-worker-batched,"
                    "pg-boss,pg-boss-batched,bullmq")
    ap.add_argument("--synchronous-commit", default="on", choices=["on", "off"])
    ap.add_argument("--pg-base", default="/var/tmp", help="directory for the throwaway cluster (on disk)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds one system's run may take")
    ap.add_argument("--out", default=str(ROOT / "build-peers" / "compare-results.json"))
    ap.add_argument("--report", metavar="JSON", help="print the tables of an earlier run's --out file; run nothing")
    args = ap.parse_args()
    systems = args.systems.split(",")
    scenarios = args.scenarios.split(",")
    if args.report:
        return report_only(Path(args.report))

    pg = Postgres(args.pg_base, args.synchronous_commit)
    redis = Redis()
    results, raw = {}, []
    started = datetime.now(timezone.utc)
    try:
        bench = Bench(args, pg, redis)
        for run in range(1, args.runs + 1):
            for scenario in scenarios:
                for system in systems:
                    log(f"run {run}/{args.runs} {scenario} {system} ...")
                    t = time.time()
                    try:
                        r = bench.run(system, scenario)
                    except Exception as e:  # report and go on with the others
                        log(f"  FAILED: {e}")
                        raw.append({"run": run, "scenario": scenario, "system": system, "error": str(e)})
                        continue
                    results.setdefault((system, scenario), []).append(r)
                    raw.append({"run": run, "scenario": scenario, "system": system, "result": r})
                    log(f"  {time.time() - t:.1f} s: {r['jobs_per_second']:,.0f} jobs/s, start p50 "
                        f"{r['to_start_p50_us']:,.1f} us, p99 {r['to_start_p99_us']:,.1f} us, "
                        f"{r['queries_per_job']:.2f} queries/job")
    finally:
        redis.stop()
        pg.stop()
    uname = os.uname()
    machine = (f"{uname.nodename} ({os.cpu_count()} CPUs, Linux {uname.release}), PostgreSQL {pg.version} "
               f"(synchronous_commit={pg.synchronous_commit}, fsync on), redis {redis.version}, "
               f"node {subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()}")
    print_tables(f"{started:%Y-%m-%d %H:%M}", machine, vars(args), results, systems, scenarios)
    print(f"Load average at the end: {os.getloadavg()[0]:.1f} (1 min)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"started": started.isoformat(), "machine": machine, "args": vars(args),
                                          "runs": raw}, indent=1))
    print(f"\n(all runs: {args.out})")
    return 1 if any("error" in r for r in raw) else 0


if __name__ == "__main__":
    sys.exit(main())
