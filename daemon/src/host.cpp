#include "host.hpp"

#include <algorithm>

#include "currant/shm/crash_point.hpp"
#include "log.hpp"
#include "schema.hpp"

namespace currant::daemon {

namespace {

constexpr std::uint64_t counter_mask = (std::uint64_t(1) << 48) - 1;

struct HostRecord {
    std::uint32_t host = 0;
    std::optional<std::uint64_t> incarnation;
    QueueOptions options;
    std::uint64_t max_job_id = 0;
};

std::optional<HostRecord> find_host(pg::Connection& connection, const std::string& column, const std::string& value) {
    const pg::Result rows = connection.exec(
        "SELECT host, incarnation, slots, payload_bytes, max_entrypoints, max_participants, log_capacity, mode, "
        "max_job_id, segment, result_bytes FROM currant_hosts WHERE " + column + " = $1",
        {value});
    if (rows.rows() == 0) return std::nullopt;
    HostRecord record;
    record.host = std::uint32_t(rows.integer(0, 0));
    if (!rows.is_null(0, 1)) record.incarnation = std::uint64_t(rows.integer(0, 1));
    record.options.slots = std::uint32_t(rows.integer(0, 2));
    record.options.payload_bytes = std::uint32_t(rows.integer(0, 3));
    record.options.max_entrypoints = std::uint32_t(rows.integer(0, 4));
    record.options.max_participants = std::uint32_t(rows.integer(0, 5));
    record.options.log_capacity = std::uint32_t(rows.integer(0, 6));
    record.options.mode = unsigned(rows.integer(0, 7));
    record.options.host_id = std::uint16_t(record.host);
    record.options.name = std::string(rows.text(0, 9));
    record.max_job_id = std::uint64_t(rows.integer(0, 8));
    if (!rows.is_null(0, 10)) record.options.result_bytes = std::uint32_t(rows.integer(0, 10));
    return record;
}

void save_host(pg::Connection& connection, const Queue& queue) {
    const QueueInfo info = queue.info();
    connection.exec(
        "INSERT INTO currant_hosts (host, incarnation, segment, slots, payload_bytes, max_entrypoints, "
        "max_participants, log_capacity, mode, result_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
        "ON CONFLICT (host) DO UPDATE SET incarnation = EXCLUDED.incarnation, segment = EXCLUDED.segment, "
        "result_bytes = EXCLUDED.result_bytes, "
        "slots = EXCLUDED.slots, payload_bytes = EXCLUDED.payload_bytes, max_entrypoints = "
        "EXCLUDED.max_entrypoints, max_participants = EXCLUDED.max_participants, log_capacity = "
        "EXCLUDED.log_capacity, mode = EXCLUDED.mode, updated = now()",
        {std::to_string(info.host_id), std::to_string(std::int64_t(info.incarnation)), info.name,
         std::to_string(info.slots), std::to_string(info.payload_bytes), std::to_string(info.max_entrypoints),
         std::to_string(info.max_participants), std::to_string(info.log_capacity), std::to_string(info.mode & 07777),
         std::to_string(info.result_bytes)});
    // Cursors of earlier incarnations no longer mean anything.
    connection.exec("DELETE FROM currant_cursors WHERE host = $1 AND incarnation <> $2",
                    {std::to_string(info.host_id), std::to_string(std::int64_t(info.incarnation))});
}

void check_host_id(std::uint32_t host) {
    if (host > schema::max_segment_host)
        throw Error(Errc::invalid_argument, "host id " + std::to_string(host) + " is reserved: segment hosts use 0.." +
                                                std::to_string(schema::max_segment_host) +
                                                " (ids of the last range are for jobs inserted by SQL)");
}

bool holds_nothing(const Queue& queue) {
    for (const EntrypointStats& stats : queue.stats())
        if (stats.queued || stats.delayed || stats.picked || stats.log_pending || stats.dirty_slots) return false;
    return true;
}

// Entrypoints with their options, pause and limits as last recorded.
void declare_recorded_entrypoints(pg::Connection& connection, Queue& queue, std::uint32_t host) {
    const pg::Result rows = connection.exec(
        "SELECT name, durability, lease_ms, max_attempts, retry_delay_ms, max_retry_delay_ms, paused, "
        "concurrency_limit, rate_limit, rate_burst, result_retention_ms, max_dead FROM currant_entrypoints WHERE host = $1 "
        "ORDER BY name",
        {std::to_string(host)});
    for (int row = 0; row < rows.rows(); ++row) {
        EntrypointOptions options;
        options.durability = parse_durability(rows.text(row, 1));
        options.lease = std::chrono::milliseconds(rows.integer(row, 2));
        options.max_attempts = std::uint32_t(rows.integer(row, 3));
        options.retry_delay = std::chrono::milliseconds(rows.integer(row, 4));
        options.max_retry_delay = std::chrono::milliseconds(rows.integer(row, 5));
        if (!rows.is_null(row, 7)) options.concurrency_limit = rows.integer(row, 7);
        if (!rows.is_null(row, 8)) {
            options.rate_limit = std::stod(std::string(rows.text(row, 8)));
            options.rate_burst = rows.is_null(row, 9) ? 1 : rows.integer(row, 9);
        }
        options.result_retention = std::chrono::milliseconds(rows.integer(row, 10));
        if (!rows.is_null(row, 11)) options.max_dead = std::uint32_t(rows.integer(row, 11));
        const EntrypointId ep = queue.declare_entrypoint(rows.text(row, 0), options);
        if (rows.text(row, 6) == "t") queue.pause(ep);
    }
}

// Schedules with their next tick as last recorded. The mirror records a
// schedule no later than the batch holding its tick's job, so a tick whose
// job PostgreSQL has is recorded as fired: it does not fire again. Ticks
// that fell due while the host was down (the recorded next tick is in the
// past) are missed ticks, and each schedule's policy handles them when a
// consumer first dequeues: skip fires the latest one, catch_up fires up to
// catch_up_max of them. A schedule already in the segment (a rebuild that
// died half-way) is kept.
std::size_t restore_recorded_schedules(pg::Connection& connection, Queue& queue, std::uint32_t host) {
    const pg::Result rows = connection.exec(
        "SELECT name, expression, entrypoint, payload, priority, missed, catch_up_max, "
        "(extract(epoch FROM next_tick) * 1000000)::bigint, fired, (extract(epoch FROM last_tick) * 1000000)::bigint, "
        "last_job_id, (extract(epoch FROM created) * 1000000)::bigint FROM currant_schedules WHERE host = $1 "
        "ORDER BY name",
        {std::to_string(host)});
    std::size_t restored = 0;
    for (int row = 0; row < rows.rows(); ++row) {
        const std::string name(rows.text(row, 0));
        try {
            ScheduleOptions options;
            options.name = name;
            options.expression = std::string(rows.text(row, 1));
            const std::string entrypoint(rows.text(row, 2));
            try {
                options.entrypoint = queue.entrypoint(entrypoint);
            } catch (const Error&) {
                EntrypointOptions declared;
                declared.durability = Durability::async;
                options.entrypoint = queue.declare_entrypoint(entrypoint, declared);
            }
            const std::string payload = rows.bytes(row, 3);
            const auto* bytes = reinterpret_cast<const std::byte*>(payload.data());
            options.payload.assign(bytes, bytes + payload.size());
            options.priority = std::int32_t(rows.integer(row, 4));
            options.missed = parse_missed_ticks(rows.text(row, 5));
            options.catch_up_max = std::uint32_t(rows.integer(row, 6));
            ScheduleProgress progress;
            progress.next_tick_ns = rows.is_null(row, 7) ? INT64_MAX : rows.integer(row, 7) * 1000;
            progress.fired = std::uint64_t(rows.integer(row, 8));
            progress.last_tick_ns = rows.is_null(row, 9) ? 0 : rows.integer(row, 9) * 1000;
            progress.last_job_id = rows.is_null(row, 10) ? 0 : JobId(rows.integer(row, 10));
            progress.created_at_ns = rows.integer(row, 11) * 1000;
            queue.restore_schedule(options, progress);
            ++restored;
        } catch (const Error& error) {
            if (error.code() == Errc::already_exists) continue;
            // A row the segment refuses (edited by hand, or a smaller
            // segment): the rest of the rebuild goes on.
            log_line("rebuild: schedule '" + name + "' not restored: " + error.what());
        }
    }
    return restored;
}

// Puts back every job PostgreSQL holds for this host as queued or picked
// (picked ones count their attempt; past their limit they end `exception`).
// Idempotent: a job already in the segment is skipped, so a rebuild that
// died half-way is completed by the next start.
void restore_jobs(pg::Connection& connection, Queue& queue, std::uint32_t host, Attached& attached) {
    std::int64_t after = -1;
    const std::string host_text = std::to_string(host);
    for (;;) {
        const pg::Result rows = connection.exec(
            "SELECT id, entrypoint, priority, status, payload, attempts, max_attempts, "
            "(extract(epoch FROM execute_after) * 1000000)::bigint, (extract(epoch FROM created) * 1000000)::bigint, "
            "dedupe_key FROM currant_jobs WHERE host = $1 AND incarnation IS NOT NULL AND status IN ('queued', 'picked') "
            "AND id > $2 ORDER BY id LIMIT 1000",
            {host_text, std::to_string(after)});
        if (rows.rows() == 0) return;
        std::vector<JobId> ids;
        for (int row = 0; row < rows.rows(); ++row) ids.push_back(JobId(rows.integer(row, 0)));
        const std::vector<JobState> present = queue.status(ids);
        std::vector<std::string> ended;
        std::vector<std::pair<std::string, std::string>> duplicates; // id, reason
        for (int row = 0; row < rows.rows(); ++row) {
            after = rows.integer(row, 0);
            if (present[std::size_t(row)].status != JobStatus::unknown && !present[std::size_t(row)].slot_reused) continue;
            const std::string entrypoint_name(rows.text(row, 1));
            EntrypointId ep;
            try {
                ep = queue.entrypoint(entrypoint_name);
            } catch (const Error&) {
                EntrypointOptions options;
                options.durability = Durability::async;
                ep = queue.declare_entrypoint(entrypoint_name, options);
            }
            const std::string payload = rows.bytes(row, 4);
            RestoredJob job;
            job.id = JobId(rows.integer(row, 0));
            job.payload = std::as_bytes(std::span(payload.data(), payload.size()));
            job.priority = std::int32_t(rows.integer(row, 2));
            job.attempts = std::uint32_t(rows.integer(row, 5));
            job.max_attempts = std::uint32_t(rows.integer(row, 6));
            job.execute_after_ns = std::max<std::int64_t>(0, rows.integer(row, 7) * 1000);
            job.enqueued_at_ns = rows.integer(row, 8) * 1000;
            const std::uint32_t limit = job.max_attempts ? job.max_attempts : queue.entrypoint_options(ep).max_attempts;
            if (rows.text(row, 3) == "picked" && job.attempts >= limit) {
                ended.push_back(std::to_string(std::int64_t(job.id)));
                continue;
            }
            EnqueueOptions options;
            options.arena_wait = std::chrono::milliseconds(10'000);
            if (!rows.is_null(row, 9)) options.dedupe_key = std::string(rows.text(row, 9)); // docs/dedupe.md
            const JobId holder = queue.restore(ep, job, options);
            if (queue.last_enqueue_skipped()) {
                // Two rows with one key (only SQL written around the relay
                // does that): the second ends like a skipped remote insert.
                duplicates.push_back({std::to_string(std::int64_t(job.id)),
                                      "skipped at the rebuild: dedupe key '" + *options.dedupe_key +
                                          "' is held by job " + std::to_string(holder)});
                continue;
            }
            ++attached.restored;
        }
        for (const auto& [id, reason] : duplicates) {
            connection.exec("BEGIN");
            connection.exec(
                "WITH gone AS (DELETE FROM currant_jobs WHERE id = $1 RETURNING *) "
                "INSERT INTO currant_log (job_id, host, incarnation, entrypoint, status, priority, attempts, sequence, "
                "transitions, created, traceback) SELECT id, host, COALESCE(incarnation, 0), entrypoint, 'canceled', "
                "priority, attempts, 0, 0, now(), $2 FROM gone",
                {id, reason});
            connection.exec("COMMIT");
        }
        if (!ended.empty()) {
            // Their pick was lost with the segment and it was their last attempt.
            std::string array = "{";
            for (std::size_t i = 0; i < ended.size(); ++i) array += (i ? "," : "") + ended[i];
            array += "}";
            connection.exec("BEGIN");
            connection.exec(
                "INSERT INTO currant_log (job_id, host, incarnation, entrypoint, status, priority, attempts, sequence, "
                "transitions, created, traceback) SELECT id, host, COALESCE(incarnation, 0), entrypoint, 'exception', "
                "priority, attempts, 0, 0, now(), 'picked when the segment was lost, on its last attempt' "
                "FROM currant_jobs WHERE id = ANY($1::bigint[])",
                {array});
            connection.exec("DELETE FROM currant_jobs WHERE id = ANY($1::bigint[])", {array});
            connection.exec("COMMIT");
            attached.ended += ended.size();
        }
    }
}

EntrypointId entrypoint_for_restore(Queue& queue, const std::string& name) {
    try {
        return queue.entrypoint(name);
    } catch (const Error&) {
        EntrypointOptions options;
        options.durability = Durability::async;
        return queue.declare_entrypoint(name, options);
    }
}

// Puts back the dead jobs the segment kept (docs/dead-jobs.md): rows of
// jobs requeued since (queued or picked again, or ended otherwise later)
// are deleted first; of the rest, each entrypoint's newest max_dead come
// back on its dead list, oldest first, with their last error. Idempotent:
// ids already in the segment are skipped, so an interrupted rebuild is
// completed by the next start without doubling or reordering (the ones it
// restored are the oldest of the same selection).
void restore_dead_jobs(pg::Connection& connection, Queue& queue, std::uint32_t host, Attached& attached) {
    const std::string host_text = std::to_string(host);
    connection.exec(
        "DELETE FROM currant_dead d WHERE d.host = $1 AND (EXISTS (SELECT 1 FROM currant_jobs j WHERE j.id = "
        "d.job_id) OR EXISTS (SELECT 1 FROM currant_log l WHERE l.job_id = d.job_id AND l.created > d.died AND "
        "l.status <> 'exception'))",
        {host_text});
    const pg::Result names =
        connection.exec("SELECT DISTINCT entrypoint FROM currant_dead WHERE host = $1 ORDER BY 1", {host_text});
    for (int n = 0; n < names.rows(); ++n) {
        const std::string name(names.text(n, 0));
        const EntrypointId ep = entrypoint_for_restore(queue, name);
        const std::uint32_t cap = queue.entrypoint_options(ep).max_dead.value_or(0);
        const pg::Result rows = connection.exec(
            "SELECT job_id, priority, payload, attempts, max_attempts, (extract(epoch FROM created) * 1000000)::bigint, "
            "(extract(epoch FROM died) * 1000000)::bigint, traceback, dedupe_key FROM currant_dead "
            "WHERE host = $1 AND entrypoint = $2 ORDER BY died DESC, job_id DESC LIMIT $3",
            {host_text, name, std::to_string(cap)});
        std::vector<JobId> ids;
        std::string kept_array = "{";
        for (int row = 0; row < rows.rows(); ++row) {
            ids.push_back(JobId(rows.integer(row, 0)));
            kept_array += (row ? "," : "") + std::to_string(rows.integer(row, 0));
        }
        kept_array += "}";
        // Older deaths were evicted by the cap (or will never be kept
        // again): their rows go. After the selection above, so a rebuild
        // killed here or later selects the same rows at the next start.
        connection.exec("DELETE FROM currant_dead WHERE host = $1 AND entrypoint = $2 AND NOT (job_id = ANY($3::bigint[]))",
                        {host_text, name, kept_array});
        const std::vector<JobState> present = queue.status(ids);
        for (int row = rows.rows() - 1; row >= 0; --row) { // oldest first: the dead list's order
            if (present[std::size_t(row)].status != JobStatus::unknown && !present[std::size_t(row)].slot_reused) continue;
            const std::string payload = rows.bytes(row, 2);
            const std::string error = rows.is_null(row, 7) ? std::string() : std::string(rows.text(row, 7));
            const std::string key = rows.is_null(row, 8) ? std::string() : std::string(rows.text(row, 8));
            RestoredOutcome job;
            job.id = JobId(rows.integer(row, 0));
            job.status = JobStatus::exception;
            job.payload = std::as_bytes(std::span(payload.data(), payload.size()));
            job.priority = std::int32_t(rows.integer(row, 1));
            job.attempts = std::uint32_t(rows.integer(row, 3));
            job.max_attempts = std::uint32_t(rows.integer(row, 4));
            job.enqueued_at_ns = rows.integer(row, 5) * 1000;
            job.finished_at_ns = rows.integer(row, 6) * 1000;
            job.error = error;
            if (!rows.is_null(row, 8)) job.dedupe_key = key;
            try {
                queue.restore_outcome(ep, job);
                ++attached.dead;
                shm::crash_point("rebuild.outcome_restored");
            } catch (const Error& error_) {
                // A row the segment refuses (a smaller segment, edited by
                // hand): the rest of the rebuild goes on.
                log_line("rebuild: dead job " + std::to_string(job.id) + " not restored: " + error_.what());
            }
        }
    }
}

// Puts back the finished jobs whose result retention has not passed
// (currant_results rows not expired; docs/results.md), as kept finished
// jobs with their status and result. Dead ones come from currant_dead.
// Idempotent like the others: ids already in the segment are skipped.
void restore_kept_results(pg::Connection& connection, Queue& queue, std::uint32_t host, Attached& attached) {
    std::int64_t after = -1;
    const std::string host_text = std::to_string(host);
    for (;;) {
        const pg::Result rows = connection.exec(
            "SELECT job_id, entrypoint, status, attempts, result, (extract(epoch FROM finished) * 1000000)::bigint, "
            "(extract(epoch FROM expires) * 1000000)::bigint, payload FROM currant_results WHERE host = $1 AND status IN "
            "('successful', 'canceled') AND expires > now() AND job_id > $2 ORDER BY job_id LIMIT 1000",
            {host_text, std::to_string(after)});
        if (rows.rows() == 0) return;
        std::vector<JobId> ids;
        for (int row = 0; row < rows.rows(); ++row) ids.push_back(JobId(rows.integer(row, 0)));
        const std::vector<JobState> present = queue.status(ids);
        for (int row = 0; row < rows.rows(); ++row) {
            after = rows.integer(row, 0);
            if (present[std::size_t(row)].status != JobStatus::unknown && !present[std::size_t(row)].slot_reused) continue;
            const EntrypointId ep = entrypoint_for_restore(queue, std::string(rows.text(row, 1)));
            const std::string result = rows.is_null(row, 4) ? std::string() : rows.bytes(row, 4);
            // Its payload (schema step 7; none in rows written before it).
            const std::string payload = rows.is_null(row, 7) ? std::string() : rows.bytes(row, 7);
            RestoredOutcome job;
            job.id = JobId(rows.integer(row, 0));
            job.status = rows.text(row, 2) == "successful" ? JobStatus::successful : JobStatus::canceled;
            job.attempts = std::uint32_t(rows.integer(row, 3));
            if (!rows.is_null(row, 4)) job.result = std::as_bytes(std::span(result.data(), result.size()));
            job.payload = std::as_bytes(std::span(payload.data(), payload.size()));
            job.finished_at_ns = rows.integer(row, 5) * 1000;
            job.kept_until_ns = rows.integer(row, 6) * 1000;
            try {
                queue.restore_outcome(ep, job);
                ++attached.results;
                shm::crash_point("rebuild.outcome_restored");
            } catch (const Error& error) {
                log_line("rebuild: result of job " + std::to_string(job.id) + " not restored: " + error.what());
            }
        }
    }
}

// Ends a waiting job's row in PostgreSQL as canceled with the reason (its
// dependency ended badly, or is gone), like a skipped remote insert.
void end_waiting_row(pg::Connection& connection, const std::string& id, const std::string& reason) {
    connection.exec("BEGIN");
    connection.exec(
        "WITH gone AS (DELETE FROM currant_jobs WHERE id = $1 RETURNING *) "
        "INSERT INTO currant_log (job_id, host, incarnation, entrypoint, status, priority, attempts, sequence, "
        "transitions, created, traceback) SELECT id, host, COALESCE(incarnation, 0), entrypoint, 'canceled', "
        "priority, attempts, 0, 0, now(), $2 FROM gone",
        {id, reason});
    connection.exec("COMMIT");
}

// "{1,2,3}" -> ids (a bigint[] in text form).
std::vector<JobId> parse_id_array(std::string_view text) {
    std::vector<JobId> ids;
    std::uint64_t value = 0;
    bool digits = false;
    for (char c : text) {
        if (c >= '0' && c <= '9') {
            value = value * 10 + std::uint64_t(c - '0');
            digits = true;
        } else {
            if (digits) ids.push_back(JobId(value));
            value = 0;
            digits = false;
        }
    }
    if (digits) ids.push_back(JobId(value));
    return ids;
}

// After restore_jobs: puts back the jobs PostgreSQL holds as waiting
// (docs/job-dependencies.md), each waiting again for those of its
// dependencies the segment holds. A dependency the segment does not hold
// ended before the reboot: its last status in currant_log decides: done
// if successful; otherwise (or if none is recorded) the job ends canceled
// in PostgreSQL with the reason. Waiting jobs may wait for each other:
// passes repeat while one restores another's dependency. Idempotent like
// restore_jobs.
void restore_waiting_jobs(pg::Connection& connection, Queue& queue, std::uint32_t host, Attached& attached) {
    const pg::Result rows = connection.exec(
        "SELECT id, entrypoint, priority, payload, attempts, max_attempts, "
        "(extract(epoch FROM execute_after) * 1000000)::bigint, (extract(epoch FROM created) * 1000000)::bigint, "
        "depends_on FROM currant_jobs WHERE host = $1 AND incarnation IS NOT NULL AND status = 'waiting' ORDER BY id",
        {std::to_string(host)});
    std::vector<bool> done(std::size_t(rows.rows()), false);
    std::vector<JobId> waiting_ids;
    for (int row = 0; row < rows.rows(); ++row) waiting_ids.push_back(JobId(rows.integer(row, 0)));
    for (bool progress = true; progress;) {
        progress = false;
        for (int row = 0; row < rows.rows(); ++row) {
            if (done[std::size_t(row)]) continue;
            const JobId id = waiting_ids[std::size_t(row)];
            const JobId self[] = {id};
            if (const JobState s = queue.status(self)[0]; s.status != JobStatus::unknown && !s.slot_reused) { // restored by an earlier start
                done[std::size_t(row)] = progress = true;
                continue;
            }
            const std::vector<JobId> dependencies =
                rows.is_null(row, 8) ? std::vector<JobId>{} : parse_id_array(rows.text(row, 8));
            std::vector<JobId> alive;
            std::string reason;
            bool deferred = false;
            for (JobId dependency : dependencies) {
                const JobId one[] = {dependency};
                if (const JobState s = queue.status(one)[0]; s.status != JobStatus::unknown && !s.slot_reused) {
                    alive.push_back(dependency);
                    continue;
                }
                const auto waiting = std::find(waiting_ids.begin(), waiting_ids.end(), dependency);
                if (waiting != waiting_ids.end() && !done[std::size_t(waiting - waiting_ids.begin())]) {
                    deferred = true; // restored in a later pass first
                    break;
                }
                const pg::Result last = connection.exec(
                    "SELECT status FROM currant_log WHERE job_id = $1 ORDER BY id DESC LIMIT 1",
                    {std::to_string(std::int64_t(dependency))});
                const std::string status = last.rows() ? std::string(last.text(0, 0)) : std::string();
                if (status == "successful") continue;
                reason = status == "exception" || status == "canceled"
                             ? "canceled: dependency job " + std::to_string(dependency) + " ended " + status
                             : "canceled: dependency job " + std::to_string(dependency) +
                                   " is no longer known to the queue (its outcome was lost)";
                break;
            }
            if (deferred) continue;
            done[std::size_t(row)] = progress = true;
            const std::string id_text = std::to_string(std::int64_t(id));
            if (!reason.empty()) {
                end_waiting_row(connection, id_text, reason);
                ++attached.ended;
                continue;
            }
            const std::string entrypoint_name(rows.text(row, 1));
            const EntrypointId ep = entrypoint_for_restore(queue, entrypoint_name);
            const std::string payload = rows.bytes(row, 3);
            RestoredJob job;
            job.id = id;
            job.payload = std::as_bytes(std::span(payload.data(), payload.size()));
            job.priority = std::int32_t(rows.integer(row, 2));
            job.attempts = std::uint32_t(rows.integer(row, 4));
            job.max_attempts = std::uint32_t(rows.integer(row, 5));
            job.execute_after_ns = std::max<std::int64_t>(0, rows.integer(row, 6) * 1000);
            job.enqueued_at_ns = rows.integer(row, 7) * 1000;
            EnqueueOptions options;
            options.arena_wait = std::chrono::milliseconds(10'000);
            options.depends_on = std::move(alive); // empty: every dependency had succeeded, queued
            queue.restore(ep, job, options);
            ++attached.restored;
        }
    }
    // What is left waits for a job that is neither in the segment nor
    // ended (a row PostgreSQL lost): end it rather than keep it forever.
    for (int row = 0; row < rows.rows(); ++row)
        if (!done[std::size_t(row)]) {
            end_waiting_row(connection, std::to_string(std::int64_t(waiting_ids[std::size_t(row)])),
                            "canceled: its dependencies could not be restored after the segment was rebuilt");
            ++attached.ended;
        }
}

Attached rebuild(pg::Connection& connection, const HostRecord& record, std::optional<Queue> sealed_segment) {
    Attached attached{sealed_segment ? std::move(*sealed_segment) : Queue::create([&] {
        QueueOptions options = record.options;
        // Ids resume above every id this host has used.
        const pg::Result highest = connection.exec(
            "SELECT COALESCE(max(id), 0) FROM currant_jobs WHERE host = $1 AND id < 9223090561878065152",
            {std::to_string(record.host)});
        const std::uint64_t max_id = std::max<std::uint64_t>(record.max_job_id, std::uint64_t(highest.integer(0, 0)));
        options.first_job_counter = (max_id & counter_mask) + 256;
        options.sealed = true;
        return options;
    }()),
                      {}, true};
    attached.identity = {record.host, attached.queue.info().incarnation};
    declare_recorded_entrypoints(connection, attached.queue, record.host);
    restore_jobs(connection, attached.queue, record.host, attached);
    restore_waiting_jobs(connection, attached.queue, record.host, attached);
    restore_dead_jobs(connection, attached.queue, record.host, attached);
    restore_kept_results(connection, attached.queue, record.host, attached);
    attached.schedules = restore_recorded_schedules(connection, attached.queue, record.host);
    save_host(connection, attached.queue);
    attached.queue.unseal();
    log_line("rebuilt queue '" + record.options.name + "' for host " + std::to_string(record.host) +
             " from PostgreSQL: " + std::to_string(attached.restored) + " jobs restored, " +
             std::to_string(attached.ended) + " ended past their attempts, " + std::to_string(attached.dead) +
             " dead jobs and " + std::to_string(attached.results) + " kept results restored, " +
             std::to_string(attached.schedules) + " schedules restored");
    return attached;
}

} // namespace

Attached attach(pg::Connection& connection, const AttachOptions& options) {
    std::optional<Queue> segment;
    try {
        segment = Queue::open(options.queue);
    } catch (const Error& error) {
        if (error.code() != Errc::not_found) throw;
    }

    if (!segment) {
        // A reboot (or a first start): rebuild from the host record, or
        // create the queue when PostgreSQL has never seen it.
        if (auto record = find_host(connection, "segment", options.queue)) return rebuild(connection, *record, {});
        check_host_id(options.create.host_id);
        if (auto other = find_host(connection, "host", std::to_string(options.create.host_id)))
            throw Error(Errc::already_exists, "host id " + std::to_string(options.create.host_id) +
                                                  " is registered in PostgreSQL for queue '" + other->options.name +
                                                  "'; give this queue another --host-id");
        QueueOptions create = options.create;
        create.name = options.queue;
        Attached attached{Queue::create(create), {}, false};
        attached.identity = {create.host_id, attached.queue.info().incarnation};
        save_host(connection, attached.queue);
        log_line("created queue '" + options.queue + "' as host " + std::to_string(create.host_id));
        return attached;
    }

    const QueueInfo info = segment->info();
    check_host_id(info.host_id);
    const auto record = find_host(connection, "host", std::to_string(info.host_id));
    if (!record || !record->incarnation) {
        Attached attached{std::move(*segment), {info.host_id, info.incarnation}, false};
        save_host(connection, attached.queue);
        log_line("registered queue '" + info.name + "' as host " + std::to_string(info.host_id));
        return attached;
    }
    if (*record->incarnation == info.incarnation) {
        Attached attached{std::move(*segment), {info.host_id, info.incarnation}, false};
        if (attached.queue.sealed()) attached.queue.unseal(); // a rebuild died after recording itself
        return attached;
    }
    // The segment is not the one PostgreSQL knows for this host.
    if (segment->sealed()) return rebuild(connection, *record, std::move(segment)); // our rebuild, interrupted
    if (holds_nothing(*segment)) {
        // Recreated empty after a reboot (e.g. by `currant init`): rebuild
        // into a fresh segment; attached processes are told to reopen it.
        segment.reset();
        Queue::remove(options.queue);
        HostRecord fresh = *record;
        fresh.options.name = options.queue;
        return rebuild(connection, fresh, {});
    }
    throw Error(Errc::already_exists,
                "queue '" + info.name + "' (incarnation " + std::to_string(info.incarnation) +
                    ") holds jobs but PostgreSQL records incarnation " + std::to_string(*record->incarnation) +
                    " for host " + std::to_string(info.host_id) +
                    ": drain or remove the segment (`currant rm`) so that currantd can rebuild it");
}

} // namespace currant::daemon
