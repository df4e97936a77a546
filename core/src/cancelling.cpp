// Cancellation of queued and picked jobs (docs/cancellation.md).
//
// A queued job is canceled where it is, under its entrypoint lock [E]. A
// picked job belongs to its holder, so a canceller only records the request.
// Under [E], while the state word still names the pick, it
//   1. stores the pick's epoch in JobRecord::cancel_epoch (the request: the
//      commit point of cancel() returning `requested`),
//   2. bumps the holder's ParticipantEntry::cancel_signal,
//   3. wakes the holder (its wake word if it sleeps in dequeue, every waiter
//      on cancel_signal in wait_for_cancel),
// and only then unlocks. Every transition that would put the pick back in
// the queue (retry, lease expiry, reaping a dead holder, close) goes through
// requeue_locked under [E] and reads the mark there, so once cancel() has
// returned `requested` the job never runs again: it ends `canceled`. An ack
// or fail by the holder (with or without the lock) wins if its state-word
// CAS comes first; the mark is then stale (another epoch) and means nothing.
//
// Invariants
//   C1  cancel_epoch is stored only under [E], only while the slot's state
//       word is `picked` with that epoch. A picked word leaves `picked`
//       without [E] only by its owner's lock-free ack CAS, so a mark of the
//       current epoch, read under [E], is a request for the current pick.
//   C2  epochs of a slot never repeat (every transition bumps it), so a
//       stale mark never matches a later pick of the slot: no reset needed.
//   C3  mark (seq_cst) happens before the cancel_signal bump (seq_cst);
//       the holder reads cancel_signal before the marks (seq_cst): if it
//       misses the mark, its FUTEX_WAIT on the value it read fails or is
//       woken by the bump.
//
// Crash analysis (the mark is one word: no intent record is needed):
//   cancel.locked     killed holding [E], before the mark: nothing changed,
//                     cancel() never confirmed; the next locker repairs [E]
//                     (nothing of ours to repair).
//   cancel.marked     killed holding [E] after the mark, before the signal:
//                     the request stands (C1). The next locker of [E] runs
//                     repair_entrypoint, which bumps and wakes the holder of
//                     every marked pick. Who locks [E] next: the holder's
//                     own dequeue before it sleeps, anyone reaping the dead
//                     canceller (which locks every entrypoint), a holder in
//                     wait_for_cancel woken by the kernel on the canceller's
//                     life lock (it watches every participant registered when
//                     it slept; CoreHeader::registrations makes it re-arm
//                     when one registers later), and the holder's retry,
//                     lease expiry or death, which end the job `canceled`.
//   cancel.signalled  killed holding [E] after the bump, before the wake:
//                     as above (the repair's bump is one more, harmless).
//   cancel.unlocked   killed after unlocking: the request stands and the
//                     holder was woken; only the caller's answer is lost.
#include <algorithm>
#include <climits>
#include <string>

#include "currant/shm/clock.hpp"
#include "currant/shm/crash_point.hpp"
#include "currant/shm/futex.hpp"
#include "queue_state.hpp"

namespace currant::detail {

using shm::SlotState;
using shm::StateWord;

void QueueState::signal_cancel_holder(std::uint32_t owner_tag) noexcept {
    if (owner_tag == 0 || owner_tag > max_participants_) return; // bounds: the tag came from the segment
    ParticipantEntry& holder = participant_entries_[owner_tag - 1];
    // seq_cst RMW after the mark's seq_cst store (C3).
    holder.cancel_signal.fetch_add(1, std::memory_order_seq_cst);
    shm::crash_point("cancel.signalled");
    // A holder asleep in dequeue set its wake word (seq_cst) and then read
    // cancel_signal (seq_cst, cancel_signal_moved); we bumped the signal and
    // then read the wake word (seq_cst): either it sees the bump or we see
    // it asleep and wake it.
    if (holder.wake_word.load(std::memory_order_seq_cst) != 0) {
        holder.wake_word.store(0, std::memory_order_release);
        shm::futex_wake(holder.wake_word, 1);
    }
    // Every thread of the holder waiting in wait_for_cancel.
    shm::futex_wake(holder.cancel_signal, INT_MAX);
}

void QueueState::resignal_marked_picks(EntrypointId ep) noexcept {
    // Repair of [E] (caller holds it): a canceller may have died between its
    // mark and its wake-up. Bump and wake the holder of every marked pick of
    // this entrypoint; a holder that was told already just looks again.
    const std::uint32_t n = arena_.slot_count();
    std::uint32_t last_owner = 0;
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
        if (StateWord::state(word) != SlotState::picked) continue;
        const JobRecord& rec = record(slot);
        if (rec.entrypoint != ep || rec.cancel_epoch.load(std::memory_order_relaxed) != StateWord::epoch(word)) continue;
        const std::uint32_t owner = StateWord::owner(word);
        if (owner == last_owner) continue; // consecutive picks of one holder: one signal is enough
        last_owner = owner;
        signal_cancel_holder(owner);
    }
}

CancelOutcome QueueState::cancel(JobId id) {
    check_usable();
    // Ids are host << 48 | counter with a counter from 1 and hosts up to
    // 0x7FFF (PostgreSQL's bigint holds them): 0 and the upper half are no id.
    if (id == 0 || id > JobId(INT64_MAX))
        throw Error(Errc::invalid_argument, "queue '" + segment_.name() + "': " + std::to_string(id) +
                                                " is not a job id (ids are 1 to 2^63-1)");
    ensure_registered();
    const std::uint32_t n = arena_.slot_count();
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        const std::uint64_t seen = arena_.state_word(slot).load(std::memory_order_acquire);
        const SlotState seen_state = StateWord::state(seen);
        if (seen_state == SlotState::waiting && record(slot).job_id == id) return cancel_waiting(slot, id);
        if ((seen_state != SlotState::queued && seen_state != SlotState::picked) || record(slot).job_id != id) continue;
        const EntrypointId ep = record(slot).entrypoint;
        if (ep >= entrypoint_count()) return CancelOutcome::not_cancelable;
        EntrypointControl& c = entrypoints_[ep];
        scratch_release_.clear();
        CancelOutcome outcome = CancelOutcome::not_cancelable;
        bool marked_now = false;
        {
            lock_entrypoint(ep);
            shm::LockHolder holder(c.lock);
            const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
            JobRecord& rec = record(slot);
            // Queued and picked slots keep their job id; a word that moved on
            // (acked and the slot reused) no longer names the job.
            if (rec.job_id != id || rec.entrypoint != ep) return CancelOutcome::not_cancelable;
            if (StateWord::state(word) == SlotState::queued) {
                if (rec.heap_position != shm::no_slot) {
                    heap_remove(ep, rec.heap_position);
                } else {
                    lane_unlink(c, slot);
                    c.ready_count.store(c.ready_count.load(std::memory_order_relaxed) - 1, std::memory_order_release);
                    update_earliest_delayed(ep); // a freed lane may unblock a parked job
                }
                finish_locked(ep, slot, word, JobStatus::canceled, my_tag(), scratch_release_);
                outcome = CancelOutcome::canceled;
            } else if (StateWord::state(word) == SlotState::picked) {
                outcome = CancelOutcome::requested;
                // Requested before: the earlier canceller (or the repair after
                // its death) signalled the holder; do not wake it again.
                if (rec.cancel_epoch.load(std::memory_order_relaxed) != StateWord::epoch(word)) {
                    shm::crash_point("cancel.locked");
                    // C1, C3. A lock-free ack may CAS the word between our
                    // load and this store: the mark is then stale, and the
                    // answer `requested` is still true to its contract (the
                    // handler finished first).
                    rec.cancel_epoch.store(StateWord::epoch(word), std::memory_order_seq_cst);
                    shm::crash_point("cancel.marked");
                    signal_cancel_holder(StateWord::owner(word));
                    marked_now = true;
                }
            }
        }
        if (outcome == CancelOutcome::canceled) {
            count(ep, counter_canceled);
            settle_if_wanted(); // its dependents end canceled
            if (!scratch_release_.empty()) release_slots(scratch_release_, my_tag());
            scratch_release_.clear();
        }
        if (marked_now) shm::crash_point("cancel.unlocked");
        return outcome;
    }
    return CancelOutcome::not_cancelable;
}

bool QueueState::cancel_requested(const JobHandle& job) const noexcept {
    if (job.slot >= arena_.slot_count()) return false;
    // acquire: pairs with nothing in particular (the mark carries no data);
    // a holder that misses a mark stored a moment ago sees it at its next look.
    return record(job.slot).cancel_epoch.load(std::memory_order_acquire) == job.epoch;
}

bool QueueState::cancel_signal_moved() const noexcept {
    if (!registered_) return false;
    return participant_entries_[my_index_].cancel_signal.load(std::memory_order_seq_cst) != cancel_signal_seen_;
}

void QueueState::announce_registration() noexcept {
    // After our entry is active with its life lock held (holder_run): a
    // holder in wait_for_cancel that read the old value re-arms its death
    // watches and finds us.
    core_->registrations.fetch_add(1, std::memory_order_seq_cst);
    shm::futex_wake(core_->registrations, INT_MAX);
}

std::optional<std::size_t> QueueState::watch_other_participants(std::span<shm::FutexWaitItem> items,
                                                                std::size_t count) noexcept {
    for (std::uint32_t i = 0; i < max_participants_ && count < items.size(); ++i) {
        if (i == my_index_) continue;
        ParticipantEntry& other = participant_entries_[i];
        if (other.status.load(std::memory_order_acquire) != std::uint32_t(ParticipantStatus::active)) continue;
        const auto armed = other.life_lock.arm_death_notification();
        if (!armed) return std::nullopt;
        items[count++] = {&other.life_lock.futex_word(), *armed};
    }
    return count;
}

std::optional<std::size_t> QueueState::wait_for_cancel(std::span<const JobHandle> jobs, std::int64_t timeout_ns) {
    check_usable();
    for (const JobHandle& job : jobs)
        if (job.slot >= arena_.slot_count())
            throw Error(Errc::invalid_argument, "queue '" + segment_.name() + "': job handle names slot " +
                                                    std::to_string(job.slot) + " beyond the arena");
    if (!registered_) return std::nullopt; // holds nothing
    const std::int64_t give_up = timeout_ns < 0 ? no_deadline : shm::monotonic_ns() + timeout_ns;
    ParticipantEntry& me = participant_entries_[my_index_];
    for (;;) {
        check_usable();
        // The registry counter, then the signal, then the marks (all seq_cst):
        // a canceller stores the mark and then bumps the signal (C3); a
        // registrant activates and then bumps the counter. If we miss either,
        // the futex wait below sees the changed word or is woken after it.
        const std::uint32_t registrations = core_->registrations.load(std::memory_order_seq_cst);
        const std::uint32_t signal = me.cancel_signal.load(std::memory_order_seq_cst);
        bool holding = false;
        for (std::size_t i = 0; i < jobs.size(); ++i) {
            const JobHandle& job = jobs[i];
            const std::uint64_t word = arena_.state_word(job.slot).load(std::memory_order_acquire);
            const bool held = StateWord::state(word) == SlotState::picked && StateWord::owner(word) == my_tag() &&
                              StateWord::epoch(word) == job.epoch && record(job.slot).job_id == job.id;
            if (held && record(job.slot).cancel_epoch.load(std::memory_order_seq_cst) == job.epoch) {
                // The caller learns of it here: the next dequeue need not
                // return early for this signal (bumps up to `signal` were
                // made after their marks, C3, which a caller that waits on
                // every job it holds has just looked at).
                cancel_signal_seen_ = signal;
                return i;
            }
            holding |= held;
        }
        if (!holding) return std::nullopt;
        if (interrupt_requested_.exchange(false, std::memory_order_acq_rel)) return std::nullopt;
        const std::int64_t now = shm::monotonic_ns();
        if (now >= give_up) return std::nullopt;
        // interrupt() sets its flag (seq_cst), then clears our wake word and
        // wakes it: we set the word (seq_cst) and then re-check the flag.
        me.wake_word.store(1, std::memory_order_seq_cst);
        if (interrupt_requested_.load(std::memory_order_seq_cst)) {
            me.wake_word.store(0, std::memory_order_relaxed);
            continue;
        }
        shm::FutexWaitItem items[shm::futex_wait_any_max];
        items[0] = {&me.cancel_signal, signal};
        items[1] = {&me.wake_word, 1};
        items[2] = {&core_->registrations, registrations};
        // A canceller killed between its mark and its wake-up: the kernel
        // wakes us on its life lock; the sweep reaps it, which locks (and so
        // repairs, resignal_marked_picks) every entrypoint, and we find the mark.
        const std::optional<std::size_t> count = watch_other_participants(items, 3);
        int woken_by = -1;
        if (count) woken_by = shm::futex_wait_any({items, *count}, give_up == no_deadline ? -1 : give_up - now);
        me.wake_word.store(0, std::memory_order_relaxed);
        if (!count || woken_by >= 3) sweep_participants(); // a participant died: reap it before sleeping again
    }
}

} // namespace currant::detail
