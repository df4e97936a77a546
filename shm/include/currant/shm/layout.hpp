// The segment header at offset 0 and the facts it pins down.
//
// Everything in the segment is position independent: regions are found by
// byte offsets recorded here, slots by index. Nothing stores a pointer.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <pthread.h>
#include <type_traits>

#include "currant/shm/robust_mutex.hpp"

namespace currant::shm {

inline constexpr std::size_t cache_line = 128; // two 64-byte lines: defeats adjacent-line prefetch sharing
inline constexpr std::uint64_t segment_magic = 0x31544e4152525543ull; // "CURRANT1" little-endian
// 3: entrypoint pause and limits, JobRecord::limit_mark (docs/limits.md).
// 4: schedules (docs/schedules.md): the schedule table, CoreHeader::schedule_epoch, Intent's tick.
// 5: dedupe keys (docs/dedupe.md): the per-entrypoint dedupe index, the slots' key area.
// 6: CoreHeader::configuration_generation (currantd records entrypoint state and schedules).
// 7: dead jobs (docs/dead-jobs.md): SegmentParameters::result_bytes, per-slot outcome areas, the dead list.
// 8: cancellation of picked jobs (docs/cancellation.md): JobRecord::cancel_epoch,
//    ParticipantEntry::cancel_signal, CoreHeader::registrations.
// 9: job results and wait (docs/results.md): JobRecord::kept_until_ns,
//    EntrypointControl::result_retention_ns, ParticipantEntry::completion_waiting,
//    CoreHeader::completion_signal and completion_waiters.
// 10: latency histograms (docs/observability.md): JobRecord::picked_at_ns, the
//     per-participant LatencyCells region after the outcome areas.
// 11: job dependencies (docs/job-dependencies.md): SlotState::waiting,
//    JobRecord::dependents, the dependency lock, waiting list and counts,
//    job id hints and per-slot dependency rows.
// 12: mirrored purges of dead jobs (docs/dead-jobs.md): DeadMark::purged,
//     TransitionRecord::flags (purge), Intent::purge.
// 13: recent outcomes (docs/job-dependencies.md): one word per entry after
//     the dependency rows, how jobs ended once their slot forgot them.
// 14: a slot's last outcome in one word (docs/job-dependencies.md):
//     JobRecord::last_outcome (id's low 60 bits, claim flag, status)
//     replaces last_status, so no reader pairs one finisher's id with
//     another's status; last_job_id atomic; mirror_dirty moved to the end.
// 15: a waking word per entrypoint after its sleeper bits (docs/
//     architecture.md "Waking consumers"): an enqueue does not wake a
//     sleeper while a live consumer is awake and will look again.
// 16: ready lanes as rings of slot indices (docs/architecture.md, "Entrypoint
//     indexes"): PriorityLane::ring, JobRecord::lane_position/lane_ring
//     instead of lane links, the lane rings after the recent outcomes, no
//     hint ring of recent appends.
// 19: dependencies (docs/job-dependencies.md): DependencyRow::wait_order and
//     DependencyControl::next_wait_order (in formerly unused words): a
//     memory-durability job starts waiting without its entrypoint lock, so
//     its release order no longer comes from JobRecord::sequence. (17 and 18
//     were reserved by branches that merged after it, as 20 and 21.)
// 20: the dedupe key hash (docs/dedupe.md) reads the key 8 bytes at a time
//     instead of FNV-1a's byte loop: stored in DedupeKey and the index
//     entries, so a process of an earlier layout would not find this one's
//     keys; JobRecord::dedupe_hash/dedupe_keyed (the slot's last key, whose
//     stale index entry the next keyed producer of the slot deletes).
// 21: a counted pick acked without the lock (docs/limits.md, "How it stays
//     exact"): a `reserved` slot whose JobRecord::limit_mark still says
//     counted for the epoch before counts against the concurrency limit
//     until its owner (or reaper) gives it back; the give-back rewrites the
//     mark. Same bytes, new meaning: an earlier build would ack counted
//     picks under the lock without rewriting the mark, and a recount would
//     count them twice.
inline constexpr std::uint32_t layout_version = 21;

// Sizes chosen at creation; immutable afterwards.
struct SegmentParameters {
    std::uint32_t slot_count = 0;
    std::uint32_t payload_bytes = 0;    // inline payload capacity of one slot
    std::uint32_t record_bytes = 0;     // per-slot metadata owned by core (after the state word)
    std::uint32_t max_entrypoints = 0;
    std::uint32_t max_participants = 0;
    std::uint32_t log_capacity = 0;     // transition records per entrypoint
    std::uint32_t host_id = 0;          // 16 significant bits
    std::uint32_t result_bytes = 0;     // largest job result (docs/dead-jobs.md); sizes the outcome area
};
static_assert(std::is_trivially_copyable_v<SegmentParameters>);

// Arena bookkeeping. The free stack lists slots whose state is FREE; it is a
// derived index, rebuilt from the slots' state words after a dead owner.
struct alignas(cache_line) ArenaControl {
    // On its own line: lockers spinning on it must not steal the line the
    // owner is writing (free_count).
    RobustMutex lock;              // guards free_count and the free stack array
    // Entries valid in the free stack: written under lock (relaxed), read
    // without it only as a hint (a producer deciding whether to sleep).
    alignas(cache_line) std::atomic<std::uint32_t> free_count;
};

struct SegmentHeader {
    // Written last at creation with release order; read first with acquire.
    // Zero under the creation flock means the creator died half-way.
    std::atomic<std::uint64_t> magic;
    std::uint32_t layout_version;     // immutable
    std::uint32_t header_bytes;       // immutable: sizeof(SegmentHeader)
    std::uint64_t layout_word;        // immutable: ABI facts, see make_layout_word
    std::uint64_t total_bytes;        // immutable: the mapped length
    SegmentParameters parameters;     // immutable
    std::uint32_t slot_bytes;         // immutable: slot stride
    std::uint32_t creator_uid;        // immutable
    std::uint64_t arena_offset;       // immutable: slot 0
    std::uint64_t free_stack_offset;  // immutable: uint32_t[slot_count]
    std::uint64_t core_offset;        // immutable: core's region
    std::uint64_t core_bytes;         // immutable
    std::int64_t creation_realtime_ns;// immutable
    std::uint64_t incarnation;        // immutable: new at every creation or rebuild
    std::uint64_t pid_namespace;      // immutable: inode of the creator's pid namespace
    std::uint64_t parameter_hash;     // immutable: FNV-1a of parameters and core_bytes

    // Set (release) before the object is unlinked or rebuilt; every call
    // checks it (relaxed is enough: a stale read only delays the refusal).
    alignas(cache_line) std::atomic<std::uint32_t> retired;

    // Job id counter: processes take blocks with fetch_add (relaxed; only
    // uniqueness matters). 48 significant bits.
    alignas(cache_line) std::atomic<std::uint64_t> next_job_counter;

    ArenaControl arena;
};
static_assert(std::is_standard_layout_v<SegmentHeader>);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// ABI facts two processes must agree on to share a segment. Each field gets
// its own byte range so a mismatch can be named.
struct LayoutFacts {
    std::uint32_t mutex_bytes;
    std::uint32_t cache_line_bytes;
    std::uint32_t header_bytes;
    std::uint32_t record_bytes;
};
std::uint64_t make_layout_word(const LayoutFacts& facts) noexcept;
std::uint64_t hash_parameters(const SegmentParameters& parameters, std::uint64_t core_bytes) noexcept;
LayoutFacts read_layout_word(std::uint64_t word) noexcept;
LayoutFacts this_build_layout_facts(std::uint32_t record_bytes) noexcept;

} // namespace currant::shm
