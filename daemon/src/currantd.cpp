// currantd: mirrors one queue segment to PostgreSQL and relays NOTIFY.
//
// Threads:
//   main     the mirror loop: sleeps in the kernel on the segment until the
//            feed has something (wait_for_feed), writes a batch, commits.
//   waker    (mirror.cpp) wakes the sync enqueuers a commit covered, off
//            the mirror's path; touches only the segment's commit futexes.
//   relay    LISTENs on the host's channel (its own connection and Queue
//            object), claims remote jobs and cancellations. Idle, it sleeps
//            in poll() on its socket with no timeout: a connection the
//            server closes makes the socket readable, one whose peer
//            vanished fails at a TCP keepalive probe (pg.cpp), so no query
//            is needed; --heartbeat-seconds N adds one after N s of silence.
//   signals  sigwait for SIGTERM/SIGINT: sets the stop flag and wakes both.
//   http     (with --http) metrics, JSON stats and the dashboard, on its
//            own Queue object.
// Every other thread blocks those signals, so they arrive only there.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <charconv>
#include <atomic>
#include <cstdio>
#include <csignal>
#include <mutex>
#include <optional>
#include <span>
#include <poll.h>
#include <pthread.h>
#include <thread>
#include <unistd.h>

#include <fstream>

#include "currant/shm/clock.hpp"
#include "host.hpp"
#include "http_server.hpp"
#include "json_text.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "mirror.hpp"
#include "relay.hpp"
#include "schema.hpp"

namespace currant::daemon {
namespace {

struct Options {
    std::string queue = "currant";
    std::string conninfo;                       // empty: libpq's PG* environment
    std::uint32_t host_id = 0;                  // for a queue created here
    std::uint32_t slots = 65536, payload_bytes = 256, max_entrypoints = 64, max_participants = 256,
                  log_capacity = 65536;
    unsigned mode = 0600;
    std::uint32_t flush_interval_ms = 10;
    // One queue's whole default transition log (65,536 records): under a
    // backlog a batch then takes every pending record, so the pick and ack
    // of most jobs it enqueues are in the same batch (one appended log row,
    // no currant_jobs row). With 20,000 most jobs spanned two batches and
    // cost two log rows, a currant_jobs insert and a delete: the async
    // rate halved (BENCHMARKS.md, "currantd (mirroring)").
    std::size_t batch = 65'536;
    std::uint32_t heartbeat_seconds = 0;       // 0: no heartbeat query (keepalives)
    std::uint32_t lock_wait_seconds = 15;
    std::string http;                           // ADDRESS:PORT; empty: no HTTP endpoint
    std::string http_token_file;
    std::optional<HttpOptions> http_endpoint;   // parsed from the two above
};

std::atomic<bool> stopping{false};
int relay_wake_pipe[2] = {-1, -1};
// The mirror's Queue, for the signal thread's wake_feed_waiter() (which
// only touches segment atomics, so it is safe from another thread).
std::mutex mirror_queue_mutex; // held around the wake and while clearing the pointer
currant::Queue* mirror_queue = nullptr;

class Backoff {
public:
    // Sleeps before the next attempt (100 ms doubling to 5 s); false once stopping.
    bool wait() {
        for (std::int64_t slept = 0; slept < delay_ms_ && !stopping; slept += 20) usleep(20'000);
        delay_ms_ = std::min<std::int64_t>(delay_ms_ * 2, 5'000);
        return !stopping;
    }
    void reset() { delay_ms_ = 100; }

private:
    std::int64_t delay_ms_ = 100;
};

pg::Connection connect_with_backoff(const Options& options, const char* role) {
    Backoff backoff;
    for (;;) {
        try {
            pg::Connection connection(options.conninfo);
            log_line(std::string("connected to PostgreSQL (") + role + ", server pid " +
                     std::to_string(connection.server_pid()) + ")");
            return connection;
        } catch (const pg::DatabaseError& error) {
            log_line(std::string(role) + ": " + error.what() + "; retrying");
            if (!backoff.wait()) throw;
        }
    }
}

// Session-level: held while this connection lives. One daemon per host. A
// killed daemon's session ends a moment after its death (PostgreSQL notices
// the closed socket), so a restart waits up to lock_wait_seconds for it.
void take_host_lock(pg::Connection& connection, std::uint32_t host, std::uint32_t lock_wait_seconds) {
    const std::int64_t deadline = shm::monotonic_ns() + std::int64_t(lock_wait_seconds) * 1'000'000'000;
    bool said = false;
    for (;;) {
        const pg::Result got = connection.exec("SELECT pg_try_advisory_lock(hashtext('currant host'), $1)",
                                               {std::to_string(host)});
        if (got.text(0, 0) == "t") return;
        if (shm::monotonic_ns() >= deadline || stopping)
            throw Error(Errc::already_exists, "another currantd is mirroring host " + std::to_string(host));
        if (!said) log_line("host " + std::to_string(host) + " is locked by another session; waiting up to " +
                            std::to_string(lock_wait_seconds) + " s for it to end");
        said = true;
        usleep(100'000);
    }
}

void run_relay(const Options& options, HostIdentity identity) {
    try {
        Queue queue = Queue::open(options.queue);
        Relay relay(queue, identity);
        Backoff backoff;
        while (!stopping) {
            try {
                pg::Connection connection(options.conninfo);
                relay.listen(connection); // LISTEN first, then scan: nothing slips between
                relay.scan(connection);
                backoff.reset();
                std::int64_t last_traffic = shm::monotonic_ns();
                while (!stopping) {
                    // Any query (a scan, the heartbeat) may have read
                    // notifications into libpq's queue: the socket will not
                    // show them again, so drain the queue before polling.
                    bool notified = false;
                    while (connection.next_notification()) notified = true;
                    if (notified) {
                        relay.scan(connection);
                        last_traffic = shm::monotonic_ns();
                        continue;
                    }
                    pollfd fds[2] = {{connection.socket(), POLLIN, 0}, {relay_wake_pipe[0], POLLIN, 0}};
                    int timeout_ms = -1; // no heartbeat: sleep until the socket or the wake pipe
                    if (options.heartbeat_seconds != 0) {
                        const std::int64_t idle_ns = shm::monotonic_ns() - last_traffic;
                        const std::int64_t heartbeat_ns = std::int64_t(options.heartbeat_seconds) * 1'000'000'000;
                        timeout_ms = int(std::max<std::int64_t>(0, heartbeat_ns - idle_ns) / 1'000'000);
                    }
                    const int ready = poll(fds, 2, timeout_ms);
                    if (ready < 0 && errno != EINTR) throw_system_error("poll", errno);
                    if (stopping) break;
                    if (ready == 0) {
                        connection.exec("SELECT 1"); // the heartbeat, only with --heartbeat-seconds
                        last_traffic = shm::monotonic_ns();
                        continue;
                    }
                    if (fds[0].revents) {
                        connection.consume();
                        last_traffic = shm::monotonic_ns();
                    }
                }
            } catch (const pg::DatabaseError& error) {
                // Lost or refused: start over on a new connection (LISTEN,
                // then a scan), after a back-off.
                log_line("relay: " + std::string(error.what()) + "; reconnecting");
                if (!backoff.wait()) break;
            }
        }
    } catch (const std::exception& error) {
        log_line(std::string("relay stopped: ") + error.what());
        stopping = true;
    }
}

// What the log says about the mirror's health, at most every few seconds:
// lag over a second, and full logs (producers are being pushed back).
struct Health {
    std::int64_t last_check = 0, last_report = 0;
    std::vector<bool> full; // per entrypoint, as last reported
};

void report_health(const Queue& queue, Health& health) {
    const std::int64_t now = shm::monotonic_ns();
    if (now - health.last_check < 1'000'000'000) return; // stats() scans the arena: not per batch
    health.last_check = now;
    const std::vector<EntrypointStats> stats = queue.stats();
    const std::uint32_t capacity = queue.info().log_capacity;
    health.full.resize(stats.size(), false);
    for (const EntrypointStats& entry : stats) {
        // Enqueues wait once a third of the log is pending (core: producing.cpp).
        const bool full = entry.log_pending >= std::max<std::uint32_t>(1, capacity / 3) || entry.dirty_slots > 0;
        if (full != health.full[entry.id]) {
            health.full[entry.id] = full;
            log_line(full ? "back-pressure: the log of entrypoint '" + entry.name + "' is full (" +
                                std::to_string(entry.log_pending) + " transitions, " +
                                std::to_string(entry.dirty_slots) + " dirty jobs); enqueues wait"
                          : "back-pressure over on entrypoint '" + entry.name + "'");
        }
        if (entry.mirror_lag_ns >= 1'000'000'000 && now - health.last_report >= 10'000'000'000) {
            health.last_report = now;
            log_line("mirror lag " + std::to_string(entry.mirror_lag_ns / 1'000'000) + " ms on entrypoint '" +
                     entry.name + "' (" + std::to_string(entry.log_pending) + " transitions pending)");
        }
    }
}

std::string read_token(const std::string& path) {
    std::ifstream file(path);
    if (!file) throw Error(Errc::invalid_argument, "--http-token-file: cannot read '" + path + "'");
    std::string token;
    std::getline(file, token);
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t')) token.pop_back();
    if (token.size() < 16)
        throw Error(Errc::invalid_argument, "--http-token-file: the token in '" + path +
                                                "' is shorter than 16 characters (its first line is the token)");
    return token;
}

// A job id given over HTTP: decimal digits only, 1 to 2^63-1 (ids are
// host << 48 | counter with hosts up to 0x7FFF). Throws Error(invalid_argument) naming it.
JobId job_id_from(const std::string& id_text) {
    JobId id = 0;
    const char* end = id_text.data() + id_text.size();
    const auto [stopped, problem] = std::from_chars(id_text.data(), end, id);
    // The text is quoted printable: it may hold any byte (a NUL would cut the message).
    if (id_text.empty() || problem != std::errc() || stopped != end || id_text[0] == '+')
        throw Error(Errc::invalid_argument,
                    "id '" + payload_preview(std::as_bytes(std::span(id_text)), 40) + "' is not a decimal job id");
    if (id == 0 || id > JobId(INT64_MAX))
        throw Error(Errc::invalid_argument, "id " + id_text + " is not a job id (ids are 1 to 2^63-1)");
    return id;
}

JobStatus status_of(const Queue& queue, JobId id) {
    const JobId ids[] = {id};
    return queue.status(ids)[0].status;
}

// Why a requeue or purge of id did nothing: the job is not a kept dead job.
[[noreturn]] void refuse_not_dead(const Queue& queue, JobId id, std::string_view action) {
    const JobStatus now = status_of(queue, id);
    if (now == JobStatus::unknown)
        throw Error(Errc::not_found, "job " + std::to_string(id) + " is not in the queue (never existed, purged or recycled): not " +
                                         std::string(action));
    throw Error(Errc::wrong_state, "job " + std::to_string(id) + " is " + std::string(job_status_name(now)) +
                                       (now == JobStatus::exception ? " but not kept as a dead job (purged, or dropped past max_dead)"
                                                                  : ", not a dead job") +
                                       ": not " + std::string(action));
}

std::string seconds_text(std::int64_t ns) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3f", double(ns) / 1e9);
    return text;
}

// A list's limit parameter: 1 to 1000, 100 when not given.
std::size_t list_limit(const std::string& limit_text) {
    std::size_t limit = 100;
    if (!limit_text.empty()) {
        const char* end = limit_text.data() + limit_text.size();
        const auto [stopped, problem] = std::from_chars(limit_text.data(), end, limit);
        if (problem != std::errc() || stopped != end || limit == 0 || limit > 1000)
            throw Error(Errc::invalid_argument, "limit '" + limit_text + "' is not a number from 1 to 1000");
    }
    return limit;
}

// A list's offset parameter: how many to skip, 0 to 1,000,000, 0 when not given.
std::size_t list_offset(const std::string& offset_text) {
    std::size_t offset = 0;
    if (!offset_text.empty()) {
        const char* end = offset_text.data() + offset_text.size();
        const auto [stopped, problem] = std::from_chars(offset_text.data(), end, offset);
        if (problem != std::errc() || stopped != end || offset > 1'000'000)
            throw Error(Errc::invalid_argument, "offset '" + offset_text + "' is not a number from 0 to 1000000");
    }
    return offset;
}

// The page [offset, offset + limit) of a list read with offset + limit + 1
// entries; true when entries follow the page.
template <class T>
bool page_of(std::vector<T>& list, std::size_t offset, std::size_t limit) {
    list.erase(list.begin(), list.begin() + std::ptrdiff_t(std::min(offset, list.size())));
    const bool more = list.size() > limit;
    if (more) list.resize(limit);
    return more;
}

std::string page_fields(std::size_t offset, std::size_t limit, bool more) {
    return ", \"offset\": " + std::to_string(offset) + ", \"limit\": " + std::to_string(limit) +
           ", \"more\": " + (more ? "true" : "false") + "}\n";
}

// Queued and picked jobs (Queue::active_jobs): picked first, then queued,
// oldest first; the page after `offset`, `more` when limit cut the list.
// (A page is read as the first offset + limit + 1 jobs, so a deep page
// costs what the whole list up to it does.)
std::string active_jobs_json(const Queue& queue, const std::string& entrypoint, const std::string& limit_text,
                             const std::string& offset_text) {
    const std::size_t limit = list_limit(limit_text);
    const std::size_t offset = list_offset(offset_text);
    std::optional<EntrypointId> only;
    if (!entrypoint.empty()) only = queue.entrypoint(entrypoint);
    std::vector<ActiveJob> jobs = queue.active_jobs(only, offset + limit + 1);
    const bool more = page_of(jobs, offset, limit);
    const std::vector<std::string> names = queue.entrypoint_names();
    std::string out = "{\"jobs\": [";
    for (std::size_t i = 0; i < jobs.size(); ++i) {
        const ActiveJob& job = jobs[i];
        out += i ? ",\n  " : "\n  ";
        out += "{\"id\": " + std::to_string(job.id) + ", \"id_text\": \"" + std::to_string(job.id) +
               "\", \"entrypoint\": " + json_string(job.entrypoint < names.size() ? names[job.entrypoint] : "") +
               ", \"status\": " + json_string(job_status_name(job.status)) +
               ", \"priority\": " + std::to_string(job.priority) + ", \"attempts\": " + std::to_string(job.attempts) +
               ", \"enqueued_at\": " + seconds_text(job.enqueued_at_ns) +
               ", \"execute_after\": " + seconds_text(job.execute_after_ns) +
               ", \"cancel_requested\": " + (job.cancel_requested ? "true" : "false") + "}";
    }
    // total: queued (delayed too) and picked, by a second read like
    // dead_jobs_json's.
    std::uint64_t total = 0;
    for (const EntrypointStats& e : queue.stats())
        if (!only || e.id == *only) total += e.queued + e.delayed + e.picked;
    out += std::string(jobs.empty() ? "" : "\n") + "], \"total\": " + std::to_string(total) +
           page_fields(offset, limit, more);
    return out;
}

// Kept dead jobs, oldest death first; paged like active_jobs_json.
std::string dead_jobs_json(const Queue& queue, const std::string& entrypoint, const std::string& limit_text,
                           const std::string& offset_text) {
    const std::size_t limit = list_limit(limit_text);
    const std::size_t offset = list_offset(offset_text);
    std::optional<EntrypointId> only;
    if (!entrypoint.empty()) only = queue.entrypoint(entrypoint);
    // One more than asked: says whether the list was cut.
    std::vector<DeadJob> dead = queue.dead_jobs(only, offset + limit + 1);
    const bool more = page_of(dead, offset, limit);
    std::string out = "{\"dead\": [";
    for (std::size_t i = 0; i < dead.size(); ++i) {
        const DeadJob& job = dead[i];
        out += i ? ",\n  " : "\n  ";
        // id_text too: a JavaScript number holds integers exactly only up to
        // 2^53, and ids of hosts past 31 are larger.
        out += "{\"id\": " + std::to_string(job.id) + ", \"id_text\": \"" + std::to_string(job.id) +
               "\", \"entrypoint\": " + json_string(job.entrypoint_name) +
               ", \"priority\": " + std::to_string(job.priority) + ", \"attempts\": " + std::to_string(job.attempts) +
               ", \"max_attempts\": " + std::to_string(job.max_attempts) +
               ", \"enqueued_at\": " + seconds_text(job.enqueued_at_ns) + ", \"died_at\": " + seconds_text(job.died_at_ns) +
               ", \"error\": " + json_string(valid_utf8_text(job.error)) +
               ", \"error_truncated\": " + (job.error_truncated ? "true" : "false") +
               ", \"payload_bytes\": " + std::to_string(job.payload.size()) +
               ", \"payload_preview\": " + json_string(payload_preview(job.payload, 64)) + "}";
    }
    // total: every kept dead job (of the entrypoint), counted by a second
    // read, so a death or purge between the two may make it disagree with
    // the page by that much.
    std::uint64_t total = 0;
    for (const EntrypointStats& e : queue.stats())
        if (!only || e.id == *only) total += e.dead;
    out += std::string(dead.empty() ? "" : "\n") + "], \"total\": " + std::to_string(total) +
           page_fields(offset, limit, more);
    return out;
}

HttpHandlers http_handlers(Queue& queue, const MirrorStatus& status, StatsHistory& history) {
    HttpHandlers handlers;
    handlers.history_json = [&history] { return history.json(); };
    handlers.every_second = [&queue, &history] { history.sample(queue); };
    handlers.metrics = [&queue, &status] { return prometheus_text(queue, status); };
    handlers.stats_json = [&queue, &status] { return stats_json(queue, status); };
    handlers.cancel_json = [&queue](const std::string& id_text) {
        const JobId id = job_id_from(id_text);
        // outcome: canceled (was queued), requested (picked: its holder was
        // asked to stop, docs/cancellation.md) or not_cancelable.
        const CancelOutcome outcome = queue.cancel(id);
        return std::string("{\"id\": ") + std::to_string(id) +
               ", \"canceled\": " + (outcome == CancelOutcome::canceled ? "true" : "false") +
               ", \"outcome\": " + json_string(cancel_outcome_name(outcome)) +
               ", \"status\": " + json_string(job_status_name(status_of(queue, id))) + "}\n";
    };
    handlers.jobs_json = [&queue](const std::string& entrypoint, const std::string& limit_text,
                                  const std::string& offset_text) {
        return active_jobs_json(queue, entrypoint, limit_text, offset_text);
    };
    handlers.dead_json = [&queue](const std::string& entrypoint, const std::string& limit_text,
                                  const std::string& offset_text) {
        return dead_jobs_json(queue, entrypoint, limit_text, offset_text);
    };
    handlers.requeue_json = [&queue](const std::string& id_text) {
        const JobId id = job_id_from(id_text);
        if (!queue.requeue(id)) refuse_not_dead(queue, id, "requeued");
        return "{\"id\": " + std::to_string(id) + ", \"requeued\": true, \"status\": " +
               json_string(job_status_name(status_of(queue, id))) + "}\n";
    };
    handlers.requeue_all_json = [&queue](const std::string& entrypoint) {
        const std::size_t requeued = queue.requeue_dead(queue.entrypoint(entrypoint));
        return "{\"entrypoint\": " + json_string(entrypoint) + ", \"requeued\": " + std::to_string(requeued) + "}\n";
    };
    handlers.purge_all_json = [&queue](const std::string& entrypoint) {
        const std::size_t purged = queue.purge_dead(queue.entrypoint(entrypoint));
        return "{\"entrypoint\": " + json_string(entrypoint) + ", \"purged\": " + std::to_string(purged) + "}\n";
    };
    handlers.purge_json = [&queue](const std::string& id_text) {
        const JobId id = job_id_from(id_text);
        if (!queue.purge(id)) refuse_not_dead(queue, id, "purged");
        return "{\"id\": " + std::to_string(id) + ", \"purged\": true}\n";
    };
    return handlers;
}

int run(const Options& options) {
    if (options.host_id > schema::max_segment_host)
        throw Error(Errc::invalid_argument, "--host-id must be at most " + std::to_string(schema::max_segment_host));
    AttachOptions attach_options;
    attach_options.queue = options.queue;
    attach_options.create.host_id = std::uint16_t(options.host_id);
    attach_options.create.slots = options.slots;
    attach_options.create.payload_bytes = options.payload_bytes;
    attach_options.create.max_entrypoints = options.max_entrypoints;
    attach_options.create.max_participants = options.max_participants;
    attach_options.create.log_capacity = options.log_capacity;
    attach_options.create.mode = options.mode;

    // Start-up: connect, check the schema, lock the host, attach (or
    // rebuild), resume the cursors. PostgreSQL going away at any step
    // starts it over; every step is idempotent (an interrupted rebuild is
    // completed by the next attach).
    std::optional<pg::Connection> connection;
    std::optional<Attached> attached;
    std::optional<Mirror> mirror;
    for (Backoff backoff;;) {
        try {
            mirror.reset(); // first: its waker thread uses the attached queue
            attached.reset();
            connection.emplace(connect_with_backoff(options, "mirror"));
            schema::require_current(*connection);
            // Lock first by the host the segment has (or will have) so two
            // daemons never rebuild the same host at once.
            std::uint32_t host = options.host_id;
            try {
                host = Queue::open(options.queue).info().host_id;
            } catch (const Error&) {
            }
            take_host_lock(*connection, host, options.lock_wait_seconds);
            attached.emplace(attach(*connection, attach_options));
            if (attached->identity.host != host)
                take_host_lock(*connection, attached->identity.host, options.lock_wait_seconds);
            mirror.emplace(attached->queue, attached->identity, options.batch);
            mirror->resume(*connection);
            break;
        } catch (const pg::DatabaseError& error) {
            if (!error.connection_lost()) throw;
            log_line("start: lost PostgreSQL (" + std::string(error.what()) + "); starting over");
            if (!backoff.wait()) return 0;
        }
    }
    Queue& queue = attached->queue;
    const HostIdentity identity = attached->identity;
    // Before the mirror_queue pointer and the relay thread: a port that
    // cannot be bound ends the daemon with nothing to unwind.
    MirrorStatus mirror_status;
    std::optional<Queue> http_queue;
    StatsHistory stats_history;
    std::optional<HttpServer> http_server;
    if (const std::optional<HttpOptions>& http_options = options.http_endpoint) {
        http_queue.emplace(Queue::open(options.queue));
        http_server.emplace(*http_options, http_handlers(*http_queue, mirror_status, stats_history));
        log_line("serving metrics and the dashboard on http://" +
                 (http_options->address.find(':') == std::string::npos ? http_options->address
                                                                       : "[" + http_options->address + "]") +
                 ":" + std::to_string(http_server->port()) + "/" + (http_options->token.empty() ? "" : " (token required)"));
    }
    queue.mark_mirrored(); // entrypoints declared without a durability are mirrored from now on
    {
        std::lock_guard lock(mirror_queue_mutex);
        mirror_queue = &queue;
    }
    log_line("mirroring queue '" + options.queue + "' (host " + std::to_string(identity.host) + ", incarnation " +
             std::to_string(identity.incarnation) + ")");

    std::thread relay_thread(run_relay, std::cref(options), identity);

    const auto flush_after = std::chrono::milliseconds(options.flush_interval_ms);
    Backoff backoff;
    Health health;
    int status = 0;
    std::optional<std::uint32_t> signal_seen;
    while (true) {
        const bool stop_now = stopping.load();
        try {
            // Drain: full batches back to back, then sleep in the kernel
            // (not at all if a sync enqueuer asked since this read of the
            // signal: its job may have missed these batches).
            signal_seen = queue.feed_signal();
            while (mirror->flush(*connection) >= options.batch) {
            }
            const MirrorCounters& counters = mirror->counters();
            mirror_status.transitions.store(counters.transitions, std::memory_order_relaxed);
            mirror_status.jobs.store(counters.jobs, std::memory_order_relaxed);
            mirror_status.batches.store(counters.batches, std::memory_order_relaxed);
            mirror_status.statements.store(counters.statements, std::memory_order_relaxed);
            mirror_status.connected.store(true, std::memory_order_relaxed);
            report_health(queue, health);
            backoff.reset();
        } catch (const pg::DatabaseError& error) {
            // Lost connection: reconnect and resume from the cursor. A refused
            // statement: retry with back-off (the batch is rebuilt from the
            // segment, which still holds everything uncommitted).
            log_line(std::string("mirror: ") + error.what() +
                     (error.connection_lost() ? "; reconnecting" : "; retrying"));
            mirror_status.connected.store(false, std::memory_order_relaxed);
            if (error.connection_lost()) mirror_status.reconnects.fetch_add(1, std::memory_order_relaxed);
            if (stop_now || !backoff.wait()) break;
            try {
                if (error.connection_lost() || !connection->ok()) {
                    connection.emplace(connect_with_backoff(options, "mirror"));
                    take_host_lock(*connection, identity.host, options.lock_wait_seconds);
                }
                mirror->resume(*connection);
            } catch (const pg::DatabaseError& again) {
                log_line("mirror: " + std::string(again.what()));
            }
            continue;
        }
        if (stop_now) break;
        // Also woken by a configuration change (pause, limits, schedules,
        // ticks), which the next flush records.
        queue.wait_for_feed(flush_after, std::chrono::nanoseconds(-1), mirror->configuration_recorded(), signal_seen);
    }
    stopping = true;
    if (write(relay_wake_pipe[1], "x", 1) < 0) {
    }
    relay_thread.join();
    http_server.reset();
    {
        std::lock_guard lock(mirror_queue_mutex);
        mirror_queue = nullptr;
    }
    const MirrorCounters& counters = mirror->counters();
    log_line("stopped: " + std::to_string(counters.transitions) + " transitions in " +
             std::to_string(counters.batches) + " batches mirrored");
    return status;
}

} // namespace
} // namespace currant::daemon

namespace {
// CLI11 would read "010" as octal and "0x10" as hex: numbers are decimal only.
const CLI::Validator decimal(
    [](std::string& text) {
        const bool digits = !text.empty() && text.size() <= 10 &&
                            std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (!digits) return "'" + text + "' is not a decimal number";
        if (text.size() > 1 && text[0] == '0') return "'" + text + "' has a leading zero (decimal numbers only)";
        return std::string();
    },
    "DECIMAL");
} // namespace

int main(int argc, char** argv) {
    using namespace currant::daemon;
    Options options;
    CLI::App app{"currantd: mirrors a currant queue to PostgreSQL and relays NOTIFY", "currantd"};
    app.add_option("--queue,-q", options.queue, "queue (segment) name")->capture_default_str();
    app.add_option("--db", options.conninfo,
                   "libpq connection string or URI (default: libpq's PG* environment variables)");
    app.add_option("--host-id", options.host_id, "host id of a queue this daemon creates")->capture_default_str()->check(decimal);
    app.add_option("--slots", options.slots, "slots of a queue this daemon creates")->capture_default_str()->check(decimal);
    app.add_option("--payload-bytes", options.payload_bytes, "payload bytes per slot of a created queue")
        ->capture_default_str()->check(decimal);
    app.add_option("--log-capacity", options.log_capacity, "transition records per entrypoint of a created queue")
        ->capture_default_str()->check(decimal);
    app.add_option("--flush-interval-ms", options.flush_interval_ms,
                   "how long transitions may wait to be batched (sync enqueues do not wait)")
        ->capture_default_str()->check(decimal);
    app.add_option("--batch", options.batch, "most transitions per transaction")->capture_default_str()->check(
        CLI::Range(1, 10'000'000))->check(decimal);
    app.add_option("--heartbeat-seconds", options.heartbeat_seconds,
                   "idle time after which the relay checks its connection with one query; 0 (the default): "
                   "never, TCP keepalives detect a vanished server")
        ->capture_default_str()
        ->check(CLI::Range(0, 3600))->check(decimal);
    app.add_option("--lock-wait-seconds", options.lock_wait_seconds,
                   "how long to wait for another daemon's hold on the host to end before giving up")
        ->capture_default_str()
        ->check(CLI::Range(0, 3600))->check(decimal);
    app.add_option("--http", options.http,
                   "serve Prometheus metrics (/metrics), JSON stats (/api/stats) and the dashboard (/) on ADDRESS:PORT, "
                   "e.g. 127.0.0.1:9187; a non-loopback address needs --http-token-file");
    app.add_option("--http-token-file", options.http_token_file,
                   "file whose first line is the token HTTP requests must send (Authorization: Bearer ...)");
    try {
        app.parse(argc, argv);
        if (options.host_id > currant::schema::max_segment_host)
            throw CLI::ValidationError("--host-id", "must be at most " + std::to_string(currant::schema::max_segment_host) +
                                                       " (the last range is for jobs inserted by SQL)");
        // Checked before anything starts: a bad address or token file ends
        // the daemon here, with nothing attached.
        if (!options.http.empty()) {
            try {
                options.http_endpoint = parse_http_address(options.http);
                if (!options.http_token_file.empty()) options.http_endpoint->token = read_token(options.http_token_file);
            } catch (const currant::Error& error) {
                throw CLI::ValidationError(error.what());
            }
            if (options.http_endpoint->token.empty() && !is_loopback_address(options.http_endpoint->address))
                throw CLI::ValidationError("--http", options.http_endpoint->address +
                                                         " is not a loopback address: give --http-token-file");
        } else if (!options.http_token_file.empty()) {
            throw CLI::ValidationError("--http-token-file", "needs --http");
        }
    } catch (const CLI::Success& help) {
        return app.exit(help);
    } catch (const CLI::ParseError& error) {
        std::string line = error.what();
        for (char& c : line)
            if (c == '\n') c = ' ';
        std::fprintf(stderr, "currantd: %s (see currantd --help)\n", line.c_str());
        return 2;
    }

    // Signals go to the signal thread only (threads inherit this mask).
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    if (pipe(relay_wake_pipe) != 0) {
        std::perror("currantd: pipe");
        return 1;
    }
    std::thread([signals] {
        int received = 0;
        sigwait(&signals, &received);
        log_line(std::string("received ") + (received == SIGTERM ? "SIGTERM" : "SIGINT") + ": flushing and stopping");
        stopping = true;
        // Repeated until the process ends: a wake-up can land just before
        // the mirror starts waiting, and the next one then ends that wait.
        for (;;) {
            {
                std::lock_guard lock(mirror_queue_mutex);
                if (mirror_queue) mirror_queue->wake_feed_waiter();
            }
            if (write(relay_wake_pipe[1], "x", 1) < 0) {
            }
            usleep(50'000);
        }
    }).detach();
    try {
        return run(options);
    } catch (const std::exception& error) {
        log_line(std::string("error: ") + error.what());
        return 1;
    }
}
