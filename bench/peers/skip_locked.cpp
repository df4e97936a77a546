// currant-bench-skip-locked: a PostgreSQL `FOR UPDATE SKIP LOCKED` queue with
// LISTEN/NOTIFY, written in C++ over libpq, shaped like PgQueuer (which cannot
// be installed here: PyPI is out of reach), run with currant-bench's workload.
//
// What is reproduced from PgQueuer (its facts, written here in our own SQL):
//   schema     the `pgqueuer_status` enum (queued, picked, successful,
//              exception, canceled, deleted, failed); the `pgqueuer` table
//              (serial id, priority, queue_manager_id uuid, created / updated
//              / heartbeat / execute_after timestamptz, status, entrypoint,
//              dedupe_key, payload bytea, headers jsonb, attempts) with its
//              four indexes (partial on status = 'queued' by priority and id,
//              partial on status = 'picked' by updated and id, partial on
//              queue_manager_id, partial unique dedupe_key); the
//              `pgqueuer_log` table with its four indexes. Logged tables.
//              The statistics and schedules tables are left out: nothing on
//              the job path touches them.
//   trigger    a STATEMENT-level AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
//              trigger that sends pg_notify('ch_pgqueuer', <json text with
//              channel, operation, sent_at, table, type>) for INSERT, DELETE
//              and TRUNCATE, and for UPDATE when OLD IS DISTINCT FROM NEW
//              (never, at statement level: OLD and NEW are NULL there).
//   enqueue    one INSERT of unnest()ed arrays plus a 'queued' log row per job
//              in the same statement.
//   dequeue    one statement: per-entrypoint parameters, the caller's picked
//              counts, the oldest queued jobs by priority DESC, id ASC with
//              FOR UPDATE SKIP LOCKED LIMIT n, plus picked jobs whose
//              heartbeat is older than the retry interval (same lock), set to
//              'picked' with updated / heartbeat / queue_manager_id, a
//              'picked' log row each, returned by priority and id.
//   completion one statement: delete the finished jobs and log them
//              ('successful').
//   worker     a queue manager: dequeue; when nothing comes back, wait on the
//              connection's socket for a notification (LISTEN ch_pgqueuer)
//              and dequeue again after any 'insert' event, or after
//              --poll-seconds (default 30, PgQueuer's default dequeue
//              timeout). Each worker process is one queue manager taking
//              --batch jobs per dequeue (PgQueuer's default is 10; the
//              comparison runs 1).
// Differences: one completion statement per dequeued batch, where PgQueuer
// buffers completions and writes several together (more statements here:
// against the baseline); no heartbeat task and no statistics aggregation
// (fewer statements: in its favour); statements are prepared once per
// connection (asyncpg caches prepared statements too).
//
// Processes: --producers and --workers are forked processes, each with its
// own connection. --prefill enqueues every job first and releases the
// workers after (the "K jobs enqueued, then drained" shape of the npm
// peers' scripts); otherwise producers and workers run together as in
// currant-bench. Warm-up, throughput and latency are counted as in
// currant-bench (bench/load/currant_bench.cpp): jobs enqueued in the first
// --warmup-percent are left out of the latency figures; throughput counts
// completions from the end of the warm-up (with --prefill: from the moment
// the warm-up share of the jobs had completed) to the last completion.
// Enqueue -> start is CLOCK_REALTIME at the start of the job body minus the
// CLOCK_REALTIME the producer stamped into the payload just before its
// INSERT. Queries issued = statements this program sent (each prepared
// execution, LISTEN, and the parent's setup), counted per process.
#include <CLI/CLI.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <linux/futex.h>
#include <poll.h>
#include <random>
#include <stdexcept>
#include <string>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

std::int64_t realtime_ns() noexcept {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void sleep_until_realtime(std::int64_t when_ns) noexcept {
    timespec ts{time_t(when_ns / 1'000'000'000), long(when_ns % 1'000'000'000)};
    while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, nullptr) == EINTR) {}
}

void spin_for_us(std::uint32_t us) noexcept {
    if (us == 0) return;
    const std::int64_t until = realtime_ns() + std::int64_t(us) * 1000;
    while (realtime_ns() < until) {}
}

std::int64_t cpu_ns(int who) {
    rusage usage{};
    getrusage(who, &usage);
    return (std::int64_t(usage.ru_utime.tv_sec) + usage.ru_stime.tv_sec) * 1'000'000'000 +
           (std::int64_t(usage.ru_utime.tv_usec) + usage.ru_stime.tv_usec) * 1000;
}

struct Options {
    std::string db;
    std::uint32_t producers = 1, workers = 1, batch = 1, enqueue_batch = 0, payload_bytes = 64, work_us = 0;
    std::uint64_t jobs = 10'000;
    double duration_s = 0, warmup_percent = 0, rate = 0, poll_seconds = 30, stall_seconds = 60;
    bool prefill = false, json = false;
};

double parse_duration(const std::string& text) {
    std::size_t used = 0;
    const double value = std::stod(text, &used);
    const std::string unit = text.substr(used);
    if (unit.empty() || unit == "s") return value;
    if (unit == "ms") return value / 1e3;
    if (unit == "m" || unit == "min") return value * 60;
    throw std::runtime_error("--duration: unknown unit '" + unit + "'");
}

// ------------------------------------------------------------------ SQL

const char* const schema_sql = R"SQL(
DROP TABLE IF EXISTS pgqueuer;
DROP TABLE IF EXISTS pgqueuer_log;
DROP FUNCTION IF EXISTS fn_pgqueuer_changed();
DROP TYPE IF EXISTS pgqueuer_status;
CREATE TYPE pgqueuer_status AS ENUM
    ('queued', 'picked', 'successful', 'exception', 'canceled', 'deleted', 'failed');
CREATE TABLE pgqueuer (
    id               serial PRIMARY KEY,
    priority         integer NOT NULL,
    queue_manager_id uuid,
    created          timestamptz NOT NULL DEFAULT now(),
    updated          timestamptz NOT NULL DEFAULT now(),
    heartbeat        timestamptz NOT NULL DEFAULT now(),
    execute_after    timestamptz NOT NULL DEFAULT now(),
    status           pgqueuer_status NOT NULL,
    entrypoint       text NOT NULL,
    dedupe_key       text,
    payload          bytea,
    headers          jsonb,
    attempts         integer NOT NULL DEFAULT 0
);
CREATE INDEX pgqueuer_priority_id_id1_idx ON pgqueuer (priority, id DESC) INCLUDE (id)
    WHERE status = 'queued';
CREATE INDEX pgqueuer_updated_id_id1_idx ON pgqueuer (updated, id DESC) INCLUDE (id)
    WHERE status = 'picked';
CREATE INDEX pgqueuer_queue_manager_id_idx ON pgqueuer (queue_manager_id)
    WHERE queue_manager_id IS NOT NULL;
CREATE UNIQUE INDEX pgqueuer_unique_dedupe_key ON pgqueuer (dedupe_key)
    WHERE status IN ('queued', 'picked') AND dedupe_key IS NOT NULL;
CREATE TABLE pgqueuer_log (
    id         bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    created    timestamptz NOT NULL DEFAULT now(),
    job_id     bigint NOT NULL,
    status     pgqueuer_status NOT NULL,
    priority   integer NOT NULL,
    entrypoint text NOT NULL,
    traceback  jsonb,
    aggregated boolean DEFAULT false
);
CREATE INDEX pgqueuer_log_not_aggregated ON pgqueuer_log ((1)) WHERE NOT aggregated;
CREATE INDEX pgqueuer_log_created ON pgqueuer_log (created);
CREATE INDEX pgqueuer_log_status ON pgqueuer_log (status);
CREATE INDEX pgqueuer_log_job_id_status ON pgqueuer_log (job_id, created DESC);
CREATE FUNCTION fn_pgqueuer_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    -- Statement level: OLD and NEW are NULL, so an UPDATE never notifies.
    IF TG_OP IN ('INSERT', 'DELETE', 'TRUNCATE') OR (TG_OP = 'UPDATE' AND OLD IS DISTINCT FROM NEW) THEN
        PERFORM pg_notify('ch_pgqueuer', json_build_object(
            'channel', 'ch_pgqueuer', 'operation', lower(TG_OP), 'sent_at', now(),
            'table', TG_TABLE_NAME, 'type', 'table_changed_event')::text);
    END IF;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER tg_pgqueuer_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgqueuer
    FOR EACH STATEMENT EXECUTE FUNCTION fn_pgqueuer_changed();
)SQL";

// $1 priorities, $2 entrypoints, $3 payloads, $4 delays, $5 dedupe keys, $6 headers.
const char* const enqueue_sql = R"SQL(
WITH new_jobs AS (
    INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, dedupe_key, headers, status)
    SELECT p, e, b, now() + d, k, h, 'queued'
    FROM unnest($1::integer[], $2::text[], $3::bytea[], $4::interval[], $5::text[], $6::jsonb[]) AS n(p, e, b, d, k, h)
    RETURNING id, entrypoint, priority
)
INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
SELECT id, 'queued', entrypoint, priority FROM new_jobs
RETURNING job_id
)SQL";

// $1 batch size, $2 entrypoints, $3 retry intervals, $4 serialized flags,
// $5 per-entrypoint concurrency limits, $6 this queue manager, $7 its global limit.
const char* const dequeue_sql = R"SQL(
WITH params AS (
    SELECT * FROM unnest($2::text[], $3::interval[], $4::boolean[], $5::bigint[])
        AS p(entrypoint, retry_after, serialized, concurrency_limit)
), mine_by_entrypoint AS (
    SELECT entrypoint, count(*) AS n FROM pgqueuer
    WHERE queue_manager_id IS NOT NULL AND queue_manager_id = $6 AND entrypoint = ANY($2)
    GROUP BY entrypoint
), mine AS (
    SELECT count(*) AS n FROM pgqueuer
    WHERE queue_manager_id IS NOT NULL AND queue_manager_id = $6 AND entrypoint = ANY($2)
), take_queued AS (
    SELECT j.id FROM pgqueuer j
    JOIN params p ON p.entrypoint = j.entrypoint
    LEFT JOIN mine_by_entrypoint m ON m.entrypoint = j.entrypoint
    WHERE j.entrypoint = ANY($2) AND j.status = 'queued' AND j.execute_after < now()
      AND ($7::bigint IS NULL OR (SELECT n FROM mine) < $7)
      AND NOT (p.serialized AND EXISTS (
          SELECT 1 FROM pgqueuer o WHERE o.entrypoint = j.entrypoint AND o.status = 'picked'))
      AND (p.concurrency_limit <= 0 OR m.n IS NULL OR m.n < p.concurrency_limit)
    ORDER BY j.priority DESC, j.id
    LIMIT $1
    FOR UPDATE OF j SKIP LOCKED
), take_stale AS (
    SELECT j.id FROM pgqueuer j
    JOIN params p ON p.entrypoint = j.entrypoint
    WHERE j.entrypoint = ANY($2) AND j.status = 'picked' AND j.execute_after < now()
      AND p.retry_after > interval '0' AND j.heartbeat < now() - p.retry_after
      AND ($7::bigint IS NULL OR (SELECT n FROM mine) < $7)
      AND NOT (p.serialized AND EXISTS (
          SELECT 1 FROM pgqueuer o WHERE o.entrypoint = j.entrypoint AND o.status = 'picked'))
      AND (p.concurrency_limit <= 0 OR coalesce(
          (SELECT sum(m.n) FROM mine_by_entrypoint m WHERE m.entrypoint = j.entrypoint), 0) < p.concurrency_limit)
    ORDER BY j.heartbeat DESC, j.id
    LIMIT $1
    FOR UPDATE OF j SKIP LOCKED
), taken AS (
    UPDATE pgqueuer SET status = 'picked', updated = now(), heartbeat = now(), queue_manager_id = $6
    WHERE id IN (SELECT id FROM take_queued UNION SELECT id FROM take_stale)
    RETURNING *
), logged AS (
    INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
    SELECT id, status, entrypoint, priority FROM taken
)
SELECT id, payload FROM taken ORDER BY priority DESC, id
)SQL";

// $1 job ids, $2 their final statuses, $3 tracebacks.
const char* const complete_sql = R"SQL(
WITH outcome AS (
    SELECT * FROM unnest($1::integer[], $2::pgqueuer_status[], $3::jsonb[]) AS o(id, status, traceback)
), removed AS (
    DELETE FROM pgqueuer j USING outcome o
    WHERE j.id = o.id AND o.status <> 'failed'
    RETURNING j.id, j.entrypoint, j.priority
), kept AS (
    UPDATE pgqueuer j SET status = 'failed', updated = now(), queue_manager_id = NULL
    FROM outcome o WHERE j.id = o.id AND o.status = 'failed'
    RETURNING j.id, j.entrypoint, j.priority
), settled AS (
    SELECT * FROM removed UNION ALL SELECT * FROM kept
)
INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority, traceback)
SELECT o.id, o.status, s.entrypoint, s.priority, o.traceback FROM outcome o JOIN settled s ON s.id = o.id
)SQL";

const char* const entrypoint = "currant-bench";

// ------------------------------------------------------------------ libpq

class Connection {
public:
    explicit Connection(const std::string& conninfo) : pg_(PQconnectdb(conninfo.c_str())) {
        if (PQstatus(pg_) != CONNECTION_OK) {
            const std::string why = PQerrorMessage(pg_);
            PQfinish(pg_);
            throw std::runtime_error("connect: " + why);
        }
    }
    ~Connection() { PQfinish(pg_); }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    void exec(const char* sql) {
        ++statements;
        PGresult* r = PQexec(pg_, sql);
        check(r, sql);
        PQclear(r);
    }
    void prepare(const char* name, const char* sql) {
        PGresult* r = PQprepare(pg_, name, sql, 0, nullptr);
        check(r, name);
        PQclear(r);
    }
    // Text parameters; binary results. The caller clears the result.
    PGresult* run(const char* name, const std::vector<std::string>& params, const std::vector<bool>& null = {}) {
        ++statements;
        std::vector<const char*> values(params.size());
        for (std::size_t i = 0; i < params.size(); ++i)
            values[i] = i < null.size() && null[i] ? nullptr : params[i].c_str();
        PGresult* r = PQexecPrepared(pg_, name, int(values.size()), values.data(), nullptr, nullptr, 1);
        check(r, name);
        return r;
    }
    // Waits up to timeout_ms for notifications; true if one said 'insert'.
    bool wait_for_insert(int timeout_ms) {
        bool insert = drain_notifications();
        if (insert) return true;
        pollfd fd{PQsocket(pg_), POLLIN, 0};
        if (poll(&fd, 1, timeout_ms) > 0) {
            if (!PQconsumeInput(pg_)) throw std::runtime_error(std::string("connection: ") + PQerrorMessage(pg_));
            insert = drain_notifications();
        }
        return insert;
    }
    std::uint64_t statements = 0;

    // Frees the notifications that arrived while busy (every INSERT and
    // DELETE statement on the queue notifies every listener).
    bool drain_notifications() {
        bool insert = false;
        while (PGnotify* n = PQnotifies(pg_)) {
            if (std::strstr(n->extra, "\"insert\"")) insert = true;
            PQfreemem(n);
        }
        return insert;
    }
    void check(PGresult* r, const char* what) {
        const auto status = PQresultStatus(r);
        if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return;
        const std::string why = PQresultErrorMessage(r);
        PQclear(r);
        throw std::runtime_error(std::string(what).substr(0, 60) + ": " + why);
    }
    PGconn* pg_;
};

// ------------------------------------------------------------------ shared state

struct Header {
    std::int64_t stamp_ns;
    std::uint32_t flags;
    std::uint32_t producer;
};
constexpr std::uint32_t flag_measured = 1;

struct alignas(64) Counter {
    std::atomic<std::uint64_t> value{0};
};
constexpr std::size_t max_children = 1024;

struct Control {
    std::atomic<std::uint32_t> ready{0}, go{0}, workers_go{0}, stop{0}, abort{0};
    std::atomic<std::int64_t> start_ns{0}, workers_start_ns{0};
    Counter enqueued[max_children];
    Counter completed[max_children];
};

void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected) {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, expected, nullptr, nullptr, 0);
}
void futex_wake_all(std::atomic<std::uint32_t>& word) {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}
void wait_for(std::atomic<std::uint32_t>& word) {
    while (word.load(std::memory_order_acquire) == 0) futex_wait(word, 0);
}
void release(std::atomic<std::uint32_t>& word) {
    word.store(1, std::memory_order_release);
    futex_wake_all(word);
}

// What a child reports through its pipe.
struct Report {
    std::uint32_t role = 0, failed = 0;
    std::uint64_t jobs = 0, statements = 0;
    std::int64_t cpu_ns = 0, first_measured_ns = 0;
    std::vector<std::int64_t> to_start, to_completion;  // ns, measured jobs
    std::vector<std::uint32_t> timeline;               // completions per ms after start_ns
    std::string error;
};

void write_all(int fd, const void* data, std::size_t size) {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
        const ssize_t n = ::write(fd, p, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        p += n, size -= std::size_t(n);
    }
}
bool read_all(int fd, void* data, std::size_t size) {
    char* p = static_cast<char*>(data);
    while (size > 0) {
        const ssize_t n = ::read(fd, p, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n, size -= std::size_t(n);
    }
    return true;
}
template <typename T> void put_vector(int fd, const std::vector<T>& v) {
    const std::uint64_t n = v.size();
    write_all(fd, &n, sizeof n);
    write_all(fd, v.data(), n * sizeof(T));
}
template <typename T> bool get_vector(int fd, std::vector<T>& v) {
    std::uint64_t n = 0;
    if (!read_all(fd, &n, sizeof n) || n > (std::uint64_t(1) << 32)) return false;
    v.resize(n);
    return read_all(fd, v.data(), n * sizeof(T));
}
void send_report(int fd, const Report& r) {
    write_all(fd, &r.role, sizeof r.role), write_all(fd, &r.failed, sizeof r.failed);
    write_all(fd, &r.jobs, sizeof r.jobs), write_all(fd, &r.statements, sizeof r.statements);
    write_all(fd, &r.cpu_ns, sizeof r.cpu_ns), write_all(fd, &r.first_measured_ns, sizeof r.first_measured_ns);
    put_vector(fd, r.to_start), put_vector(fd, r.to_completion), put_vector(fd, r.timeline);
    put_vector(fd, std::vector<char>(r.error.begin(), r.error.end()));
}
bool receive_report(int fd, Report& r) {
    std::vector<char> error;
    const bool ok = read_all(fd, &r.role, sizeof r.role) && read_all(fd, &r.failed, sizeof r.failed) &&
                    read_all(fd, &r.jobs, sizeof r.jobs) && read_all(fd, &r.statements, sizeof r.statements) &&
                    read_all(fd, &r.cpu_ns, sizeof r.cpu_ns) &&
                    read_all(fd, &r.first_measured_ns, sizeof r.first_measured_ns) && get_vector(fd, r.to_start) &&
                    get_vector(fd, r.to_completion) && get_vector(fd, r.timeline) && get_vector(fd, error);
    r.error.assign(error.begin(), error.end());
    return ok;
}

void record_completion(Report& report, std::int64_t start_ns, std::int64_t now, std::uint32_t n) {
    const std::int64_t ms = std::max<std::int64_t>(0, (now - start_ns) / 1'000'000);
    if (std::size_t(ms) >= report.timeline.size()) report.timeline.resize(std::size_t(ms) + 1024, 0);
    report.timeline[std::size_t(ms)] += n;
}

std::string hex(const void* data, std::size_t size) {
    static const char digits[] = "0123456789abcdef";
    const auto* p = static_cast<const unsigned char*>(data);
    std::string out;
    out.reserve(size * 2);
    for (std::size_t i = 0; i < size; ++i) out += digits[p[i] >> 4], out += digits[p[i] & 15];
    return out;
}

// ------------------------------------------------------------------ producer and worker

std::uint64_t share_of(const Options& o, std::uint32_t producer) {
    return o.jobs / o.producers + (producer < o.jobs % o.producers ? 1 : 0);
}

void producer(const Options& o, Control* control, std::uint32_t index, Report& report) {
    Connection pg(o.db);
    pg.prepare("enqueue", enqueue_sql);
    const std::uint64_t share = share_of(o, index);
    const std::uint64_t warm_jobs = std::uint64_t(double(share) * o.warmup_percent / 100.0);
    const double rate = o.rate > 0 ? o.rate / o.producers : 0;
    const std::uint32_t batch = o.enqueue_batch ? o.enqueue_batch : o.batch;
    std::vector<unsigned char> payload(o.payload_bytes, 0x5a);
    control->ready.fetch_add(1);
    wait_for(control->go);
    const std::int64_t start_ns = control->start_ns.load();
    const std::int64_t end_ns = start_ns + std::int64_t(o.duration_s * 1e9);
    const std::int64_t warm_end_ns = start_ns + std::int64_t(o.duration_s * 1e9 * o.warmup_percent / 100.0);
    const bool timed = o.duration_s > 0;
    std::uint64_t sent = 0;
    for (;;) {
        if (control->abort.load()) return;
        std::uint64_t want = batch;
        if (!timed) {
            if (sent >= share) break;
            want = std::min<std::uint64_t>(want, share - sent);
        }
        if (rate > 0) {
            const std::int64_t due = start_ns + std::int64_t(double(sent) * 1e9 / rate);
            if (timed && due >= end_ns) break;
            if (realtime_ns() < due) sleep_until_realtime(due);
        }
        if (timed && realtime_ns() >= end_ns) break;
        std::string priorities = "{", entrypoints = "{", payloads = "{", delays = "{", keys = "{", headers = "{";
        const std::int64_t now = realtime_ns();
        for (std::uint64_t i = 0; i < want; ++i) {
            const bool measured = timed ? now >= warm_end_ns : sent + i >= warm_jobs;
            if (measured && report.first_measured_ns == 0) report.first_measured_ns = now;
            Header h{now, measured ? flag_measured : 0u, index};
            std::memcpy(payload.data(), &h, sizeof h);
            const char* sep = i ? "," : "";
            priorities += std::string(sep) + "0";
            entrypoints += std::string(sep) + entrypoint;
            payloads += std::string(sep) + "\"\\\\x" + hex(payload.data(), payload.size()) + "\"";
            delays += std::string(sep) + "\"0 seconds\"";
            keys += std::string(sep) + "NULL";
            headers += std::string(sep) + "NULL";
        }
        for (auto* s : {&priorities, &entrypoints, &payloads, &delays, &keys, &headers}) *s += "}";
        PQclear(pg.run("enqueue", {priorities, entrypoints, payloads, delays, keys, headers}));
        sent += want;
        control->enqueued[index].value.store(sent, std::memory_order_relaxed);
    }
    report.jobs = sent;
    report.statements = pg.statements;
}

std::string random_uuid() {
    std::random_device device;
    std::mt19937_64 random(device() ^ (std::uint64_t(getpid()) << 32) ^ std::uint64_t(realtime_ns()));
    unsigned char b[16];
    for (int i = 0; i < 16; i += 8) {
        const std::uint64_t v = random();
        std::memcpy(b + i, &v, 8);
    }
    b[6] = (b[6] & 0x0f) | 0x40, b[8] = (b[8] & 0x3f) | 0x80;
    const std::string h = hex(b, 16);
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20);
}

void worker(const Options& o, Control* control, std::uint32_t index, Report& report) {
    Connection pg(o.db);
    pg.prepare("dequeue", dequeue_sql);
    pg.prepare("complete", complete_sql);
    pg.exec("LISTEN ch_pgqueuer");
    const std::string qm = random_uuid();
    const std::vector<std::string> dequeue_params = {
        std::to_string(o.batch), std::string("{") + entrypoint + "}", "{\"0 seconds\"}", "{f}", "{0}", qm, ""};
    const std::vector<bool> dequeue_null = {false, false, false, false, false, false, true};
    control->ready.fetch_add(1);
    wait_for(control->workers_go);
    const std::int64_t start_ns = control->start_ns.load();
    Counter& counter = control->completed[o.producers + index];
    std::uint64_t completed = 0;
    const int poll_ms = int(o.poll_seconds * 1000);
    while (!control->abort.load()) {
        PGresult* r = pg.run("dequeue", dequeue_params, dequeue_null);
        const int rows = PQntuples(r);
        if (rows == 0) {
            PQclear(r);
            if (control->stop.load()) break;
            // Sleep until a producer's INSERT is announced, or the poll interval.
            for (int waited = 0; waited < poll_ms && !control->stop.load() && !control->abort.load();
                 waited += 100)
                if (pg.wait_for_insert(std::min(100, poll_ms - waited))) break;
            continue;
        }
        std::string ids = "{", statuses = "{", tracebacks = "{";
        std::vector<std::int64_t> stamps(rows);
        std::vector<bool> measured(rows);
        for (int i = 0; i < rows; ++i) {
            std::uint32_t id_be = 0;
            std::memcpy(&id_be, PQgetvalue(r, i, 0), sizeof id_be);
            Header h{};
            if (PQgetlength(r, i, 1) >= int(sizeof h)) std::memcpy(&h, PQgetvalue(r, i, 1), sizeof h);
            const std::int64_t now = realtime_ns();
            measured[i] = (h.flags & flag_measured) != 0;
            stamps[i] = h.stamp_ns;
            if (measured[i]) report.to_start.push_back(now - h.stamp_ns);
            spin_for_us(o.work_us);
            const char* sep = i ? "," : "";
            ids += sep + std::to_string(ntohl(id_be));
            statuses += std::string(sep) + "successful";
            tracebacks += std::string(sep) + "NULL";
        }
        PQclear(r);
        ids += "}", statuses += "}", tracebacks += "}";
        PQclear(pg.run("complete", {ids, statuses, tracebacks}));
        const std::int64_t done = realtime_ns();
        for (int i = 0; i < rows; ++i)
            if (measured[i]) report.to_completion.push_back(done - stamps[i]);
        pg.drain_notifications();
        record_completion(report, start_ns, done, std::uint32_t(rows));
        completed += std::uint64_t(rows);
        counter.value.store(completed, std::memory_order_relaxed);
    }
    report.jobs = completed;
    report.statements = pg.statements;
}

// ------------------------------------------------------------------ the parent

struct Child {
    pid_t pid = -1;
    int fd = -1;
    std::uint32_t role = 0, index = 0;
    bool done = false, ok = false;
    Report report;
};

template <typename Body> Child spawn(Body body, std::uint32_t role, std::uint32_t index) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe");
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork");
    if (pid == 0) {
        close(fds[0]);
        Report report;
        report.role = role;
        int code = 0;
        try {
            body(report);
        } catch (const std::exception& error) {
            report.failed = 1, report.error = error.what(), code = 1;
        }
        report.cpu_ns = cpu_ns(RUSAGE_SELF);
        send_report(fds[1], report);
        close(fds[1]);
        _exit(code);
    }
    close(fds[1]);
    Child c;
    c.pid = pid, c.fd = fds[0], c.role = role, c.index = index;
    return c;
}

void collect(Child& c) {
    const bool got = receive_report(c.fd, c.report);
    close(c.fd);
    int status = 0;
    waitpid(c.pid, &status, 0);
    c.done = true;
    c.ok = got && !c.report.failed && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!got && c.report.error.empty()) c.report.error = "no report";
}

void poll_children(std::vector<Child>& children, int timeout_ms) {
    std::vector<pollfd> fds;
    std::vector<Child*> who;
    for (auto& c : children)
        if (!c.done) fds.push_back(pollfd{c.fd, POLLIN, 0}), who.push_back(&c);
    if (fds.empty()) return;
    if (poll(fds.data(), fds.size(), timeout_ms) <= 0) return;
    for (std::size_t i = 0; i < fds.size(); ++i)
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) collect(*who[i]);
}

double quantile(std::vector<std::int64_t>& v, double q) {
    if (v.empty()) return 0;
    const std::size_t rank = std::max<std::size_t>(1, std::size_t(std::ceil(q * double(v.size()))));
    std::nth_element(v.begin(), v.begin() + long(rank - 1), v.end());
    return double(v[rank - 1]);
}

int run(const Options& o) {
    std::uint64_t statements = 0;  // every statement sent by any process of this run
    {
        Connection setup(o.db);
        setup.exec("SET client_min_messages = warning");
        setup.exec(schema_sql);  // one simple-query round trip holding the whole script
        statements += setup.statements;
    }
    void* memory = mmap(nullptr, sizeof(Control), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) throw std::runtime_error("mmap");
    Control* control = new (memory) Control();
    std::vector<Child> children;
    const std::int64_t cpu_before = cpu_ns(RUSAGE_CHILDREN);
    auto fail = [&](const std::string& why) {
        control->abort.store(1);
        release(control->go), release(control->workers_go);
        for (auto& c : children) if (!c.done) kill(c.pid, SIGKILL);
        for (auto& c : children) if (!c.done) collect(c);
        throw std::runtime_error(why);
    };
    auto describe = [](const Child& c) {
        return std::string(c.role ? "worker " : "producer ") + std::to_string(c.index) + ": " +
               (c.report.error.empty() ? "ended early" : c.report.error);
    };
    for (std::uint32_t i = 0; i < o.workers; ++i)
        children.push_back(spawn([&, i](Report& r) { worker(o, control, i, r); }, 1, i));
    for (std::uint32_t i = 0; i < o.producers; ++i)
        children.push_back(spawn([&, i](Report& r) { producer(o, control, i, r); }, 0, i));
    while (control->ready.load() < o.producers + o.workers) {
        poll_children(children, 1);
        for (auto& c : children)
            if (c.done) fail("a process failed to start: " + describe(c));
    }
    std::int64_t start_ns = realtime_ns();
    control->start_ns.store(start_ns);
    release(control->go);
    double prefill_seconds = 0;
    if (o.prefill) {
        // Workers wait until every producer has finished.
        for (;;) {
            poll_children(children, 5);
            bool all = true;
            for (auto& c : children) {
                if (c.done && !c.ok) fail(describe(c));
                if (c.role == 0 && !c.done) all = false;
            }
            if (all) break;
        }
        // Statistics for the planner, as a long-running queue would have from
        // autovacuum: without them it sorts every queued row on each dequeue
        // instead of walking the queued index backwards.
        {
            Connection setup(o.db);
            setup.exec("ANALYZE pgqueuer");
            statements += setup.statements;
        }
        const std::int64_t now = realtime_ns();
        prefill_seconds = double(now - start_ns) / 1e9;
        start_ns = now;
        control->start_ns.store(start_ns);
    }
    release(control->workers_go);
    std::uint64_t last_completed = 0;
    std::int64_t last_change = realtime_ns();
    for (;;) {
        poll_children(children, 5);
        bool producers_done = true;
        std::uint64_t enqueued = 0, completed = 0;
        for (auto& c : children) {
            if (c.done && !c.ok) fail(describe(c));
            if (c.role == 1) {
                if (c.done) fail(describe(c));
                completed += control->completed[o.producers + c.index].value.load(std::memory_order_relaxed);
            } else {
                producers_done = producers_done && c.done;
                enqueued += c.done ? c.report.jobs : control->enqueued[c.index].value.load(std::memory_order_relaxed);
            }
        }
        const std::int64_t now = realtime_ns();
        if (producers_done && completed >= enqueued) break;
        if (completed != last_completed) last_completed = completed, last_change = now;
        if (double(now - last_change) / 1e9 > o.stall_seconds && !(o.duration_s > 0 && !producers_done))
            fail("no job completed for " + std::to_string(int(o.stall_seconds)) + " s (" + std::to_string(completed) +
                 " of " + std::to_string(enqueued) + ")");
    }
    release(control->stop);
    while (std::any_of(children.begin(), children.end(), [](const Child& c) { return !c.done; }))
        poll_children(children, 100);
    for (auto& c : children)
        if (!c.ok) fail(describe(c));

    const double cpu_seconds = double(cpu_ns(RUSAGE_CHILDREN) - cpu_before) / 1e9;
    std::uint64_t enqueued = 0, jobs = 0;
    double producer_cpu = 0, worker_cpu = 0;
    std::int64_t first_measured_ns = 0;
    std::vector<std::int64_t> to_start, to_completion;
    std::vector<std::uint64_t> timeline;
    for (const auto& c : children) {
        const Report& r = c.report;
        statements += r.statements;
        to_start.insert(to_start.end(), r.to_start.begin(), r.to_start.end());
        to_completion.insert(to_completion.end(), r.to_completion.begin(), r.to_completion.end());
        if (r.role == 0) {
            enqueued += r.jobs, producer_cpu += double(r.cpu_ns) / 1e9;
            if (r.first_measured_ns && (!first_measured_ns || r.first_measured_ns < first_measured_ns))
                first_measured_ns = r.first_measured_ns;
        } else {
            jobs += r.jobs, worker_cpu += double(r.cpu_ns) / 1e9;
            if (timeline.size() < r.timeline.size()) timeline.resize(r.timeline.size(), 0);
            for (std::size_t i = 0; i < r.timeline.size(); ++i) timeline[i] += r.timeline[i];
        }
    }
    if (jobs != enqueued)
        throw std::runtime_error(std::to_string(enqueued) + " jobs enqueued but " + std::to_string(jobs) + " completed");
    std::size_t last = timeline.size();
    while (last > 0 && timeline[last - 1] == 0) --last;
    std::size_t from = 0;
    if (o.warmup_percent > 0) {
        if (o.prefill) {
            // From the millisecond in which the warm-up share had completed.
            const auto warm = std::uint64_t(double(jobs) * o.warmup_percent / 100.0);
            std::uint64_t seen = 0;
            while (from < last && seen + timeline[from] <= warm) seen += timeline[from++];
        } else {
            const std::int64_t warm_end_ns =
                o.duration_s > 0 ? start_ns + std::int64_t(o.duration_s * 1e9 * o.warmup_percent / 100.0)
                                 : (first_measured_ns ? first_measured_ns : start_ns);
            from = std::min(last, std::size_t(std::max<std::int64_t>(0, (warm_end_ns - start_ns) / 1'000'000)));
        }
    }
    std::uint64_t counted = 0;
    for (std::size_t i = from; i < last; ++i) counted += timeline[i];
    const double window = double(last - from) / 1e3;
    const double throughput = window > 0 ? double(counted) / window : 0;
    const double seconds = double(last) / 1e3;

    struct Row { const char* label; const char* key; double value; int decimals; };
    std::vector<Row> rows = {
        {"throughput (jobs/s)", "jobs_per_second", throughput, 0},
        {"enqueue -> start p50 (us)", "to_start_p50_us", quantile(to_start, 0.50) / 1e3, 1},
        {"enqueue -> start p95 (us)", "to_start_p95_us", quantile(to_start, 0.95) / 1e3, 1},
        {"enqueue -> start p99 (us)", "to_start_p99_us", quantile(to_start, 0.99) / 1e3, 1},
        {"enqueue -> start p99.9 (us)", "to_start_p99.9_us", quantile(to_start, 0.999) / 1e3, 1},
        {"enqueue -> start max (us)", "to_start_max_us", quantile(to_start, 1.0) / 1e3, 1},
        {"enqueue -> completion p50 (us)", "to_completion_p50_us", quantile(to_completion, 0.50) / 1e3, 1},
        {"enqueue -> completion p99 (us)", "to_completion_p99_us", quantile(to_completion, 0.99) / 1e3, 1},
        {"enqueue -> completion max (us)", "to_completion_max_us", quantile(to_completion, 1.0) / 1e3, 1},
        {"CPU s per million jobs (producers + workers)", "cpu_seconds_per_million", jobs ? cpu_seconds * 1e6 / double(jobs) : 0, 2},
        {"  of which producers", "producer_cpu_seconds_per_million", jobs ? producer_cpu * 1e6 / double(jobs) : 0, 2},
        {"  of which workers", "worker_cpu_seconds_per_million", jobs ? worker_cpu * 1e6 / double(jobs) : 0, 2},
        {"PostgreSQL statements sent", "pg_statements", double(statements), 0},
        {"PostgreSQL statements per job", "pg_statements_per_job", jobs ? double(statements) / double(jobs) : 0, 2},
        {"jobs completed (warm-up included)", "jobs", double(jobs), 0},
        {"jobs in the latency figures", "measured_jobs", double(to_start.size()), 0},
        {"seconds, workers' start to last completion", "seconds", seconds, 3},
        {"seconds counted for throughput", "window_seconds", window, 3},
        {"seconds spent prefilling (before workers start)", "prefill_seconds", prefill_seconds, 3},
    };
    if (o.json) {
        std::printf("{\"bench\":\"currant-bench-skip-locked\",\"config\":{\"producers\":%u,\"workers\":%u,\"batch\":%u,"
                    "\"enqueue_batch\":%u,\"payload_bytes\":%u,\"jobs\":%" PRIu64 ",\"duration_seconds\":%g,"
                    "\"warmup_percent\":%g,\"rate\":%g,\"work_us\":%u,\"prefill\":%s},\"results\":[{\"system\":\"skip-locked\"",
                    o.producers, o.workers, o.batch, o.enqueue_batch ? o.enqueue_batch : o.batch, o.payload_bytes,
                    o.duration_s > 0 ? 0 : o.jobs, o.duration_s, o.warmup_percent, o.rate, o.work_us,
                    o.prefill ? "true" : "false");
        for (const auto& row : rows) std::printf(",\"%s\":%.3f", row.key, row.value);
        std::printf("}]}\n");
    } else {
        std::printf("currant-bench-skip-locked: %u producer(s), %u worker(s), batch %u, %s, warm-up %g%%, rate %s%s\n",
                    o.producers, o.workers, o.batch,
                    o.duration_s > 0 ? (std::to_string(o.duration_s) + " s").c_str()
                                     : (std::to_string(o.jobs) + " jobs").c_str(),
                    o.warmup_percent, o.rate > 0 ? (std::to_string(o.rate) + " jobs/s").c_str() : "as fast as possible",
                    o.prefill ? ", prefilled" : "");
        for (const auto& row : rows) std::printf("%-50s %16.*f\n", row.label, row.decimals, row.value);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{"currant-bench-skip-locked: currant-bench's workload over a PgQueuer-shaped PostgreSQL queue "
                 "(FOR UPDATE SKIP LOCKED, LISTEN/NOTIFY) in C++ over libpq"};
    app.add_option("--db", o.db, "libpq connection string of a database the program may write (it drops and "
                                 "creates the pgqueuer tables there)")->required();
    app.add_option("--producers", o.producers, "producer processes")->check(CLI::Range(1, 64));
    app.add_option("--workers", o.workers, "worker processes (one connection each)")->check(CLI::Range(1, 900));
    app.add_option("--batch", o.batch, "jobs per dequeue (and per enqueue unless --enqueue-batch)")->check(CLI::Range(1, 4096));
    app.add_option("--enqueue-batch", o.enqueue_batch, "jobs per enqueue statement (default: --batch)")->check(CLI::Range(0, 100000));
    app.add_option("--payload-bytes", o.payload_bytes, "payload size")->check(CLI::Range(16, 1 << 20));
    auto* jobs = app.add_option("--jobs", o.jobs, "jobs over all producers");
    std::string duration;
    auto* d = app.add_option("--duration", duration, "enqueue for this long instead (10s, 500ms, 1m)");
    jobs->excludes(d);
    app.add_option("--warmup-percent", o.warmup_percent, "share left out of the figures")->check(CLI::Range(0.0, 90.0));
    app.add_option("--rate", o.rate, "target enqueue rate over all producers (0: as fast as possible)");
    app.add_option("--work-us", o.work_us, "job body: spin this many microseconds (0: no-op)");
    app.add_flag("--prefill", o.prefill, "enqueue every job first, then start the workers (drain)");
    app.add_option("--poll-seconds", o.poll_seconds, "an idle worker dequeues again after this long without a notification (PgQueuer's default dequeue timeout: 30)");
    app.add_option("--stall-seconds", o.stall_seconds, "give up when no job completes for this long");
    app.add_flag("--json", o.json, "print one JSON object");
    CLI11_PARSE(app, argc, argv);
    if (!duration.empty()) o.duration_s = parse_duration(duration);
    if (o.prefill && o.duration_s > 0) {
        std::fprintf(stderr, "currant-bench-skip-locked: --prefill needs --jobs\n");
        return 2;
    }
    if (o.producers + o.workers > max_children) return 2;
    signal(SIGPIPE, SIG_IGN);
    try {
        return run(o);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "currant-bench-skip-locked: %s\n", error.what());
        return 1;
    }
}
