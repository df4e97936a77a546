// Mirroring: turns the segment's change feed into rows in PostgreSQL, in
// batches, one transaction each, with the feed cursor committed in the same
// transaction (a restart neither loses nor repeats a transition).
//
// Per batch, the transitions of one job are folded into its final state:
//   * one currant_log row per job (status reached, transitions folded,
//     last sequence) -- appended by COPY;
//   * a job still queued or picked gets a currant_jobs row: appended by COPY
//     when PostgreSQL cannot hold one for it yet (rows_at_most_), else
//     upserted (COPY into a temporary table, then INSERT .. ON CONFLICT);
//   * a finished job's currant_jobs row (if an earlier batch wrote one) is
//     deleted: finished jobs live in currant_log, as in PgQueuer.
// So a job enqueued and finished within one batch costs one appended row.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>
#include <string>
#include <unordered_map>
#include <vector>

#include "currant/queue.hpp"
#include "pg.hpp"

namespace currant::daemon {

struct HostIdentity {
    std::uint32_t host = 0;
    std::uint64_t incarnation = 0;
};

struct MirrorCounters {
    std::uint64_t transitions = 0;  // feed records mirrored
    std::uint64_t jobs = 0;         // log rows written
    std::uint64_t batches = 0;
    std::uint64_t statements = 0;   // SQL statements sent (incl. COPY)
};

class Mirror {
public:
    Mirror(Queue& queue, HostIdentity identity, std::size_t batch_limit);
    ~Mirror();
    Mirror(const Mirror&) = delete;
    Mirror& operator=(const Mirror&) = delete;

    // After a (re)connect: brings the segment's cursors up to the ones
    // committed in PostgreSQL (the daemon may have died between its commit
    // there and in the segment), creates the session's staging tables, and
    // makes the next flush record the whole configuration.
    void resume(pg::Connection& connection);
    // Mirrors one batch; returns the transitions it covered (0: nothing
    // pending). When the segment's configuration generation moved since the
    // last record, the batch's transaction also records every entrypoint's
    // options, pause and limits and every schedule with its next tick
    // (read after the feed: a tick whose job the batch holds is recorded
    // as fired in the same transaction).
    std::size_t flush(pg::Connection& connection);
    const MirrorCounters& counters() const noexcept { return counters_; }
    // The configuration generation of the last committed record (none yet:
    // nullopt), for Queue::wait_for_feed.
    std::optional<std::uint64_t> configuration_recorded() const noexcept { return configuration_recorded_; }

private:
    struct Folded {
        EntrypointId entrypoint = 0;
        JobStatus status = JobStatus::unknown;
        std::uint32_t slot = 0;
        std::uint32_t attempts = 0;
        std::uint64_t sequence = 0;     // last folded (0: only seen dirty)
        std::uint32_t transitions = 0;
        std::int64_t at_ns = 0;
        std::uint64_t epoch = 0;        // the state word epoch of the folded status (its error's tag)
        bool dirty = false;
    };
    // A purge of a kept dead job (docs/dead-jobs.md): not folded into its
    // job's row (the death it ends may be in the same batch and keeps its
    // own `exception` row); its own `deleted` row, and the job's
    // currant_dead row deleted, in the batch's transaction.
    struct Purge {
        JobId id = 0;
        EntrypointId entrypoint = 0;
        std::uint32_t attempts = 0;
        std::uint64_t sequence = 0;     // 0: seen dirty
        std::int64_t at_ns = 0;
        bool dirty = false;
        // dirty: the death's text and time, for its own `exception` row
        // (the log may never have carried the death).
        std::string death_error;
        std::int64_t died_at_ns = 0;
    };
    // Appends the statements that record it to the batch's transaction.
    void record_configuration(std::vector<pg::Connection::Statement>& statements,
                              const QueueConfiguration& configuration);

    // The waker thread (docs/daemon.md, "Waking"): after a commit the
    // mirror moves the segment's cursors without waking the sync enqueuers
    // and hands the wake to this thread, so the futex wake of hundreds of
    // waiters (and their running on the CPUs) overlaps the next batch
    // instead of delaying it. Guarded by wake_mutex_.
    void wake_loop();
    void hand_off_wake(const std::vector<std::uint64_t>& last_sequence);

    Queue& queue_;
    HostIdentity identity_;
    std::mutex wake_mutex_;
    std::condition_variable wake_ready_;
    std::vector<char> wake_pending_; // per entrypoint: committed, waiters not woken yet
    bool wake_any_ = false;
    bool wake_stop_ = false;
    std::thread waker_;
    std::size_t batch_limit_;
    std::optional<std::uint64_t> configuration_recorded_;
    // True from resume() until a batch has been committed and settled: only
    // then can a dirty job be collected a second time (the daemon died
    // between its commit and settle_dirty), so only then is the duplicate
    // guard worth its cost.
    bool dirty_may_repeat_ = true;
    // The highest id of this host that currant_jobs may hold a row for
    // (read at resume(), raised after each commit). A live job of this host
    // above it is appended to currant_jobs by COPY instead of staged and
    // upserted. upsert_all_: the batch after a failed one upserts them all.
    JobId rows_at_most_ = 0;
    bool upsert_all_ = false;
    // currant_results rows past their expiry are deleted by the first batch
    // at or after this time (CLOCK_REALTIME), then every 10 s.
    static constexpr std::int64_t results_expiry_interval_ns = 10'000'000'000;
    std::int64_t next_results_expiry_ns_ = 0;
    MirrorCounters counters_;
    std::vector<Transition> transitions_;
    std::unordered_map<JobId, Folded> folded_;
    std::vector<JobId> order_;
    std::vector<Purge> purges_;
};

} // namespace currant::daemon
