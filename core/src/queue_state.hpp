// The implementation behind currant::Queue. Internal.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <future>
#include <mutex>
#include <optional>
#include <pthread.h>
#include <span>
#include <string>
#include <vector>

#include "currant/queue.hpp"
#include "currant/shm/arena.hpp"
#include "currant/shm/crash_point.hpp"
#include "currant/shm/futex.hpp"
#include "currant/shm/segment.hpp"
#include "layout.hpp"

namespace currant::detail {

// The job status a slot state stands for (unknown for free and reserved).
inline JobStatus status_of_state(shm::SlotState state) noexcept {
    switch (state) {
    case shm::SlotState::queued: return JobStatus::queued;
    case shm::SlotState::picked: return JobStatus::picked;
    case shm::SlotState::successful: return JobStatus::successful;
    case shm::SlotState::exception: return JobStatus::exception;
    case shm::SlotState::canceled: return JobStatus::canceled;
    case shm::SlotState::waiting: return JobStatus::waiting;
    default: return JobStatus::unknown;
    }
}
inline constexpr std::uint32_t default_max_dead = 1000; // kept dead jobs per entrypoint (docs/dead-jobs.md)

inline JobStatus status_of(std::uint64_t word) noexcept { return status_of_state(shm::StateWord::state(word)); }

// Process-wide count of fork() calls seen in this process image; a Queue
// opened under another count is refused (DESIGN: a forked child does not
// inherit its parent's registration).
// Inline: every enqueue and dequeue checks it (queue_state.cpp bumps it).
extern std::atomic<std::uint64_t> forks_seen;
inline std::uint64_t fork_generation() noexcept { return forks_seen.load(std::memory_order_relaxed); }

// The 32-bit hash of a dedupe key (dedupe.cpp; part of the segment's format).
std::uint32_t dedupe_hash(std::string_view key) noexcept;
// The same hash, and in one pass over the key whether it is free of control
// characters (bytes below 0x20 and 0x7f): false if it has one.
bool scan_dedupe_key(std::string_view key, std::uint32_t& hash) noexcept;

// Queue::set_dequeue_returns_on_signal of the calling thread (consuming.cpp).
bool dequeue_returns_on_signal_enabled() noexcept;

// Throws invalid_argument naming `where` for a limit of zero or less (limits.cpp).
void validate_limit_options(const EntrypointOptions& options, const std::string& where);

// What the recent outcomes say of a job id (QueueState::recorded_end).
enum class EndedLookup { found, never_issued, not_recorded, overwritten, purged };

class QueueState {
public:
    QueueState(shm::Segment segment);
    ~QueueState();

    static void initialize_core(shm::Segment& segment, bool sealed);
    static std::uint64_t core_bytes_for(const shm::SegmentParameters& parameters);

    // --- lifecycle ---
    // Retired / forked / closed. Inline: every enqueue, dequeue_one and
    // ack_deferred runs it; the slow path words the error.
    void check_usable() const {
        if (opened_fork_generation_ != fork_generation() || closed_ || segment_.retired()) [[unlikely]]
            check_usable_slow();
    }
    void check_usable_slow() const;
    void ensure_registered();
    void close() noexcept;

    // --- entrypoints ---
    EntrypointId declare_entrypoint(std::string_view name, const EntrypointOptions& options);
    EntrypointId find_entrypoint(std::string_view name) const;
    EntrypointOptions entrypoint_options(EntrypointId id) const;
    std::string entrypoint_name(EntrypointId id) const;
    std::uint32_t entrypoint_count() const noexcept {
        return core_->entrypoint_count.load(std::memory_order_acquire);
    }
    EntrypointControl& control(EntrypointId id) const noexcept { return entrypoints_[id]; }
    // Inline: every enqueue checks it; the error is worded out of line.
    void check_entrypoint(EntrypointId id) const {
        if (id >= entrypoint_count() || entrypoints_[id].declared.load(std::memory_order_acquire) == 0) [[unlikely]]
            entrypoint_not_found(id);
    }
    [[noreturn]] void entrypoint_not_found(EntrypointId id) const;
    std::string describe(EntrypointId id) const; // "queue 'q', entrypoint 'e'"

    // --- pause and limits (limits.cpp) ---
    void set_paused(EntrypointId ep, bool paused);
    bool paused(EntrypointId ep) const;
    void set_concurrency_limit(EntrypointId ep, std::optional<std::int64_t> limit);
    void set_rate_limit(EntrypointId ep, std::optional<double> per_second, std::int64_t burst);
    EntrypointLimits limits(EntrypointId ep) const;

    // --- schedules (schedules.cpp) ---
    // progress: a restored schedule's (restore_schedule); null: a new one.
    void add_schedule(const ScheduleOptions& options, const ScheduleProgress* progress = nullptr);
    void remove_schedule(std::string_view name);
    std::vector<ScheduleInfo> schedules() const;
    std::size_t run_schedules();

    // --- producing ---
    JobId enqueue(EntrypointId ep, std::span<const std::byte> payload, const EnqueueOptions& options);
    std::size_t enqueue_batch(EntrypointId ep, std::span<const std::span<const std::byte>> payloads,
                              std::span<JobId> ids, const EnqueueOptions& options);
    Reservation reserve(EntrypointId ep);
    JobId commit(Reservation& reservation, std::size_t size, const EnqueueOptions& options);
    void abandon(Reservation& reservation) noexcept;

    // --- consuming ---
    std::size_t dequeue(std::span<const EntrypointId> eps, std::span<Job> out, std::int64_t timeout_ns);
    std::optional<Job> dequeue_one(std::span<const EntrypointId> eps, std::int64_t timeout_ns);
    void set_prefetch(std::uint32_t jobs);
    void interrupt() noexcept;
    // result: the handler's result (results.cpp), only with one job and `successful`.
    std::size_t finish(std::span<const JobHandle> jobs, JobStatus final_status, bool throw_on_first,
                       std::string_view error = {}, const std::span<const std::byte>* result = nullptr);
    void ack_deferred(const JobHandle& job);
    std::size_t flush();
    bool retry(const JobHandle& job, std::optional<std::int64_t> delay_ns, std::string_view error = {});
    std::size_t heartbeat(std::span<const JobHandle> jobs);
    // --- cancellation (cancelling.cpp) ---
    CancelOutcome cancel(JobId id);
    bool cancel_requested(const JobHandle& job) const noexcept;
    std::optional<std::size_t> wait_for_cancel(std::span<const JobHandle> jobs, std::int64_t timeout_ns);
    std::uint64_t cancel_wakeups() const noexcept { return cancel_wakeups_; }

    // --- dead jobs and outcomes (outcomes.cpp) ---
    std::vector<DeadJob> dead_jobs(std::optional<EntrypointId> ep, std::size_t limit) const;
    bool requeue_dead(JobId id);
    std::size_t requeue_all_dead(EntrypointId ep);
    bool purge_dead(JobId id);
    std::size_t purge_all_dead(EntrypointId ep);
    void fail(const JobHandle& job, std::string_view error);

    // --- results and waiting (results.cpp) ---
    void ack_with_result(const JobHandle& job, std::span<const std::byte> result);
    std::vector<JobOutcome> wait(std::span<const JobId> ids, std::int64_t timeout_ns);
    void set_result_retention(EntrypointId ep, std::int64_t retention_ms);
    // Recycles kept results: every one past its retention, and, if that
    // frees fewer than `wanted` slots, the oldest others up to `wanted`.
    // Returns the slots given back to the arena.
    std::size_t recycle_kept_results(std::size_t wanted) noexcept;

    // --- inspecting ---
    std::vector<JobState> status(std::span<const JobId> ids) const;
    void read_dependencies_of(std::uint32_t slot, JobId id, JobState& out) const;
    std::vector<ActiveJob> active_jobs(std::optional<EntrypointId> entrypoint, std::size_t limit) const;
    std::vector<EntrypointStats> stats() const;
    std::vector<ParticipantInfo> participants() const;
    QueueInfo info() const;
    DoctorReport doctor();
    std::size_t reap();

    // --- feed ---
    std::size_t read_feed(EntrypointId ep, std::uint64_t from, std::span<Transition> out) const;
    void commit_feed(EntrypointId ep, std::uint64_t sequence, bool wake_waiters);
    void wake_feed_waiters(EntrypointId ep) noexcept;
    std::uint64_t feed_committed(EntrypointId ep) const;
    bool read_job(std::uint32_t slot, JobId id, JobSnapshot& out) const;
    std::uint64_t wait_for_feed(std::int64_t flush_after_ns, std::int64_t idle_timeout_ns,
                                std::optional<std::uint64_t> configuration_seen,
                                std::optional<std::uint32_t> signal_seen = std::nullopt);
    std::uint32_t feed_signal() const noexcept;
    std::uint64_t configuration_generation() const;
    QueueConfiguration configuration();
    // After a change currantd records (CoreHeader::configuration_generation):
    // bump, then wake the mirror if it waits.
    void note_configuration_change() noexcept;
    void wake_feed_waiter() noexcept;
    std::size_t collect_dirty(std::vector<JobSnapshot>& out) const;
    void settle_dirty(std::span<const JobSnapshot> mirrored);
    JobId restore(EntrypointId ep, const RestoredJob& job, const EnqueueOptions& options);
    void restore_outcome(EntrypointId ep, const RestoredOutcome& job);
    void unseal();
    void mark_mirrored();
    bool sealed() const noexcept { return core_->sealed.load(std::memory_order_seq_cst) != 0; }

    const std::string& name() const noexcept { return segment_.name(); }
    bool last_enqueue_skipped() const noexcept { return last_enqueue_skipped_; }

    // After the segment was retired: wake every sleeping participant so that
    // it sees segment_retired instead of sleeping on.
    void wake_everyone() noexcept;

private:
    friend class EntrypointLock;

    // Region accessors.
    JobRecord& record(std::uint32_t slot) const noexcept { return arena_.record<JobRecord>(slot); }
    std::atomic<std::uint64_t>* sleeper_words(EntrypointId ep) const noexcept;
    DelayedEntry* delayed_heap(EntrypointId ep) const noexcept;
    TransitionRecord* log(EntrypointId ep) const noexcept;
    std::atomic<std::uint64_t>* counters(std::uint32_t participant, EntrypointId ep) const noexcept {
        auto* base = reinterpret_cast<std::atomic<std::uint64_t>*>(reinterpret_cast<std::byte*>(core_) +
                                                                    core_->counters_offset);
        return base + counter_stride_ * participant + std::uint64_t(counter_kinds) * ep;
    }
    // Single writer (this participant): a plain load/store pair, no RMW.
    void count(EntrypointId ep, Counter kind, std::uint64_t by = 1) noexcept {
        auto& counter = counters(my_index_, ep)[kind];
        counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
    }
    // Latency cells (layout.hpp, LatencyCells): row max_participants_ is the
    // retired row. observe_* write this participant's own row (single writer).
    LatencyCells& latency_cells(std::uint32_t row, EntrypointId ep) const noexcept {
        return latency_base_[std::uint64_t(row) * max_entrypoints_ + ep];
    }
    // Single writer: a plain relaxed load/store pair per word, no RMW (like
    // count()). A writer killed between the bucket and the sum leaves the
    // sum one observation short: statistics (docs/observability.md).
    static void observe_into(std::atomic<std::uint64_t>* buckets, std::atomic<std::uint64_t>& sum,
                             std::int64_t duration_ns) noexcept {
        if (duration_ns < 0) duration_ns = 0; // clocks of another host, a stepped realtime clock
        auto& bucket = buckets[latency_bucket_of(duration_ns)];
        bucket.store(bucket.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        sum.store(sum.load(std::memory_order_relaxed) + std::uint64_t(duration_ns), std::memory_order_relaxed);
    }
    void observe_wait(EntrypointId ep, std::int64_t duration_ns) noexcept {
        LatencyCells& cells = latency_cells(my_index_, ep);
        observe_into(cells.wait, cells.wait_sum_ns, duration_ns);
    }
    void observe_run(EntrypointId ep, std::int64_t duration_ns) noexcept {
        LatencyCells& cells = latency_cells(my_index_, ep);
        observe_into(cells.run, cells.run_sum_ns, duration_ns);
    }
    void fold_latency(std::uint32_t participant) noexcept;  // into the retired row, then zero
    void zero_latency(std::uint32_t participant) noexcept;  // a claimed row starts empty

    // Entrypoint lock with repair.
    void lock_entrypoint(EntrypointId ep);
    bool repair_entrypoint(EntrypointId ep) noexcept;

    // Index maintenance, all under [E].
    PriorityLane* lane_for(EntrypointControl& c, std::int32_t priority, bool create);
    void lane_append(EntrypointControl& c, PriorityLane& lane, std::uint32_t slot);
    void lane_unlink(EntrypointControl& c, std::uint32_t slot);
    // Inline: the pick runs it per job. Every index it reads is checked; a
    // mismatch throws corrupt_segment and asks the next locker to repair.
    std::uint32_t lane_pop_front(EntrypointControl& c, PriorityLane& lane) {
        if (lane.count == 0 || lane.ring >= max_priority_lanes || lane.tail - lane.head > lane_ring_mask_ + 1)
            [[unlikely]] lane_corrupt(c, "lane head out of range");
        const std::uint32_t* ring = lane_ring(c, lane);
        std::uint32_t slot = shm::no_slot;
        while (slot == shm::no_slot) { // skip the holes of unlinked jobs
            if (lane.head == lane.tail) [[unlikely]]
                lane_corrupt(c, "lane ring holds fewer jobs than its count");
            slot = ring[lane.head++ & lane_ring_mask_];
        }
        if (slot >= arena_.slot_count()) [[unlikely]]
            lane_corrupt(c, "lane ring entry out of range");
        JobRecord& rec = record(slot);
        if (rec.lane_ring != lane.ring || rec.lane_position != lane.head - 1) [[unlikely]]
            lane_corrupt(c, "lane ring entry does not match its job's position");
        rec.lane_position = rec.lane_ring = shm::no_slot;
        if (--lane.count == 0) lane.head = lane.tail; // only holes left
        return slot;
    }
    [[noreturn]] void lane_corrupt(EntrypointControl& c, const char* what);
    // The ring of lane `lane` of the entrypoint whose control is c (entries
    // at position p: [p & lane_ring_mask_]); the caller checked lane.ring.
    std::uint32_t* lane_ring(const EntrypointControl& c, const PriorityLane& lane) const noexcept {
        return lane_rings_ + (std::uint64_t(&c - entrypoints_) * max_priority_lanes + lane.ring) *
                                 (std::uint64_t(lane_ring_mask_) + 1);
    }
    // Moves a lane's jobs together over its holes (an append found its ring full).
    void lane_compact(EntrypointControl& c, PriorityLane& lane);
    bool remove_lane_if_empty(EntrypointControl& c, PriorityLane& lane);
    void heap_push(EntrypointId ep, std::uint32_t slot);
    void heap_remove(EntrypointId ep, std::uint32_t position);
    void heap_sift_up(EntrypointId ep, std::uint32_t position);
    void heap_sift_down(EntrypointId ep, std::uint32_t position);
    void update_earliest_delayed(EntrypointId ep);
    void promote_due(EntrypointId ep, std::int64_t now_realtime);
    // Places a QUEUED slot into its lane (ready) or the delayed heap.
    // Returns true if it became ready.
    bool place_queued(EntrypointId ep, std::uint32_t slot, std::int64_t now_realtime);
    bool append_log(EntrypointId ep, std::uint32_t slot, std::uint64_t word);
    // Marks a slot whose transition the full log could not take.
    void mark_mirror_dirty(EntrypointId ep, std::uint32_t slot) noexcept;
    // Wakes the mirror if it waits (after a seq_cst fence; see CoreHeader).
    void nudge_mirror() noexcept;
    // A sync enqueuer about to wait: bumps mirror_signal even while the
    // mirror is busy (it compares at its next wait), wakes it if asleep.
    void ask_mirror_to_commit() noexcept;
    // commit_feed/settle_dirty: a finished slot whose final state is mirrored goes back to the arena.
    void recycle_finished(EntrypointId ep, std::uint32_t slot, std::uint64_t epoch, JobStatus status,
                          std::vector<std::uint32_t>& to_release) noexcept;
    std::uint64_t feed_pending() const noexcept;
    void begin_intent(EntrypointControl& c, std::uint32_t slot, std::uint64_t old_word, std::uint64_t new_word);
    // Requeue (or end `exception` past max attempts) a PICKED slot whose
    // word is `word`. Returns true if requeued. acting_owner receives the
    // slot for freeing in memory durability.
    // canceled: a cancel was requested for this pick (cancelling.cpp), so it
    // ended `canceled` instead of going back.
    enum class RequeueResult { requeued, dead, raced, canceled };
    // error: the failure's text, kept as the job's last error (outcomes.cpp).
    RequeueResult requeue_locked(EntrypointId ep, std::uint32_t slot, std::uint64_t word, std::int64_t delay_ns,
                                 std::uint32_t acting_owner, std::vector<std::uint32_t>& to_release,
                                 std::string_view error = {});
    bool finish_locked(EntrypointId ep, std::uint32_t slot, std::uint64_t word, JobStatus final_status,
                       std::uint32_t acting_owner, std::vector<std::uint32_t>& to_release,
                       std::string_view error = {}, const std::span<const std::byte>* result = nullptr);

    // Outcomes and kept dead jobs (outcomes.cpp), all under [E].
    OutcomeHeader& outcome(std::uint32_t slot) const noexcept {
        return *reinterpret_cast<OutcomeHeader*>(outcomes_ + std::uint64_t(slot) * outcome_stride_);
    }
    std::byte* outcome_bytes(std::uint32_t slot) const noexcept {
        return outcomes_ + std::uint64_t(slot) * outcome_stride_ + sizeof(OutcomeHeader);
    }
    // Writes an error text (cut to the capacity) for job id at the epoch it is about to enter.
    void write_error_locked(std::uint32_t slot, JobId id, std::uint64_t epoch, std::string_view text) noexcept;
    // The error text kept for (id, epoch), empty if none; truncated says whether it was cut.
    std::string read_error(std::uint32_t slot, JobId id, std::uint64_t epoch, bool* truncated = nullptr) const;
    // Before the CAS into `exception`: whether it keeps the job, its death
    // order and time, and the error text (new_word: the word it will enter).
    void prepare_death(EntrypointControl& c, std::uint32_t slot, std::uint64_t new_word, bool keep,
                       std::string_view error) noexcept;
    // After the CAS into `exception` of a kept job: links it at the list's
    // tail and evicts the oldest past max_dead (their slots to to_release).
    void keep_dead_locked(EntrypointId ep, std::uint32_t slot, std::uint32_t acting_owner,
                          std::vector<std::uint32_t>& to_release) noexcept;
    void dead_unlink(EntrypointControl& c, std::uint32_t slot) noexcept;
    // Drops a kept dead job (purge, eviction): freed now (its slot into
    // to_release), or, if its death is not mirrored yet, left to the
    // mirror's recycling; not_dead if the slot is no longer a kept dead job.
    // purged: its status reads unknown once freed (eviction: exception until
    // the slot is reused).
    enum class Discard { freed, left_to_mirror, not_dead };
    // A purge of a kept dead job of an async/sync entrypoint: logged (a
    // purge record) and left to the mirror, which frees the slot.
    Discard purge_logged_locked(EntrypointId ep, std::uint32_t slot, std::uint64_t word) noexcept;
    Discard discard_dead_locked(EntrypointId ep, std::uint32_t slot, std::uint32_t acting_owner,
                                std::vector<std::uint32_t>& to_release, bool purged) noexcept;
    // True if word (slot's state word) is `exception` and the dead mark says kept.
    bool is_kept_dead(std::uint32_t slot, std::uint64_t word) const noexcept;

    // Results (results.cpp). Under [E], the job held by the writer, before
    // the CAS into `successful` at new_word's epoch.
    void write_result_locked(std::uint32_t slot, JobId id, std::uint64_t epoch,
                             std::span<const std::byte> result) noexcept;
    // The result kept for (id, epoch); nullopt if none. Lock-free: copies and
    // re-checks the area's tag (the slot may be recycled meanwhile).
    std::optional<std::vector<std::byte>> read_result(std::uint32_t slot, JobId id, std::uint64_t epoch,
                                                      std::int64_t* at_ns = nullptr) const;
    // Under [E], before the CAS into a final state that keeps the job
    // (successful or canceled with a retention): mark and deadline.
    void prepare_kept_result(EntrypointControl& c, std::uint32_t slot, std::uint64_t new_word) noexcept;
    // True if word is `successful` or `canceled` and the dead mark names its
    // epoch as kept (kept_mirrored: mirrored too, when mirrored_only).
    bool is_kept_result(std::uint32_t slot, std::uint64_t word, bool mirrored_only) const noexcept;
    // After a job entered a final state (its seq_cst CAS): wakes Queue::wait
    // sleepers if there are any (one seq_cst load otherwise). While
    // completion_wake_deferred_ is set (finish(), which holds [E] across a
    // batch) the signal moves at once and the futex wake waits for
    // wake_owed_completion_waiters(), after the lock is released.
    // slot: the finished job's; a job others depend on asks for a settle
    // (settle_if_wanted, dependencies.cpp).
    void note_completion(std::uint32_t slot) noexcept;
    void wake_owed_completion_waiters() noexcept;
    bool completion_wake_deferred_ = false;
    bool completion_wake_owed_ = false;
    // key_held: the job's dedupe key is held by requeue_holder_; it stays dead.
    enum class DeadRequeue { requeued, key_held, not_dead };
    DeadRequeue requeue_dead_locked(EntrypointId ep, std::uint32_t slot, std::uint64_t word);
    // Part of repair_entrypoint: rebuilds the dead list from the state words.
    void repair_dead_list(EntrypointId ep);
    // doctor: the dead list lists exactly the kept dead jobs; "" when sound.
    std::string check_dead_list(EntrypointId ep);
    // A kept dead job's slot found by a lock-free scan (no_slot: none).
    std::uint32_t find_dead(JobId id) const noexcept;
    // requeue_dead/purge_dead on one job id.
    bool act_on_dead(JobId id, bool requeue);

    // Cancellation (cancelling.cpp). Under [E], after a mark: bumps the
    // holder's cancel_signal and wakes it (in dequeue and wait_for_cancel).
    void signal_cancel_holder(std::uint32_t owner_tag) noexcept;
    // Part of the repair of [E]: signals the holder of every marked pick of
    // ep (a canceller may have died between its mark and its signal).
    void resignal_marked_picks(EntrypointId ep) noexcept;
    // After registering: bumps CoreHeader::registrations and wakes its
    // waiters (holders in wait_for_cancel re-arm their death watches).
    void announce_registration() noexcept;
    // True while a cancel arrived for one of our jobs that no dequeue has
    // reported yet (a dequeue then returns early).
    bool cancel_signal_moved() const noexcept;
    // Adds a death watch on every other active participant's life lock to
    // items (starting at count); returns the new count, or nullopt if an
    // active entry has no owner (a dead participant to sweep first).
    std::optional<std::size_t> watch_other_participants(std::span<shm::FutexWaitItem> items,
                                                        std::size_t count) noexcept;

    // Dependencies (dependencies.cpp, docs/job-dependencies.md).
    DependencyRow& dependency_row(std::uint32_t slot) const noexcept { return dependency_rows_[slot]; }
    // Throws invalid_argument for a bad depends_on (count, 0, too large, with a dedupe key).
    void validate_dependencies(const EnqueueOptions& options) const;
    // The slot that holds (or last held) job id, no_slot if none: the hint, else a scan.
    // The slot that holds job id or held it last: the local hint, then
    // (with `ended`) the recent outcomes (no_slot and *ended set: it ended
    // so), then a scan of the arena. no_slot: no slot names it.
    std::uint32_t find_job_slot(JobId id, JobStatus* ended = nullptr) const noexcept;
    // Every write of a slot's last outcome goes through here (layout.hpp,
    // "Last outcome"): the job the slot remembered until now goes to the
    // recent outcomes first (layout.hpp, "Recent outcomes"), so no ended
    // job is forgotten while fewer than ended_capacity_ ids were handed out
    // after it; a pair that does not match (a writer killed between its two
    // stores, or one storing now) is nobody's outcome: that writer
    // remembered what it replaced itself. Then the full id, then the word
    // (relaxed: remember_ended's release fence orders the entry before
    // them, the caller's CAS of the state word releases them; a reader
    // between the two stores sees a pair that names no job, so it looks in
    // the recent outcomes, which already hold the replaced job). Callers
    // write before their commit CAS, which may fail (readers between the
    // CAS and a later write would find the job nowhere): a claim, made
    // final by commit_last after the CAS, or undone by undo_last after a
    // lost one. Returns the word replaced, for undo_last.
    std::uint64_t set_last(JobRecord& rec, JobId id, std::uint32_t status) noexcept {
        const std::uint64_t replaced = rec.last_outcome.load(std::memory_order_relaxed);
        const JobId replaced_id = rec.last_job_id.load(std::memory_order_relaxed);
        std::uint32_t replaced_status = 0;
        if (replaced_id != id && last_outcome_names(replaced, replaced_id, replaced_id, replaced_status))
            remember_ended(replaced_id, replaced_status);
        rec.last_job_id.store(id, std::memory_order_relaxed);
        rec.last_outcome.store(last_outcome_word(id, status, true), std::memory_order_relaxed);
        return replaced;
    }
    // After the commit (the CAS that followed set_last succeeded, or the
    // state store of a writer no CAS can race): the slot is the writer's
    // (reserved by it, or under its locks), so a plain store of the same
    // outcome without the claim flag. Relaxed: it says nothing new to a
    // reader, it only keeps a loser's undo_last from restoring a claim. A
    // crash before it leaves the claim, which readers take as the outcome.
    void commit_last(JobRecord& rec, JobId id, std::uint32_t status) noexcept {
        rec.last_outcome.store(last_outcome_word(id, status, false), std::memory_order_relaxed);
    }
    // After the commit CAS that followed set_last(rec, id, status) failed:
    // another finisher won. If our claim replaced that winner's committed
    // outcome of the same job (it committed first, then we claimed), put it
    // back, by CAS so that nothing written since our claim is undone. Any
    // other claim is left: the job is live again (requeued; readers go by
    // the state word while the slot holds it live, and its own end
    // overwrites the claim before the slot moves on), or the winner wrote
    // after us (its commit_last overwrites our claim, and our CAS finds
    // that). A stale claim is never restored. Off the hot path (a lost CAS).
    void undo_last(JobRecord& rec, JobId id, std::uint32_t status, std::uint64_t replaced) noexcept {
        std::uint64_t claim = last_outcome_word(id, status, true);
        if ((replaced >> 4) != (claim >> 4) || (replaced & last_claimed_bit) != 0) return;
        rec.last_outcome.compare_exchange_strong(claim, replaced, std::memory_order_relaxed);
    }
    // Records that job id ended with JobStatus status (dependencies.cpp,
    // "Recent outcomes"). Inline: every completion that overwrites a
    // slot's last outcome runs it. A load, and a plain store only if the
    // entry holds an older id (or this id with another end): one word, so
    // a writer killed anywhere leaves the old or the new entry. No CAS (a
    // locked instruction per completion cost plain jobs 6-9%, measured): two
    // writers of ids that share the entry racing may leave the older one,
    // and the younger one is then refused as not recorded, never misread.
    void remember_ended(JobId id, std::uint32_t status) noexcept {
        if ((id >> 48) != host_id_) return; // another host's id (a restore): lookups say "not recorded"
        const std::uint64_t counter = id & ended_counter_mask;
        const std::uint32_t code = status == std::uint32_t(JobStatus::successful)  ? 1
                                   : status == std::uint32_t(JobStatus::exception) ? 2
                                   : status == std::uint32_t(JobStatus::canceled)  ? 3
                                                                                   : 0; // purged: how is unknown
        const std::uint64_t entry = ended_entry(counter, code);
        std::atomic<std::uint64_t>& word = ended_[ended_index(counter, ended_capacity_)];
        const std::uint64_t old = word.load(std::memory_order_relaxed);
        if ((old >> 2) < counter || ((old >> 2) == counter && old != entry))
            word.store(entry, std::memory_order_relaxed);
        shm::crash_point("dependency.remembered"); // the slot still says it too: both agree
        // The entry before the slot's fields that the caller overwrites next.
        std::atomic_thread_fence(std::memory_order_release);
    }
    // How job id ended according to the recent outcomes: found (status set
    // to successful, exception or canceled), or why they cannot say. Call
    // it after the slots were searched (it orders its read after theirs).
    EndedLookup recorded_end(JobId id, JobStatus& status) const noexcept;
    // Publishes the reserved, prepared slot of a job with dependencies:
    // waiting, queued (all succeeded) or canceled (one failed). Throws
    // (nothing enqueued, the slot still reserved) for an unknown dependency.
    void publish_dependent(EntrypointId ep, std::uint32_t slot, const EnqueueOptions& options,
                           std::int64_t now_real, std::uint64_t& last_sequence);
    std::size_t enqueue_dependents(EntrypointId ep, std::span<const std::span<const std::byte>> payloads,
                                   std::span<JobId> ids, const EnqueueOptions& options, std::int64_t now_real);
    // Takes [G] (running its repair after a dead owner).
    void lock_dependencies();
    bool repair_dependencies() noexcept;
    // Under [G]: resolves the pending edges whose dependency ended and moves
    // the waiting jobs that may move (queued, or canceled transitively).
    void settle_locked() noexcept;
    // Under [G]: resolves only the edges on the dependents lists of the
    // slots whose finishers asked for a settle (settle_slots_), cascading
    // through the jobs it cancels; falls back to settle_locked when it meets
    // anything it cannot resolve there.
    void settle_targets_locked() noexcept;
    // Takes [G] and settles (every waiting job if full, else the targets);
    // then wakes and frees what the settle left.
    void settle_dependencies(bool full = true) noexcept;
    // Under [G]: the dependents lists (DependencyEdge::next/prev).
    DependencyEdge* edge_at(std::uint32_t link) const noexcept;
    void dependents_push(std::uint32_t slot, std::uint32_t edge) noexcept;
    void dependents_remove(std::uint32_t slot, std::uint32_t edge) noexcept;
    // After [G] is released: wakes for released jobs, frees canceled memory jobs.
    void flush_settled() noexcept;
    // After the calls that may have finished a depended-on job (its
    // finisher's note_completion saw JobRecord::dependents != 0), before
    // the finished slots go back to the arena.
    void settle_if_wanted() noexcept {
        if (settle_wanted_) [[unlikely]] settle_dependencies(false);
    }
    // Under [G]: moves the waiting job in slot out of `waiting`.
    bool release_waiting_locked(std::uint32_t slot) noexcept;
    bool cancel_waiting_locked(std::uint32_t slot, std::string_view reason) noexcept;
    void waiting_unlink(std::uint32_t slot) noexcept;
    void abandon_edges(std::uint32_t slot) noexcept;
    void lower_dependents(std::uint32_t slot) noexcept;
    CancelOutcome cancel_waiting(std::uint32_t slot, JobId id);
    // doctor: what is wrong with the dependency structures.
    void check_dependencies(std::vector<std::string>& problems);
    // The error text written for job id in slot, whatever epoch (status of a canceled job).
    std::string read_error_of(std::uint32_t slot, JobId id) const;

    // Waking. wake_sleepers wakes up to count sleepers whatever else is
    // awake (limits, schedules, repairs, broadcasts). wake_for_ready is the
    // enqueue's wake (producing.cpp): none while a live consumer holds the
    // entrypoint's waking word, else up to count, the last woken becoming
    // the holder. A consumer holds the word while it is awake in dequeue
    // (claim_waking) and gives it up before it sleeps or returns
    // (release_waking); leaving, it wakes the next sleeper for what is still
    // ready (pass_on_ready). docs/architecture.md "Waking consumers".
    void wake_sleepers(EntrypointId ep, std::uint32_t count, bool hand_waking = false) noexcept;
    void wake_for_ready(EntrypointId ep, std::uint32_t count) noexcept;
    void wake_sleepers_after_fence(EntrypointId ep, std::uint32_t count, bool hand_waking) noexcept;
    void claim_waking(std::span<const EntrypointId> eps) noexcept;
    void release_waking(std::span<const EntrypointId> eps) noexcept;
    void pass_on_ready(std::span<const EntrypointId> eps) noexcept;
    void drop_waking_of(std::uint32_t index) noexcept; // a dead or leaving participant's claims
    std::atomic<std::uint64_t>& waking_word(EntrypointId ep) const noexcept {
        return sleeper_words(ep)[core_->sleeper_words];
    }
    bool anything_ready(std::span<const EntrypointId> eps, std::int64_t now_real, std::int64_t now_mono) const noexcept;

    // Slots.
    std::uint32_t take_slot(std::int64_t arena_wait_ns = 0);
    bool wait_for_space(std::int64_t deadline_mono);
    void return_to_arena(std::span<const std::uint32_t> slots, std::uint32_t owner) noexcept;
    void notify_space() noexcept;
    void give_back_slot(std::uint32_t slot) noexcept;
    void release_slots(std::span<const std::uint32_t> slots, std::uint32_t owner) noexcept;
    JobId next_job_id() noexcept;

    // Publishing.
    void prepare_record(std::uint32_t slot, EntrypointId ep, JobId id, std::size_t size,
                        const EnqueueOptions& options, std::int64_t now_real) noexcept;
    std::size_t publish(EntrypointId ep, std::span<const std::uint32_t> slots, const EnqueueOptions& options,
                        std::int64_t now_real, std::uint64_t& last_sequence);
    void wait_for_mirror(EntrypointId ep, std::uint64_t sequence, JobId id, const EnqueueOptions& options);

    // Limits (limits.cpp). Under [E]: how many jobs a pick may take now.
    std::size_t pick_allowance(EntrypointId ep, std::size_t wanted, std::int64_t now_mono) noexcept;
    // Under [E], after a CAS moved `slot` out of the picked word `word`:
    // gives its limit slot back if it was counted (returns true then).
    bool leave_limit(EntrypointControl& c, std::uint32_t slot, std::uint64_t word) noexcept;
    // Gives back the limit slots of counted picks that `owner` acked without
    // the lock (slots reserved by owner, mark pending_release_mark; others
    // are skipped): one [E] section per run of one entrypoint, then wakes
    // sleepers. Before the slots are freed (limits.cpp, I1 b).
    void apply_released(std::span<const std::uint32_t> slots, std::uint32_t owner) noexcept;
    // The same for every such slot of `owner` (a reaper, a dead owner).
    void apply_released_of(std::uint32_t owner);
    // Without the lock: may a consumer pick from this entrypoint now
    // (pause, concurrency, rate)? Loads seq_cst (the sleep check).
    bool blocked_by_limits(EntrypointId ep, std::int64_t now_mono) const noexcept;
    // Without the lock (seq_cst): no concurrency slot is free (rescans the
    // uncounted picks while there may be any).
    bool concurrency_full(EntrypointId ep) const noexcept;
    // CLOCK_MONOTONIC time of the next start the rate limit allows (no_deadline: none needed).
    std::int64_t next_rate_start(const EntrypointControl& c) const noexcept;
    // After [E] is released: a limit slot was freed; wake a sleeper if jobs wait.
    void wake_for_freed_limit(EntrypointId ep, std::uint32_t freed) noexcept;
    // The picks of ep that are not counted (seq_cst loads; exact under [E]
    // except for concurrent lock-free acks, which only lower the truth).
    std::uint32_t count_uncounted(EntrypointId ep) const noexcept;
    // Under [E] (repair): the counted picks of ep, from the state words.
    std::uint32_t count_in_flight(EntrypointId ep) const noexcept;
    // Under [E], part of repair_entrypoint: re-establishes the limit invariants.
    void repair_limits(EntrypointId ep) noexcept;
    // published: the entrypoint may have picks (declared before); false for a new one.
    void apply_limit_options(EntrypointId ep, const EntrypointOptions& options, bool published);

    // Schedules (schedules.cpp). Fires the due ticks if this process's last
    // scan may be out of date (cheap otherwise: one shared load); never
    // throws (a tick that cannot fire now is retried 100 ms later).
    std::size_t fire_due_schedules(std::int64_t now_real) noexcept;
    // Under [E]: fires one tick of schedule `index` into the reserved slot;
    // false if nothing was due (or it cannot fire now: blocked set).
    bool fire_tick_locked(std::uint32_t index, EntrypointId ep, std::uint32_t slot, std::int64_t now_real,
                          bool& blocked);
    // Under [E], repair: the tick intent's job was published; move the tick.
    void finish_tick(EntrypointId ep, std::uint32_t slot) noexcept;
    // CLOCK_REALTIME of the earliest tick this process knows of (no_deadline: none).
    std::int64_t schedule_due_at() const noexcept { return schedule_due_at_; }
    // seq_cst: a schedule was added or removed since our last scan.
    bool schedules_changed() const noexcept {
        return core_->schedule_epoch.load(std::memory_order_seq_cst) != schedule_seen_epoch_;
    }

    // Picking.
    std::size_t pick_locked(EntrypointId ep, std::span<Job> out, std::int64_t now_real, std::int64_t now_mono,
                            bool& wake_for_lease);

    // Reaping.
    std::size_t reap_expired_leases(EntrypointId ep, std::int64_t now_mono);
    std::size_t sweep_participants();
    bool reap_participant(std::uint32_t index) noexcept;
    std::size_t requeue_holdings(std::uint32_t owner_tag, std::uint32_t acting_owner);
    void maybe_sweep(std::int64_t now_mono);

    // Registration.
    void start_holder_thread();
    static void* holder_main(void* self);
    void holder_run();
    void unregister() noexcept;

    std::uint32_t my_tag() const noexcept { return my_index_ + 1; }

    // Dedupe keys (dedupe.cpp, docs/dedupe.md).
    struct DedupeProbe {
        enum Kind { empty, stale, other, match } kind;
        JobId job; // other, match: the live job the entry points at
    };
    DedupeEntry* dedupe_index(EntrypointId ep) const noexcept;
    // Validates options' key for an enqueue of `jobs` jobs (throws
    // invalid_argument) and resets the per-call dedupe outcome.
    void begin_dedupe(EntrypointId ep, const EnqueueOptions& options, std::size_t jobs);
    // While the slot is reserved by us. hash: dedupe_hash(key) (begin_dedupe
    // leaves it in dedupe_key_hash_ for options.dedupe_key).
    void write_dedupe_key(std::uint32_t slot, JobId id, std::string_view key, std::uint32_t hash) noexcept;
    // While the slot is reserved by us: remembers the key it held before
    // (JobRecord::dedupe_hash) for dedupe_claim; write_dedupe_key calls it
    // too, the single-call enqueue earlier, so that the read overlaps with
    // writing the record.
    void note_previous_key(std::uint32_t slot) noexcept;
    // Loads the home entry of the key begin_dedupe hashed, without [E] (publish, before the lock).
    // And the home of the key `slot` held before (write_dedupe_key).
    void touch_dedupe_home(EntrypointId ep, std::uint32_t slot) const noexcept;
    // Under [E], inside publish(): the id of the live job holding the key of
    // `slot` (nothing inserted), or 0 after indexing `slot`.
    JobId dedupe_claim(EntrypointId ep, std::uint32_t slot);
    void dedupe_delete(EntrypointId ep, std::uint32_t position) noexcept;
    DedupeProbe classify_dedupe(EntrypointId ep, const DedupeEntry& entry, std::uint32_t hash,
                                std::string_view key) const noexcept;
    // Under [E]: the index rebuilt from the slots (repair, and when full of stale entries).
    void rebuild_dedupe(EntrypointId ep) noexcept;
    std::optional<JobId> find_dedupe(EntrypointId ep, std::string_view key) const noexcept;
    // Takes [E]: sets duplicate_of_ and returns true if a live job holds key.
    bool find_holder(EntrypointId ep, const std::string& key);
    // After publish() found a duplicate: skip returns the holder, refuse throws.
    JobId resolve_duplicate(EntrypointId ep, const EnqueueOptions& options);
    // Under [E] (doctor): appends what is wrong with ep's dedupe index.
    void check_dedupe(EntrypointId ep, std::vector<std::string>& problems) const;

    shm::Segment segment_;
    shm::Arena arena_;
    CoreHeader* core_;
    EntrypointControl* entrypoints_;
    ParticipantEntry* participant_entries_;
    ScheduleEntry* schedules_;
    std::byte* outcomes_ = nullptr;
    std::uint32_t outcome_stride_ = 0;
    std::uint32_t outcome_capacity_ = 0;
    std::uint32_t result_bytes_ = 0;
    JobId requeue_holder_ = 0; // requeue_dead_locked's key_held: the job holding the key
    std::uint32_t max_entrypoints_;
    std::uint32_t max_participants_;
    std::uint32_t log_capacity_;
    std::uint64_t sleeper_stride_words_;
    std::uint64_t counter_stride_;
    LatencyCells* latency_base_ = nullptr;
    std::uint16_t host_id_;
    std::uint64_t opened_fork_generation_;

    // Participant state (process-local).
    bool registered_ = false;
    bool closed_ = false;
    std::uint32_t my_index_ = 0;
    pthread_t holder_thread_{};
    bool holder_started_ = false;
    std::mutex holder_mutex_;
    std::condition_variable holder_wakeup_;
    bool holder_should_release_ = false;
    std::promise<std::uint32_t> holder_claim_;

    std::vector<std::uint32_t> slot_cache_;
    std::uint32_t cache_refill_ = 1;
    std::uint64_t id_next_ = 0, id_end_ = 0;

    std::vector<Job> prefetch_;
    std::size_t prefetch_position_ = 0;
    std::size_t prefetch_count_ = 0;     // valid jobs in prefetch_
    std::uint32_t prefetch_limit_ = 8;

    std::vector<JobHandle> deferred_acks_;
    std::int64_t deferred_flush_by_ = no_deadline;

    std::uint32_t rotation_ = 0;
    std::int64_t last_sweep_ns_ = 0;
    std::vector<std::uint32_t> scratch_release_;
    // finish(): the counted picks acked without the lock in this call, whose
    // limit slots it gives back (apply_released) before freeing them.
    std::vector<std::uint32_t> scratch_pending_;
    std::size_t jobs_requeued_by_reaping_ = 0;   // dead participants' jobs we requeued
    // Schedules: the epoch our last scan saw (~0: never scanned) and the
    // earliest next tick it found (CLOCK_REALTIME).
    std::uint64_t schedule_seen_epoch_ = ~std::uint64_t(0);
    std::int64_t schedule_due_at_ = no_deadline;
    std::uint32_t limit_freed_ = 0;  // leave_limit calls that freed a slot, since the caller reset it
    // interrupt(), from any thread: the flag (seq_cst), then our wake word.
    std::atomic<bool> interrupt_requested_{false};
    std::atomic<bool> registered_for_interrupt_{false}; // mirrors registered_ for other threads
    // Dedupe (dedupe.cpp): the region's arrays, and the outcome of this
    // object's last keyed enqueue.
    DedupeKey* dedupe_keys_ = nullptr;
    DedupeEntry* dedupe_index_ = nullptr;
    std::uint32_t dedupe_capacity_ = 0;
    JobId duplicate_of_ = 0;             // set by publish() when the key was held
    std::uint32_t dedupe_key_hash_ = 0;  // dedupe_hash of the key begin_dedupe last validated
    // The slot write_dedupe_key last wrote if it had held a keyed job, and
    // that key's hash (JobRecord::dedupe_hash): dedupe_claim of that slot
    // deletes the key's entry. no_slot: none.
    std::uint32_t dedupe_previous_slot_ = shm::no_slot;
    std::uint32_t dedupe_previous_hash_ = 0;
    bool last_enqueue_skipped_ = false;
    // Our participant's cancel_signal as the last dequeue saw it (cancelling.cpp).
    std::uint32_t cancel_signal_seen_ = 0;
    std::uint64_t cancel_wakeups_ = 0; // dequeues that returned early for a cancel
    // Dependencies (dependencies.cpp): the region's parts, and this
    // process's pending settle work.
    DependencyControl* dependencies_ = nullptr;
    std::atomic<std::uint32_t>* waiting_counts_ = nullptr; // [max_entrypoints]
    // Process-local job id -> slot hints of the jobs this object enqueued
    // last (direct-mapped by id): where a dependency is looked for first.
    // Local on purpose: a shared table cost every enqueue a cache miss
    // (measured, docs/job-dependencies.md).
    static constexpr std::uint32_t id_hint_capacity = 1024;
    std::uint32_t id_hints_[id_hint_capacity] = {};
    DependencyRow* dependency_rows_ = nullptr;
    std::atomic<std::uint64_t>* ended_ = nullptr; // recent outcomes [ended_capacity_]
    std::uint32_t ended_capacity_ = 0;
    std::uint32_t* lane_rings_ = nullptr;    // [max_entrypoints][max_priority_lanes][capacity]
    std::uint32_t lane_ring_mask_ = 0;       // capacity - 1
    std::uint32_t settle_owner_ = 0; // owner of slots a settle cancels in memory durability (0: us)
    bool settle_wanted_ = false;    // a finished job had dependents: settle before freeing slots
    bool settling_ = false;         // inside settle_dependencies (no recursion)
    bool dependency_repaired_ = false; // the [G] repair ran: settle before unlocking
    std::vector<std::uint32_t> settle_release_; // slots the settle freed (memory durability)
    std::vector<EntrypointId> settle_wakes_;    // entrypoints that got ready jobs
    std::vector<std::uint32_t> settle_ready_;   // one settle pass's jobs to release, put in enqueue order
    std::vector<std::uint32_t> settle_slots_;   // finished slots with dependents (note_completion): settle their lists
    bool settle_all_ = false;                   // a target could not be noted: the next settle walks every waiting job
};

} // namespace currant::detail
