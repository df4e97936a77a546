#include "relay.hpp"

#include "log.hpp"
#include "schema.hpp"

namespace currant::daemon {

namespace {

constexpr int claim_batch_rows = 500;

std::string id_array(const std::vector<JobId>& ids) {
    std::string out = "{";
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (i) out += ',';
        out += std::to_string(std::int64_t(ids[i]));
    }
    return out + "}";
}

} // namespace

Relay::Relay(Queue& queue, HostIdentity identity) : queue_(queue), identity_(identity) {}

void Relay::listen(pg::Connection& connection) {
    // A channel name is an identifier: ours is built from a number only.
    connection.exec("LISTEN " + schema::host_channel(identity_.host));
}

bool Relay::scan(pg::Connection& connection) {
    ++counters_.scans;
    bool pushed_back = false;
    while (claim_batch(connection, pushed_back)) {
    }
    apply_cancellations(connection);
    return !pushed_back;
}

bool Relay::claim_batch(pg::Connection& connection, bool& pushed_back) {
    const std::string host = std::to_string(identity_.host);
    connection.exec("BEGIN");
    try {
        const pg::Result rows = connection.exec(
            "SELECT id, entrypoint, priority, payload, attempts, max_attempts, "
            "(extract(epoch FROM execute_after) * 1000000)::bigint, (extract(epoch FROM created) * 1000000)::bigint, "
            "dedupe_key, on_duplicate FROM currant_jobs WHERE host = $1 AND incarnation IS NULL AND NOT cancel_requested "
            "ORDER BY id LIMIT " + std::to_string(claim_batch_rows) + " FOR UPDATE SKIP LOCKED",
            {host});
        std::vector<JobId> ids;
        for (int row = 0; row < rows.rows(); ++row) ids.push_back(JobId(rows.integer(row, 0)));
        // Idempotent by id: a job put into the segment by a relay that died
        // before its commit is there already.
        const std::vector<JobState> present = queue_.status(ids);
        std::vector<JobId> claimed, moved_to_memory, rejected;
        std::vector<std::string> reasons, endings; // per rejected row: why, and the status it ends in
        for (int row = 0; row < rows.rows() && !pushed_back; ++row) {
            const JobId id = ids[std::size_t(row)];
            if (present[std::size_t(row)].status != JobStatus::unknown && !present[std::size_t(row)].slot_reused) {
                claimed.push_back(id);
                continue;
            }
            const std::string entrypoint(rows.text(row, 1));
            EntrypointId ep = 0;
            try {
                ep = queue_.entrypoint(entrypoint);
            } catch (const Error&) {
                rejected.push_back(id);
                reasons.push_back("entrypoint '" + entrypoint + "' is not declared on host " + host);
                endings.push_back("exception");
                continue;
            }
            const std::string payload = rows.bytes(row, 3);
            RestoredJob job;
            job.id = id;
            job.payload = std::as_bytes(std::span(payload.data(), payload.size()));
            job.priority = std::int32_t(rows.integer(row, 2));
            job.attempts = std::uint32_t(rows.integer(row, 4));
            job.max_attempts = std::uint32_t(rows.integer(row, 5));
            job.execute_after_ns = std::max<std::int64_t>(0, rows.integer(row, 6) * 1000);
            job.enqueued_at_ns = rows.integer(row, 7) * 1000;
            try {
                EnqueueOptions options;
                options.log_wait = std::chrono::milliseconds(0);
                if (!rows.is_null(row, 8)) { // docs/dedupe.md
                    options.dedupe_key = std::string(rows.text(row, 8));
                    options.on_duplicate = rows.text(row, 9) == "refuse" ? OnDuplicate::refuse : OnDuplicate::skip;
                }
                const JobId holder = queue_.restore(ep, job, options);
                if (queue_.last_enqueue_skipped()) {
                    rejected.push_back(id);
                    reasons.push_back("skipped: dedupe key '" + *options.dedupe_key + "' is held by job " +
                                      std::to_string(holder) + " on host " + host);
                    endings.push_back("canceled");
                    continue;
                }
            } catch (const Error& error) {
                if (error.code() == Errc::arena_full || error.code() == Errc::log_full) {
                    pushed_back = true;
                    log_line("back-pressure: " + std::string(error.what()) +
                             "; remote jobs wait in PostgreSQL until there is room");
                    break;
                }
                if (error.code() == Errc::segment_retired) throw;
                rejected.push_back(id);
                // A refused duplicate says so; any other error is the reason as it is.
                reasons.push_back(error.code() == Errc::already_exists ? "refused: " + std::string(error.what())
                                                                       : std::string(error.what()));
                endings.push_back("exception");
                continue;
            }
            if (queue_.entrypoint_options(ep).durability == Durability::memory) moved_to_memory.push_back(id);
            else claimed.push_back(id);
        }
        if (!claimed.empty())
            connection.exec("UPDATE currant_jobs SET incarnation = $1, updated = now() WHERE id = ANY($2::bigint[])",
                            {std::to_string(std::int64_t(identity_.incarnation)), id_array(claimed)});
        if (!moved_to_memory.empty()) // memory durability is never mirrored: the row's work is done
            connection.exec("DELETE FROM currant_jobs WHERE id = ANY($1::bigint[])", {id_array(moved_to_memory)});
        for (std::size_t i = 0; i < rejected.size(); ++i) {
            connection.exec(
                "WITH gone AS (DELETE FROM currant_jobs WHERE id = $1 RETURNING *) "
                "INSERT INTO currant_log (job_id, host, incarnation, entrypoint, status, priority, attempts, sequence, "
                "transitions, created, traceback) SELECT id, host, $2, entrypoint, $4::currant_status, priority, "
                "attempts, 0, 0, now(), $3 FROM gone",
                {std::to_string(std::int64_t(rejected[i])), std::to_string(std::int64_t(identity_.incarnation)),
                 reasons[i], endings[i]});
            log_line("rejected remote job " + std::to_string(rejected[i]) + ": " + reasons[i]);
        }
        connection.exec("COMMIT");
        counters_.claimed += claimed.size() + moved_to_memory.size();
        counters_.rejected += rejected.size();
        return !pushed_back && rows.rows() == claim_batch_rows;
    } catch (...) {
        try {
            if (connection.ok()) connection.exec("ROLLBACK");
        } catch (...) {
        }
        throw;
    }
}

void Relay::apply_cancellations(pg::Connection& connection) {
    const std::string host = std::to_string(identity_.host);
    // Unclaimed rows: cancel them where they are.
    const pg::Result unclaimed = connection.exec(
        "WITH gone AS (DELETE FROM currant_jobs WHERE host = $1 AND incarnation IS NULL AND cancel_requested "
        "RETURNING *) INSERT INTO currant_log (job_id, host, incarnation, entrypoint, status, priority, attempts, "
        "sequence, transitions, created, traceback) SELECT id, host, $2, entrypoint, 'canceled', priority, attempts, "
        "0, 0, now(), 'canceled before it reached the segment' FROM gone RETURNING job_id",
        {host, std::to_string(std::int64_t(identity_.incarnation))});
    counters_.canceled += std::uint64_t(unclaimed.rows());

    const pg::Result rows = connection.exec(
        "SELECT id FROM currant_jobs WHERE host = $1 AND cancel_requested AND incarnation IS NOT NULL", {host});
    std::vector<JobId> done;
    for (int row = 0; row < rows.rows(); ++row) {
        const JobId id = JobId(rows.integer(row, 0));
        const CancelOutcome outcome = queue_.cancel(id);
        if (outcome == CancelOutcome::canceled) {
            done.push_back(id);
            ++counters_.canceled;
            continue;
        }
        // Picked: the request is now recorded in the segment and the holder
        // woken (docs/cancellation.md); the job ends `canceled` (mirrored
        // like any transition) unless its handler finishes first. The row
        // keeps cancel_requested until the mirror writes the job's end
        // (which deletes the row), so a scan after any reconnect or restart
        // of this daemon, and a rebuild from PostgreSQL (the segment lost:
        // the job is queued again, then canceled here), apply it again.
        // Asking again is harmless: cancel() finds the mark and wakes no one.
        if (outcome == CancelOutcome::requested) {
            ++counters_.cancel_requests;
            continue;
        }
        // Finished (the mirror writes its end) or unknown here.
        // Not in a slot: unknown, or only remembered (slot_reused).
        const JobId ids[] = {id};
        const JobState now = queue_.status(ids)[0];
        if (now.status == JobStatus::unknown || now.slot_reused) done.push_back(id);
    }
    if (!done.empty())
        connection.exec("UPDATE currant_jobs SET cancel_requested = false WHERE id = ANY($1::bigint[])",
                        {id_array(done)});
}

} // namespace currant::daemon
