// currantd against a real PostgreSQL with default durability, in one run on
// one machine (issue 5's targets):
//
//   copy        the floor: bare COPY of rows shaped like a currant_log row
//               (and like a currant_jobs row with a 64-byte payload) into
//               tables made LIKE those (same columns, defaults, indexes), one
//               transaction per --copy-batch rows; rows/s.
//   throughput  real currantd on a queue with an async entrypoint; producer
//               and consumer processes run enqueue_batch + dequeue + ack of
//               64-byte payloads as fast as they can; jobs mirrored per
//               second = currant_log rows with status 'successful' committed
//               during the window; the ratio to the copy floor.
//   lag         one producer paced at --lag-rate jobs/s, one consumer;
//               Queue::stats() mirror_lag_ns sampled every --lag-sample-ms.
//   sync        a Durability::sync entrypoint; --sync-threads producer
//               threads (each its own currant::Queue) across --sync-processes
//               processes, each enqueueing one job per call in a loop;
//               latency of every enqueue call.
//   idle        --idle-consumers consumer processes blocked in dequeue, no
//               jobs, daemon attached: the daemon's statements
//               (pg_stat_statements, per statement) and transactions
//               (pg_stat_database.xact_commit) and its CPU time.
//
// Each phase gets its own database and queue and its own currantd. The
// cluster is a fresh initdb with the server's default durability (fsync,
// synchronous_commit, full_page_writes on). Prints a table per run and a
// summary (median, min to max) over --runs; --json prints JSON instead.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <time.h>
#include <unistd.h>
#include <vector>

#include "postgres.hpp" // tests/support: the throwaway cluster
#include "process_cpu.hpp"
#include "copy_floor.hpp"
#include "currant/queue.hpp"
#include "pg.hpp"
#include "schema.hpp"

using namespace currant;
using namespace std::chrono_literals;

namespace {

struct Options {
    std::string currantd;
    std::string base = "/var/tmp";
    std::string phases = "copy,throughput,lag,sync,idle";
    int runs = 1;
    bool json = false, profile = false, keep = false, no_pg_stat_statements = false;
    std::vector<std::string> daemon_args;
    // copy
    std::size_t copy_rows = 200'000, copy_batch = 65'536;
    // throughput
    double seconds = 6, warmup = 2;
    int producers = 1, consumers = 1;
    std::uint32_t batch = 64, payload = 64, slots = 65536, log_capacity = 65536;
    // lag
    double lag_rate = 100'000, lag_seconds = 4, lag_sample_ms = 5;
    // sync
    int sync_threads = 1000, sync_processes = 4;
    double sync_seconds = 4, sync_warmup = 1;
    // idle
    int idle_consumers = 100;
    double idle_seconds = 10, idle_settle = 1;
};

// ---------------------------------------------------------------- helpers

std::int64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
double seconds_since(std::int64_t start) { return double(now_ns() - start) / 1e9; }
void sleep_for_seconds(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

double percentile(std::vector<double> values, double p) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    std::size_t index = std::size_t(std::ceil(p * double(values.size())));
    index = std::clamp<std::size_t>(index, 1, values.size()) - 1;
    return values[index];
}

// Busy and total jiffies of the whole machine (/proc/stat), to show how
// much of the CPU others (builds) took during a window.
struct MachineCpu {
    double busy = 0, total = 0;
};
MachineCpu machine_cpu() {
    std::ifstream in("/proc/stat");
    std::string cpu;
    in >> cpu;
    double values[10] = {};
    MachineCpu m;
    for (double& v : values) {
        in >> v;
        m.total += v;
    }
    m.busy = m.total - values[3] - values[4]; // minus idle, iowait
    const double hz = double(sysconf(_SC_CLK_TCK));
    m.busy /= hz;
    m.total /= hz;
    return m;
}

template <typename T>
T* map_shared(std::size_t count = 1) {
    void* memory = mmap(nullptr, sizeof(T) * count, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) throw std::runtime_error("mmap failed");
    return static_cast<T*>(memory);
}

// Waiting for the start signal in the kernel (shared futex): a thousand
// threads polling with sleeps would take the CPUs the measurement needs.
void wait_for_go(std::atomic<int>& go) {
    while (go.load() == 0)
        syscall(SYS_futex, reinterpret_cast<int*>(&go), FUTEX_WAIT, 0, nullptr, nullptr, 0);
}
void start(std::atomic<int>& go) {
    go.store(1);
    syscall(SYS_futex, reinterpret_cast<int*>(&go), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

// Shared between the bench and its forked workers.
struct Control {
    std::atomic<int> ready{0};
    std::atomic<int> go{0};
    std::atomic<int> stop{0};
    std::atomic<int> producers_left{0};
    std::atomic<std::uint64_t> enqueued{0};
    std::atomic<std::uint64_t> acked{0};
    std::atomic<std::uint64_t> errors{0};
    std::atomic<std::uint64_t> samples{0}; // sync latencies written
    std::atomic<std::int64_t> measure_from_ns{0};
    char last_error[256] = {};
};

void note_error(Control* control, const std::exception& error) {
    if (control->errors.fetch_add(1) == 0) {
        std::snprintf(control->last_error, sizeof control->last_error, "%s", error.what());
    }
}

// A worker process: runs body, never returns into the bench's code (its
// PostgreSQL connections and Queue objects belong to the parent).
template <typename Body>
pid_t spawn(Body body) {
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); // never outlive the bench
        if (getppid() == 1) _exit(1);
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_UNBLOCK, &all, nullptr);
        int code = 0;
        try {
            body();
        } catch (const std::exception& error) {
            std::fprintf(stderr, "worker %d: %s\n", getpid(), error.what());
            code = 1;
        }
        std::fflush(nullptr);
        _exit(code);
    }
    return pid;
}

int wait_all(std::vector<pid_t>& pids) {
    int failures = 0;
    for (pid_t pid : pids) {
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failures;
    }
    pids.clear();
    return failures;
}

void wait_until(const std::function<bool()>& condition, double timeout_s, const std::string& what) {
    const std::int64_t start = now_ns();
    while (!condition()) {
        if (seconds_since(start) > timeout_s) throw std::runtime_error("timed out waiting for " + what);
        std::this_thread::sleep_for(5ms);
    }
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

std::vector<std::byte> make_payload(std::uint32_t size) {
    std::vector<std::byte> payload(size);
    for (std::uint32_t i = 0; i < size; ++i) payload[i] = std::byte(i * 37 + 11);
    return payload;
}

// What an interrupted bench (SIGINT, SIGTERM) cleans up from its signal
// thread: queue segments it created and the cluster. Workers and currantd
// die with the bench (PR_SET_PDEATHSIG).
std::mutex cleanup_mutex;
std::vector<std::string> live_queues;
testing::ScratchPostgres* live_cluster = nullptr;

void forget_queue(const std::string& name) {
    std::lock_guard lock(cleanup_mutex);
    live_queues.erase(std::remove(live_queues.begin(), live_queues.end(), name), live_queues.end());
    Queue::remove(name);
}

// ---------------------------------------------------------------- currantd

class Daemon {
public:
    Daemon(const Options& options, const std::string& queue, const std::string& conninfo, const std::string& log)
        : log_(log) {
        std::vector<std::string> argv = {options.currantd, "--queue", queue, "--db", conninfo};
        argv.insert(argv.end(), options.daemon_args.begin(), options.daemon_args.end());
        std::fflush(nullptr);
        pid_ = fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
            std::vector<char*> raw;
            for (auto& a : argv) raw.push_back(a.data());
            raw.push_back(nullptr);
            execv(raw[0], raw.data());
            _exit(127);
        }
        wait_until([&] { return log_text().find("mirroring queue") != std::string::npos || exited(); }, 30,
                   "currantd to attach (log " + log_ + ")");
        if (pid_ < 0) throw std::runtime_error("currantd exited at start; its log:\n" + log_text());
    }
    ~Daemon() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    pid_t pid() const { return pid_; }
    std::string log_text() const { return read_file(log_); }
    // SIGTERM (the daemon flushes), wait; returns the exit status.
    int stop() {
        ::kill(pid_, SIGTERM);
        int status = 0;
        while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }

private:
    bool exited() {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return true;
        }
        return false;
    }
    pid_t pid_ = -1;
    std::string log_;
};

// ---------------------------------------------------------------- figures

struct Figure {
    std::string key, label, unit;
    double value = 0;
};

class RunFigures {
public:
    void add(const std::string& key, const std::string& label, double value, const std::string& unit) {
        figures_.push_back({key, label, unit, value});
    }
    const std::vector<Figure>& all() const { return figures_; }
    std::optional<double> get(const std::string& key) const {
        for (const Figure& f : figures_)
            if (f.key == key) return f.value;
        return std::nullopt;
    }
    std::vector<std::string> notes;

private:
    std::vector<Figure> figures_;
};

// pg_stat_statements rows of one database, by queryid.
struct StatementStats {
    std::string query;
    double calls = 0, total_ms = 0, rows = 0;
};
using StatementSnapshot = std::map<std::string, StatementStats>;

// ---------------------------------------------------------------- the bench

class Bench {
public:
    Bench(const Options& options, testing::ScratchPostgres& cluster)
        : o_(options), cluster_(cluster), admin_(cluster.conninfo()) {
        if (cluster_.has_pg_stat_statements()) admin_.exec("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    }

    std::vector<std::string> settings() {
        std::vector<std::string> out;
        const pg::Result r = admin_.exec(
            "SELECT name || '=' || setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', "
            "'full_page_writes', 'wal_sync_method', 'shared_buffers', 'max_wal_size', 'checkpoint_timeout', "
            "'server_version') ORDER BY name");
        for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.text(i, 0));
        return out;
    }

    void run(int index, RunFigures& figures) {
        run_ = index;
        auto wants = [&](const char* phase) { return ("," + o_.phases + ",").find(std::string(",") + phase + ",") != std::string::npos; };
        if (wants("copy")) copy_phase(figures);
        if (wants("throughput")) throughput_phase(figures);
        if (wants("lag")) lag_phase(figures);
        if (wants("sync")) sync_phase(figures);
        if (wants("idle")) idle_phase(figures);
        if (figures.get("copy_log_rows_per_s") && figures.get("mirrored_jobs_per_s"))
            figures.add("mirror_to_copy_ratio", "jobs mirrored / bare COPY rows (target >= 0.5)",
                        *figures.get("mirrored_jobs_per_s") / *figures.get("copy_log_rows_per_s"), "x");
    }

private:
    // A fresh database with the schema; returns its connection string.
    std::string make_database(const std::string& phase) {
        const std::string name = "bench_" + phase + "_" + std::to_string(run_);
        admin_.exec("DROP DATABASE IF EXISTS " + name);
        admin_.exec("CREATE DATABASE " + name);
        const std::string conninfo = cluster_.conninfo(name);
        pg::Connection connection(conninfo);
        schema::install(connection);
        database_ = name;
        return conninfo;
    }
    void drop_database() {
        if (o_.keep || database_.empty()) return;
        admin_.exec("DROP DATABASE IF EXISTS " + database_ + " WITH (FORCE)");
        database_.clear();
    }
    std::string queue_name(const std::string& phase) const {
        return "currant-bench-" + std::to_string(getpid()) + "-" + phase + "-" + std::to_string(run_);
    }
    Queue create_queue(const std::string& name, std::uint32_t max_participants) {
        Queue::remove(name);
        {
            std::lock_guard lock(cleanup_mutex);
            live_queues.push_back(name);
        }
        QueueOptions q;
        q.name = name;
        q.slots = o_.slots;
        q.payload_bytes = std::max<std::uint32_t>(o_.payload, 64);
        q.log_capacity = o_.log_capacity;
        q.max_participants = max_participants;
        q.host_id = 1;
        return Queue::create(q);
    }
    std::string daemon_log(const std::string& phase) const {
        return cluster_.directory() + "/currantd-" + phase + "-" + std::to_string(run_) + ".log";
    }

    StatementSnapshot statements() {
        StatementSnapshot out;
        if (!cluster_.has_pg_stat_statements()) return out;
        const pg::Result r = admin_.exec(
            "SELECT queryid::text, calls, total_exec_time, rows, query FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1",
            {database_});
        for (int i = 0; i < r.rows(); ++i) {
            StatementStats& s = out[std::string(r.text(i, 0))];
            s.calls += double(r.integer(i, 1));
            s.total_ms += std::stod(std::string(r.text(i, 2)));
            s.rows += double(r.integer(i, 3));
            s.query = std::string(r.text(i, 4));
        }
        return out;
    }
    static std::vector<std::pair<std::string, StatementStats>> diff(const StatementSnapshot& before,
                                                                     const StatementSnapshot& after) {
        std::vector<std::pair<std::string, StatementStats>> out;
        for (const auto& [id, a] : after) {
            StatementStats d = a;
            if (auto it = before.find(id); it != before.end()) {
                d.calls -= it->second.calls;
                d.total_ms -= it->second.total_ms;
                d.rows -= it->second.rows;
            }
            if (d.calls > 0) out.emplace_back(id, d);
        }
        std::sort(out.begin(), out.end(), [](auto& x, auto& y) { return x.second.total_ms > y.second.total_ms; });
        return out;
    }
    double xact_commit() {
        return double(admin_.exec("SELECT xact_commit FROM pg_stat_database WHERE datname = $1", {database_})
                          .integer(0, 0));
    }
    double wal_lsn_bytes() {
        return std::stod(std::string(admin_.exec("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").text(0, 0)));
    }
    // Backends connected to the phase's database, except the bench's own.
    std::vector<pid_t> database_backends(int own_backend) {
        std::vector<pid_t> pids;
        const pg::Result r =
            admin_.exec("SELECT pid FROM pg_stat_activity WHERE datname = $1", {database_});
        for (int i = 0; i < r.rows(); ++i)
            if (int(r.integer(i, 0)) != own_backend) pids.push_back(pid_t(r.integer(i, 0)));
        return pids;
    }

    // CPU seconds of the components during a window.
    struct CpuSnapshot {
        double daemon = 0, daemon_backends = 0, postgres_all = 0, workers = 0, bench = 0;
        MachineCpu machine;
        std::int64_t at = 0;
    };
    CpuSnapshot cpu(pid_t daemon, const std::vector<pid_t>& backends, const std::vector<pid_t>& workers) {
        CpuSnapshot s;
        s.daemon = std::max(0.0, bench::process_cpu_seconds(daemon));
        for (pid_t p : backends) s.daemon_backends += std::max(0.0, bench::process_cpu_seconds(p));
        for (pid_t p : bench::child_processes(cluster_.postmaster_pid()))
            s.postgres_all += std::max(0.0, bench::process_cpu_seconds(p));
        s.postgres_all += std::max(0.0, bench::process_cpu_seconds(cluster_.postmaster_pid()));
        for (pid_t p : workers) s.workers += std::max(0.0, bench::process_cpu_seconds(p));
        s.bench = std::max(0.0, bench::process_cpu_seconds(getpid()));
        s.machine = machine_cpu();
        s.at = now_ns();
        return s;
    }
    void add_cpu(RunFigures& figures, const std::string& phase, const CpuSnapshot& a, const CpuSnapshot& b) {
        const double window = double(b.at - a.at) / 1e9;
        const double machine = (b.machine.busy - a.machine.busy) / window;
        const double daemon = (b.daemon - a.daemon) / window, backends = (b.daemon_backends - a.daemon_backends) / window,
                     postgres = (b.postgres_all - a.postgres_all) / window, workers = (b.workers - a.workers) / window,
                     bench_self = (b.bench - a.bench) / window;
        figures.add(phase + "_cpu_daemon", phase + ": CPU of currantd", daemon, "cores");
        figures.add(phase + "_cpu_daemon_backends", phase + ": CPU of currantd's PostgreSQL backends", backends, "cores");
        figures.add(phase + "_cpu_postgres_other", phase + ": CPU of other PostgreSQL processes (walwriter, checkpointer, ...)",
                    postgres - backends, "cores");
        figures.add(phase + "_cpu_workers", phase + ": CPU of producer and consumer processes", workers, "cores");
        figures.add(phase + "_cpu_others", phase + ": CPU used by everything else on the machine",
                    std::max(0.0, machine - daemon - postgres - workers - bench_self), "cores");
    }
    void profile(RunFigures& figures, const std::string& phase, const StatementSnapshot& before,
                 const StatementSnapshot& after, double window) {
        const auto rows = diff(before, after);
        double total = 0, calls = 0;
        for (const auto& [id, s] : rows) {
            total += s.total_ms;
            calls += s.calls;
        }
        if (phase == "throughput") {
            double copied = 0, dirty = 0;
            for (const auto& [id, st] : rows) {
                if (st.query.rfind("COPY currant_log ", 0) == 0) copied += st.rows;
                if (st.query.rfind("COPY currant_dirty_stage ", 0) == 0) dirty += st.rows;
            }
            if (copied + dirty > 0)
                figures.add("throughput_dirty_share", "throughput: log rows written via the dirty path (log was full)",
                            dirty / (copied + dirty), "");
            statement_ms_ = total;
        }
        figures.add(phase + "_statements", phase + ": statements executed in the window", calls, "");
        figures.add(phase + "_statement_time", phase + ": statement execution time (pg_stat_statements)",
                    total / 1000.0 / window, "s per s");
        if (!o_.profile) return;
        int shown = 0;
        for (const auto& [id, s] : rows) {
            if (++shown > 10) break;
            std::string query = s.query.substr(0, 110);
            std::replace(query.begin(), query.end(), '\n', ' ');
            char line[512];
            std::snprintf(line, sizeof line, "%s profile: %7.0f calls %9.1f ms total %8.3f ms/call %10.0f rows | %s",
                          phase.c_str(), s.calls, s.total_ms, s.total_ms / s.calls, s.rows, query.c_str());
            figures.notes.emplace_back(line);
        }
    }

    // ------------------------------------------------------------ copy

    void copy_phase(RunFigures& figures) {
        const std::string conninfo = make_database("copy");
        pg::Connection db(conninfo);
        db.exec("CREATE TABLE bench_log (LIKE currant_log INCLUDING ALL)");
        db.exec("CREATE TABLE bench_jobs (LIKE currant_jobs INCLUDING ALL)");
        const bench::CopyFloor log =
            bench::run_copy_floor(db, "bench_log", bench::CopyShape::log_row, o_.copy_rows, o_.copy_batch, o_.payload);
        const bench::CopyFloor jobs =
            bench::run_copy_floor(db, "bench_jobs", bench::CopyShape::jobs_row, o_.copy_rows, o_.copy_batch, o_.payload);
        figures.add("copy_log_rows_per_s", "bare COPY, currant_log-shaped rows", log.rows_per_second(),
                    "rows/s");
        figures.add("copy_log_us_per_row", "bare COPY (log rows): time per row", log.seconds() * 1e6 / double(log.rows),
                    "us");
        figures.add("copy_log_commit_share", "bare COPY (log rows): share of time in COMMIT",
                    log.commit_seconds / log.seconds(), "");
        figures.add("copy_jobs_rows_per_s", "bare COPY, currant_jobs-shaped rows (64 B payload)",
                    jobs.rows_per_second(), "rows/s");
        drop_database();
    }

    // ------------------------------------------------------------ throughput

    void throughput_phase(RunFigures& figures) {
        const std::string conninfo = make_database("throughput");
        const std::string name = queue_name("throughput");
        Queue queue = create_queue(name, 64);
        EntrypointOptions async;
        async.durability = Durability::async;
        const EntrypointId ep = queue.declare_entrypoint("bench", async);
        Daemon daemon(o_, name, conninfo, daemon_log("throughput"));
        pg::Connection db(conninfo);
        const int own_backend = db.server_pid();

        Control* control = map_shared<Control>();
        new (control) Control();
        control->producers_left = o_.producers;
        std::vector<pid_t> workers;
        const std::uint32_t batch = o_.batch;
        for (int p = 0; p < o_.producers; ++p)
            workers.push_back(spawn([&] {
                Queue q = Queue::open(name);
                const EntrypointId e = q.entrypoint("bench");
                const std::vector<std::byte> payload = make_payload(o_.payload);
                std::vector<std::span<const std::byte>> payloads(batch, std::span<const std::byte>(payload));
                std::vector<JobId> ids(batch);
                EnqueueOptions options;
                options.arena_wait = 200ms;
                options.log_wait = 200ms;
                control->ready++;
                wait_for_go(control->go);
                while (!control->stop.load(std::memory_order_relaxed)) {
                    try {
                        control->enqueued += q.enqueue_batch(e, payloads, ids, options);
                    } catch (const Error& error) {
                        if (error.code() != Errc::arena_full && error.code() != Errc::log_full) throw;
                    }
                }
                control->producers_left--;
            }));
        for (int c = 0; c < o_.consumers; ++c)
            workers.push_back(spawn([&] { consume(name, control, batch); }));
        wait_until([&] { return control->ready == o_.producers + o_.consumers; }, 30, "workers");
        start(control->go);
        sleep_for_seconds(o_.warmup);

        const std::vector<pid_t> backends = database_backends(own_backend);
        // The bench's own statements in this database stay outside the
        // pg_stat_statements window: max(id) before it, count(*) after it.
        const std::int64_t start_id =
            db.exec("SELECT COALESCE(max(id), 0) FROM currant_log").integer(0, 0);
        const CpuSnapshot cpu0 = cpu(daemon.pid(), backends, workers);
        const StatementSnapshot st0 = statements();
        const double xact0 = xact_commit(), wal0 = wal_lsn_bytes();
        const std::uint64_t feed0 = queue.feed_committed(ep);
        const std::uint64_t acked0 = control->acked;
        const std::int64_t t0 = now_ns();
        std::uint64_t max_dirty = 0, max_pending = 0;
        double max_lag_ms = 0;
        while (seconds_since(t0) < o_.seconds) {
            std::this_thread::sleep_for(100ms);
            for (const EntrypointStats& s : queue.stats()) {
                if (s.id != ep) continue;
                max_dirty = std::max<std::uint64_t>(max_dirty, s.dirty_slots);
                max_pending = std::max(max_pending, s.log_pending);
                max_lag_ms = std::max(max_lag_ms, double(s.mirror_lag_ns) / 1e6);
            }
        }
        const std::uint64_t feed1 = queue.feed_committed(ep);
        const std::uint64_t acked1 = control->acked;
        const CpuSnapshot cpu1 = cpu(daemon.pid(), backends, workers);
        const StatementSnapshot st1 = statements();
        const double xact1 = xact_commit(), wal1 = wal_lsn_bytes();
        // The window ends at t1; the count's snapshot is taken right after it.
        const std::int64_t t1 = now_ns();
        const std::int64_t mirrored =
            db.exec("SELECT count(*) FROM currant_log WHERE id > $1 AND status = 'successful'",
                    {std::to_string(start_id)})
                .integer(0, 0);
        const double window = double(t1 - t0) / 1e9;

        // Stop, drain, and check that every acked job is in PostgreSQL once.
        control->stop = 1;
        if (wait_all(workers)) throw std::runtime_error("a throughput worker failed");
        wait_until([&] {
            for (const EntrypointStats& s : queue.stats())
                if (s.log_pending || s.dirty_slots) return false;
            return true;
        }, 300, "the mirror to drain");
        const std::int64_t logged =
            db.exec("SELECT count(*) FROM currant_log WHERE status = 'successful'").integer(0, 0);
        const std::int64_t distinct =
            db.exec("SELECT count(DISTINCT job_id) FROM currant_log WHERE status = 'successful'").integer(0, 0);
        const std::int64_t live = db.exec("SELECT count(*) FROM currant_jobs").integer(0, 0);
        const std::uint64_t acked_total = control->acked;
        if (logged != std::int64_t(acked_total) || distinct != logged || live != 0)
            figures.notes.push_back("throughput CHECK FAILED: acked " + std::to_string(acked_total) +
                                    ", successful rows " + std::to_string(logged) + " (" + std::to_string(distinct) +
                                    " distinct jobs), currant_jobs rows left " + std::to_string(live));
        else
            figures.notes.push_back("throughput check: all " + std::to_string(acked_total) +
                                    " acked jobs are in currant_log once as successful; currant_jobs is empty");
        daemon.stop();
        const double batches = xact1 - xact0;
        figures.add("mirrored_jobs_per_s", "async mirroring, jobs mirrored (successful rows committed)",
                    double(mirrored) / window, "jobs/s");
        figures.add("mirrored_transitions_per_s", "async mirroring, feed transitions committed",
                    double(feed1 - feed0) / window, "transitions/s");
        figures.add("acked_jobs_per_s", "jobs acked by the consumers in the window", double(acked1 - acked0) / window,
                    "jobs/s");
        figures.add("throughput_transactions_per_s", "throughput: transactions committed in the database", batches / window,
                    "tx/s");
        figures.add("throughput_jobs_per_transaction", "throughput: jobs mirrored per transaction",
                    batches > 0 ? double(mirrored) / batches : 0, "jobs");
        figures.add("throughput_wal_bytes_per_job", "throughput: WAL bytes per job mirrored",
                    mirrored > 0 ? (wal1 - wal0) / double(mirrored) : 0, "B");
        figures.add("throughput_max_dirty", "throughput: most dirty slots seen (log full)", double(max_dirty), "");
        figures.add("throughput_max_log_pending", "throughput: most transitions pending seen", double(max_pending), "");
        figures.add("throughput_max_lag_ms", "throughput: largest mirror lag seen", max_lag_ms, "ms");
        add_cpu(figures, "throughput", cpu0, cpu1);
        statement_ms_ = 0;
        profile(figures, "throughput", st0, st1, window);
        if (statement_ms_ > 0 && mirrored > 0)
            figures.add("throughput_statement_us_per_job", "throughput: daemon statement time per job mirrored",
                        statement_ms_ * 1000 / double(mirrored), "us");
        munmap(control, sizeof(Control));
        queue.close();
        forget_queue(name);
        drop_database();
    }

    // Dequeue + ack in batches until stopped and the producers are gone.
    static void consume(const std::string& name, Control* control, std::uint32_t batch) {
        Queue q = Queue::open(name);
        std::vector<EntrypointId> eps;
        for (const std::string& n : q.entrypoint_names()) eps.push_back(q.entrypoint(n));
        std::vector<Job> jobs(batch);
        std::vector<JobHandle> handles(batch);
        control->ready++;
        wait_for_go(control->go);
        for (;;) {
            const std::size_t n = q.dequeue(eps, jobs, 100ms);
            if (n == 0) {
                if (control->stop && control->producers_left == 0) break;
                continue;
            }
            for (std::size_t i = 0; i < n; ++i) handles[i] = jobs[i].handle;
            control->acked += q.ack(std::span(handles).first(n));
        }
    }

    // ------------------------------------------------------------ lag

    void lag_phase(RunFigures& figures) {
        const std::string conninfo = make_database("lag");
        const std::string name = queue_name("lag");
        Queue queue = create_queue(name, 64);
        EntrypointOptions async;
        async.durability = Durability::async;
        const EntrypointId ep = queue.declare_entrypoint("bench", async);
        Daemon daemon(o_, name, conninfo, daemon_log("lag"));
        pg::Connection db(conninfo);
        const int own_backend = db.server_pid();

        Control* control = map_shared<Control>();
        new (control) Control();
        control->producers_left = 1;
        std::vector<pid_t> workers;
        const double rate = o_.lag_rate;
        workers.push_back(spawn([&] {
            Queue q = Queue::open(name);
            const EntrypointId e = q.entrypoint("bench");
            const std::vector<std::byte> payload = make_payload(o_.payload);
            std::vector<std::span<const std::byte>> payloads(64, std::span<const std::byte>(payload));
            std::vector<JobId> ids(64);
            EnqueueOptions options;
            options.arena_wait = 200ms;
            options.log_wait = 200ms;
            control->ready++;
            wait_for_go(control->go);
            const std::int64_t start = now_ns();
            std::uint64_t sent = 0;
            timespec tick{};
            clock_gettime(CLOCK_MONOTONIC, &tick);
            while (!control->stop.load(std::memory_order_relaxed)) {
                const double due = rate * double(now_ns() - start) / 1e9;
                while (double(sent) + 1 <= due && !control->stop.load(std::memory_order_relaxed)) {
                    const std::size_t n = std::min<std::size_t>(64, std::size_t(due - double(sent)));
                    try {
                        const std::size_t done = q.enqueue_batch(e, std::span(payloads).first(n), ids, options);
                        sent += done;
                        control->enqueued += done;
                    } catch (const Error& error) {
                        if (error.code() != Errc::arena_full && error.code() != Errc::log_full) throw;
                    }
                }
                // One tick per millisecond.
                tick.tv_nsec += 1'000'000;
                if (tick.tv_nsec >= 1'000'000'000) {
                    tick.tv_nsec -= 1'000'000'000;
                    ++tick.tv_sec;
                }
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, nullptr);
            }
            control->producers_left--;
        }));
        workers.push_back(spawn([&] { consume(name, control, 64); }));
        wait_until([&] { return control->ready == 2; }, 30, "workers");
        start(control->go);
        sleep_for_seconds(std::min(o_.warmup, 1.0));

        const std::vector<pid_t> backends = database_backends(own_backend);
        const CpuSnapshot cpu0 = cpu(daemon.pid(), backends, workers);
        const std::uint64_t enqueued0 = control->enqueued, feed0 = queue.feed_committed(ep);
        std::vector<double> lags;
        const std::int64_t t0 = now_ns();
        const auto period = std::chrono::nanoseconds(std::int64_t(o_.lag_sample_ms * 1e6));
        auto next = std::chrono::steady_clock::now();
        while (seconds_since(t0) < o_.lag_seconds) {
            next += period;
            std::this_thread::sleep_until(next);
            for (const EntrypointStats& s : queue.stats())
                if (s.id == ep) lags.push_back(double(s.mirror_lag_ns) / 1e6);
        }
        const double window = seconds_since(t0);
        const std::uint64_t enqueued1 = control->enqueued, feed1 = queue.feed_committed(ep);
        const CpuSnapshot cpu1 = cpu(daemon.pid(), backends, workers);
        control->stop = 1;
        if (wait_all(workers)) throw std::runtime_error("a lag worker failed");
        daemon.stop();
        figures.add("lag_rate", "lag: enqueue rate reached", double(enqueued1 - enqueued0) / window, "jobs/s");
        figures.add("lag_mirrored_rate", "lag: transitions mirrored / 3", double(feed1 - feed0) / 3 / window, "jobs/s");
        figures.add("lag_p50_ms", "lag: mirror lag p50", percentile(lags, 0.50), "ms");
        figures.add("lag_p99_ms", "lag: mirror lag p99 (target < 100 ms)", percentile(lags, 0.99), "ms");
        figures.add("lag_max_ms", "lag: mirror lag max", percentile(lags, 1.0), "ms");
        figures.add("lag_samples", "lag: samples", double(lags.size()), "");
        add_cpu(figures, "lag", cpu0, cpu1);
        munmap(control, sizeof(Control));
        queue.close();
        forget_queue(name);
        drop_database();
    }

    // ------------------------------------------------------------ sync

    void sync_phase(RunFigures& figures) {
        const std::string conninfo = make_database("sync");
        const std::string name = queue_name("sync");
        Queue queue = create_queue(name, std::uint32_t(o_.sync_threads + 64));
        EntrypointOptions sync;
        sync.durability = Durability::sync;
        queue.declare_entrypoint("sync", sync);
        queue.declare_entrypoint("warm", {}); // memory: registers each producer without a commit
        Daemon daemon(o_, name, conninfo, daemon_log("sync"));
        pg::Connection db(conninfo);
        const int own_backend = db.server_pid();

        Control* control = map_shared<Control>();
        new (control) Control();
        const std::size_t capacity = 16'000'000;
        auto* latencies = map_shared<float>(capacity); // microseconds
        control->producers_left = o_.sync_processes;
        std::vector<pid_t> workers;
        const int processes = std::max(1, o_.sync_processes);
        for (int p = 0; p < processes; ++p) {
            const int threads = o_.sync_threads / processes + (p < o_.sync_threads % processes ? 1 : 0);
            workers.push_back(spawn([&, threads] {
                std::vector<std::thread> pool;
                for (int t = 0; t < threads; ++t)
                    pool.emplace_back([&] {
                        try {
                            Queue q = Queue::open(name);
                            const EntrypointId e = q.entrypoint("sync");
                            const std::vector<std::byte> payload = make_payload(o_.payload);
                            EnqueueOptions options;
                            options.arena_wait = 1000ms;
                            options.log_wait = 1000ms;
                            options.sync_wait = 30'000ms;
                            q.enqueue(q.entrypoint("warm"), payload, options); // registers; not timed
                            std::vector<float> mine;
                            mine.reserve(4096);
                            control->ready++;
                            wait_for_go(control->go);
                            while (!control->stop.load(std::memory_order_relaxed)) {
                                const std::int64_t start = now_ns();
                                q.enqueue(e, payload, options);
                                // Calls started in the warm-up (the burst of
                                // all producers starting at once) are not counted.
                                if (start >= control->measure_from_ns.load(std::memory_order_relaxed))
                                    mine.push_back(float(double(now_ns() - start) / 1e3));
                            }
                            const std::uint64_t at = control->samples.fetch_add(mine.size());
                            if (at + mine.size() <= capacity)
                                std::memcpy(latencies + at, mine.data(), mine.size() * sizeof(float));
                        } catch (const std::exception& error) {
                            note_error(control, error);
                            control->ready++;
                        }
                    });
                for (std::thread& t : pool) t.join();
                control->producers_left--;
            }));
        }
        workers.push_back(spawn([&] { consume(name, control, 64); }));
        wait_until([&] { return control->ready >= o_.sync_threads + 1; }, 120, "sync producer threads");
        const std::vector<pid_t> backends = database_backends(own_backend);
        control->measure_from_ns = now_ns() + std::int64_t(o_.sync_warmup * 1e9);
        start(control->go);
        sleep_for_seconds(o_.sync_warmup);
        const CpuSnapshot cpu0 = cpu(daemon.pid(), backends, workers);
        const double xact0 = xact_commit();
        const StatementSnapshot st0 = statements();
        const std::int64_t t0 = control->measure_from_ns;
        while (seconds_since(t0) < o_.sync_seconds) std::this_thread::sleep_for(10ms);
        control->stop = 1;
        const double window = seconds_since(t0);
        const CpuSnapshot cpu1 = cpu(daemon.pid(), backends, workers);
        const double xact1 = xact_commit();
        const StatementSnapshot st1 = statements();
        if (wait_all(workers)) throw std::runtime_error("a sync worker failed");
        daemon.stop();
        const std::size_t n = std::min<std::size_t>(control->samples, capacity);
        std::vector<double> ms(n);
        for (std::size_t i = 0; i < n; ++i) ms[i] = double(latencies[i]) / 1e3;
        if (control->errors)
            figures.notes.push_back("sync: " + std::to_string(control->errors.load()) + " producer errors, first: " +
                                    control->last_error);
        figures.add("sync_enqueues_per_s", "sync: enqueues completed", double(n) / window, "jobs/s");
        figures.add("sync_p50_ms", "sync: enqueue latency p50", percentile(ms, 0.50), "ms");
        figures.add("sync_p99_ms", "sync: enqueue latency p99 (target < 10 ms)", percentile(ms, 0.99), "ms");
        figures.add("sync_max_ms", "sync: enqueue latency max", percentile(ms, 1.0), "ms");
        figures.add("sync_transactions_per_s", "sync: transactions committed (group commits)", (xact1 - xact0) / window,
                    "tx/s");
        add_cpu(figures, "sync", cpu0, cpu1);
        profile(figures, "sync", st0, st1, window);
        munmap(latencies, sizeof(float) * capacity);
        munmap(control, sizeof(Control));
        queue.close();
        forget_queue(name);
        drop_database();
    }

    // ------------------------------------------------------------ idle

    void idle_phase(RunFigures& figures) {
        const std::string conninfo = make_database("idle");
        const std::string name = queue_name("idle");
        Queue queue = create_queue(name, std::uint32_t(o_.idle_consumers + 64));
        EntrypointOptions async;
        async.durability = Durability::async;
        const EntrypointId ep = queue.declare_entrypoint("bench", async);
        const std::int64_t daemon_started = now_ns();
        Daemon daemon(o_, name, conninfo, daemon_log("idle"));

        Control* control = map_shared<Control>();
        new (control) Control();
        std::vector<pid_t> workers;
        for (int c = 0; c < o_.idle_consumers; ++c)
            workers.push_back(spawn([&] {
                Queue q = Queue::open(name);
                const EntrypointId e = q.entrypoint("bench");
                std::vector<Job> jobs(1);
                control->ready++;
                for (;;) {
                    const std::size_t n = q.dequeue({&e, 1}, jobs, std::chrono::nanoseconds(-1));
                    if (n) q.ack(jobs[0].handle);
                    if (control->stop) break;
                }
            }));
        wait_until([&] {
            if (control->ready < o_.idle_consumers) return false;
            int sleeping = 0;
            for (const ParticipantInfo& p : queue.participants()) sleeping += p.sleeping;
            return sleeping >= o_.idle_consumers;
        }, 120, "idle consumers to sleep");
        std::vector<pid_t> backends;
        {
            pg::Connection db(conninfo);
            backends = database_backends(db.server_pid());
        } // the bench keeps no connection to this database during the window
        // A backend that goes idle less than 1 s after its last stats flush
        // defers the next one by 10 s (PGSTAT_IDLE_INTERVAL): start the
        // window 11 s after the daemon did, or its start-up transactions
        // would land in xact_commit during the window.
        sleep_for_seconds(std::max(o_.idle_settle, 11.0 - seconds_since(daemon_started)));

        const CpuSnapshot cpu0 = cpu(daemon.pid(), backends, workers);
        const StatementSnapshot st0 = statements();
        const double xact0 = xact_commit();
        const std::int64_t t0 = now_ns();
        sleep_for_seconds(o_.idle_seconds);
        const double window = seconds_since(t0);
        const CpuSnapshot cpu1 = cpu(daemon.pid(), backends, workers);
        const StatementSnapshot st1 = statements();
        const double xact1 = xact_commit();
        int sleeping = 0;
        for (const ParticipantInfo& p : queue.participants()) sleeping += p.sleeping;

        // Wake every consumer with one job each; they exit.
        control->stop = 1;
        {
            Queue producer = Queue::open(name);
            const std::vector<std::byte> payload = make_payload(o_.payload);
            for (int c = 0; c < o_.idle_consumers; ++c) producer.enqueue(ep, payload);
        }
        if (wait_all(workers)) throw std::runtime_error("an idle consumer failed");
        daemon.stop();

        double calls = 0;
        std::string which;
        for (const auto& [id, s] : diff(st0, st1)) {
            calls += s.calls;
            std::string query = s.query.substr(0, 60);
            std::replace(query.begin(), query.end(), '\n', ' ');
            which += (which.empty() ? "" : "; ") + std::to_string(std::int64_t(s.calls)) + " x " + query;
        }
        if (cluster_.has_pg_stat_statements()) {
            figures.add("idle_statements", "idle: statements the daemon ran (pg_stat_statements)", calls, "");
            figures.notes.push_back("idle statements: " + (which.empty() ? std::string("none") : which));
        }
        figures.add("idle_transactions", "idle: transactions in the database (xact_commit delta)", xact1 - xact0, "");
        figures.add("idle_daemon_cpu_ms", "idle: CPU time of currantd", (cpu1.daemon - cpu0.daemon) * 1000, "ms");
        figures.add("idle_daemon_backends_cpu_ms", "idle: CPU time of currantd's PostgreSQL backends",
                    (cpu1.daemon_backends - cpu0.daemon_backends) * 1000, "ms");
        figures.add("idle_consumers_cpu_ms", "idle: CPU time of all idle consumers", (cpu1.workers - cpu0.workers) * 1000,
                    "ms");
        figures.add("idle_sleeping", "idle: consumers asleep at the end", double(sleeping), "");
        figures.add("idle_window_s", "idle: window", window, "s");
        munmap(control, sizeof(Control));
        queue.close();
        forget_queue(name);
        drop_database();
    }

    const Options& o_;
    testing::ScratchPostgres& cluster_;
    pg::Connection admin_;
    int run_ = 0;
    std::string database_;
    double statement_ms_ = 0; // throughput window's statement time, for the per-job figure
};

std::string format_value(double v, const std::string& unit) {
    char buffer[64];
    if (unit == "ms" || unit == "us" || unit == "x" || unit == "cores" || unit == "s per s" || unit == "s" ||
        (std::fabs(v) < 10 && v != std::floor(v)))
        std::snprintf(buffer, sizeof buffer, "%.3g", v);
    else
        std::snprintf(buffer, sizeof buffer, "%.0f", v);
    std::string out = buffer;
    if (out.find_first_of(".e") == std::string::npos && out.size() > 3) {
        // thousands separators
        std::string grouped;
        const std::size_t start = out[0] == '-' ? 1 : 0;
        for (std::size_t i = 0; i < out.size(); ++i) {
            if (i > start && (out.size() - i) % 3 == 0) grouped.push_back(',');
            grouped.push_back(out[i]);
        }
        out = grouped;
    }
    return unit.empty() ? out : out + " " + unit;
}

std::string json_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') out.push_back('\\');
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        if (static_cast<unsigned char>(c) < 0x20) continue;
        out.push_back(c);
    }
    return out;
}

std::string default_currantd(const char* argv0) {
    if (const char* env = std::getenv("CURRANTD")) return env;
    // The build tree: <build>/bench/daemon/currant_mirror_bench -> <build>/daemon/currantd
    char self[4096] = {};
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    std::string path = n > 0 ? std::string(self, std::size_t(n)) : std::string(argv0);
    const auto slash = path.rfind('/');
    return (slash == std::string::npos ? std::string(".") : path.substr(0, slash)) + "/../../daemon/currantd";
}

} // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{"currantd against a throwaway PostgreSQL cluster with default durability: bare COPY floor, "
                 "async mirroring throughput, mirror lag at a paced rate, sync enqueue latency, idle queries",
                 "currant_mirror_bench"};
    app.add_option("--currantd", o.currantd, "currantd executable (default: $CURRANTD, else the build tree's)");
    app.add_option("--base", o.base, "directory for the throwaway cluster (on disk, not tmpfs)")->capture_default_str();
    app.add_option("--phases", o.phases, "comma-separated: copy,throughput,lag,sync,idle")->capture_default_str();
    app.add_option("--runs", o.runs, "repetitions (each runs every phase)")->capture_default_str()->check(CLI::Range(1, 50));
    app.add_flag("--json", o.json, "print JSON");
    app.add_flag("--profile", o.profile, "print the daemon's top statements per phase (pg_stat_statements)");
    app.add_flag("--keep", o.keep, "keep the cluster, databases and logs");
    app.add_flag("--no-pg-stat-statements", o.no_pg_stat_statements, "do not preload pg_stat_statements");
    app.add_option("--daemon-arg", o.daemon_args, "extra currantd argument (repeat; e.g. --daemon-arg=--batch=50000)");
    app.add_option("--copy-rows", o.copy_rows, "rows per shape for the bare COPY floor")->capture_default_str();
    app.add_option("--copy-batch", o.copy_batch, "rows per COPY transaction (currantd's default batch: 65536)")
        ->capture_default_str();
    app.add_option("--seconds", o.seconds, "throughput window")->capture_default_str();
    app.add_option("--warmup", o.warmup, "seconds before the throughput window starts")->capture_default_str();
    app.add_option("--producers", o.producers, "throughput producer processes")->capture_default_str();
    app.add_option("--consumers", o.consumers, "throughput consumer processes")->capture_default_str();
    app.add_option("--batch", o.batch, "jobs per enqueue_batch / dequeue call")->capture_default_str()->check(CLI::Range(1, 4096));
    app.add_option("--payload", o.payload, "payload bytes")->capture_default_str()->check(CLI::Range(1, 65536));
    app.add_option("--slots", o.slots, "arena slots of each queue")->capture_default_str();
    app.add_option("--log-capacity", o.log_capacity, "transition log records per entrypoint")->capture_default_str();
    app.add_option("--lag-rate", o.lag_rate, "paced enqueue rate for the lag phase, jobs/s")->capture_default_str();
    app.add_option("--lag-seconds", o.lag_seconds, "lag window")->capture_default_str();
    app.add_option("--lag-sample-ms", o.lag_sample_ms, "lag sampling period")->capture_default_str();
    app.add_option("--sync-threads", o.sync_threads, "concurrent sync producers (threads, one Queue each)")
        ->capture_default_str();
    app.add_option("--sync-processes", o.sync_processes, "processes the sync threads are spread over")
        ->capture_default_str();
    app.add_option("--sync-seconds", o.sync_seconds, "sync window")->capture_default_str();
    app.add_option("--sync-warmup", o.sync_warmup, "seconds after the start whose calls are not counted")
        ->capture_default_str();
    app.add_option("--idle-consumers", o.idle_consumers, "consumer processes blocked in dequeue")->capture_default_str();
    app.add_option("--idle-seconds", o.idle_seconds, "idle window")->capture_default_str();
    app.add_option("--idle-settle", o.idle_settle, "seconds between all consumers asleep and the idle window")
        ->capture_default_str();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        return app.exit(error);
    }
    if (o.currantd.empty()) o.currantd = default_currantd(argv[0]);
    if (access(o.currantd.c_str(), X_OK) != 0) {
        std::fprintf(stderr, "currant_mirror_bench: currantd not found at %s (give --currantd or $CURRANTD)\n",
                     o.currantd.c_str());
        return 2;
    }
    std::signal(SIGPIPE, SIG_IGN);
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::thread([stop_signals] {
        int received = 0;
        sigwait(&stop_signals, &received);
        std::lock_guard lock(cleanup_mutex);
        for (const std::string& name : live_queues) Queue::remove(name);
        if (live_cluster) live_cluster->stop_and_remove();
        std::fprintf(stderr, "currant_mirror_bench: interrupted\n");
        _exit(128 + received);
    }).detach();

    try {
        testing::ScratchPostgres cluster(testing::PostgresOptions{
            .parent_directory = o.base, .fsync = true, .pg_stat_statements = !o.no_pg_stat_statements, .keep = o.keep});
        {
            std::lock_guard lock(cleanup_mutex);
            live_cluster = &cluster;
        }
        struct Forget { // runs before the cluster's destructor, also on an exception
            ~Forget() {
                std::lock_guard lock(cleanup_mutex);
                live_cluster = nullptr;
                for (const std::string& name : live_queues) Queue::remove(name);
                live_queues.clear();
            }
        } forget;
        Bench bench(o, cluster);
        const std::vector<std::string> settings = bench.settings();
        std::vector<RunFigures> runs(std::size_t(o.runs));
        for (int r = 0; r < o.runs; ++r) {
            bench.run(r, runs[std::size_t(r)]);
            if (!o.json) {
                std::printf("run %d of %d\n", r + 1, o.runs);
                for (const Figure& f : runs[std::size_t(r)].all())
                    std::printf("  %-72s %s\n", f.label.c_str(), format_value(f.value, f.unit).c_str());
                for (const std::string& note : runs[std::size_t(r)].notes) std::printf("  %s\n", note.c_str());
                std::fflush(stdout);
            }
        }
        // Summary: median (min to max) of each figure over the runs.
        const std::vector<Figure>& keys = runs[0].all();
        if (o.json) {
            std::printf("{\"settings\": [");
            for (std::size_t i = 0; i < settings.size(); ++i)
                std::printf("%s\"%s\"", i ? ", " : "", json_escape(settings[i]).c_str());
            std::printf("], \"runs\": [");
            for (std::size_t r = 0; r < runs.size(); ++r) {
                std::printf("%s{", r ? ", " : "");
                bool first = true;
                for (const Figure& f : runs[r].all()) {
                    std::printf("%s\"%s\": %.6g", first ? "" : ", ", f.key.c_str(), f.value);
                    first = false;
                }
                std::printf("%s\"notes\": [", first ? "" : ", ");
                for (std::size_t i = 0; i < runs[r].notes.size(); ++i)
                    std::printf("%s\"%s\"", i ? ", " : "", json_escape(runs[r].notes[i]).c_str());
                std::printf("]}");
            }
            std::printf("], \"summary\": {");
            for (std::size_t k = 0; k < keys.size(); ++k) {
                std::vector<double> values;
                for (const RunFigures& run : runs)
                    if (auto v = run.get(keys[k].key)) values.push_back(*v);
                std::printf("%s\"%s\": {\"median\": %.6g, \"min\": %.6g, \"max\": %.6g, \"unit\": \"%s\"}", k ? ", " : "",
                            keys[k].key.c_str(), percentile(values, 0.5), percentile(values, 0), percentile(values, 1),
                            keys[k].unit.c_str());
            }
            std::printf("}}\n");
        } else {
            std::printf("\nsettings: ");
            for (const std::string& s : settings) std::printf("%s ", s.c_str());
            std::printf("\n\n%-72s %s\n", "figure", o.runs > 1 ? "median (min to max)" : "measured");
            for (const Figure& key : keys) {
                std::vector<double> values;
                for (const RunFigures& run : runs)
                    if (auto v = run.get(key.key)) values.push_back(*v);
                const double median = percentile(values, 0.5);
                if (o.runs > 1)
                    std::printf("%-72s %s (%s to %s)\n", key.label.c_str(), format_value(median, key.unit).c_str(),
                                format_value(percentile(values, 0), "").c_str(),
                                format_value(percentile(values, 1), "").c_str());
                else
                    std::printf("%-72s %s\n", key.label.c_str(), format_value(median, key.unit).c_str());
            }
        }
        if (o.keep) std::fprintf(stderr, "cluster kept in %s\n", cluster.directory().c_str());
    } catch (const std::exception& error) {
        std::fprintf(stderr, "currant_mirror_bench: %s\n", error.what());
        return 1;
    }
    return 0;
}
