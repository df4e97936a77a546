// currant: a job queue for processes on one host, in shared memory.
//
// What a caller may rely on
// -------------------------
// * Delivery is at least once. A job is handed to one consumer at a time
//   under a lease; if that consumer dies, or its lease expires without a
//   heartbeat, the job is queued again (attempt counted) by whichever process
//   notices first. A consumer asleep on the queue is woken by the kernel when
//   another attached process dies, so a death is noticed at once without
//   polling; jobs whose lease expires are requeued at the lease deadline,
//   which every sleeping consumer wakes for.
// * Completion is recorded once: ack/fail/retry succeed only while the job is
//   still picked by this Queue object under the same pick (epoch). A call that
//   returns success reports a fact already applied to the segment; the one
//   exception is ack_deferred(), which says so in its name.
// * Order within an entrypoint: higher priority first, then FIFO by enqueue
//   sequence. A job whose execute_after lies in the future is invisible until
//   then. No order is promised across entrypoints.
// * A process may be killed at any instruction; the next process to take an
//   affected lock repairs the structures. Nothing acknowledged is lost.
// * Payload views (Job::payload) point into the segment and stay valid until
//   the job is acked, failed, retried, or its lease is lost; read-only.
//
// What a caller may not rely on
// -----------------------------
// * A Queue object is not thread-safe: use one per thread (each is a separate
//   participant with its own registry entry). Queue objects must not be
//   used in a child after fork(); open the queue again there.
// * Job status of a finished job in `memory` durability is kept in its slot
//   only until the slot is reused, unless its entrypoint keeps results
//   (EntrypointOptions::result_retention: kept at least that long while the
//   arena has room). After that status() and wait() still give its final
//   status (JobState::slot_reused) from the recent outcomes, until about
//   4 x slots further ids were handed out (then unknown, never a guess);
//   its result and error are gone. Dead jobs (`exception`) are kept, up to
//   the entrypoint's max_dead, until requeued or purged.
//
// Errors: every failure throws currant::Error with an Errc and a message
// naming the queue, entrypoint or limit (see currant/shm/error.hpp).
#pragma once

#include <bit>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include "currant/shm/error.hpp"

namespace currant {

using JobId = std::uint64_t;         // host id (16 bits) << 48 | counter (48 bits)
using EntrypointId = std::uint32_t;  // index in the queue's entrypoint table

enum class JobStatus : std::uint8_t {
    unknown = 0,  // no such job in the segment (never existed, or finished and its slot reused)
    queued,
    picked,
    successful,
    exception,
    canceled,
    waiting,  // enqueued after dependencies that have not all succeeded yet (docs/job-dependencies.md)
};
std::string_view job_status_name(JobStatus status) noexcept;

// Most dependencies one job may have (EnqueueOptions::depends_on).
inline constexpr std::size_t max_job_dependencies = 16;

enum class Durability : std::uint8_t {
    memory = 0, // no transition log; slots freed at completion; lost at reboot
    async = 1,  // transitions logged for the mirror; finished slots kept until mirrored
    sync = 2,   // like async, and enqueue returns only once the mirror committed it
};
std::string_view durability_name(Durability durability) noexcept;
Durability parse_durability(std::string_view text); // throws invalid_argument

struct QueueOptions {
    std::string name;
    std::uint32_t slots = 65536;           // jobs the arena holds at once (queued + picked + unmirrored)
    std::uint32_t payload_bytes = 256;     // inline payload capacity per job
    std::uint32_t max_entrypoints = 64;
    std::uint32_t max_participants = 256;  // Queue objects attached at once, across processes
    std::uint32_t log_capacity = 65536;    // transition records per entrypoint (async/sync)
    std::uint16_t host_id = 0;             // high 16 bits of every job id
    unsigned mode = 0600;                  // permission bits of the segment
    std::optional<gid_t> group;            // owning group (give mode 0660 to let it in)
    bool sealed = false;                   // created sealed: nothing is handed out until unseal()
    std::uint64_t first_job_counter = 0;   // job ids (low 48 bits) start above this (a rebuild resumes ids)
    // Largest result a handler may return (docs/results.md), 0..1 MiB. Each
    // slot has an outcome area of max(result_bytes, 1024) bytes that holds
    // the job's result or its last error text (cut to fit).
    std::uint32_t result_bytes = 1024;
};

// The longest lease an entrypoint may declare (365 days).
inline constexpr std::chrono::milliseconds max_lease{365LL * 24 * 3600 * 1000};

struct EntrypointOptions {
    // Unset: a new entrypoint gets `async` if the queue is mirrored (a
    // currantd has attached to it), else `memory`; a declared one keeps its own.
    std::optional<Durability> durability;
    std::chrono::milliseconds lease{30'000};          // how long a pick is valid without heartbeat (at most max_lease)
    std::uint32_t max_attempts = 5;                   // deliveries before a job ends `exception`
    std::chrono::milliseconds retry_delay{1'000};     // back-off of the first retry, doubled per attempt
    std::chrono::milliseconds max_retry_delay{300'000};
    // Limits (docs/limits.md). Unset: a new entrypoint has none and a
    // declared one keeps its own; change or remove them with
    // Queue::set_concurrency_limit / set_rate_limit. Zero or negative values
    // are refused with invalid_argument.
    std::optional<std::int64_t> concurrency_limit; // at most this many jobs picked at once, all processes
    std::optional<double> rate_limit;              // at most this many starts per second (token bucket)
    std::optional<std::int64_t> rate_burst;        // starts the bucket holds; only with rate_limit; default 1
    // Dead jobs kept with their last error (docs/dead-jobs.md): at most this
    // many per entrypoint, the oldest recycled first; 0 keeps none. Unset: a
    // new entrypoint keeps 1000 (at most the arena's slots), a declared one
    // keeps its own. More than the arena's slots is refused.
    std::optional<std::uint32_t> max_dead;
    // Results and final status kept after a job ends `successful` or
    // `canceled` (docs/results.md), for Queue::wait and status: at least this
    // long while the arena has room; past it, or when the arena would
    // otherwise be full (oldest first), the slot is recycled. 0 keeps none
    // (a finished job's status then lasts until its slot is reused). Unset:
    // a new entrypoint keeps none, a declared one keeps its own. Negative or
    // longer than max_lease is refused.
    std::optional<std::chrono::milliseconds> result_retention;
};

// Largest result any queue takes (QueueOptions::result_bytes is at most this).
inline constexpr std::uint32_t max_result_bytes = 1u << 20;

// What Queue::wait reports for one job id (docs/results.md).
struct JobOutcome {
    JobId id = 0;
    // The final status (successful, exception, canceled) once finished;
    // otherwise queued or picked (the wait ended first), or unknown: no such
    // job in the segment (never existed, or finished and its slot recycled).
    JobStatus status = JobStatus::unknown;
    bool finished = false;
    // successful: the handler's result while it is kept (ack with a result);
    // nullopt if it gave none or it is no longer kept.
    std::optional<std::vector<std::byte>> result;
    std::string error;              // exception: its last error text, if kept
    std::int64_t finished_at_ns = 0;// CLOCK_REALTIME, when known (0 otherwise)
};

// A job that ended `exception` and is kept until requeued or purged
// (Queue::dead_jobs, docs/dead-jobs.md).
struct DeadJob {
    JobId id = 0;
    EntrypointId entrypoint = 0;
    std::string entrypoint_name;
    std::int32_t priority = 0;
    std::uint32_t attempts = 0;            // deliveries made
    std::uint32_t max_attempts = 0;
    std::int64_t enqueued_at_ns = 0;       // CLOCK_REALTIME
    std::int64_t died_at_ns = 0;           // CLOCK_REALTIME
    std::string error;                     // the last error text (empty: none given)
    bool error_truncated = false;          // the text was cut to the outcome area's capacity
    std::vector<std::byte> payload;
};

// An entrypoint's pause state and limits (Queue::limits).
struct EntrypointLimits {
    bool paused = false;
    std::optional<std::uint32_t> concurrency;      // none: no concurrency limit
    std::optional<double> rate;                    // starts per second; none: no rate limit
    std::uint32_t burst = 0;                       // 0 without a rate limit
    std::uint32_t in_flight = 0;                   // picked jobs counted against the concurrency limit
};

// What a schedule does with ticks that passed while no process fired them
// (docs/schedules.md).
enum class MissedTicks : std::uint8_t {
    skip = 0,     // fire once, for the latest tick due; drop the others
    catch_up = 1, // fire every missed tick, oldest first, but at most catch_up_max (the latest ones)
};
std::string_view missed_ticks_name(MissedTicks policy) noexcept;
MissedTicks parse_missed_ticks(std::string_view text); // "skip" | "catch_up"; throws invalid_argument

// A named schedule: on each tick of the cron expression (UTC, see
// currant/cron.hpp) one job is enqueued on the entrypoint.
struct ScheduleOptions {
    std::string name;                  // 1..63 bytes, no control characters; unique in the queue
    std::string expression;            // 5 or 6 fields, or an alias; at most 127 bytes
    EntrypointId entrypoint = 0;
    std::vector<std::byte> payload;    // at most min(payload_bytes, 1024) bytes
    std::int32_t priority = 0;
    MissedTicks missed = MissedTicks::skip;
    std::uint32_t catch_up_max = 100;  // 1..100000; used by catch_up
};

struct ScheduleInfo {
    std::string name;
    std::string expression;
    EntrypointId entrypoint = 0;
    std::string entrypoint_name;
    std::vector<std::byte> payload;
    std::int32_t priority = 0;
    MissedTicks missed = MissedTicks::skip;
    std::uint32_t catch_up_max = 0;
    std::int64_t next_tick_ns = 0;     // CLOCK_REALTIME: the earliest tick not yet fired
    std::int64_t last_tick_ns = 0;     // the tick of the last job enqueued (0: none yet)
    std::uint64_t fired = 0;           // jobs enqueued by this schedule
    JobId last_job_id = 0;
    std::int64_t created_at_ns = 0;
};

// What an enqueue with a dedupe key does while another job of the
// entrypoint holds that key (docs/dedupe.md).
enum class OnDuplicate : std::uint8_t {
    skip = 0,   // enqueue nothing; return the id of the job holding the key
    refuse = 1, // enqueue nothing; throw Error(already_exists) naming the key and that job
};
std::string_view on_duplicate_name(OnDuplicate policy) noexcept;
OnDuplicate parse_on_duplicate(std::string_view text); // "skip" | "refuse"; throws invalid_argument

// Longest dedupe key, in bytes.
inline constexpr std::size_t max_dedupe_key_bytes = 128;

struct EnqueueOptions {
    std::int32_t priority = 0;                 // higher runs first
    std::int64_t execute_after_ns = 0;         // CLOCK_REALTIME, ns since the epoch; 0 = now
    std::uint32_t max_attempts = 0;            // 0: the entrypoint's default
    std::chrono::milliseconds arena_wait{0};   // how long to wait (blocked in the kernel) for a free
                                               // slot when the arena is full; 0: fail with arena_full
    std::chrono::milliseconds log_wait{1'000}; // async/sync: how long to wait for log space
    std::chrono::milliseconds sync_wait{5'000};// sync: how long to wait for the mirror's commit
    // Dedupe key (docs/dedupe.md), scoped to the entrypoint: while a job of
    // this entrypoint with the same key is queued (delayed included) or
    // picked, this enqueue adds no job and acts as on_duplicate says. The
    // key is free again once that job ends (successful, exception,
    // canceled); a retry keeps it. 1..128 bytes, no control characters
    // (invalid_argument otherwise). enqueue_batch takes a key only for a
    // batch of one job.
    std::optional<std::string> dedupe_key;
    OnDuplicate on_duplicate = OnDuplicate::skip;
    // Run only after these jobs ended `successful` (docs/job-dependencies.md).
    // Until then the job is `waiting`: never handed out, not ready, not
    // delayed. When the last one succeeds it is queued (its execute_after
    // and priority apply from then on); if one ends `exception` or
    // `canceled` (or its outcome is no longer known), the job ends
    // `canceled` with the reason as its error text, and so do the jobs
    // waiting for it, transitively. Each id must be known to the segment:
    // queued, picked, waiting, or finished with its slot not yet reused
    // (not_found otherwise; nothing is enqueued). At most
    // max_job_dependencies distinct ids (invalid_argument above), any
    // entrypoint of the queue; duplicates count once. Since every id must
    // exist before the job does, no cycle can be made. Not together with a
    // dedupe_key (invalid_argument). Applies to every job of a batch.
    std::vector<JobId> depends_on;
};

// What identifies one pick of one job. Value type; stale handles are refused.
struct JobHandle {
    std::uint32_t slot = 0;
    std::uint64_t epoch = 0;
    JobId id = 0;
};

// A picked job. payload points into the segment (zero copy).
struct Job {
    JobHandle handle;
    EntrypointId entrypoint = 0;
    std::int32_t priority = 0;
    std::uint32_t attempts = 0;            // 1 on the first delivery
    std::int64_t enqueued_at_ns = 0;       // CLOCK_REALTIME
    std::span<const std::byte> payload;
};

// A slot reserved for writing a payload in place; commit() queues it.
struct Reservation {
    std::uint32_t slot = 0;
    std::uint64_t epoch = 0;
    EntrypointId entrypoint = 0;
    JobId id = 0;
    std::span<std::byte> payload;          // writable; capacity = payload_bytes
};

struct JobState {
    JobId id = 0;
    JobStatus status = JobStatus::unknown;
    EntrypointId entrypoint = 0;
    std::int32_t priority = 0;
    std::uint32_t attempts = 0;
    bool cancel_requested = false; // picked, and a cancel was requested for this pick
    // Dependencies (docs/job-dependencies.md), while the slot still holds the job.
    std::vector<JobId> depends_on;   // its dependencies (empty: none)
    std::uint32_t waiting_on = 0;    // `waiting`: dependencies not yet ended
    // `canceled` because of a dependency: why ("dependency job N ended
    // exception"), kept in the slot's outcome area until the slot is reused.
    std::string reason;
    // No slot holds the job any more (finished, its slot reused): status is
    // its final status (successful, exception or canceled) as the queue's
    // recent outcomes remember it (docs/job-dependencies.md, "Finished
    // dependencies"); entrypoint, priority, attempts, depends_on and reason
    // are not known then (zero, empty), nor is its result. False for a job
    // a slot holds and for unknown.
    bool slot_reused = false;
};

// A queued or picked job as Queue::active_jobs lists it.
struct ActiveJob {
    JobId id = 0;
    JobStatus status = JobStatus::unknown; // queued or picked
    EntrypointId entrypoint = 0;
    std::int32_t priority = 0;
    std::uint32_t attempts = 0;            // deliveries so far
    std::int64_t enqueued_at_ns = 0;       // CLOCK_REALTIME
    std::int64_t execute_after_ns = 0;     // CLOCK_REALTIME; 0 or past: ready
    bool cancel_requested = false;         // picked, and a cancel was requested for this pick
};

// What Queue::cancel did (docs/cancellation.md).
enum class CancelOutcome : std::uint8_t {
    canceled = 0,       // it was queued: it ended `canceled` now
    requested = 1,      // it is picked: the request is recorded in the segment and its holder woken;
                        // it will never run again, and ends `canceled` unless its handler finishes first
    not_cancelable = 2, // finished, unknown to the segment, or still being written by its producer
};
std::string_view cancel_outcome_name(CancelOutcome outcome) noexcept; // "canceled", "requested", "not_cancelable"

// Latency histograms (docs/observability.md, "Latency histograms"): fixed
// log-scale buckets from 1 us to 10 s (1, 2.5, 5 per decade), the same for
// every queue. counts[i] counts the durations d with
// latency_bucket_bounds_ns[i-1] < d <= latency_bucket_bounds_ns[i]; the last
// count (index latency_bucket_count - 1) is the overflow, above 10 s.
// Statistics, not facts: a process killed inside an update may lose one
// observation or leave the sum one observation off (never a torn count).
inline constexpr std::size_t latency_bucket_count = 23; // 22 bounds + the overflow
inline constexpr std::int64_t latency_bucket_bounds_ns[latency_bucket_count - 1] = {
    1'000,         2'500,         5'000,        10'000,        25'000,        50'000,
    100'000,       250'000,       500'000,      1'000'000,     2'500'000,     5'000'000,
    10'000'000,    25'000'000,    50'000'000,   100'000'000,   250'000'000,   500'000'000,
    1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
namespace detail {
// Bounds that lie below 2^k, for each k: a duration in [2^k, 2^(k+1)) is
// above these and above at most one more (consecutive bounds are at least
// twice apart and none is a power of two).
constexpr auto latency_bounds_below_power_of_two = [] {
    struct Table { std::uint8_t below[64] = {}; } table;
    for (int k = 0; k < 63; ++k) {
        std::uint8_t n = 0;
        while (n < latency_bucket_count - 1 && latency_bucket_bounds_ns[n] < (std::int64_t(1) << k)) ++n;
        table.below[k] = n;
    }
    table.below[63] = latency_bucket_count - 1;
    return table;
}();
// The bounds, then one that no duration exceeds (no bounds check needed).
constexpr auto latency_bounds_padded = [] {
    struct Table { std::int64_t bound[latency_bucket_count] = {}; } table;
    for (std::size_t i = 0; i + 1 < latency_bucket_count; ++i) table.bound[i] = latency_bucket_bounds_ns[i];
    table.bound[latency_bucket_count - 1] = INT64_MAX;
    return table;
}();
} // namespace detail

// The bucket a duration falls in (negative durations count as 0): the
// number of bounds below it. Inline and branch-light (a count of leading
// zeros, a table and one comparison): every pick calls it.
constexpr std::size_t latency_bucket_of(std::int64_t duration_ns) noexcept {
    if (duration_ns <= 0) return 0;
    const int k = 63 - std::countl_zero(std::uint64_t(duration_ns));
    const std::size_t below = detail::latency_bounds_below_power_of_two.below[k];
    return below + (duration_ns > detail::latency_bounds_padded.bound[below] ? 1 : 0);
}

struct LatencyHistogram {
    std::uint64_t counts[latency_bucket_count] = {};
    std::uint64_t sum_ns = 0;  // sum of the durations counted
    std::uint64_t count() const noexcept;
    // The upper bound (ns) of the bucket holding the q-quantile (0 < q <= 1):
    // an over-estimate by at most one bucket step; 0 when empty; INT64_MAX
    // when it lies in the overflow bucket.
    std::int64_t quantile_bound_ns(double q) const noexcept;
};

struct EntrypointStats {
    std::string name;
    EntrypointId id = 0;
    Durability durability = Durability::memory;
    std::uint64_t queued = 0;     // ready now
    std::uint64_t delayed = 0;    // queued with execute_after in the future
    std::uint64_t picked = 0;
    std::uint64_t waiting = 0;    // waiting for dependencies (never handed out until they succeed)
    std::uint64_t dead = 0;       // kept dead jobs: on the dead list now (Queue::dead_jobs)
    // Totals since creation, summed over all processes (live and reaped).
    std::uint64_t enqueued = 0;
    std::uint64_t picks = 0;
    std::uint64_t successful = 0;
    std::uint64_t failed = 0;     // ended `exception`
    std::uint64_t retried = 0;    // requeued after failure, lease expiry or owner death
    std::uint64_t canceled = 0;
    std::uint64_t log_pending = 0;// transitions logged but not yet mirrored
    std::int64_t mirror_lag_ns = 0;// age of the oldest transition not yet mirrored (0: none)
    std::uint32_t dirty_slots = 0;// jobs whose transitions the full log could not take
    bool paused = false;          // nothing is handed out (Queue::pause)
    std::uint32_t concurrency_limit = 0; // 0: none
    std::uint32_t in_flight = 0;  // picked jobs counted against the concurrency limit
    double rate_limit = 0;        // starts per second; 0: none
    // Since creation, summed over all processes (live and reaped). wait:
    // from enqueue (or execute_after, if later) to the pick, per delivery.
    // run: from the pick to the holder's ack, fail or retry (a pick requeued
    // by a reaper, or ended by one, is not counted).
    LatencyHistogram wait, run;
};

struct QueueInfo {
    std::string name;
    std::uint32_t slots = 0, payload_bytes = 0, max_entrypoints = 0, max_participants = 0,
                  log_capacity = 0, host_id = 0, slot_bytes = 0;
    std::uint32_t result_bytes = 0;        // QueueOptions::result_bytes
    std::uint64_t segment_bytes = 0;
    std::uint64_t incarnation = 0;
    bool mirrored = false;                 // a currantd has attached (new entrypoints default to async)
    std::int64_t created_at_ns = 0;
    std::uint32_t free_slots = 0;
    std::uint32_t participants = 0;        // registered right now
    unsigned mode = 0;
    uid_t owner_uid = 0;
    gid_t owner_gid = 0;
};

struct ParticipantInfo {
    std::uint32_t index = 0;
    pid_t pid = 0;
    bool alive = false;
    bool sleeping = false;
};

struct DoctorReport {
    bool sound = true;
    std::vector<std::string> problems;     // empty when sound
    std::uint32_t dead_participants_reaped = 0;
    std::uint32_t expired_leases_requeued = 0;
};

// A job's content copied out of its slot, for the mirror (currantd).
struct JobSnapshot {
    JobId id = 0;
    std::uint32_t slot = 0;
    std::uint64_t epoch = 0;
    EntrypointId entrypoint = 0;
    JobStatus status = JobStatus::unknown;
    std::int32_t priority = 0;
    std::uint32_t attempts = 0;
    std::uint32_t max_attempts = 0;
    std::int64_t enqueued_at_ns = 0;       // CLOCK_REALTIME
    std::int64_t execute_after_ns = 0;     // CLOCK_REALTIME, 0 = at once
    std::vector<std::byte> payload;
    std::uint32_t dirty_mark = 0;          // collect_dirty: the mark settle_dirty clears
    std::optional<std::string> dedupe_key; // the job's dedupe key, if it has one
    std::string error;                     // the job's last error text (failed or retried with one), or empty
    std::optional<std::vector<std::byte>> result; // successful with a result (docs/results.md)
    bool kept_dead = false;                // a dead job on its entrypoint's dead list (docs/dead-jobs.md)
    std::int64_t died_at_ns = 0;           // kept_dead or purged: CLOCK_REALTIME time of death
    bool purged = false;                   // exception: a purged dead job the mirror has not committed yet
    std::vector<JobId> depends_on;                // its dependencies (docs/job-dependencies.md; empty: none)
};

// A job put back into a segment under its own id (rebuild, remote claims).
struct RestoredJob {
    JobId id = 0;
    std::span<const std::byte> payload;
    std::int32_t priority = 0;
    std::int64_t enqueued_at_ns = 0;       // CLOCK_REALTIME; 0 = now
    std::int64_t execute_after_ns = 0;
    std::uint32_t attempts = 0;            // deliveries already made
    std::uint32_t max_attempts = 0;        // 0: the entrypoint's default
};

// A finished job put back into a segment under its own id (rebuild, see
// Queue::restore_outcome): a kept dead job (status exception) or a job kept
// for its entrypoint's result retention (successful or canceled).
struct RestoredOutcome {
    JobId id = 0;
    JobStatus status = JobStatus::exception; // exception, successful or canceled
    std::span<const std::byte> payload;     // at most the slot's payload bytes
    std::int32_t priority = 0;
    std::uint32_t attempts = 0;             // deliveries made
    std::uint32_t max_attempts = 0;         // 0: the entrypoint's default
    std::int64_t enqueued_at_ns = 0;        // CLOCK_REALTIME; 0: finished_at_ns
    std::int64_t finished_at_ns = 0;        // CLOCK_REALTIME: death or finish; 0: now
    std::string_view error;                 // exception: the last error (cut like fail()'s)
    std::optional<std::span<const std::byte>> result; // successful: at most QueueOptions::result_bytes
    std::int64_t kept_until_ns = 0;         // successful/canceled: CLOCK_REALTIME end of the retention
    std::optional<std::string_view> dedupe_key; // exception: held again by a requeue
};

// What currantd records of an entrypoint besides its jobs (Queue::configuration).
struct EntrypointConfiguration {
    EntrypointId id = 0;
    std::string name;
    EntrypointOptions options;             // durability always set; limits set when the entrypoint has them
    bool paused = false;
};

// Everything currantd records besides jobs: entrypoints (options, pause,
// limits) and schedules (with their next tick), as of `generation`.
struct QueueConfiguration {
    std::uint64_t generation = 0;          // configuration_generation() read before the rest
    std::vector<EntrypointConfiguration> entrypoints;
    std::vector<ScheduleInfo> schedules;
};

// A schedule's progress, given back to restore_schedule (rebuild).
struct ScheduleProgress {
    std::int64_t next_tick_ns = 0;         // CLOCK_REALTIME; the earliest tick not yet fired (INT64_MAX: never)
    std::uint64_t fired = 0;
    std::int64_t last_tick_ns = 0;
    JobId last_job_id = 0;
    std::int64_t created_at_ns = 0;        // 0: now
};

// One record of an entrypoint's transition log (the change feed).
struct Transition {
    std::uint64_t sequence = 0;            // per-entrypoint, gapless from 1
    JobId id = 0;
    std::uint32_t slot = 0;
    JobStatus status = JobStatus::unknown; // the state entered
    std::uint32_t attempts = 0;
    std::uint64_t epoch = 0;               // the slot's epoch after the transition
    std::int64_t at_ns = 0;                // CLOCK_REALTIME
    // status exception: a purge of a kept dead job (docs/dead-jobs.md), not
    // a death. The mirror deletes its currant_dead row and logs `deleted`.
    bool purged = false;
};

namespace detail { class QueueState; }

class Queue {
public:
    // Creates a new queue segment. Throws already_exists, invalid_argument.
    static Queue create(const QueueOptions& options);
    // Opens an existing queue. Throws not_found, version_mismatch, ...
    static Queue open(std::string_view name);
    // Retires and unlinks the queue; processes still attached get
    // segment_retired on their next call. Returns false if it did not exist.
    static bool remove(std::string_view name);

    Queue(Queue&&) noexcept;
    Queue& operator=(Queue&&) noexcept;
    ~Queue(); // close(): flushes deferred acks, requeues unreturned prefetched jobs

    // Unregisters now. Jobs handed out and not acked are requeued (attempt counted).
    void close();

    const std::string& name() const noexcept;
    QueueInfo info() const;

    // Declares an entrypoint, or returns the existing one's id (updating its
    // options if they differ). Names: 1..63 bytes, no control characters.
    EntrypointId declare_entrypoint(std::string_view name, const EntrypointOptions& options = {});
    EntrypointId entrypoint(std::string_view name) const; // throws not_found
    std::string entrypoint_name(EntrypointId id) const;
    std::vector<std::string> entrypoint_names() const;
    EntrypointOptions entrypoint_options(EntrypointId id) const; // throws not_found

    // --- pause and limits (docs/limits.md) ---
    // Every call below throws not_found for an unknown entrypoint id and
    // invalid_argument for a limit of zero or less; nothing changes then.
    // While paused, enqueues are accepted and nothing is handed out; picked
    // jobs stay picked and may be acked. pause() returns once no pick from
    // the entrypoint is in progress; resume() wakes the sleeping consumers.
    // The flag is a word in the segment: it survives every process.
    void pause(EntrypointId entrypoint);
    void resume(EntrypointId entrypoint);
    bool paused(EntrypointId entrypoint) const;
    // At most `limit` jobs of the entrypoint picked at once across all
    // processes (nullopt removes the limit). Jobs already picked count at
    // once; a lower limit than in flight only stops further picks. Prefetched
    // jobs count: with a tight limit, set_prefetch(1).
    void set_concurrency_limit(EntrypointId entrypoint, std::optional<std::int64_t> limit);
    // At most `per_second` starts (picks) per second, with up to `burst`
    // starts at once: in any interval of t seconds, at most
    // burst + per_second * t starts. nullopt removes it. Setting it refills
    // the bucket.
    void set_rate_limit(EntrypointId entrypoint, std::optional<double> per_second, std::int64_t burst = 1);
    EntrypointLimits limits(EntrypointId entrypoint) const;

    // --- schedules (docs/schedules.md) ---
    // Schedules live in the segment. Each tick fires exactly once on the
    // host, whatever the number of processes: any process waiting in
    // dequeue()/dequeue_one() (their sleep ends at the next tick) or calling
    // run_schedules() fires the ticks due, one job per tick, whose
    // enqueued_at_ns is the tick's time. With no such process nothing
    // fires; the schedule's policy decides what happens to the ticks missed.
    // add_schedule throws invalid_argument (bad name, expression, payload
    // size, catch_up_max; the message names the field and the problem; also
    // when all 64 schedules are in use), not_found (entrypoint),
    // already_exists (name). The first tick is the first one after now.
    void add_schedule(const ScheduleOptions& options);
    // Throws not_found for an unknown name.
    void remove_schedule(std::string_view name);
    std::vector<ScheduleInfo> schedules() const;
    // Fires the ticks due now; returns the jobs enqueued. For processes that
    // never dequeue; a consumer does this by itself.
    std::size_t run_schedules();

    // --- producing ---
    JobId enqueue(EntrypointId entrypoint, std::span<const std::byte> payload,
                  const EnqueueOptions& options = {});
    // Validates every payload first (an invalid one throws and nothing is
    // enqueued), then enqueues in order under one lock per 64 jobs and
    // returns how many were enqueued (ids written to ids_out): fewer than
    // the batch only when the arena or the transition log runs out, and it
    // throws only if none was enqueued.
    std::size_t enqueue_batch(EntrypointId entrypoint, std::span<const std::span<const std::byte>> payloads,
                              std::span<JobId> ids_out, const EnqueueOptions& options = {});
    Reservation reserve(EntrypointId entrypoint);
    // With options.dedupe_key, a duplicate gives the reserved slot back
    // (the reservation is used up either way) and returns the holder's id
    // (skip) or throws already_exists (refuse).
    JobId commit(Reservation& reservation, std::size_t payload_size, const EnqueueOptions& options = {});
    // True if this Queue object's last enqueue/commit/restore with a dedupe
    // key added no job because the key was held (on_duplicate = skip): the
    // id it returned is the holder's.
    bool last_enqueue_skipped() const noexcept;
    void abandon(Reservation& reservation) noexcept;

    // --- consuming ---
    // Picks up to out.size() jobs from the given entrypoints, waiting up to
    // timeout (negative: forever; zero: do not wait). Returns how many.
    // Returns early (possibly with nothing) when a cancel was requested for
    // a job this Queue holds since the last dequeue returned (or since a
    // wait_for_cancel reported one), so a run loop learns of it and can look
    // at cancel_requested() of the jobs it runs.
    std::size_t dequeue(std::span<const EntrypointId> entrypoints, std::span<Job> out,
                        std::chrono::nanoseconds timeout);
    // One job at a time, served from a prefetch buffer of picked jobs that
    // stay recorded in the segment as this consumer's (see set_prefetch).
    std::optional<Job> dequeue_one(std::span<const EntrypointId> entrypoints,
                                   std::chrono::nanoseconds timeout);
    void set_prefetch(std::uint32_t jobs); // 1..1024, default 8
    // Makes a dequeue that is waiting (or the next one to wait) in this Queue
    // object return early with what it has (possibly nothing). The one call
    // that is safe from another thread (and from a signal handler): it only
    // touches atomics. For run loops that must wake up to stop or to apply
    // completions without polling.
    void interrupt() noexcept;
    // Per thread, off by default. While on, a dequeue (or dequeue_one) on the
    // calling thread that is asleep returns early with nothing when a signal
    // handler runs on this thread (the sleep fails with EINTR), so the caller
    // can act on the signal and call again with the time left; while off it
    // sleeps again. For bindings whose signal handlers only set a flag
    // (Python raises KeyboardInterrupt this way).
    static void set_dequeue_returns_on_signal(bool enabled) noexcept;

    void ack(const JobHandle& job);                         // throws stale_handle/not_owner
    // Ends the job `successful` with a result (docs/results.md): at most
    // QueueOptions::result_bytes bytes, kept with the job for its
    // entrypoint's result_retention, returned by wait() and mirrored by
    // currantd. A larger result throws invalid_argument naming both sizes
    // and leaves the job picked and untouched. Throws like ack otherwise.
    void ack(const JobHandle& job, std::span<const std::byte> result);
    std::size_t ack(std::span<const JobHandle> jobs);       // returns how many were acked
    // Deferred ack: buffered, applied by flush(), before this consumer sleeps,
    // before the earliest lease deadline of a buffered job, every 64 jobs and
    // at close. Not yet a fact when it returns.
    void ack_deferred(const JobHandle& job);
    std::size_t flush();

    // Ends `exception` now. error: the failure's text, kept with the dead
    // job (cut to the outcome area's capacity, see QueueOptions::result_bytes;
    // never refused) and mirrored as the log row's traceback.
    void fail(const JobHandle& job, std::string_view error = {});
    // Requeues with back-off (delay, or the entrypoint's exponential back-off)
    // and returns true, or ends `exception` past max attempts and returns
    // false. error: as for fail(), kept as the job's last error.
    bool retry(const JobHandle& job, std::optional<std::chrono::milliseconds> delay = std::nullopt,
               std::string_view error = {});
    // Extends the leases; returns how many were extended (expired or stale ones are not).
    std::size_t heartbeat(std::span<const JobHandle> jobs);

    // --- cancellation (docs/cancellation.md) ---
    // Cancels a job from any process. A queued job ends `canceled` now. For
    // a picked job the request is recorded in the segment (it survives the
    // death of every process) and the holder is woken, whether it is asleep
    // in dequeue or in wait_for_cancel; from then on the job is never
    // requeued: a retry, the holder's death, its close() or an expired lease
    // end it `canceled`. If the handler acks or fails it anyway, that
    // outcome stands. Requesting again is harmless (and wakes no one).
    // A `waiting` job (docs/job-dependencies.md) is canceled at once
    // (`canceled`), and the jobs waiting for it end `canceled` too.
    // Throws invalid_argument for 0 or an id above 2^63-1 (no job has one).
    CancelOutcome cancel(JobId id);
    // Holder side. True once a cancel was requested for this pick. One load
    // from the segment, no system call: cheap enough to check in a loop.
    // Safe from any thread while this Queue is open (it reads atomics only).
    bool cancel_requested(const JobHandle& job) const noexcept;
    // Blocks in the kernel until a cancel is requested for one of `jobs`
    // that this Queue still holds (returns its index), the timeout passes
    // (negative: forever), none of them is still picked by this Queue, or
    // interrupt() is called (then nullopt). For a handler waiting on
    // something else, or a run loop. Throws invalid_argument for a handle
    // naming a slot beyond the arena. Not thread-safe (like dequeue).
    std::optional<std::size_t> wait_for_cancel(std::span<const JobHandle> jobs, std::chrono::nanoseconds timeout);
    // The holder gives the job up: it ends `canceled` (with or without a
    // request). Throws like ack (stale_handle, not_owner).
    void ack_canceled(const JobHandle& job);
    // How many times a dequeue of this Queue returned early because a cancel
    // arrived for a job it holds (for wrappers that loop around dequeue).
    std::uint64_t cancel_wakeups() const noexcept;

    // --- dead jobs (docs/dead-jobs.md) ---
    // Jobs that ended `exception` (fail, retry past max attempts, lease
    // expiry or owner death past max attempts) are kept, up to the
    // entrypoint's max_dead, until requeued or purged. Listed oldest first
    // per entrypoint, at most `limit` in all; throws not_found for an
    // unknown entrypoint.
    std::vector<DeadJob> dead_jobs(std::optional<EntrypointId> entrypoint = std::nullopt,
                                   std::size_t limit = SIZE_MAX) const;
    // Puts a kept dead job back to `queued` (attempts 0, a new epoch: a
    // handle from its last pick is refused), at once. False if id is not a
    // kept dead job (never existed, purged, recycled, already requeued).
    // A job with a dedupe key holds it again; if another queued or picked
    // job holds it, throws already_exists (naming the key and the holder)
    // and the job stays dead.
    bool requeue(JobId id);
    // Every kept dead job of the entrypoint, oldest first; those whose
    // dedupe key is held stay dead. Returns how many were requeued.
    std::size_t requeue_dead(EntrypointId entrypoint);
    // Drops a kept dead job from the dead list and frees its slot (its
    // status becomes unknown); in async/sync durability a death not yet
    // mirrored keeps its slot (status exception) until currantd has it.
    // False if id is not a kept dead job.
    bool purge(JobId id);
    std::size_t purge_dead(EntrypointId entrypoint); // every kept dead job of it; returns how many

    // --- results and waiting (docs/results.md) ---
    // Blocks in the kernel until every job of `ids` has ended (or is not in
    // the segment), the timeout passes (negative: forever; zero: just look),
    // or interrupt() is called; then reports each job, in the order given:
    // final status and result for the finished ones, the current status for
    // the others (finished == false). Returns at once for jobs already
    // finished, also for one whose slot was reused while the recent
    // outcomes remember how it ended (final status, finished, no result or
    // error, finished_at_ns 0); an unknown id is reported as status unknown
    // and not waited for. Throws invalid_argument for id 0 or above 2^63-1. A signal
    // handler's EINTR makes it sleep again (return early only with
    // set_dequeue_returns_on_signal). Not thread-safe (like dequeue).
    std::vector<JobOutcome> wait(std::span<const JobId> ids, std::chrono::nanoseconds timeout);
    // Changes an entrypoint's EntrypointOptions::result_retention; jobs
    // finishing from then on are kept this long (those kept already keep
    // their deadline). Throws not_found, invalid_argument (negative, or
    // longer than max_lease).
    void set_result_retention(EntrypointId entrypoint, std::chrono::milliseconds retention);

    // --- inspecting ---
    std::vector<JobState> status(std::span<const JobId> ids) const;
    // The queued and picked jobs of one entrypoint (every entrypoint when
    // nullopt): picked first, then queued, each oldest enqueue first, at
    // most limit. A scan of the arena without a lock (O(slots)): for tools
    // and the dashboard, not a per-job path; a job that changes state
    // during the scan may be missing or show its state of a moment before.
    std::vector<ActiveJob> active_jobs(std::optional<EntrypointId> entrypoint = std::nullopt,
                                       std::size_t limit = 100) const;
    std::vector<EntrypointStats> stats() const;
    std::vector<ParticipantInfo> participants() const;
    // Reaps dead participants and expired leases now; checks every structure.
    DoctorReport doctor();
    // Reaps dead participants and expired leases, and recycles kept results
    // past their retention; returns jobs requeued.
    std::size_t reap();

    // --- change feed (for currantd) ---
    std::size_t read_feed(EntrypointId entrypoint, std::uint64_t from_sequence, std::span<Transition> out) const;
    // Marks transitions up to and including sequence as mirrored: frees log
    // space, recycles finished slots, wakes sync enqueuers (unless
    // wake_waiters is false: then the caller must call wake_feed_waiters
    // for the entrypoint afterwards, from any thread; until it does, a sync
    // enqueuer whose job is now committed sleeps on, to its sync_wait
    // deadline at most, where it finds its job committed and returns).
    void commit_feed(EntrypointId entrypoint, std::uint64_t sequence, bool wake_waiters = true);
    // Wakes every sync enqueuer of the entrypoint waiting for a commit
    // (each checks the committed sequence and sleeps again if its own job is
    // not covered yet). Thread-safe: atomics and one futex wake, no lock,
    // no registration.
    void wake_feed_waiters(EntrypointId entrypoint) noexcept;
    std::uint64_t feed_committed(EntrypointId entrypoint) const;
    // Copies the job in `slot` if it still holds job `id`; false otherwise.
    // A job whose transitions are not yet committed keeps its slot, so the
    // mirror can read every job its feed names.
    bool read_job(std::uint32_t slot, JobId id, JobSnapshot& out) const;
    // Blocks until a transition is appended to a log that was empty, a log
    // reaches half its capacity, a sync enqueuer waits, a transition could
    // not be logged, wake_feed_waiter() is called, or the timeout passes:
    // flush_after while something is pending, idle_timeout (negative:
    // forever) while nothing is. Returns the transitions pending then.
    // With configuration_seen: also returns at once (and is woken) while
    // configuration_generation() differs from it. With signal_seen (a
    // feed_signal() taken before the caller last read the feed): also
    // returns at once if a sync enqueuer asked for a commit since then, so
    // a request made while the caller was busy mirroring is not left to
    // the flush_after timeout.
    std::uint64_t wait_for_feed(std::chrono::nanoseconds flush_after, std::chrono::nanoseconds idle_timeout,
                                std::optional<std::uint64_t> configuration_seen = std::nullopt,
                                std::optional<std::uint32_t> signal_seen = std::nullopt);
    // The mirror's wake counter: every sync enqueuer about to wait for its
    // commit bumps it (after its record is published). Read it before
    // reading the feed and pass it to wait_for_feed.
    std::uint32_t feed_signal() const noexcept;
    // Ends a wait_for_feed now. Async-signal-safe (atomics and one futex wake).
    void wake_feed_waiter() noexcept;
    // Jobs whose transitions found their log full (they are marked instead
    // of waiting), with their current state; appended to out.
    std::size_t collect_dirty(std::vector<JobSnapshot>& out) const;
    // After the mirror committed them: clears the marks (unless the job
    // changed again meanwhile) and recycles the finished ones' slots.
    void settle_dirty(std::span<const JobSnapshot> mirrored);
    // Enqueues a job under its existing id and attempt count (rebuild from
    // PostgreSQL, jobs inserted remotely). Raises the id counter above id
    // when id belongs to this host. The caller checks that the id is not
    // already in the segment. options.dedupe_key applies as for enqueue
    // (a skipped restore returns the holder's id).
    JobId restore(EntrypointId entrypoint, const RestoredJob& job, const EnqueueOptions& options = {});
    // Puts a finished job back under its own id (rebuild from PostgreSQL,
    // docs/dead-jobs.md and docs/results.md), already mirrored: nothing is
    // logged for it. exception: it joins the tail of the entrypoint's dead
    // list (restore oldest first: past max_dead the oldest is dropped, as
    // for a death). successful/canceled: kept with its result until
    // kept_until_ns (CLOCK_REALTIME; a time already past makes it recyclable
    // at once). Raises the id counter above id like restore(). Throws
    // not_found (unknown entrypoint), already_exists (id is in the segment),
    // invalid_argument (id 0 or above 2^63-1, another status, a result on a
    // job that is not successful, a result larger than result_bytes, a
    // dedupe key too long), payload_too_large, arena_full. Not atomic
    // against a concurrent restore of the same id: one rebuild at a time.
    void restore_outcome(EntrypointId entrypoint, const RestoredOutcome& job);
    // Bumped by every declare, pause/resume, limit change, schedule add or
    // remove and schedule tick (one load; see QueueConfiguration).
    std::uint64_t configuration_generation() const;
    // The configuration as of at least generation (read first). Each
    // schedule's next tick is read under its entrypoint's lock, so every
    // tick whose job read_feed() returned before this call counts as fired.
    QueueConfiguration configuration();
    // Adds a schedule with the progress it had (rebuild): like add_schedule,
    // but the next tick is progress.next_tick_ns (in the past: its ticks
    // count as missed and the schedule's policy applies), not the first
    // after now. Throws what add_schedule throws.
    void restore_schedule(const ScheduleOptions& options, const ScheduleProgress& progress);
    // Marks the queue as mirrored (currantd calls it when it attaches):
    // entrypoints declared later without a durability get `async`.
    void mark_mirrored();
    // A sealed queue accepts enqueues but hands nothing out (a rebuild in progress).
    void unseal();
    bool sealed() const;

private:
    explicit Queue(std::unique_ptr<detail::QueueState> state) noexcept;
    std::unique_ptr<detail::QueueState> state_;
};

// Helpers for payloads given as text.
inline std::span<const std::byte> as_payload(std::string_view text) noexcept {
    return std::as_bytes(std::span<const char>(text.data(), text.size()));
}
inline std::string_view as_text(std::span<const std::byte> payload) noexcept {
    return {reinterpret_cast<const char*>(payload.data()), payload.size()};
}

} // namespace currant
