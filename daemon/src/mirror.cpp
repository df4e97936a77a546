#include "mirror.hpp"

#include <algorithm>
#include <charconv>

#include "currant/shm/clock.hpp"
#include "currant/shm/crash_point.hpp"
#include "json_text.hpp"
#include "schema.hpp"

namespace currant::daemon {

namespace {

bool is_final(JobStatus status) {
    return status == JobStatus::successful || status == JobStatus::exception || status == JobStatus::canceled;
}

std::string array_text(const std::vector<std::string>& items) {
    std::string out = "{";
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ',';
        out += items[i];
    }
    return out + "}";
}

// What a batch writes in every row: this host and its incarnation.
struct RowSource {
    std::string host, incarnation;
};

// A currant_log row, in the order of the COPY's columns (log_columns
// below). A traceback passes through valid_utf8_text first: one invalid
// byte would make the whole batch's COPY fail again at every retry,
// stalling the mirror.
struct LogRow {
    JobId id;
    std::string_view entrypoint, status;
    std::int64_t priority;
    std::uint64_t attempts, sequence, transitions;
    std::int64_t at_ns;
    std::optional<std::string_view> traceback;
};

void append_log_row(std::string& rows, const RowSource& source, const LogRow& row) {
    pg::CopyRow copy(rows);
    copy.number(std::int64_t(row.id)).formatted(source.host).formatted(source.incarnation).text(row.entrypoint);
    copy.formatted(row.status).number(row.priority).number(std::int64_t(row.attempts));
    copy.number(std::int64_t(row.sequence)).number(std::int64_t(row.transitions)).timestamp(row.at_ns);
    if (row.traceback) copy.text(valid_utf8_text(*row.traceback));
    else copy.null();
    copy.end();
}

} // namespace

Mirror::Mirror(Queue& queue, HostIdentity identity, std::size_t batch_limit)
    : queue_(queue), identity_(identity), batch_limit_(std::max<std::size_t>(batch_limit, 1)) {
    transitions_.resize(batch_limit_);
    waker_ = std::thread([this] { wake_loop(); });
}

Mirror::~Mirror() {
    {
        std::lock_guard lock(wake_mutex_);
        wake_stop_ = true;
    }
    wake_ready_.notify_one();
    waker_.join(); // wakes what is still pending first
}

void Mirror::wake_loop() {
    std::vector<char> pending;
    std::unique_lock lock(wake_mutex_);
    for (;;) {
        wake_ready_.wait(lock, [&] { return wake_any_ || wake_stop_; });
        if (!wake_any_ && wake_stop_) return;
        pending.swap(wake_pending_);
        wake_pending_.assign(pending.size(), 0);
        wake_any_ = false;
        lock.unlock();
        for (EntrypointId ep = 0; ep < pending.size(); ++ep)
            if (pending[ep]) queue_.wake_feed_waiters(ep);
        lock.lock();
    }
}

void Mirror::hand_off_wake(const std::vector<std::uint64_t>& last_sequence) {
    {
        std::lock_guard lock(wake_mutex_);
        if (wake_pending_.size() < last_sequence.size()) wake_pending_.resize(last_sequence.size(), 0);
        for (EntrypointId ep = 0; ep < last_sequence.size(); ++ep)
            if (last_sequence[ep]) wake_pending_[ep] = 1, wake_any_ = true;
    }
    wake_ready_.notify_one();
}

void Mirror::resume(pg::Connection& connection) {
    // A test stops the daemon here and PostgreSQL under it (start-up's
    // CREATE TEMP TABLE on a dead connection; tests/daemon/test_daemon_crash.cpp).
    shm::crash_point("mirror.before_temp_tables");
    // Session-local staging tables, emptied at every commit.
    connection.exec(
        "CREATE TEMP TABLE IF NOT EXISTS currant_stage (LIKE currant_jobs INCLUDING DEFAULTS) ON COMMIT DELETE ROWS");
    connection.exec("CREATE TEMP TABLE IF NOT EXISTS currant_results_stage (LIKE currant_results) ON COMMIT DELETE ROWS");
    connection.exec("CREATE TEMP TABLE IF NOT EXISTS currant_dead_stage (LIKE currant_dead) ON COMMIT DELETE ROWS");
    connection.exec("CREATE TEMP TABLE IF NOT EXISTS currant_dirty_stage (job_id bigint, host integer, incarnation "
                    "bigint, entrypoint text, status currant_status, priority integer, attempts integer, sequence "
                    "bigint, transitions integer, created timestamptz, traceback text) ON COMMIT DELETE ROWS");
    const pg::Result cursors = connection.exec(
        "SELECT entrypoint, sequence FROM currant_cursors WHERE host = $1 AND incarnation = $2",
        {std::to_string(identity_.host), std::to_string(std::int64_t(identity_.incarnation))});
    const std::uint32_t count = std::uint32_t(queue_.entrypoint_names().size());
    for (int row = 0; row < cursors.rows(); ++row) {
        const auto ep = std::uint32_t(cursors.integer(row, 0));
        const auto sequence = std::uint64_t(cursors.integer(row, 1));
        if (ep >= count) continue;
        if (queue_.feed_committed(ep) < sequence) queue_.commit_feed(ep, sequence);
    }
    // Sync enqueuers a previous daemon committed without waking (it died
    // between the commit and the hand-off, or its waker had not run yet):
    // woken now rather than at their sync_wait deadline.
    for (EntrypointId ep = 0; ep < count; ++ep) queue_.wake_feed_waiters(ep);
    // The highest id of this host that PostgreSQL may hold a currant_jobs
    // row for: the host record's max_job_id (raised in every batch's
    // transaction) and, to be safe against rows written by anything else,
    // the highest row of the host's id range (a primary key range probe).
    const std::uint64_t range = std::uint64_t(identity_.host) << 48;
    const pg::Result highest = connection.exec(
        "SELECT GREATEST((SELECT max_job_id FROM currant_hosts WHERE host = $1), "
        "(SELECT max(id) FROM currant_jobs WHERE id >= $2 AND id < $3), 0)",
        {std::to_string(identity_.host), std::to_string(std::int64_t(range)),
         std::to_string(std::int64_t(range + (std::uint64_t(1) << 48)))});
    rows_at_most_ = JobId(highest.integer(0, 0));
    configuration_recorded_.reset();
    dirty_may_repeat_ = true;
}

namespace {

// A PostgreSQL array literal of text elements (NULL for nullopt), each
// quoted: names may hold quotes, commas and backslashes.
std::string quoted_array_text(const std::vector<std::optional<std::string>>& items) {
    std::string out = "{";
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ',';
        if (!items[i]) {
            out += "NULL";
            continue;
        }
        out += '"';
        for (char c : *items[i]) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    return out + "}";
}

std::string exact_text(double value) {
    char buffer[64];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value); // shortest round trip
    return std::string(buffer, result.ptr);
}

std::optional<std::string> time_or_null(std::int64_t realtime_ns, bool present) {
    if (!present) return std::nullopt;
    return pg::timestamp_text(realtime_ns);
}

} // namespace

void Mirror::record_configuration(std::vector<pg::Connection::Statement>& statements,
                                  const QueueConfiguration& configuration) {
    const std::string host = std::to_string(identity_.host);
    if (!configuration.entrypoints.empty()) {
        std::vector<std::optional<std::string>> names, durabilities, leases, attempts, delays, max_delays, paused,
            concurrency, rates, bursts, retentions, max_dead;
        for (const EntrypointConfiguration& entry : configuration.entrypoints) {
            const EntrypointOptions& o = entry.options;
            names.push_back(entry.name);
            durabilities.push_back(std::string(durability_name(o.durability.value_or(Durability::memory))));
            leases.push_back(std::to_string(o.lease.count()));
            attempts.push_back(std::to_string(o.max_attempts));
            delays.push_back(std::to_string(o.retry_delay.count()));
            max_delays.push_back(std::to_string(o.max_retry_delay.count()));
            paused.push_back(entry.paused ? "true" : "false");
            concurrency.push_back(o.concurrency_limit ? std::optional(std::to_string(*o.concurrency_limit)) : std::nullopt);
            rates.push_back(o.rate_limit ? std::optional(exact_text(*o.rate_limit)) : std::nullopt);
            bursts.push_back(o.rate_limit ? std::optional(std::to_string(o.rate_burst.value_or(1))) : std::nullopt);
            retentions.push_back(std::to_string(o.result_retention.value_or(std::chrono::milliseconds(0)).count()));
            max_dead.push_back(o.max_dead ? std::optional(std::to_string(*o.max_dead)) : std::nullopt);
        }
        statements.push_back({
            "INSERT INTO currant_entrypoints (host, name, durability, lease_ms, max_attempts, retry_delay_ms, "
            "max_retry_delay_ms, paused, concurrency_limit, rate_limit, rate_burst, result_retention_ms, max_dead, updated) "
            "SELECT $1, n, d, l, a, r, m, p, c, rl, rb, rr, md, now() FROM unnest($2::text[], $3::text[], $4::bigint[], "
            "$5::integer[], $6::bigint[], $7::bigint[], $8::boolean[], $9::integer[], $10::float8[], $11::integer[], "
            "$12::bigint[], $13::integer[]) AS u(n, d, l, a, r, m, p, c, rl, rb, rr, md) "
            "ON CONFLICT (host, name) DO UPDATE SET durability = EXCLUDED.durability, lease_ms = EXCLUDED.lease_ms, "
            "max_attempts = EXCLUDED.max_attempts, retry_delay_ms = EXCLUDED.retry_delay_ms, max_retry_delay_ms = "
            "EXCLUDED.max_retry_delay_ms, paused = EXCLUDED.paused, concurrency_limit = EXCLUDED.concurrency_limit, "
            "rate_limit = EXCLUDED.rate_limit, rate_burst = EXCLUDED.rate_burst, result_retention_ms = "
            "EXCLUDED.result_retention_ms, max_dead = EXCLUDED.max_dead, updated = EXCLUDED.updated",
            {host, quoted_array_text(names), quoted_array_text(durabilities), quoted_array_text(leases),
             quoted_array_text(attempts), quoted_array_text(delays), quoted_array_text(max_delays),
             quoted_array_text(paused), quoted_array_text(concurrency), quoted_array_text(rates),
             quoted_array_text(bursts), quoted_array_text(retentions), quoted_array_text(max_dead)}});
    }
    std::vector<std::optional<std::string>> names, expressions, entrypoints, payloads, priorities, policies,
        catch_up, next_ticks, fired, last_ticks, last_jobs, created;
    for (const ScheduleInfo& schedule : configuration.schedules) {
        names.push_back(schedule.name);
        expressions.push_back(schedule.expression);
        entrypoints.push_back(schedule.entrypoint_name);
        payloads.push_back(pg::hex_bytes(schedule.payload.data(), schedule.payload.size()).substr(2));
        priorities.push_back(std::to_string(schedule.priority));
        policies.push_back(std::string(missed_ticks_name(schedule.missed)));
        catch_up.push_back(std::to_string(schedule.catch_up_max));
        next_ticks.push_back(time_or_null(schedule.next_tick_ns, schedule.next_tick_ns != INT64_MAX));
        fired.push_back(std::to_string(schedule.fired));
        last_ticks.push_back(time_or_null(schedule.last_tick_ns, schedule.last_tick_ns != 0));
        last_jobs.push_back(schedule.last_job_id ? std::optional(std::to_string(std::int64_t(schedule.last_job_id)))
                                                 : std::nullopt);
        created.push_back(pg::timestamp_text(schedule.created_at_ns));
    }
    // The segment's table is the truth: rows of removed schedules go.
    statements.push_back({"DELETE FROM currant_schedules WHERE host = $1 AND NOT (name = ANY($2::text[]))",
                          {host, quoted_array_text(names)}});
    if (!names.empty()) {
        statements.push_back({
            "INSERT INTO currant_schedules (host, name, expression, entrypoint, payload, priority, missed, "
            "catch_up_max, next_tick, fired, last_tick, last_job_id, created, updated) "
            "SELECT $1, n, e, ep, decode(pl, 'hex'), pr, mi, cm, nt, f, lt, lj, cr, now() FROM unnest($2::text[], "
            "$3::text[], $4::text[], $5::text[], $6::integer[], $7::text[], $8::integer[], $9::timestamptz[], "
            "$10::bigint[], $11::timestamptz[], $12::bigint[], $13::timestamptz[]) "
            "AS u(n, e, ep, pl, pr, mi, cm, nt, f, lt, lj, cr) "
            "ON CONFLICT (host, name) DO UPDATE SET expression = EXCLUDED.expression, entrypoint = "
            "EXCLUDED.entrypoint, payload = EXCLUDED.payload, priority = EXCLUDED.priority, missed = EXCLUDED.missed, "
            "catch_up_max = EXCLUDED.catch_up_max, next_tick = EXCLUDED.next_tick, fired = EXCLUDED.fired, "
            "last_tick = EXCLUDED.last_tick, last_job_id = EXCLUDED.last_job_id, created = EXCLUDED.created, "
            "updated = EXCLUDED.updated",
            {host, quoted_array_text(names), quoted_array_text(expressions), quoted_array_text(entrypoints),
             quoted_array_text(payloads), quoted_array_text(priorities), quoted_array_text(policies),
             quoted_array_text(catch_up), quoted_array_text(next_ticks), quoted_array_text(fired),
             quoted_array_text(last_ticks), quoted_array_text(last_jobs), quoted_array_text(created)}});
    }
}

std::size_t Mirror::flush(pg::Connection& connection) {
    const std::vector<std::string> names = queue_.entrypoint_names();
    folded_.clear();
    order_.clear();
    purges_.clear();

    // Dirty jobs first: every logged transition of a dirty job precedes its
    // mark, so the feed read after the scan holds all of them, and the
    // dirty state (newer) wins below.
    std::vector<JobSnapshot> dirty;
    queue_.collect_dirty(dirty);

    std::vector<std::uint64_t> last_sequence(names.size(), 0);
    std::size_t transitions = 0;
    for (EntrypointId ep = 0; ep < names.size(); ++ep) {
        std::uint64_t from = queue_.feed_committed(ep) + 1;
        for (;;) {
            const std::size_t room = dirty.empty() ? batch_limit_ - std::min(batch_limit_, transitions)
                                                   : transitions_.size();
            if (room == 0) break;
            const std::size_t got = queue_.read_feed(ep, from, std::span(transitions_).first(std::min(room, transitions_.size())));
            if (got == 0) break;
            for (std::size_t i = 0; i < got; ++i) {
                const Transition& t = transitions_[i];
                if (t.purged) {
                    purges_.push_back(Purge{t.id, ep, t.attempts, t.sequence, t.at_ns, false, {}, 0});
                    continue;
                }
                auto [it, inserted] = folded_.try_emplace(t.id);
                if (inserted) order_.push_back(t.id);
                Folded& f = it->second;
                f.entrypoint = ep;
                f.status = t.status;
                f.slot = t.slot;
                f.attempts = t.attempts;
                f.sequence = t.sequence;
                f.at_ns = t.at_ns;
                f.epoch = t.epoch;
                ++f.transitions;
            }
            transitions += got;
            from = transitions_[got - 1].sequence + 1;
            last_sequence[ep] = transitions_[got - 1].sequence;
            if (dirty.empty() && transitions >= batch_limit_) break;
        }
    }
    const std::int64_t now = shm::realtime_ns();
    for (const JobSnapshot& job : dirty) {
        if (job.purged) { // a purge that found the log full (or its job dirty already)
            purges_.push_back(Purge{job.id, job.entrypoint, job.attempts, 0, now, true, job.error, job.died_at_ns});
            continue;
        }
        auto [it, inserted] = folded_.try_emplace(job.id);
        if (inserted) order_.push_back(job.id);
        Folded& f = it->second;
        f.entrypoint = job.entrypoint;
        f.status = job.status;
        f.slot = job.slot;
        f.attempts = job.attempts;
        f.at_ns = now;
        f.epoch = job.epoch;
        f.dirty = true;
    }
    // After the feed (acquire loads of the log heads): a tick bumps the
    // generation before its job's record is published, so a batch holding
    // a tick's job records the schedule as of after that tick.
    std::optional<QueueConfiguration> configuration;
    if (configuration_recorded_ != queue_.configuration_generation()) configuration = queue_.configuration();
    if (folded_.empty() && purges_.empty() && !configuration) return 0;

    // Rows: COPY text format.
    const RowSource source{std::to_string(identity_.host), std::to_string(std::int64_t(identity_.incarnation))};
    std::string log_rows, dirty_log_rows, upsert_rows, new_rows, result_rows, dead_rows;
    // Each entrypoint's result retention (docs/results.md), read when its
    // first finished job of the batch needs it (-1: not read yet).
    std::vector<std::int64_t> retention_ms(names.size(), -1);
    std::vector<std::string> finished_ids;
    JobId max_local_id = 0;
    std::uint64_t log_row_count = 0;
    JobSnapshot job;
    for (const JobId id : order_) {
        const Folded& f = folded_[id];
        const bool have_content = queue_.read_job(f.slot, id, job);
        const std::string& entrypoint = names[f.entrypoint];
        if ((id >> 48) == identity_.host) max_local_id = std::max(max_local_id, id);

        // The job's last error (docs/dead-jobs.md): its text is tagged with
        // the state word epoch it was written for, so it is this status's
        // own (a death's, or a retry's) only if the slot is still at the
        // folded transition's epoch.
        // A death purged since (in this batch) still has its text, which
        // read_job gives with the purge one epoch later.
        const bool purged_death =
            have_content && job.purged && f.status == JobStatus::exception && job.epoch == f.epoch + 1;
        const bool own_error =
            have_content && ((job.epoch == f.epoch && job.status == f.status) || purged_death) && !job.error.empty();
        const std::optional<std::string_view> traceback =
            own_error ? std::optional<std::string_view>(job.error) : std::nullopt;
        append_log_row(f.dirty && dirty_may_repeat_ ? dirty_log_rows : log_rows, source,
                       LogRow{id, entrypoint, job_status_name(f.status), have_content ? job.priority : 0, f.attempts,
                              f.sequence, f.transitions, f.at_ns, traceback});
        ++log_row_count;

        if (is_final(f.status)) {
            finished_ids.push_back(std::to_string(std::int64_t(id)));
            // currant_dead (docs/dead-jobs.md): a death the segment keeps,
            // with what a rebuild needs to keep it again. Only while the slot
            // is still at this death's epoch (a job requeued since has its
            // newer state in a later row, one purged or evicted is not kept).
            if (f.status == JobStatus::exception && have_content && job.epoch == f.epoch &&
                job.status == f.status && job.kept_dead) {
                pg::CopyRow row(dead_rows);
                row.number(std::int64_t(id)).formatted(source.host).formatted(source.incarnation).text(entrypoint);
                row.number(job.priority).bytea(job.payload.data(), job.payload.size());
                row.number(f.attempts).number(job.max_attempts).timestamp(job.enqueued_at_ns);
                row.timestamp(job.died_at_ns > 0 ? job.died_at_ns : f.at_ns);
                if (job.error.empty()) row.null();
                else row.text(valid_utf8_text(job.error));
                row.text_or_null(job.dedupe_key);
                row.end();
            }
            // currant_results (docs/results.md), for an entrypoint that keeps
            // results: the result and last error are this status's own only
            // while the slot is still at the folded transition's epoch (like
            // the traceback above).
            const bool own = (have_content && job.epoch == f.epoch && job.status == f.status) || purged_death;
            if (retention_ms[f.entrypoint] < 0)
                retention_ms[f.entrypoint] = queue_.entrypoint_options(f.entrypoint)
                                                 .result_retention.value_or(std::chrono::milliseconds(0))
                                                 .count();
            const std::int64_t keep_ms = retention_ms[f.entrypoint];
            if (keep_ms > 0) {
                pg::CopyRow row(result_rows);
                row.number(std::int64_t(id)).formatted(source.host).formatted(source.incarnation).text(entrypoint);
                row.formatted(job_status_name(f.status)).number(f.attempts);
                if (own && job.result) row.bytea(job.result->data(), job.result->size());
                else row.null();
                if (own && !job.error.empty()) row.text(valid_utf8_text(job.error));
                else row.null();
                row.timestamp(f.at_ns).timestamp(f.at_ns + keep_ms * 1'000'000);
                // The job's payload (schema step 7), for a rebuild: fixed
                // while the slot holds this job id, whatever its epoch.
                if (have_content) row.bytea(job.payload.data(), job.payload.size());
                else row.null();
                row.end();
            }
            continue;
        }
        if (!have_content) continue; // the slot moved on: a later batch carries the newer state
        // A job of this host above every id PostgreSQL may hold a row for
        // has none yet: its row is appended by a plain COPY. Every other
        // live job is upserted (a row from an earlier batch, a rebuild's
        // restore, a relay claim).
        std::string& live_rows =
            !upsert_all_ && (id >> 48) == identity_.host && id > rows_at_most_ ? new_rows : upsert_rows;
        pg::CopyRow row(live_rows);
        row.number(std::int64_t(id)).formatted(source.host).text(entrypoint).number(job.priority);
        row.formatted(job_status_name(f.status)).bytea(job.payload.data(), job.payload.size());
        row.number(f.attempts).number(job.max_attempts).timestamp(job.enqueued_at_ns).timestamp(f.at_ns);
        row.timestamp(job.execute_after_ns > 0 ? job.execute_after_ns : job.enqueued_at_ns);
        if (f.status == JobStatus::picked) row.timestamp(f.at_ns);
        else row.null();
        row.formatted(source.incarnation);
        row.text_or_null(job.dedupe_key); // restored by a rebuild
        // A waiting job's dependencies, for a rebuild (docs/job-dependencies.md).
        if (job.depends_on.empty()) {
            row.null();
        } else {
            std::vector<std::string> ids;
            for (const JobId dependency : job.depends_on) ids.push_back(std::to_string(std::int64_t(dependency)));
            row.formatted(array_text(ids));
        }
        row.end();
    }

    // Purges: a `deleted` row each, and their currant_dead rows go.
    std::vector<std::string> purged_ids;
    for (const Purge& p : purges_) {
        if ((p.id >> 48) == identity_.host) max_local_id = std::max(max_local_id, p.id);
        purged_ids.push_back(std::to_string(std::int64_t(p.id)));
        // A dirty purge may fold a death the log never carried (it found the
        // log full too): its `exception` row, through the stage, whose
        // NOT EXISTS skips it if the death was mirrored already; the
        // `deleted` row follows it there.
        if (p.dirty) {
            append_log_row(dirty_log_rows, source,
                           LogRow{p.id, names[p.entrypoint], "exception", 0, p.attempts, 0, 0,
                                  p.died_at_ns > 0 ? p.died_at_ns : p.at_ns,
                                  p.death_error.empty() ? std::nullopt
                                                        : std::optional<std::string_view>(p.death_error)});
            ++log_row_count;
        }
        append_log_row(p.dirty ? dirty_log_rows : log_rows, source,
                       LogRow{p.id, names[p.entrypoint], "deleted", 0, p.attempts, p.sequence, p.dirty ? 0u : 1u,
                              p.at_ns, std::nullopt});
        ++log_row_count;
    }

    std::vector<std::string> cursor_entrypoints, cursor_sequences;
    std::vector<std::optional<std::string>> cursor_names;
    for (EntrypointId ep = 0; ep < names.size(); ++ep) {
        if (last_sequence[ep] == 0) continue;
        cursor_entrypoints.push_back(std::to_string(ep));
        cursor_names.push_back(names[ep]);
        cursor_sequences.push_back(std::to_string(last_sequence[ep]));
    }

    // The transaction in two messages (docs/daemon.md, "Round trips"):
    // BEGIN and every COPY as one simple query (a COPY's data goes out as
    // soon as the server asks for it: n COPYs, n + 1 round trips), then
    // every other statement up to and including COMMIT in one pipeline (one
    // round trip). Nothing in the pipeline depends on another statement's
    // result; the first to fail makes the server skip the rest, COMMIT
    // included, and the catch below rolls back.
    std::uint64_t statements = 0;
    std::vector<pg::Connection::Copy> copies;
    std::vector<pg::Connection::Statement> tail;
    const char* log_columns =
        "(job_id, host, incarnation, entrypoint, status, priority, attempts, sequence, transitions, created, "
        "traceback)";
    if (!log_rows.empty()) copies.push_back({std::string("COPY currant_log ") + log_columns + " FROM STDIN", log_rows});
    if (!dirty_log_rows.empty()) {
        // Dirty jobs carry no sequence: after a crash between a commit
        // and settle_dirty they are collected again, so in the first
        // batch after resume() skip a job whose state is logged already.
        copies.push_back({std::string("COPY currant_dirty_stage ") + log_columns + " FROM STDIN", dirty_log_rows});
        tail.push_back({std::string("INSERT INTO currant_log ") + log_columns + " SELECT " +
                            "d.job_id, d.host, d.incarnation, d.entrypoint, d.status, d.priority, d.attempts, "
                            "d.sequence, d.transitions, d.created, d.traceback FROM currant_dirty_stage d WHERE NOT EXISTS "
                            "(SELECT 1 FROM currant_log l WHERE l.job_id = d.job_id AND l.status = d.status AND "
                            "l.attempts = d.attempts AND l.incarnation = d.incarnation)",
                        {}});
    }
    const char* job_columns = "(id, host, entrypoint, priority, status, payload, attempts, max_attempts, created, "
                              "updated, execute_after, heartbeat, incarnation, dedupe_key, depends_on)";
    if (!new_rows.empty()) copies.push_back({std::string("COPY currant_jobs ") + job_columns + " FROM STDIN", new_rows});
    if (!upsert_rows.empty()) {
        copies.push_back({"COPY currant_stage (id, host, entrypoint, priority, status, payload, attempts, "
                          "max_attempts, created, updated, execute_after, heartbeat, incarnation, dedupe_key, "
                          "depends_on) FROM STDIN",
                          upsert_rows});
        tail.push_back(
            {"INSERT INTO currant_jobs (id, host, entrypoint, priority, status, payload, attempts, max_attempts, "
             "created, updated, execute_after, heartbeat, incarnation, dedupe_key, depends_on) SELECT id, host, "
             "entrypoint, priority, status, payload, attempts, max_attempts, created, updated, execute_after, "
             "heartbeat, incarnation, dedupe_key, depends_on FROM currant_stage ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, "
             "attempts = EXCLUDED.attempts, updated = EXCLUDED.updated, execute_after = EXCLUDED.execute_after, "
             "heartbeat = EXCLUDED.heartbeat, incarnation = EXCLUDED.incarnation",
             {}});
    }
    if (!finished_ids.empty())
        tail.push_back({"DELETE FROM currant_jobs WHERE id = ANY($1::bigint[])", {array_text(finished_ids)}});
    if (!cursor_entrypoints.empty())
        tail.push_back({"INSERT INTO currant_cursors (host, incarnation, entrypoint, name, sequence) "
                        "SELECT $1, $2, e, n, s FROM unnest($3::integer[], $4::text[], $5::bigint[]) AS u(e, n, s) "
                        "ON CONFLICT (host, incarnation, entrypoint) DO UPDATE SET sequence = EXCLUDED.sequence",
                        {source.host, source.incarnation, array_text(cursor_entrypoints), quoted_array_text(cursor_names),
                         array_text(cursor_sequences)}});
    if (max_local_id)
        tail.push_back({"UPDATE currant_hosts SET max_job_id = GREATEST(max_job_id, $2), updated = now() "
                        "WHERE host = $1",
                        {source.host, std::to_string(std::int64_t(max_local_id))}});
    if (now >= next_results_expiry_ns_) // rows past their retention, at most every results_expiry_interval_ns
        tail.push_back({"DELETE FROM currant_results WHERE host = $1 AND expires < now()", {source.host}});
    if (!result_rows.empty()) {
        // A job requeued after its end (a dead job) and finished again
        // replaces its row.
        copies.push_back({"COPY currant_results_stage (job_id, host, incarnation, entrypoint, status, attempts, "
                          "result, traceback, finished, expires, payload) FROM STDIN",
                          result_rows});
        tail.push_back(
            {"INSERT INTO currant_results SELECT * FROM currant_results_stage ON CONFLICT (job_id) DO UPDATE SET "
             "host = EXCLUDED.host, incarnation = EXCLUDED.incarnation, entrypoint = EXCLUDED.entrypoint, status = "
             "EXCLUDED.status, attempts = EXCLUDED.attempts, result = EXCLUDED.result, traceback = "
             "EXCLUDED.traceback, finished = EXCLUDED.finished, expires = EXCLUDED.expires, payload = "
             "EXCLUDED.payload",
             {}});
    }
    if (!dead_rows.empty()) {
        // A job that died again after a requeue replaces its row.
        copies.push_back({"COPY currant_dead_stage (job_id, host, incarnation, entrypoint, priority, payload, "
                          "attempts, max_attempts, created, died, traceback, dedupe_key) FROM STDIN",
                          dead_rows});
        tail.push_back(
            {"INSERT INTO currant_dead SELECT * FROM currant_dead_stage ON CONFLICT (job_id) DO UPDATE SET "
             "host = EXCLUDED.host, incarnation = EXCLUDED.incarnation, entrypoint = EXCLUDED.entrypoint, "
             "priority = EXCLUDED.priority, payload = EXCLUDED.payload, attempts = EXCLUDED.attempts, "
             "max_attempts = EXCLUDED.max_attempts, created = EXCLUDED.created, died = EXCLUDED.died, "
             "traceback = EXCLUDED.traceback, dedupe_key = EXCLUDED.dedupe_key",
             {}});
    }
    // After the upsert above: a death and its purge in one batch leave no
    // row (docs/dead-jobs.md, "Purges").
    if (!purged_ids.empty())
        tail.push_back({"DELETE FROM currant_dead WHERE job_id = ANY($1::bigint[])", {array_text(purged_ids)}});
    // One NOTIFY per batch (payload: the host id): remote waiters then read
    // currant_results (docs/results.md).
    if (!finished_ids.empty())
        tail.push_back({"SELECT pg_notify($1, $2)", {std::string(schema::finished_channel), source.host}});
    if (configuration) record_configuration(tail, *configuration);
    try {
        if (copies.empty()) tail.insert(tail.begin(), pg::Connection::Statement{"BEGIN", {}});
        else connection.copy_in("BEGIN", copies);
        statements += copies.empty() ? 0 : 1 + copies.size();
        // Before the pipeline that ends in COMMIT: a daemon killed here
        // leaves an open transaction that PostgreSQL rolls back.
        shm::crash_point("mirror.before_database_commit");
        tail.push_back({"COMMIT", {}});
        connection.pipeline(tail);
        statements += tail.size();
    } catch (const pg::DatabaseError&) {
        // Retried from the segment: with every live job upserted, so that a
        // row this mirror did not expect (a duplicate key) cannot stall it.
        upsert_all_ = true;
        try {
            if (connection.ok()) connection.exec("ROLLBACK");
        } catch (...) {
        }
        throw;
    }

    // Committed in PostgreSQL: now in the segment (recycles finished slots,
    // wakes sync enqueuers). A crash before this is repaired by resume().
    shm::crash_point("mirror.after_database_commit");
    for (EntrypointId ep = 0; ep < names.size(); ++ep)
        if (last_sequence[ep]) queue_.commit_feed(ep, last_sequence[ep], false);
    // Cursors moved, sync enqueuers not woken yet: a daemon killed here
    // leaves them asleep until the restarted mirror's resume() wakes them.
    if (std::any_of(last_sequence.begin(), last_sequence.end(), [](std::uint64_t s) { return s != 0; }))
        shm::crash_point("mirror.before_wake");
    hand_off_wake(last_sequence);
    if (!dirty.empty()) queue_.settle_dirty(dirty);
    dirty_may_repeat_ = false;
    upsert_all_ = false;
    rows_at_most_ = std::max(rows_at_most_, max_local_id);
    if (configuration) configuration_recorded_ = configuration->generation;
    if (now >= next_results_expiry_ns_) next_results_expiry_ns_ = now + results_expiry_interval_ns;

    counters_.transitions += transitions;
    counters_.jobs += log_row_count;
    counters_.statements += statements;
    ++counters_.batches;
    return transitions + dirty.size();
}

} // namespace currant::daemon
