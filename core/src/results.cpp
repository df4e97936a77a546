// Job results, kept finished jobs and Queue::wait (docs/results.md).
//
// A result is written into the job's outcome area (OutcomeHeader kind
// result) under the entrypoint lock [E], while the acker holds the pick,
// tagged with the job id and the epoch of the `successful` word it is about
// to enter; then the state word's seq_cst CAS into `successful` commits it
// (finish_locked, consuming.cpp). The tag makes a half-written or abandoned
// result invisible: readers take a result only from a slot whose state word
// is `successful` with the tag's epoch, and no other transition into that
// epoch is `successful` (a reaper's requeue or death at that epoch is not).
//
// Kept finished jobs. With a retention, a job that ends `successful` or
// `canceled` stays in its final state; JobRecord::dead_mark names the epoch
// (kept: its final transition not mirrored yet; kept_mirrored: nothing left
// to mirror) and kept_until_ns its retention, both written before the CAS.
// There is no list: a kept slot is found by a scan, which only happens when
// slots are needed (take_slot found the arena empty), and in reap() and
// doctor(). Moves, and what a process killed between them leaves:
//   finish        mark + deadline + result, CAS into the final state (the
//                 commit point; intent record for the log append, as for any
//                 finish): killed before the CAS (`result.written`), the job
//                 is still picked and its holder dead: the reaper requeues it
//                 (attempt counted) and the area's tag matches no successful
//                 word; killed after it (`result.committed`), the job is
//                 finished and kept and the repair of [E] finishes the log.
//   mirror        kept -> kept_mirrored by CAS, lock-free (recycle_finished):
//                 one word, nothing to repair.
//   recycling     final -> reserved(us) by CAS, lock-free, only from
//                 kept_mirrored, then back to the arena: killed after the CAS
//                 (`result.recycled`), the slot is reserved by a dead process
//                 and its reaper frees it.
//
// Waiting. A waiter counts itself in CoreHeader::completion_waiters and
// marks its ParticipantEntry::completion_waiting; finishers wake only while
// the count is not 0 (see CoreHeader for the pairing). A finisher killed
// between its CAS and its wake-up: the waiter sleeps with a death watch on
// every other participant's life lock (as wait_for_cancel does), so the
// kernel wakes it when the finisher dies; it then sweeps and looks again.
// A waiter killed while counted: its reaper clears its mark and lowers the
// count; killed between raising the count and marking (`wait.counted`), the
// count stays one too high, which costs one FUTEX_WAKE per completion and
// never loses one (doctor() checks the count is never below the marks).
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <immintrin.h>
#include <limits>
#include <unordered_map>
#include <utility>

#include "currant/shm/clock.hpp"
#include "currant/shm/crash_point.hpp"
#include "currant/shm/futex.hpp"
#include "queue_state.hpp"

namespace currant::detail {

using shm::SlotState;
using shm::StateWord;

namespace {
constexpr std::int64_t spin_before_sleep_ns = 10'000; // DESIGN: spin at most ~10 us

std::atomic_ref<std::uint32_t> kind_of(OutcomeHeader& header) noexcept { return std::atomic_ref(header.kind); }

bool is_final_state(SlotState state) noexcept {
    return state == SlotState::successful || state == SlotState::exception || state == SlotState::canceled;
}
} // namespace

// ------------------------------------------------------------ result area

void QueueState::write_result_locked(std::uint32_t slot, JobId id, std::uint64_t epoch,
                                     std::span<const std::byte> result) noexcept {
    if (slot >= arena_.slot_count() || result.size() > outcome_capacity_) return;
    OutcomeHeader& header = outcome(slot);
    // As write_error_locked: kind none while the fields change, published
    // by the release store of the kind.
    kind_of(header).store(std::uint32_t(OutcomeKind::none), std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    header.job_id = id;
    header.epoch = epoch;
    header.length = std::uint32_t(result.size());
    header.original_length = std::uint32_t(result.size());
    header.at_ns = shm::realtime_ns();
    if (!result.empty()) std::memcpy(outcome_bytes(slot), result.data(), result.size());
    kind_of(header).store(std::uint32_t(OutcomeKind::result), std::memory_order_release);
}

std::optional<std::vector<std::byte>> QueueState::read_result(std::uint32_t slot, JobId id, std::uint64_t epoch,
                                                              std::int64_t* at_ns) const {
    if (slot >= arena_.slot_count()) return std::nullopt;
    OutcomeHeader& header = outcome(slot);
    if (kind_of(header).load(std::memory_order_acquire) != std::uint32_t(OutcomeKind::result)) return std::nullopt;
    if (header.job_id != id || header.epoch != epoch) return std::nullopt;
    const std::uint32_t length = header.length;
    if (length > outcome_capacity_) return std::nullopt; // corrupt: no result rather than a wild read
    const std::int64_t at = header.at_ns;
    std::vector<std::byte> bytes(outcome_bytes(slot), outcome_bytes(slot) + length);
    // Lock-free: the slot may have been recycled and rewritten while we
    // copied; a writer sets kind none (then a release fence) before it
    // touches the rest, so after this acquire fence a changed area shows.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (kind_of(header).load(std::memory_order_relaxed) != std::uint32_t(OutcomeKind::result) ||
        header.job_id != id || header.epoch != epoch)
        return std::nullopt;
    if (at_ns) *at_ns = at;
    return bytes;
}

// ------------------------------------------------------------ kept finished jobs

void QueueState::prepare_kept_result(EntrypointControl& c, std::uint32_t slot, std::uint64_t new_word) noexcept {
    // Under [E]; released by the caller's CAS into the final state.
    JobRecord& rec = record(slot);
    const std::int64_t retention = c.result_retention_ns.load(std::memory_order_relaxed);
    std::int64_t until = 0;
    if (__builtin_add_overflow(shm::monotonic_ns(), retention, &until)) until = no_deadline - 1;
    rec.kept_until_ns.store(until, std::memory_order_relaxed);
    // `memory` mirrors nothing: kept_mirrored at once (recyclable when due).
    const bool mirrored = Durability(c.durability.load(std::memory_order_relaxed)) == Durability::memory;
    rec.dead_mark.store(dead_mark(StateWord::epoch(new_word), mirrored ? DeadMark::kept_mirrored : DeadMark::kept),
                        std::memory_order_relaxed);
}

bool QueueState::is_kept_result(std::uint32_t slot, std::uint64_t word, bool mirrored_only) const noexcept {
    const SlotState state = StateWord::state(word);
    if (state != SlotState::successful && state != SlotState::canceled) return false;
    const std::uint64_t mark = record(slot).dead_mark.load(std::memory_order_acquire);
    const std::uint64_t epoch = StateWord::epoch(word);
    return mark == dead_mark(epoch, DeadMark::kept_mirrored) ||
           (!mirrored_only && mark == dead_mark(epoch, DeadMark::kept));
}

std::size_t QueueState::recycle_kept_results(std::size_t wanted) noexcept {
    if (!registered_) return 0;
    try {
        struct Kept { std::int64_t until; std::uint32_t slot; std::uint64_t word; };
        std::vector<Kept> kept;
        const std::uint32_t n = arena_.slot_count();
        const std::int64_t now = shm::monotonic_ns();
        std::size_t due = 0;
        for (std::uint32_t slot = 0; slot < n; ++slot) {
            const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
            if (!is_kept_result(slot, word, true)) continue;
            const std::int64_t until = record(slot).kept_until_ns.load(std::memory_order_relaxed);
            kept.push_back({until, slot, word});
            if (until <= now) ++due;
        }
        if (kept.empty()) return 0;
        // Past their retention first; then the oldest, up to `wanted`.
        const std::size_t take = std::min(kept.size(), std::max(due, wanted));
        std::partial_sort(kept.begin(), kept.begin() + std::ptrdiff_t(take), kept.end(),
                          [](const Kept& a, const Kept& b) { return a.until < b.until; });
        std::vector<std::uint32_t> to_release;
        for (std::size_t i = 0; i < take; ++i) {
            JobRecord& rec = record(kept[i].slot);
            std::uint64_t word = kept[i].word;
            const JobStatus status = status_of(word);
            const EntrypointId ep = rec.entrypoint;
            // Another recycler may take it first: the state word CAS decides
            // (a loser's claim is undone or harmless, queue_state.hpp).
            const JobId id = rec.job_id;
            const std::uint64_t replaced = set_last(rec, id, std::uint32_t(status));
            if (!arena_.state_word(kept[i].slot)
                     .compare_exchange_strong(word, StateWord::next(word, SlotState::reserved, my_tag()),
                                              std::memory_order_acq_rel)) {
                undo_last(rec, id, std::uint32_t(status), replaced);
                continue;
            }
            commit_last(rec, id, std::uint32_t(status)); // reserved by us until released
            shm::crash_point("result.recycled"); // reserved by us: our reaper frees it
            if (rec.mirror_dirty.exchange(0, std::memory_order_acq_rel) != 0 && ep < max_entrypoints_)
                entrypoints_[ep].dirty_slots.fetch_sub(1, std::memory_order_relaxed);
            to_release.push_back(kept[i].slot);
        }
        if (!to_release.empty()) return_to_arena(to_release, my_tag());
        return to_release.size();
    } catch (...) {
        return 0; // allocation: nothing recycled now, the next caller tries again
    }
}

// ------------------------------------------------------------ completion wake-ups

void QueueState::note_completion(std::uint32_t slot) noexcept {
    // After the caller's seq_cst CAS into a final state. Jobs wait for this
    // one: JobRecord::dependents pairs with the linker's raise and re-read
    // (dependencies.cpp); the settle runs once the caller's locks are gone.
    if (record(slot).dependents.load(std::memory_order_seq_cst) != 0) [[unlikely]] {
        settle_wanted_ = true;
        // Its dependents list is settled (settle_targets_locked); without
        // room to note it, every waiting job is.
        try {
            settle_slots_.push_back(slot);
        } catch (...) {
            settle_all_ = true;
        }
    }
    // CoreHeader pairing.
    if (core_->completion_waiters.load(std::memory_order_seq_cst) == 0) return;
    core_->completion_signal.fetch_add(1, std::memory_order_seq_cst);
    // Deferred: a waiter woken now would run (often on our CPU, preempting
    // us) into the entrypoint lock we still hold, or wait for us to be
    // descheduled; one wake after the release also serves a whole batch.
    // Killed before the deferred wake: the waiter's death watch on our life
    // lock wakes it, as for a finisher killed right after its CAS.
    if (completion_wake_deferred_) {
        completion_wake_owed_ = true;
        return;
    }
    shm::futex_wake(core_->completion_signal, INT_MAX);
}

void QueueState::wake_owed_completion_waiters() noexcept {
    completion_wake_deferred_ = false;
    if (std::exchange(completion_wake_owed_, false)) shm::futex_wake(core_->completion_signal, INT_MAX);
}

// ------------------------------------------------------------ public calls

void QueueState::ack_with_result(const JobHandle& job, std::span<const std::byte> result) {
    check_usable();
    if (result.size() > result_bytes_)
        throw Error(Errc::invalid_argument, "queue '" + segment_.name() + "': result of " +
                                                std::to_string(result.size()) + " bytes is larger than the queue's " +
                                                std::to_string(result_bytes_) +
                                                " result bytes (QueueOptions::result_bytes); job " +
                                                std::to_string(job.id) + " stays picked");
    finish({&job, 1}, JobStatus::successful, true, {}, &result);
}

std::vector<JobOutcome> QueueState::wait(std::span<const JobId> ids, std::int64_t timeout_ns) {
    check_usable();
    for (JobId id : ids)
        if (id == 0 || id > JobId(INT64_MAX))
            throw Error(Errc::invalid_argument, "queue '" + segment_.name() + "': " + std::to_string(id) +
                                                    " is not a job id (ids are 1 to 2^63-1)");
    const std::int64_t start = shm::monotonic_ns();
    const std::int64_t give_up = timeout_ns < 0 ? no_deadline : start + timeout_ns;
    std::vector<JobOutcome> out(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) out[i].id = ids[i];

    // Where each job lives: one scan (the slot of a job changes only when it
    // is recycled, after it ended; then its record keeps last_job_id).
    const std::uint32_t n = arena_.slot_count();
    std::vector<std::uint32_t> slot_of(ids.size(), shm::no_slot);
    {
        std::unordered_map<JobId, std::vector<std::size_t>> wanted;
        for (std::size_t i = 0; i < ids.size(); ++i) wanted[ids[i]].push_back(i);
        for (std::uint32_t slot = 0; slot < n; ++slot) {
            const JobRecord& rec = record(slot);
            const SlotState state = StateWord::state(arena_.state_word(slot).load(std::memory_order_acquire));
            const bool live = state != SlotState::free && state != SlotState::reserved;
            // The job the slot holds, and the last one that ended in it
            // (named until the next one ends there, even while that one is
            // live; look() reads its outcome by last_outcome_for).
            const JobId live_id = live ? rec.job_id : 0;
            const JobId last_id = rec.last_job_id.load(std::memory_order_relaxed);
            for (const JobId id : {live_id, last_id}) {
                if (id == 0) continue;
                auto found = wanted.find(id);
                if (found == wanted.end()) continue;
                for (std::size_t i : found->second)
                    if (slot_of[i] == shm::no_slot || id == live_id) slot_of[i] = slot; // a live record wins
            }
        }
    }

    // Looks at every job not settled yet; true when all are settled
    // (finished, or not in the segment).
    std::vector<std::uint8_t> settled(ids.size(), 0);
    auto look = [&]() {
        bool all = true;
        for (std::size_t i = 0; i < ids.size(); ++i) {
            if (settled[i]) continue;
            JobOutcome& o = out[i];
            const std::uint32_t slot = slot_of[i];
            // Finished, its slot reused: how it ended, if the recent
            // outcomes remember (status only); else unknown. Either way
            // nothing to wait for.
            auto from_recent_outcomes = [&] {
                JobStatus ended = JobStatus::unknown;
                if (recorded_end(o.id, ended) == EndedLookup::found) {
                    o.status = ended;
                    o.finished = true;
                } else {
                    o.status = JobStatus::unknown;
                }
                settled[i] = 1;
            };
            if (slot == shm::no_slot) { from_recent_outcomes(); continue; }
            JobRecord& rec = record(slot);
            // seq_cst: pairs with the finisher's CAS (CoreHeader::completion_signal).
            const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_seq_cst);
            const SlotState state = StateWord::state(word);
            const bool live = state != SlotState::free && state != SlotState::reserved;
            if (live && rec.job_id == o.id) {
                o.status = status_of_state(state);
                if (!is_final_state(state)) { all = false; continue; }
                o.finished = true;
                settled[i] = 1;
                if (state == SlotState::successful) {
                    o.result = read_result(slot, o.id, StateWord::epoch(word), &o.finished_at_ns);
                } else if (state == SlotState::exception) {
                    o.error = read_error(slot, o.id, StateWord::epoch(word));
                    o.finished_at_ns = rec.died_at_ns;
                }
                // Recycled while we copied: the final status stands, the
                // result is gone (a word that moved on tells).
                if (arena_.state_word(slot).load(std::memory_order_acquire) != word) {
                    o.result.reset();
                    o.error.clear();
                }
                continue;
            }
            // One write's outcome (layout.hpp, "Last outcome").
            std::uint32_t last_status = 0;
            if (last_outcome_for(rec, o.id, last_status) && last_status <= std::uint32_t(JobStatus::canceled) &&
                last_status >= std::uint32_t(JobStatus::successful)) {
                o.status = JobStatus(last_status);
                o.finished = true;
                settled[i] = 1;
                continue;
            }
            // Reserved by its finisher between its CAS and writing its last
            // outcome: its completion wake-up follows (or, if it dies,
            // its reaper frees the slot and the death watch wakes us).
            if (state == SlotState::reserved && rec.job_id == o.id) { all = false; continue; }
            from_recent_outcomes(); // recycled and reused
        }
        return all;
    };

    if (look() || timeout_ns == 0) return out;
    ensure_registered();
    ParticipantEntry& me = participant_entries_[my_index_];
    // Counted: finishers now wake us. Count first, mark second: a crash in
    // between leaves the count too high (harmless), never too low.
    core_->completion_waiters.fetch_add(1, std::memory_order_seq_cst);
    shm::crash_point("wait.counted");
    me.completion_waiting.store(1, std::memory_order_release);
    struct Uncount {
        QueueState& self;
        ParticipantEntry& me;
        ~Uncount() {
            if (me.completion_waiting.exchange(0, std::memory_order_acq_rel) != 0)
                self.core_->completion_waiters.fetch_sub(1, std::memory_order_seq_cst);
        }
    } uncount{*this, me};
    std::int64_t spin_until = shm::monotonic_ns() + spin_before_sleep_ns;
    for (;;) {
        check_usable();
        const std::uint32_t registrations = core_->registrations.load(std::memory_order_seq_cst);
        const std::uint32_t signal = core_->completion_signal.load(std::memory_order_seq_cst);
        if (look()) return out;
        if (interrupt_requested_.exchange(false, std::memory_order_acq_rel)) return out;
        const std::int64_t now = shm::monotonic_ns();
        if (now >= give_up) return out;
        if (now < spin_until) {
            for (int i = 0; i < 32; ++i) _mm_pause();
            continue;
        }
        // interrupt() sets its flag (seq_cst), then clears our wake word and
        // wakes it: we set the word (seq_cst) and then re-check the flag.
        me.wake_word.store(1, std::memory_order_seq_cst);
        if (interrupt_requested_.load(std::memory_order_seq_cst) || segment_.retired_seq_cst()) {
            me.wake_word.store(0, std::memory_order_relaxed);
            continue;
        }
        shm::FutexWaitItem items[shm::futex_wait_any_max];
        items[0] = {&core_->completion_signal, signal};
        items[1] = {&me.wake_word, 1};
        items[2] = {&core_->registrations, registrations};
        // A finisher killed between its CAS and its wake-up: the kernel wakes
        // us on its life lock; the sweep reaps it (freeing what it held).
        const std::optional<std::size_t> count = watch_other_participants(items, 3);
        int woken_by = -1;
        if (count) {
            errno = 0;
            woken_by = shm::futex_wait_any({items, *count}, give_up == no_deadline ? -1 : give_up - now);
            const bool signalled = woken_by < 0 && errno == EINTR;
            me.wake_word.store(0, std::memory_order_relaxed);
            if (signalled && dequeue_returns_on_signal_enabled()) return out;
        } else {
            me.wake_word.store(0, std::memory_order_relaxed);
        }
        if (!count || woken_by >= 3) sweep_participants(); // a participant died: reap it before sleeping again
        spin_until = 0; // woken: look once, then sleep again at once
    }
}

void QueueState::set_result_retention(EntrypointId ep, std::int64_t retention_ms) {
    check_usable();
    check_entrypoint(ep);
    if (retention_ms < 0 || retention_ms > max_lease.count())
        throw Error(Errc::invalid_argument, describe(ep) + ": result retention of " + std::to_string(retention_ms) +
                                                " ms is outside 0 ms to 365 days");
    {
        // One word, stored under [E] like the other options: a finisher
        // holding [E] applies the old or the new value to its job.
        lock_entrypoint(ep);
        shm::LockHolder holder(entrypoints_[ep].lock);
        entrypoints_[ep].result_retention_ns.store(retention_ms * 1'000'000, std::memory_order_relaxed);
    }
    note_configuration_change();
}

} // namespace currant::detail

namespace currant {

void Queue::set_result_retention(EntrypointId entrypoint, std::chrono::milliseconds retention) {
    state_->set_result_retention(entrypoint, retention.count());
}

void Queue::ack(const JobHandle& job, std::span<const std::byte> result) { state_->ack_with_result(job, result); }

std::vector<JobOutcome> Queue::wait(std::span<const JobId> ids, std::chrono::nanoseconds timeout) {
    return state_->wait(ids, timeout.count());
}

} // namespace currant
