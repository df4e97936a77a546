// core's region of the segment: entrypoints, the participant registry, the
// delayed heaps, the transition logs and per-participant counters.
//
// Internal: the layout is pinned by shm::layout_version and the layout word.
// Guard notation next to each field:
//   [immutable]      written by the creator before the magic is published
//   [E]              guarded by the entrypoint's lock
//   [R]              guarded by the registry lock (entrypoint declarations)
//   [L]              guarded by the participant's life lock
//   [atomic, order]  accessed without a lock with the stated memory order
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "currant/shm/arena.hpp"
#include "currant/shm/layout.hpp"
#include "currant/queue.hpp"
#include "currant/shm/robust_mutex.hpp"

namespace currant::detail {

using shm::cache_line;

inline constexpr std::uint32_t max_priority_lanes = 32;
inline constexpr std::size_t entrypoint_name_bytes = 64;
inline constexpr std::int64_t no_deadline = INT64_MAX;

// The lease deadline of a pick or heartbeat at now_mono. lease is
// EntrypointControl::lease_ns, read from the segment, so possibly corrupt
// (declare refuses a non-positive one): a non-positive lease expires at
// once, and the sum saturates below no_deadline instead of overflowing.
inline std::int64_t lease_deadline(std::int64_t now_mono, std::int64_t lease) noexcept {
    if (lease <= 0) lease = 1;
    std::int64_t deadline = 0;
    if (__builtin_add_overflow(now_mono, lease, &deadline) || deadline == no_deadline) return no_deadline - 1;
    return deadline;
}

// Per-slot job metadata, right after the slot's state word.
struct JobRecord {
    std::uint64_t job_id;           // written by the owner while reserved; fixed while queued/picked
    std::uint64_t sequence;         // [E] FIFO order within the entrypoint
    std::int64_t execute_after_ns;  // written while reserved or under [E]; CLOCK_REALTIME
    std::int64_t enqueued_at_ns;    // written while reserved; CLOCK_REALTIME
    // CLOCK_MONOTONIC. Set under [E] at pick; extended by the owner's
    // heartbeat and claimed (set to 0) by a reaper, both with CAS, so a
    // heartbeat either lands before the reaper's claim or fails.
    std::atomic<std::int64_t> lease_deadline_ns;
    std::uint32_t entrypoint;       // written while reserved
    std::int32_t priority;          // written while reserved
    std::uint32_t payload_size;     // written while reserved
    std::uint32_t attempts;         // [E] deliveries so far
    std::uint32_t max_attempts;     // written while reserved
    // [E] Where this job's entry sits in its ready lane's ring (lane
    // rings, below): the absolute position and the ring's index; both
    // shm::no_slot while the job is in no lane. Written by the append, read
    // by an unlink (cancel) and checked by every pop and by the doctor.
    std::uint32_t lane_position;
    std::uint32_t lane_ring;
    std::uint32_t heap_position;    // [E] index in the delayed heap, shm::no_slot if not there
    // How the job this slot held last ended (see "Last outcome" below):
    // last_outcome holds the id's low 60 bits and the status in one word,
    // so a reader never pairs an id with another write's status;
    // last_job_id is the same write's full id. A pair counts only when
    // both name the id asked about (last_outcome_for). Written (relaxed,
    // set_last, commit_last, undo_last in queue_state.hpp) by whoever ends
    // a job in the slot, before its commit CAS of the state word (which
    // releases them); read relaxed after an acquire of the state word and
    // before an acquire fence (the seqlock re-read, or recorded_end's).
    std::atomic<std::uint64_t> last_outcome;
    std::atomic<std::uint64_t> last_job_id;
    // Whether this pick counts against the entrypoint's concurrency limit
    // (docs/limits.md): limit_mark(epoch, kind) of the pick's epoch. Written
    // only under [E]: by the pick, before the state word's release store, so
    // an owner that acquired the state word reads its pick's mark (never
    // changed while picked); and, once the slot has left that pick, by
    // whoever gives the limit slot back (limits.cpp, leave_limit and
    // apply_released), which rewrites it to uncounted. A slot `reserved` at
    // epoch e+1 whose mark still says counted(e) is a counted pick acked
    // without the lock whose limit slot is not yet given back: it still
    // counts (pending_release_mark; limits.cpp, I1). Any other mark of
    // another epoch is stale and means uncounted.
    std::atomic<std::uint64_t> limit_mark;

    // Kept dead jobs (outcomes.cpp, docs/dead-jobs.md). dead_mark:
    // dead_mark(epoch, kind) for the `exception` epoch it describes (a mark
    // of another epoch than the state word's means "not kept"):
    //   none           the death is not kept (max_dead 0, or un-kept by a
    //                  purge/eviction that left the slot to the mirror)
    //   kept           on the dead list, its death not yet mirrored
    //   kept_mirrored  on the dead list, its death mirrored (or `memory`:
    //                  nothing to mirror), so it may be freed at once
    // Written under [E] by the finisher before the state word's CAS into
    // `exception` (acq_rel), so a lock-free recycler (commit_feed,
    // settle_dirty) that acquired that word reads at least this epoch's
    // mark. Afterwards it moves only by CAS: kept -> kept_mirrored by the
    // recycler (lock-free), kept -> none by a purge or eviction under [E].
    // Whichever CAS wins decides who frees the slot: a recycler that finds
    // none frees it; a purger that finds kept_mirrored frees it. A kept
    // slot (kept or kept_mirrored) leaves `exception` only under [E].
    std::atomic<std::uint64_t> dead_mark;
    std::uint32_t dead_next;        // [E] the entrypoint's dead list, oldest first (shm::no_slot = none)
    std::uint32_t dead_prev;        // [E]
    std::int64_t died_at_ns;        // [E] CLOCK_REALTIME, written before the CAS into `exception`

    // Cancellation of a picked job (docs/cancellation.md): the pick epoch a
    // cancel was requested for; a mark of another epoch is stale and means
    // none. Stored (seq_cst) under [E] only, while the state word is picked
    // with that epoch, so every requeue (which runs under [E]) sees it and
    // ends the job `canceled` instead; read without the lock by the holder
    // (acquire for the flag, seq_cst before it sleeps on its cancel signal).
    std::atomic<std::uint64_t> cancel_epoch;

    // Kept results (results.cpp, docs/results.md). A job that ends
    // `successful` or `canceled` while its entrypoint's result_retention is
    // above 0 is kept in its final state: dead_mark then names that final
    // epoch with the same kinds as for a dead job (kept: not mirrored yet;
    // kept_mirrored: free to recycle), written under [E] before the CAS into
    // the final state and moved kept -> kept_mirrored only by the mirror's
    // lock-free CAS. kept_until_ns: CLOCK_MONOTONIC, written with the mark
    // (released by the same CAS); a kept_mirrored slot past it is recycled
    // first when slots are needed, and any kept_mirrored slot, oldest first,
    // when the arena would otherwise be full. Recycling is one CAS of the
    // state word (final -> reserved by the recycler), so a recycler that
    // dies after it leaves a reserved slot its reaper frees.
    std::atomic<std::int64_t> kept_until_ns;

    // When the current pick happened (CLOCK_MONOTONIC; the dequeue's own
    // clock read, no extra one). Written under [E] by the pick before the
    // state word's release store, so the holder, which acquired that word,
    // reads its own pick's time when it finishes the job and counts the run
    // time into its latency cells (LatencyCells). Relaxed: the state word
    // orders it. Stale for any other epoch; nobody else reads it.
    std::atomic<std::int64_t> picked_at_ns;

    // Dependencies (dependencies.cpp, docs/job-dependencies.md): how many
    // pending edges of waiting jobs name this job as their dependency.
    // Raised under [G] by a linker (seq_cst RMW, then it re-reads the state
    // word, seq_cst); read (seq_cst) by every finisher right after its
    // seq_cst CAS into a final state (note_completion): the store-buffer
    // pattern, so either the finisher sees the count and settles the
    // dependency lock, or the linker sees the job finished. Lowered under
    // [G] only after the edge it counts is resolved, so never below the
    // truth; the [G] repair recounts it. Reset to 0 by the producer while
    // the slot is reserved (a decrement saturates at 0).
    std::atomic<std::uint32_t> dependents;
    // [atomic] Bumped (acq_rel) by each transition that found the log full;
    // the mirror clears it by CAS from the value it read, so a transition
    // after its read keeps the mark.
    std::atomic<std::uint32_t> mirror_dirty;
    // The dedupe key hash of the last keyed job in this slot, and 1 once
    // the slot had one (layout 20): written by that job's producer while
    // reserved, kept by keyless jobs. Read only by the next keyed producer
    // that reserves the slot, to delete that key's stale index entry
    // (dedupe.cpp); a hint, so any value is safe. At the end, beside the
    // fields every producer writes (dependents, mirror_dirty), so that
    // fields the consumer reads keep their lines; the keyed producer reads
    // it right after the reservation, while it writes the record.
    std::uint32_t dedupe_hash;
    std::uint32_t dedupe_keyed;
};
static_assert(std::is_standard_layout_v<JobRecord>);

// Last outcome (JobRecord::last_outcome, layout 14). The word is
// (id << 4) | claimed << 3 | status: the low 60 bits of the job id, whether
// the write is still a claim, and its JobStatus (successful, exception,
// canceled, or unknown for a purged dead job; all below 8). Ids are 64 bits
// (host id << 48 | counter), so the word alone cannot name every id
// exactly; last_job_id beside it holds the full id, and a pair counts only
// when both name the id asked about: an id read from one write with a
// status read from another would need two ids equal in their low 60 bits
// (the same counter under two host ids equal in their low 12 bits) to be
// written into one slot while the reader looks.
//
// Claimed: written before the writer's commit CAS of the state word, which
// may fail (another finisher took the job); the winner stores the same
// outcome again without the flag once its CAS succeeded (the slot is then
// reserved by it). Readers read a claim like any outcome (a claim they
// find while the slot no longer holds the job live is the winner's, but
// for the cases in docs/job-dependencies.md, "The last outcome"); a loser
// puts back only an unclaimed outcome of the same job (undo_last), never a
// stale claim.
inline constexpr std::uint64_t last_claimed_bit = 8;
inline constexpr std::uint64_t last_outcome_word(std::uint64_t id, std::uint32_t status, bool claimed) noexcept {
    return (id << 4) | (claimed ? last_claimed_bit : 0) | (status & 7);
}
// Whether word (with full_id, the slot's last_job_id) records how job id
// ended, and then status.
inline bool last_outcome_names(std::uint64_t word, std::uint64_t full_id, std::uint64_t id,
                               std::uint32_t& status) noexcept {
    if (id == 0 || full_id != id || (word >> 4) != (id & (~std::uint64_t(0) >> 4))) return false;
    status = std::uint32_t(word & 7);
    return true;
}
inline bool last_outcome_for(const JobRecord& rec, std::uint64_t id, std::uint32_t& status) noexcept {
    const std::uint64_t word = rec.last_outcome.load(std::memory_order_relaxed);
    return last_outcome_names(word, rec.last_job_id.load(std::memory_order_relaxed), id, status);
}
static_assert(std::atomic<std::int64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// purged: the slot's `exception` word of this epoch is a purge of a kept
// dead job of a mirrored (async/sync) entrypoint, logged for the mirror
// (which deletes its currant_dead row) and freed when the mirror commits it
// (docs/dead-jobs.md, "Purges").
enum class DeadMark : std::uint64_t { none = 0, kept = 1, kept_mirrored = 2, purged = 3 };
inline constexpr std::uint64_t dead_mark(std::uint64_t epoch, DeadMark kind) noexcept {
    return (epoch << 2) | std::uint64_t(kind);
}

enum class LimitMark : std::uint64_t { uncounted = 0, counted = 1 };
inline constexpr std::uint64_t limit_mark(std::uint64_t epoch, LimitMark kind) noexcept {
    return (epoch << 2) | std::uint64_t(kind);
}
// The mark a `reserved` state word `word` carries while it is a counted
// pick's lock-free ack whose limit slot is not yet given back: counted for
// the epoch before (StateWord::next adds one, modulo 2^44).
inline constexpr std::uint64_t pending_release_mark(std::uint64_t word) noexcept {
    return limit_mark((shm::StateWord::epoch(word) - 1) & ((std::uint64_t(1) << 44) - 1), LimitMark::counted);
}

// A ready lane: the jobs of one priority, FIFO, as a ring of slot indices
// (lane_ring_entries below, one ring per ring index, capacity a power of two
// >= slot_count). head and tail are absolute positions (uint32, wrapping;
// entry at position p is ring[p & (capacity - 1)]): [head, tail) holds the
// lane's jobs in sequence order, and holes (shm::no_slot) left by unlinks
// (cancel). count: the jobs, holes not counted. All [E]; derived: the
// entrypoint repair rebuilds lanes and rings from the state words.
struct PriorityLane {
    std::int32_t priority;
    std::uint32_t ring;   // which ring of the entrypoint (0..max_priority_lanes-1), distinct per lane
    std::uint32_t head;   // position of the oldest entry (lowest sequence), maybe a hole
    std::uint32_t tail;   // position after the newest
    std::uint32_t count;  // jobs in [head, tail)
};

// An operation in flight under the entrypoint lock. A repairer that finds it
// active completes the log append if the state word reached new_word, and
// otherwise treats the operation as never started. Indexes are rebuilt from
// the state words either way.
struct Intent {
    std::uint32_t active;          // [E] 1 while an operation runs
    std::uint32_t slot;            // [E]
    std::uint64_t old_word;        // [E]
    std::uint64_t new_word;        // [E]
    std::uint64_t log_head_before; // [E]
    // A schedule's tick (schedules.cpp): index + 1 of the schedule this
    // publish fires (0: not a tick), and the move of its next_tick_ns that
    // the publish commits. The repair makes the move iff the state word
    // reached new_word: one tick, one job, whatever instruction a firer
    // died at.
    std::uint32_t schedule;        // [E]
    // A purge of a kept dead job (outcomes.cpp, purge_logged_locked): 1 if
    // the repair, finding new_word published, must also set the slot's dead
    // mark to purged(new epoch) before it appends the log record.
    std::uint32_t purge;           // [E]
    std::int64_t tick_from;        // [E]
    std::int64_t tick_to;          // [E]
};

struct TransitionRecord {
    std::uint64_t sequence;
    std::uint64_t job_id;
    std::uint64_t epoch;
    std::int64_t at_ns;
    std::uint32_t slot;
    std::uint8_t status;
    std::uint8_t flags;            // transition_purge: an `exception` record that is a purge, not a death
    std::uint8_t unused[2];
    std::uint32_t attempts;
    std::uint32_t unused2;
};
static_assert(sizeof(TransitionRecord) == 48);

inline constexpr std::uint8_t transition_purge = 1;

struct DelayedEntry {
    std::int64_t due_ns;     // CLOCK_REALTIME
    std::uint64_t sequence;
    std::uint32_t slot;
    std::uint32_t unused;
};

// Latency histograms (docs/observability.md): one block per (participant,
// entrypoint), beside the counters and kept the same way. Single writer: the
// participant that owns the row (a pick counts the wait of each job it
// picks, the holder's ack, fail or retry counts the run time), with plain
// relaxed load/store pairs, no RMW and no lock, on the memory ack's
// lock-free path as on the locked ones. Bucket words and the sum are
// independent words: a writer killed between two of its stores leaves one
// observation uncounted or the sum one observation off, never a torn word.
// Nothing is derived from these, so no repair touches them.
//   - Readers (stats()) load every word relaxed and without a lock; a read
//     racing a writer sees each word old or new. count = sum of the buckets,
//     so a reader's count always equals its buckets' total.
//   - At close, and when a dead participant is reaped, its row is folded
//     into the retired row (index max_participants) by exchange(0) then
//     fetch_add (relaxed: several reapers may fold at once): a folder killed
//     in between loses those observations; a reader racing a fold may miss
//     or double them for that one read. A new owner zeroes the row it claims.
// Pages: tmpfs allocates a page at its first touch, read or write, so
// fold, zero and stats() walk only declared entrypoints, and stats() only
// the rows of registered participants and the retired row.
struct LatencyCells {
    std::atomic<std::uint64_t> wait[latency_bucket_count];
    std::atomic<std::uint64_t> wait_sum_ns;
    std::atomic<std::uint64_t> run[latency_bucket_count];
    std::atomic<std::uint64_t> run_sum_ns;
};
static_assert(std::is_standard_layout_v<LatencyCells> && sizeof(LatencyCells) == 384);

enum Counter : std::uint32_t {
    counter_enqueued = 0,
    counter_picks,
    counter_successful,
    counter_failed,
    counter_retried,
    counter_canceled,
    counter_kinds = 8,
};

struct EntrypointControl {
    // Configuration: [R] to declare; changed under [E]; read with relaxed
    // loads (a stale read only applies the old option to one more job).
    std::atomic<std::uint32_t> declared;   // [atomic, release/acquire] 1 once name and options are written
    std::atomic<std::uint32_t> durability;
    std::atomic<std::uint32_t> max_attempts;
    std::uint32_t unused;
    std::atomic<std::int64_t> lease_ns;
    std::atomic<std::int64_t> retry_delay_ns;
    std::atomic<std::int64_t> max_retry_delay_ns;
    char name[entrypoint_name_bytes];      // [R] immutable once declared

    // Pause and limits (docs/limits.md). Written under [E]; read under [E]
    // by picks and without the lock (seq_cst) by consumers deciding whether
    // to sleep, which pairs with the writer's fence before it wakes the
    // sleepers (resume, a raised limit). Each is one word, so a writer that
    // dies leaves the old or the new value, never a torn one.
    std::atomic<std::uint32_t> paused;             // 1: nothing is handed out
    std::atomic<std::uint32_t> concurrency_limit;  // 0: none; else counted picks allowed at once
    std::atomic<std::int64_t> rate_interval_ns;    // 0: none; else ns per start (1 / rate)
    std::atomic<std::uint32_t> rate_burst;         // starts the bucket holds (>= 1 when a rate is set)
    std::uint32_t unused_limits;

    // The lock on its own line: spinning lockers must not steal the line the
    // owner is writing (intent, lanes).
    alignas(cache_line) shm::RobustMutex lock;
    alignas(cache_line) Intent intent;      // [E]
    std::uint64_t next_sequence;            // [E]
    std::uint32_t lane_count;               // [E] lanes sorted by priority, descending
    std::uint32_t delayed_count;            // [E] entries in the delayed heap
    PriorityLane lanes[max_priority_lanes]; // [E]
    // [E] writer side of the transition log; readers use log_head.
    std::uint64_t log_written;
    // Bumped under [E] (release, after the picks' state words) by every pick
    // batch (on its own line: the lanes above are written by every append); a lease scan reads it (acquire) before scanning without the lock
    // and compares under the lock to learn whether picks happened meanwhile.
    alignas(cache_line) std::atomic<std::uint64_t> pick_generation;

    // Read without the lock by consumers deciding whether to lock or sleep.
    // Stored under [E] with release (after the job is published), loaded with
    // seq_cst by a consumer after it set its sleeper bit (Dekker pairing with
    // the producer's fence before it reads the sleeper bits).
    alignas(cache_line) std::atomic<std::uint32_t> ready_count;
    std::atomic<std::int64_t> earliest_delayed_ns;  // [E] writes; relaxed reads: top of the delayed heap
    // Lower bound on the lease deadlines of picked jobs (CLOCK_MONOTONIC).
    // Lowered under [E] at pick; replaced only by a lease scan under [E].
    std::atomic<std::int64_t> earliest_lease_ns;
    // Picks counted against concurrency_limit (their limit_mark says
    // counted) that are still picked. Stored under [E] only (every counted
    // pick enters and leaves `picked` under [E]); read without the lock
    // (seq_cst) by a consumer about to sleep, Dekker pairing with the
    // releaser's seq_cst fence before it reads the sleeper bits. Derived:
    // the entrypoint repair recounts it from the state words and marks.
    std::atomic<std::uint32_t> in_flight;
    // While a concurrency limit is set: an upper bound on the picks of the
    // entrypoint that are not counted (made before the limit was set; they
    // may be acked without the lock, which only lowers the truth). Stored
    // under [E] from a scan of the state words: by the setter, and by every
    // pick while it is not 0 (a rescan, which reaches 0 once they are gone).
    // Derived: the repair rescans. seq_cst reads like in_flight.
    std::atomic<std::uint32_t> legacy_picks;
    // The rate limit's token bucket as one word (GCRA, the "theoretical
    // arrival time"): CLOCK_MONOTONIC ns. A start is allowed while
    // max(tat, now) + interval <= now + burst * interval; each start adds
    // one interval. Stored under [E] before the pick's state word, so a
    // picker that dies in between wasted one start (never allowed an extra
    // one); relaxed reads without the lock only compute a sleep deadline.
    std::atomic<std::int64_t> rate_tat_ns;

    // Transition log positions. log_head: next sequence to be written,
    // stored with release after the record is complete; the mirror reads
    // records below it with acquire. log_committed: the mirror's cursor.
    alignas(cache_line) std::atomic<std::uint64_t> log_head;
    alignas(cache_line) std::atomic<std::uint64_t> log_committed;
    std::atomic<std::uint32_t> commit_signal;       // futex: bumped at every commit
    std::atomic<std::uint32_t> dirty_slots;         // slots marked mirror_dirty

    // Counters of reaped participants, folded in by the reaper.
    alignas(cache_line) std::atomic<std::uint64_t> retired_counters[counter_kinds];

    // The dedupe index of this entrypoint (docs/dedupe.md, dedupe.cpp): a
    // derived structure, rebuilt from the slots' state words and keys by
    // the entrypoint repair. [E], plain accesses (only lockers read them).
    alignas(cache_line) std::uint32_t dedupe_used; // non-empty entries in the index (<= dedupe capacity)
    std::uint32_t dedupe_in_use;                  // 1 once a keyed job was indexed (0: the index is all empty)
    // Kept dead jobs (outcomes.cpp). The list is a derived index: the
    // entrypoint repair rebuilds it from the state words (`exception`) and
    // JobRecord::dead_mark (kept or kept_mirrored of that epoch), ordered by JobRecord::sequence, which a death sets from
    // next_sequence. max_dead: configuration like durability ([R] to
    // declare, changed under [E], relaxed reads). The rest [E].
    alignas(cache_line) std::atomic<std::uint32_t> max_dead; // kept dead jobs at most; 0: keep none
    std::uint32_t dead_head;                 // [E] oldest kept dead job (shm::no_slot = none)
    std::uint32_t dead_tail;                 // [E] newest
    std::uint32_t dead_count;                // [E] jobs on the list
    // How long a finished (successful, canceled) job stays readable with its
    // result (docs/results.md); 0: not kept. Configuration like max_dead.
    std::atomic<std::int64_t> result_retention_ns;

    // No pause, no limits, nothing counted: a new segment, and an entry a
    // declarer that died left unpublished (it may carry its limits).
    void clear_limits() noexcept {
        paused.store(0, std::memory_order_relaxed);
        concurrency_limit.store(0, std::memory_order_relaxed);
        rate_interval_ns.store(0, std::memory_order_relaxed);
        rate_burst.store(0, std::memory_order_relaxed);
        in_flight.store(0, std::memory_order_relaxed);
        legacy_picks.store(0, std::memory_order_relaxed);
        rate_tat_ns.store(0, std::memory_order_relaxed);
    }
};
static_assert(std::is_standard_layout_v<EntrypointControl>);

enum class ParticipantStatus : std::uint32_t { free = 0, active = 1 };

struct ParticipantEntry {
    // Held by the participant's holder thread for as long as it is
    // registered: trylock EBUSY = alive, EOWNERDEAD = dead (reap it).
    shm::RobustMutex life_lock;
    std::atomic<std::uint32_t> status;     // [L] ParticipantStatus
    std::int32_t pid;                      // [L] diagnostics only
    std::uint64_t start_time;              // [L] /proc start time, diagnostics only

    // Futex the participant sleeps on: 1 = sleeping, 0 = awake. Set to 1 by
    // its owner (seq_cst) before it sets sleeper bits; set to 0 by a waker
    // that cleared its sleeper bit (release), then FUTEX_WAKE.
    alignas(cache_line) std::atomic<std::uint32_t> wake_word;
    // Bumped (seq_cst) under [E] by a canceller right after it marked a job
    // this participant holds (JobRecord::cancel_epoch), and by the repair of
    // [E] for every marked pick it finds (a canceller that died between the
    // mark and the bump); then FUTEX_WAKE (all). wait_for_cancel sleeps on
    // it: it reads it and then the marks, both seq_cst, the canceller stores
    // the mark and then bumps it (Dekker pairing). A dequeue returns early
    // when it moved since the owner's last look (cancel_signal_seen_).
    // Never reset: only changes matter (a reused entry's new owner may see
    // one stale bump: one early return, harmless).
    std::atomic<std::uint32_t> cancel_signal;
    // 1 while this participant is counted in CoreHeader::completion_waiters
    // (Queue::wait, results.cpp). Set by its owner after the count was
    // raised; whoever clears it by exchange (the owner when its wait ends, or
    // the reaper of a dead owner) lowers the count.
    std::atomic<std::uint32_t> completion_waiting;
};
static_assert(std::is_standard_layout_v<ParticipantEntry>);

struct CoreHeader {
    std::uint32_t max_entrypoints;      // [immutable]
    std::uint32_t max_participants;     // [immutable]
    std::uint32_t log_capacity;         // [immutable]
    std::uint32_t sleeper_words;        // [immutable] 64-bit words per entrypoint
    std::uint64_t entrypoints_offset;   // [immutable] relative to the core region
    std::uint64_t participants_offset;  // [immutable]
    std::uint64_t sleepers_offset;      // [immutable] uint64[max_entrypoints + 1][sleeper_words + 1]; the
                                        // last row marks producers waiting for a free slot. Word
                                        // [sleeper_words] of an entrypoint's row is its waking word:
                                        // participant index + 1 of a consumer awake in dequeue that
                                        // looks at the entrypoint again before it sleeps or returns
                                        // (0: none). Written by that consumer (claim/release, CAS
                                        // seq_cst), by a waker that hands it to the sleeper it wakes
                                        // (seq_cst store) and by the reaper of a dead holder (CAS).
    std::uint64_t delayed_offset;       // [immutable] DelayedEntry[max_entrypoints][slot_count]
    std::uint64_t logs_offset;          // [immutable] TransitionRecord[max_entrypoints][log_capacity]
    std::uint64_t counters_offset;      // [immutable] uint64[max_participants][max_entrypoints][counter_kinds]
    std::uint64_t schedules_offset;     // [immutable] ScheduleEntry[max_schedules]
    std::uint64_t region_bytes;         // [immutable]

    alignas(cache_line) shm::RobustMutex registry_lock; // guards entrypoint declaration
    std::atomic<std::uint32_t> entrypoint_count;        // [R] writes; acquire reads

    // Futex for producers waiting for a free slot: bumped (release) and woken
    // by whoever frees slots while a space-waiter bit is set. Waiters set
    // their bit (seq_cst), then re-check the free count: Dekker pairing with
    // the releaser's fence before it reads the bits.
    alignas(cache_line) std::atomic<std::uint32_t> space_signal;

    // The mirror (currantd) sleeps on mirror_signal: it sets mirror_waiting
    // (seq_cst), then reads every log head (seq_cst) and sleeps. An appender
    // that takes a log from empty to one record, or to half its capacity,
    // and a sync enqueuer about to wait, issue a seq_cst fence and read
    // mirror_waiting: Dekker pairing, so either the mirror sees the record
    // or the appender sees the flag, clears it, bumps the signal and wakes.
    // A sync enqueuer bumps mirror_signal (seq_cst) whether or not the
    // mirror waits, then reads the flag: a mirror that read the signal
    // (Queue::feed_signal) before its feed read compares at its next wait
    // and does not sleep on a request it may have missed. A counter only:
    // a process dying around a bump leaves nothing to repair.
    alignas(cache_line) std::atomic<std::uint32_t> mirror_waiting;
    std::atomic<std::uint32_t> mirror_signal;
    // 1 while a rebuild restores jobs: dequeues hand nothing out. Cleared
    // with seq_cst, then every sleeper is woken (they re-check it after
    // setting their wake word, like the retired flag).
    std::atomic<std::uint32_t> sealed;
    // 1 once a mirror attached: the default durability of new entrypoints
    // is then async. Never cleared (the daemon comes back after a restart).
    std::atomic<std::uint32_t> mirrored;

    // Bumped (seq_cst) after every schedule add and remove. A consumer about
    // to sleep sets its wake word and sleeper bits (seq_cst), then compares
    // it with the value its last scan saw; an adder bumps it, then (fence)
    // reads the sleeper bits and wakes: Dekker pairing, so a new schedule
    // either is seen or wakes a sleeper to recompute its deadline.
    alignas(cache_line) std::atomic<std::uint64_t> schedule_epoch;

    // Bumped (seq_cst) by every change of what currantd records besides the
    // jobs (docs/daemon.md, "Entrypoint state and schedules"): a declare,
    // pause/resume, a limit set or removed, a schedule added or removed, and
    // a schedule's tick. The mirror compares it with the value its last
    // committed record saw, each time it wakes, and then re-reads the
    // configuration. A tick bumps it under [E] before the tick job's state
    // word and log record are published (release), so a mirror that read
    // the job from the feed (acquire) and then loads this word sees the
    // bump, and reads the schedule under [E] (after the tick moved).
    // Changers bump it, then nudge the mirror (seq_cst fence, then
    // mirror_waiting): the Dekker pairing of the log's appenders. One word;
    // a changer killed before its bump leaves its change unrecorded until
    // the next bump (or the mirror's next start, which records everything).
    std::atomic<std::uint64_t> configuration_generation;

    // Outcome areas (outcomes.cpp): OutcomeHeader + outcome_capacity bytes
    // per slot, outcome_stride apart.
    std::uint64_t outcomes_offset;      // [immutable]
    std::uint32_t outcome_stride;       // [immutable]
    std::uint32_t outcome_capacity;     // [immutable] max(result_bytes, min_error_bytes)

    // Bumped (seq_cst) by every participant right after it registered, then
    // FUTEX_WAKE (all) on it. A holder asleep in wait_for_cancel
    // (cancelling.cpp) reads it (seq_cst) before it arms death watches on the
    // active participants and sleeps on it as well, so a participant that
    // registers later (a canceller) makes it re-arm with that one included;
    // the kernel then wakes it if the canceller dies between its mark and
    // its wake-up. 32 bits, wraps: only changes matter.
    alignas(cache_line) std::atomic<std::uint32_t> registrations;

    // Queue::wait (results.cpp). A waiter raises completion_waiters (seq_cst
    // RMW), reads completion_signal, then the state words of its jobs (both
    // seq_cst), and sleeps on completion_signal. A finisher moves a job's
    // state word into its final state (seq_cst CAS), then loads
    // completion_waiters (seq_cst); only if it is not 0 does it bump the
    // signal and FUTEX_WAKE (all). All four are seq_cst, so either the
    // waiter sees the final state or the finisher sees the waiter (the
    // store-buffer pattern), and a bump after the waiter's read makes its
    // futex wait fail. A count left too high by a process killed between
    // raising it and marking its entry costs a FUTEX_WAKE per completion,
    // never a lost wake-up.
    alignas(cache_line) std::atomic<std::uint32_t> completion_signal;
    std::atomic<std::uint32_t> completion_waiters;
};
static_assert(std::is_standard_layout_v<CoreHeader>);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

// ------------------------------------------------------------- outcomes
// docs/dead-jobs.md. One area per slot: the job's last error text (kind
// error) or its result (kind result). Written under [E] only, while the
// writer holds the job (picked by it, or claimed by a reaper) and before the
// state word's CAS that ends or requeues the pick; read under [E], or
// without it by copying and then re-checking the state word (the mirror).
// An area belongs to the job (job_id) and the state word epoch (epoch) it
// was written for; a reader that finds another id or epoch sees no outcome.
// length is bounds-checked against outcome_capacity at every read.
inline constexpr std::uint32_t min_error_bytes = 1024;  // error texts are cut to the capacity, at least this
enum class OutcomeKind : std::uint32_t { none = 0, error = 1, result = 2 };
struct OutcomeHeader {
    std::uint64_t job_id;           // [E]
    std::uint64_t epoch;            // [E] the state word epoch the outcome was written for
    std::uint32_t kind;             // [E] OutcomeKind
    std::uint32_t length;           // [E] bytes that follow (<= outcome_capacity)
    std::uint32_t original_length;  // [E] the text's length before it was cut (== length: not cut)
    std::uint32_t unused;
    std::int64_t at_ns;             // [E] CLOCK_REALTIME
};
static_assert(std::is_trivially_copyable_v<OutcomeHeader> && sizeof(OutcomeHeader) == 40);

// ------------------------------------------------------------- schedules
// docs/schedules.md; the firing protocol is in schedules.cpp.
inline constexpr std::uint32_t max_schedules = 64;
inline constexpr std::size_t schedule_name_bytes = 64;
inline constexpr std::size_t schedule_expression_bytes = 128;
inline constexpr std::uint32_t schedule_payload_bytes = 1024;

enum class ScheduleState : std::uint32_t { free = 0, writing = 1, active = 2 };

// Guards: [R] = CoreHeader::registry_lock (add and remove), [E] = the lock
// of the schedule's entrypoint (firing, and remove as well). Fields marked
// "fixed" are written while the entry is `writing` (under [R], invisible to
// firers) and never change while it is `active`; an entry leaves `active`
// only under [R] and [E], so a firer holding [E] that sees it active reads
// a stable entry.
struct ScheduleEntry {
    // [R] writes: free -> writing -> active (release); active -> free also
    // under [E]. Readers load acquire before reading fixed fields. A
    // `writing` entry found under [R] was left by an adder that died: free.
    std::atomic<std::uint32_t> state;
    std::atomic<std::uint32_t> entrypoint;     // fixed; atomic because lock-free scans read it
    // [E] writes; relaxed reads without the lock only decide whether to
    // lock. The earliest tick not yet fired (CLOCK_REALTIME ns, whole
    // seconds); INT64_MAX: never again.
    std::atomic<std::int64_t> next_tick_ns;
    // Bumped under [R] at every add and remove (release): list() copies an
    // entry and re-checks it, so a concurrent add/remove is not misread.
    std::atomic<std::uint64_t> generation;
    // [E] statistics. A firer killed between moving next_tick_ns and these
    // leaves them one tick behind (the tick itself is exact).
    std::atomic<std::uint64_t> fired;
    std::atomic<std::int64_t> last_tick_ns;
    std::atomic<std::uint64_t> last_job_id;
    // Fixed.
    std::uint64_t seconds_mask, minutes_mask;
    std::uint32_t hours_mask, days_mask, months_mask, weekdays_mask;
    std::uint32_t any_day, any_weekday;
    std::int32_t priority;
    std::uint32_t policy;          // currant::MissedTicks
    std::uint32_t catch_up_max;
    std::uint32_t payload_size;    // <= schedule_payload_bytes
    std::int64_t created_at_ns;
    char name[schedule_name_bytes];
    char expression[schedule_expression_bytes];
    std::byte payload[schedule_payload_bytes];
};
static_assert(std::is_standard_layout_v<ScheduleEntry>);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

inline std::string_view name_of(const ScheduleEntry& s) noexcept {
    std::size_t length = 0;
    while (length < schedule_name_bytes && s.name[length] != '\0') ++length;
    return {s.name, length};
}

// ------------------------------------------------------------- dedupe keys
// docs/dedupe.md; the index protocol is in dedupe.cpp.
inline constexpr std::size_t dedupe_key_bytes = 128;

// The dedupe key of the job in one slot (one per slot, beside the arena).
// Written by the producer while the slot is reserved by it, before the
// release store that publishes the job; fixed while the job is queued or
// picked. A reader under [E] validates what it read seqlock-style: it
// loads the slot's state word (acquire) before and (after an acquire fence)
// again after reading the key, and trusts the key only if the word did not
// change. The key belongs to the slot's job only while job_id equals the
// slot's JobRecord::job_id: a keyless job leaves the previous key here,
// under another job id, so keyless enqueues write nothing.
struct DedupeKey {
    std::uint64_t job_id;             // the job this key belongs to
    std::uint32_t hash;               // dedupe_hash(bytes[0, length))
    std::uint32_t length;             // 1..dedupe_key_bytes
    char bytes[dedupe_key_bytes];
};
static_assert(std::is_standard_layout_v<DedupeKey> && std::is_trivially_copyable_v<DedupeKey>);
static_assert(sizeof(DedupeKey) == 16 + dedupe_key_bytes);

// One entry of an entrypoint's open-addressing (linear probing) index.
// [E]. slot_plus_one 0: empty. An entry is a hint: it counts only while its
// slot holds a queued or picked job of the entrypoint whose DedupeKey names
// that job and has this hash; otherwise it is stale and the next insert
// that walks over it deletes it.
struct DedupeEntry {
    std::uint32_t slot_plus_one;
    std::uint32_t hash;
};
static_assert(sizeof(DedupeEntry) == 8 && std::is_trivially_copyable_v<DedupeEntry>);

// Entries per entrypoint: at least twice the slot count (a power of two), so
// the live keys (at most one per slot) never fill more than half of it.
inline std::uint32_t dedupe_capacity_for(std::uint32_t slot_count) noexcept {
    std::uint64_t capacity = 16;
    while (capacity < 2ull * slot_count) capacity *= 2;
    return std::uint32_t(capacity);
}

// ------------------------------------------------------------- dependencies
// docs/job-dependencies.md; the protocol is in dependencies.cpp.
// Guard [G]: DependencyControl::lock, one per queue (dependencies cross
// entrypoints). Lock order: a life lock, then [G], then one entrypoint
// lock, then the arena lock; no path takes [G] while it holds an
// entrypoint lock. Every move out of `waiting` holds [G] and the job's [E].
inline constexpr std::uint32_t max_dependencies = 16;

enum class EdgeOutcome : std::uint32_t {
    pending = 0,
    successful = 1,  // the dependency ended successful
    exception = 2,   // it ended exception: the dependent is canceled
    canceled = 3,    // it ended canceled: the dependent is canceled
    lost = 4,        // its slot no longer says how it ended: the dependent is canceled
    abandoned = 5,   // the dependent left `waiting` another way (canceled) before this one ended
};

// One dependency of a job. job_id and slot are written by the producer
// while the dependent is reserved by it and fixed afterwards.
struct DependencyEdge {
    std::uint64_t job_id;                  // the dependency
    std::uint32_t slot;                    // its slot when linked (checked against job_id at every use)
    std::atomic<std::uint32_t> outcome;    // [G] EdgeOutcome; relaxed reads by status and doctor
    // [G] The dependents list of `slot` (layout 19): every pending edge of
    // a waiting job whose `slot` is that slot, doubly linked by edge_link
    // (0: none). Derived like the waiting list: pushed when the edge is
    // linked, removed when it leaves pending, rebuilt by the [G] repair.
    // Meaningless while the edge is not pending.
    std::uint32_t next;
    std::uint32_t prev;
};
static_assert(sizeof(DependencyEdge) == 24);

// An edge's place in the dependents lists: slot * max_dependencies + edge
// index + 1 (0: none). Slots are fewer than max_dependency_slots (Queue::create).
inline constexpr std::uint32_t max_dependency_slots = (1u << 28) - 1;
inline constexpr std::uint32_t edge_link(std::uint32_t slot, std::uint32_t edge) noexcept {
    return slot * 16 + edge + 1;
}

// The dependency row of the job in one slot (one per slot, beside the
// arena). A row belongs to the slot's job only while job_id equals the
// slot's JobRecord::job_id: jobs without dependencies write nothing here.
struct DependencyRow {
    std::atomic<std::uint64_t> job_id;     // written while reserved (release), after the edges
    std::uint32_t count;                   // edges in use, 1..max_dependencies; written while reserved
    // [G] The waiting list (all entrypoints), a derived index: exactly the
    // slots whose state word is `waiting`; rebuilt by the [G] repair.
    std::uint32_t waiting_next;
    std::uint32_t waiting_prev;
    // [G] When the job started waiting (DependencyControl::next_wait_order,
    // layout 19): a settle releases the jobs of one entrypoint in this
    // order. Only compared between waiting jobs, by difference (wraps).
    std::uint32_t wait_order;
    // [G] The head of this slot's dependents list (DependencyEdge::next;
    // layout 19): the pending edges naming the job in this slot, or one it
    // held before, so a finisher settles only those. Not the row's own
    // job's data: a producer writing its row leaves it alone.
    std::uint32_t first_dependent;
    std::uint32_t unused;
    DependencyEdge edges[max_dependencies];
};
static_assert(std::is_standard_layout_v<DependencyRow>);
static_assert(sizeof(DependencyRow) == 32 + 24 * max_dependencies);
static_assert(max_dependencies == 16); // edge_link

struct DependencyControl {
    alignas(cache_line) shm::RobustMutex lock; // [G]
    alignas(cache_line) std::uint32_t waiting_head;  // [G] waiting list (no_slot: empty)
    std::uint32_t next_wait_order;                   // [G] the next DependencyRow::wait_order (layout 19)
    // [G] writes, relaxed reads: jobs in state `waiting`, all entrypoints. A
    // reaper that reads 0 has nothing to settle. Derived (repair recounts).
    std::atomic<std::uint32_t> waiting_total;
};

// Recent outcomes (dependencies.cpp, docs/job-dependencies.md): how jobs
// ended after their slot forgot them. One word per entry, capacity a power
// of two (ended_capacity_for); a job id's entry is ended_index of its
// counter part (the low 48 bits):
//   0                         empty
//   (counter << 2) | code     that job ended: code 1 successful, 2
//                             exception, 3 canceled, 0 how is not known
//                             (a dead job purged)
// No lock: each entry is one word, only raised (a load, then a store of a
// larger counter, or the same counter with a newer end; two writers racing
// on one entry may leave the older id, whose younger rival is then "not
// recorded"), so a writer killed anywhere leaves the old or the new word. Written by whoever overwrites a slot's
// last outcome (the job ending in the slot now moves the one
// that ended there before into its entry): CAS, then a release fence, then
// the slot's fields, so a reader that no longer finds a job in its slot
// (acquire fence after reading the slot) finds it here, unless a younger
// id with the same entry took it (then the outcome is reported as no
// longer known, never guessed). Nothing is derived from it: no repair;
// doctor checks that each entry sits at its id's index.
//
// The index adds the id's block number (ids are handed out in blocks of
// 256, one block per process at a time) so that block starts, which is all
// a process enqueueing one job uses (the CLI), spread over the entries as
// well as consecutive ids do: two ids share an entry only if (d + b) is a
// multiple of the capacity, d their distance and b the blocks between them.
// Hence ended_kept_span: an id at most that far after a job never takes
// its entry.
inline constexpr std::uint64_t ended_counter_mask = (std::uint64_t(1) << 48) - 1;
inline constexpr std::uint64_t ended_entry(std::uint64_t counter, std::uint32_t code) noexcept {
    return (counter << 2) | code;
}
inline constexpr std::uint64_t ended_index(std::uint64_t counter, std::uint32_t capacity) noexcept {
    return (counter + (counter >> 8)) & (capacity - 1);
}
inline std::uint32_t ended_capacity_for(std::uint32_t slot_count) noexcept {
    std::uint64_t capacity = 1024;
    while (capacity < 4ull * slot_count) capacity *= 2;
    return std::uint32_t(capacity);
}
// Ids handed out after a job that can never take its entry (see above):
// d <= capacity - capacity/256 - 2 gives d + b <= capacity - 2.
inline constexpr std::uint64_t ended_kept_span(std::uint32_t capacity) noexcept {
    return capacity - capacity / 256 - 2;
}

struct CoreGeometry {
    std::uint64_t entrypoints_offset, participants_offset, sleepers_offset, delayed_offset, logs_offset,
        counters_offset, schedules_offset, region_bytes;
    std::uint32_t sleeper_words;
    // Dedupe keys and indexes (derived from the parameters, not recorded in
    // the CoreHeader): DedupeKey[slot_count], then
    // DedupeEntry[max_entrypoints][dedupe_capacity].
    std::uint64_t dedupe_keys_offset, dedupe_index_offset;
    std::uint32_t dedupe_capacity;
    std::uint64_t outcomes_offset;
    std::uint32_t outcome_stride, outcome_capacity;
    // Latency cells (derived, not recorded in the CoreHeader):
    // LatencyCells[max_participants + 1][max_entrypoints]; the last row holds
    // the folded cells of participants that left or were reaped.
    std::uint64_t latency_offset;
    // Dependencies (derived from the parameters): DependencyControl, then
    // uint32 waiting[max_entrypoints] ([G] writes, relaxed reads),
    // DependencyRow[slot_count].
    std::uint64_t dependency_control_offset, waiting_counts_offset, dependency_rows_offset;
    // Recent outcomes: atomic<uint64>[ended_capacity].
    std::uint64_t ended_offset;
    std::uint32_t ended_capacity;
    // Lane rings (derived from the parameters): uint32
    // [max_entrypoints][max_priority_lanes][lane_ring_capacity], [E] of
    // their entrypoint. Sparse like the delayed heaps: a ring's pages are
    // allocated only once a lane using it reaches them.
    std::uint64_t lane_rings_offset;
    std::uint32_t lane_ring_capacity;
};

// Entries per lane ring: a power of two >= slot_count, so a lane never
// holds more jobs than its ring has entries.
inline std::uint32_t lane_ring_capacity_for(std::uint32_t slot_count) noexcept {
    std::uint64_t capacity = 1;
    while (capacity < slot_count) capacity *= 2;
    return std::uint32_t(capacity);
}

inline std::uint64_t round_up(std::uint64_t value, std::uint64_t to) { return (value + to - 1) / to * to; }

inline CoreGeometry compute_core_geometry(const shm::SegmentParameters& p) {
    CoreGeometry g{};
    g.sleeper_words = (p.max_participants + 63) / 64;
    std::uint64_t at = round_up(sizeof(CoreHeader), cache_line);
    g.entrypoints_offset = at;
    at = round_up(at + sizeof(EntrypointControl) * std::uint64_t(p.max_entrypoints), cache_line);
    g.participants_offset = at;
    at = round_up(at + sizeof(ParticipantEntry) * std::uint64_t(p.max_participants), cache_line);
    g.sleepers_offset = at;
    // Each entrypoint's sleeper words on their own line(s), then its waking
    // word (docs/architecture.md "Waking consumers"): the producer reads both.
    const std::uint64_t sleeper_stride = round_up(8ull * (g.sleeper_words + 1), cache_line);
    at = round_up(at + sleeper_stride * (std::uint64_t(p.max_entrypoints) + 1), 4096);
    g.delayed_offset = at;
    at = round_up(at + sizeof(DelayedEntry) * std::uint64_t(p.slot_count) * p.max_entrypoints, 4096);
    g.logs_offset = at;
    at = round_up(at + sizeof(TransitionRecord) * std::uint64_t(p.log_capacity) * p.max_entrypoints, 4096);
    g.counters_offset = at;
    // Each participant's counters on their own lines (single writer each).
    const std::uint64_t counter_stride = round_up(8ull * counter_kinds * p.max_entrypoints, cache_line);
    at = round_up(at + counter_stride * p.max_participants, 4096);
    g.schedules_offset = at;
    at = round_up(at + sizeof(ScheduleEntry) * std::uint64_t(max_schedules), 4096);
    g.dedupe_keys_offset = at;
    at = round_up(at + sizeof(DedupeKey) * std::uint64_t(p.slot_count), 4096);
    g.dedupe_index_offset = at;
    g.dedupe_capacity = dedupe_capacity_for(p.slot_count);
    at = round_up(at + sizeof(DedupeEntry) * std::uint64_t(g.dedupe_capacity) * p.max_entrypoints, 4096);
    g.outcomes_offset = at;
    g.outcome_capacity = std::max(p.result_bytes, min_error_bytes);
    g.outcome_stride = std::uint32_t(round_up(sizeof(OutcomeHeader) + std::uint64_t(g.outcome_capacity), 64));
    at = round_up(at + std::uint64_t(g.outcome_stride) * p.slot_count, 4096);
    g.latency_offset = at;
    at = round_up(at + sizeof(LatencyCells) * (std::uint64_t(p.max_participants) + 1) * p.max_entrypoints, 4096);
    g.dependency_control_offset = at;
    at = round_up(at + sizeof(DependencyControl), cache_line);
    g.waiting_counts_offset = at;
    at = round_up(at + 4ull * p.max_entrypoints, 4096);
    g.dependency_rows_offset = at;
    at = round_up(at + sizeof(DependencyRow) * std::uint64_t(p.slot_count), 4096);
    g.ended_offset = at;
    g.ended_capacity = ended_capacity_for(p.slot_count);
    at = round_up(at + 8ull * g.ended_capacity, 4096);
    g.lane_rings_offset = at;
    g.lane_ring_capacity = lane_ring_capacity_for(p.slot_count);
    at = round_up(at + 4ull * g.lane_ring_capacity * max_priority_lanes * p.max_entrypoints, 4096);
    g.region_bytes = at;
    return g;
}

inline constexpr std::uint32_t record_bytes = sizeof(JobRecord);

// An entrypoint's name as written in the segment, never reading past its field.
inline std::string_view name_of(const EntrypointControl& c) noexcept {
    std::size_t length = 0;
    while (length < entrypoint_name_bytes && c.name[length] != '\0') ++length;
    return {c.name, length};
}

} // namespace currant::detail
