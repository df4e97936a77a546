// Dequeue, sleeping, ack/fail/retry, heartbeat (cancel: cancelling.cpp).
#include <algorithm>
#include <cerrno>
#include <immintrin.h>
#include <utility>

#include "currant/shm/clock.hpp"
#include "currant/shm/crash_point.hpp"
#include "currant/shm/futex.hpp"
#include "queue_state.hpp"

namespace currant::detail {

using shm::SlotState;
using shm::StateWord;

namespace {
constexpr std::int64_t spin_before_sleep_ns = 10'000;   // DESIGN: spin at most ~10 us
constexpr std::int64_t sweep_interval_ns = 100'000'000; // liveness sweep at most every 100 ms
constexpr std::size_t deferred_ack_batch = 64;
thread_local bool dequeue_returns_on_signal = false; // Queue::set_dequeue_returns_on_signal

SlotState final_state_of(JobStatus status) {
    switch (status) {
    case JobStatus::successful: return SlotState::successful;
    case JobStatus::exception: return SlotState::exception;
    case JobStatus::canceled: return SlotState::canceled;
    default: return SlotState::exception;
    }
}
} // namespace

std::size_t QueueState::pick_locked(EntrypointId ep, std::span<Job> out, std::int64_t now_real,
                                    std::int64_t now_mono, bool& wake_for_lease) {
    EntrypointControl& c = entrypoints_[ep];
    promote_due(ep, now_real);
    // Pause, concurrency and rate limits (limits.cpp): how many we may take.
    out = out.first(pick_allowance(ep, out.size(), now_mono));
    if (out.empty()) return 0;
    const bool counted = c.concurrency_limit.load(std::memory_order_relaxed) != 0;
    const std::int64_t rate_interval = c.rate_interval_ns.load(std::memory_order_relaxed);
    const std::int64_t lease = c.lease_ns.load(std::memory_order_relaxed);
    const std::int64_t deadline = lease_deadline(now_mono, lease);
    // `memory` writes no log. Read once per batch, like append_log's own
    // relaxed read (EntrypointControl: a stale read applies the old option
    // to the rest of this batch only).
    const bool logged = Durability(c.durability.load(std::memory_order_relaxed)) != Durability::memory;
    // Start the cache misses of the records we are about to pop all at once:
    // the first lane's ring lists them in order, so none waits for another
    // (a list linked through the records cost one miss after the other).
    // The lines the pick and the ack touch: the state word's (attempts,
    // lease), lane position and limit mark, pick time and dependents.
    if (c.lane_count > 0 && c.lanes[0].ring < max_priority_lanes) {
        const PriorityLane& lane = c.lanes[0];
        const std::uint32_t* ring = lane_ring(c, lane);
        const std::uint32_t ahead = std::min<std::uint32_t>({lane.count, std::uint32_t(out.size()), 64u});
        std::uint32_t fetched = 0;
        for (std::uint32_t p = lane.head; p != lane.tail && fetched < ahead && p - lane.head < 2 * 64; ++p) {
            const std::uint32_t slot = ring[p & lane_ring_mask_];
            if (slot >= arena_.slot_count()) continue; // a hole (or corrupt: the pop says so)
            const std::byte* base = reinterpret_cast<const std::byte*>(&arena_.state_word(slot));
            __builtin_prefetch(base, 1);
            __builtin_prefetch(base + 64, 1);
            __builtin_prefetch(base + 128, 1);
            ++fetched;
        }
    }
    std::size_t picked = 0;
    while (picked < out.size() && c.lane_count > 0) {
        PriorityLane& lane = c.lanes[0];
        const std::uint32_t slot = lane_pop_front(c, lane);
        std::atomic<std::uint64_t>& state = arena_.state_word(slot);
        const std::uint64_t word = state.load(std::memory_order_acquire);
        JobRecord& rec = record(slot);
        if (StateWord::state(word) != SlotState::queued || rec.entrypoint != ep)
            throw Error(Errc::corrupt_segment, (c.lock.request_repair(), describe(ep)) +
                                                   ": a ready lane lists a slot that is not queued here; "
                                                   "the next locker rebuilds the index");
        if (remove_lane_if_empty(c, lane) && c.delayed_count > 0)
            update_earliest_delayed(ep); // a job parked for want of a lane may move now
        const std::uint64_t new_word = StateWord::next(word, SlotState::picked, my_tag());
        begin_intent(c, slot, word, new_word);
        ++rec.attempts;
        rec.lease_deadline_ns.store(deadline, std::memory_order_relaxed);
        rec.picked_at_ns.store(now_mono, std::memory_order_relaxed); // the holder's run time starts here
        // Before the state word's release store: an owner that sees the pick
        // sees its mark. A crash between the bucket store and the state word
        // wastes one start; the repair recounts in_flight from the marks.
        rec.limit_mark.store(limit_mark(StateWord::epoch(new_word), counted ? LimitMark::counted : LimitMark::uncounted),
                             std::memory_order_relaxed);
        if (rate_interval > 0)
            c.rate_tat_ns.store(std::max(c.rate_tat_ns.load(std::memory_order_relaxed), now_mono) + rate_interval,
                                std::memory_order_relaxed);
        state.store(new_word, std::memory_order_release);
        if (counted) shm::crash_point("limit.counted_pick"); // in_flight is raised once after the batch
        if (logged) append_log(ep, slot, new_word);
        c.ready_count.store(c.ready_count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
        c.intent.active = 0;
        shm::crash_point("dequeue.picked_one");
        // Its wait, from enqueue or execute_after (if later) to now, into
        // our own latency cells: no lock, no clock read of its own.
        observe_wait(ep, now_real - std::max(rec.enqueued_at_ns, rec.execute_after_ns));
        Job& job = out[picked++];
        job.handle = JobHandle{slot, StateWord::epoch(new_word), rec.job_id};
        job.entrypoint = ep;
        job.priority = rec.priority;
        job.attempts = rec.attempts;
        job.enqueued_at_ns = rec.enqueued_at_ns;
        job.payload = std::span<const std::byte>(arena_.payload(slot),
                                                 std::min(rec.payload_size, arena_.payload_bytes()));
    }
    if (picked && counted) // a crash before this store is repaired by the recount (limits.cpp, I1)
        c.in_flight.store(c.in_flight.load(std::memory_order_relaxed) + std::uint32_t(picked), std::memory_order_relaxed);
    if (picked) {
        c.pick_generation.store(c.pick_generation.load(std::memory_order_relaxed) + 1, std::memory_order_release);
        if (c.earliest_lease_ns.load(std::memory_order_relaxed) > deadline) {
            const bool was_unset = c.earliest_lease_ns.load(std::memory_order_relaxed) == no_deadline;
            c.earliest_lease_ns.store(deadline, std::memory_order_relaxed);
            // Sleepers computed their deadlines without this lease: let one
            // recompute (after the caller unlocks).
            if (was_unset) wake_for_lease = true;
        }
        count(ep, counter_picks, picked);
    }
    return picked;
}

bool QueueState::anything_ready(std::span<const EntrypointId> eps, std::int64_t now_real,
                                std::int64_t now_mono) const noexcept {
    if (core_->sealed.load(std::memory_order_seq_cst)) return false; // unseal() wakes every sleeper
    for (EntrypointId ep : eps) {
        const EntrypointControl& c = entrypoints_[ep];
        if (c.earliest_lease_ns.load(std::memory_order_relaxed) <= now_mono) return true; // reaping frees picks
        // Paused, at its concurrency limit or out of rate tokens: resume(), a
        // freed limit slot (wake_for_freed_limit) or the next token (our
        // sleep deadline) ends the sleep.
        if (blocked_by_limits(ep, now_mono)) continue;
        if (c.ready_count.load(std::memory_order_seq_cst) > 0) return true;
        if (c.earliest_delayed_ns.load(std::memory_order_relaxed) <= now_real) return true;
    }
    return false;
}

void QueueState::maybe_sweep(std::int64_t now_mono) {
    if (now_mono - last_sweep_ns_ < sweep_interval_ns) return;
    last_sweep_ns_ = now_mono;
    sweep_participants();
}

std::size_t QueueState::dequeue(std::span<const EntrypointId> eps, std::span<Job> out, std::int64_t timeout_ns) {
    check_usable();
    if (eps.empty()) throw Error(Errc::invalid_argument, "queue '" + segment_.name() + "': dequeue needs at least one entrypoint");
    for (EntrypointId ep : eps) check_entrypoint(ep);
    if (out.empty()) return 0;
    ensure_registered();
    // Awake in dequeue: hold the waking word of our entrypoints if nobody
    // does, so enqueues do not wake sleepers for jobs we are about to look
    // at; every way out releases it and wakes a sleeper for what is still
    // ready (producing.cpp, wake_for_ready). noexcept: also on a throw.
    claim_waking(eps);
    struct LeaveAwake {
        QueueState& self;
        std::span<const EntrypointId> eps;
        ~LeaveAwake() { self.pass_on_ready(eps); }
    } leave_awake{*this, eps};
    shm::crash_point("dequeue.awake"); // the waking word possibly held, nothing looked at yet
    const std::int64_t start = shm::monotonic_ns();
    const std::int64_t give_up = timeout_ns < 0 ? no_deadline : start + timeout_ns;
    std::int64_t spin_until = start + spin_before_sleep_ns;
    for (;;) {
        check_usable();
        if (interrupt_requested_.exchange(false, std::memory_order_acq_rel)) return 0;
        const std::int64_t now_real = shm::realtime_ns();
        const std::int64_t now_mono = shm::monotonic_ns();
        if (!deferred_acks_.empty() && now_mono >= deferred_flush_by_) flush();
        // Schedules (schedules.cpp): fire the ticks due, if any may be; one
        // shared load otherwise.
        fire_due_schedules(now_real);
        std::size_t picked = 0;
        const std::size_t count = eps.size();
        const std::uint32_t first = rotation_++;
        const bool sealed = core_->sealed.load(std::memory_order_acquire) != 0; // a rebuild is restoring jobs
        for (std::size_t k = 0; k < count && picked < out.size() && !sealed; ++k) {
            const EntrypointId ep = eps[(first + k) % count];
            EntrypointControl& c = entrypoints_[ep];
            if (c.earliest_lease_ns.load(std::memory_order_relaxed) <= now_mono) reap_expired_leases(ep, now_mono);
            if (c.ready_count.load(std::memory_order_acquire) == 0 &&
                c.earliest_delayed_ns.load(std::memory_order_relaxed) > now_real)
                continue;
            if (blocked_by_limits(ep, now_mono)) continue; // no lock taken for nothing
            bool wake_for_lease = false;
            {
                lock_entrypoint(ep);
                shm::LockHolder holder(c.lock);
                picked += pick_locked(ep, out.subspan(picked), now_real, now_mono, wake_for_lease);
            }
            if (wake_for_lease) wake_sleepers(ep, 1);
        }
        // A cancel for a job we hold (cancelling.cpp): return what we picked
        // (perhaps nothing) so the caller looks at its jobs' cancel flags.
        // After the pick pass, so a wake-up a producer spent on us for a
        // ready job is not lost by returning empty-handed.
        if (cancel_signal_moved()) {
            cancel_signal_seen_ = participant_entries_[my_index_].cancel_signal.load(std::memory_order_acquire);
            ++cancel_wakeups_;
            return picked;
        }
        if (picked) return picked;
        if (now_mono >= give_up) return 0;
        if (now_mono < spin_until) {
            for (int i = 0; i < 32; ++i) _mm_pause();
            continue;
        }

        // Going to sleep: no longer awake for the enqueues (the waking word,
        // producing.cpp). Any read of ready_count after this seq_cst release
        // sees every job whose wake-up was skipped because we held it (the
        // readiness check below is one); from here on the sleeper bits
        // protocol covers us. Released before the flush and the sweep, so
        // that a holder delayed there does not delay anybody's job.
        release_waking(eps);
        // Make deferred acks facts and check for dead peers first.
        flush();
        maybe_sweep(now_mono);
        // A lock left by a dead owner may hide a published job (ready_count
        // not yet counted): a trylock runs the repair, which recounts it.
        for (EntrypointId ep : eps) {
            EntrypointControl& c = entrypoints_[ep];
            if (c.lock.try_lock([this, ep]() noexcept { return repair_entrypoint(ep); })) c.lock.unlock();
        }
        // Read before the readiness check, as wait_for_cancel does: a
        // participant that registers after it (a consumer that may hold a
        // waking word and die) wakes us to re-arm the death watches with
        // it included, so its death wakes one of us (producing.cpp,
        // wake_for_ready).
        const std::uint32_t registrations = core_->registrations.load(std::memory_order_seq_cst);
        ParticipantEntry& me = participant_entries_[my_index_];
        std::int64_t sleep_ns_override = -1;
        bool signalled = false;
        const std::uint32_t word_index = my_index_ / 64;
        const std::uint64_t bit = std::uint64_t(1) << (my_index_ % 64);
        me.wake_word.store(1, std::memory_order_seq_cst);
        for (EntrypointId ep : eps) sleeper_words(ep)[word_index].fetch_or(bit, std::memory_order_seq_cst);
        const std::int64_t check_real = shm::realtime_ns();
        const std::int64_t check_mono = shm::monotonic_ns();
        // Queue::remove sets retired (seq_cst) and then wakes every sleeper:
        // checking it after our wake word is set closes the gap.
        // A schedule added after our last scan (its adder bumps the epoch,
        // then reads our bits) or a tick due now: loop instead of sleeping.
        if (!anything_ready(eps, check_real, check_mono) && !segment_.retired_seq_cst() &&
            !interrupt_requested_.load(std::memory_order_seq_cst) && !cancel_signal_moved() && !schedules_changed() &&
            schedule_due_at_ > check_real) {
            std::int64_t wake_at = give_up;
            // The next tick of any schedule ends the sleep (a consumer fires it).
            if (schedule_due_at_ != no_deadline)
                wake_at = std::min(wake_at, check_mono + (schedule_due_at_ - check_real));
            for (EntrypointId ep : eps) {
                const EntrypointControl& c = entrypoints_[ep];
                wake_at = std::min(wake_at, c.earliest_lease_ns.load(std::memory_order_relaxed));
                // Paused or at the concurrency limit: resume() or a freed
                // slot wakes us; no deadline (a due delayed job would
                // otherwise make this a busy loop).
                if (c.paused.load(std::memory_order_relaxed) != 0) continue;
                if (concurrency_full(ep)) continue;
                // Rate limit: nothing can start before the next token.
                const std::int64_t next_start = next_rate_start(c);
                const std::int64_t delayed = c.earliest_delayed_ns.load(std::memory_order_relaxed);
                if (delayed != no_deadline)
                    wake_at = std::min(wake_at, std::max(check_mono + (delayed - check_real), next_start));
                if (c.ready_count.load(std::memory_order_relaxed) > 0 && next_start > check_mono)
                    wake_at = std::min(wake_at, next_start);
            }
            const std::int64_t sleep_ns = wake_at == no_deadline ? -1 : std::max<std::int64_t>(wake_at - check_mono, 0);
            if (sleep_ns != 0) {
                // Sleep on our wake word and on the life locks of the other
                // participants: the kernel wakes one waiter when a holder of
                // a robust lock dies, so a death is noticed without polling.
                shm::FutexWaitItem items[shm::futex_wait_any_max];
                items[0] = {&me.wake_word, 1};
                items[1] = {&core_->registrations, registrations};
                const std::optional<std::size_t> watched = watch_other_participants(items, 2);
                const std::size_t count = watched.value_or(2);
                if (!watched) sleep_ns_override = 0; // an owner-less active entry: sweep now instead of sleeping
                if (sleep_ns_override == 0) {
                    last_sweep_ns_ = 0;
                } else {
                    errno = 0;
                    const int woken_by = shm::futex_wait_any({items, count}, sleep_ns);
                    signalled = woken_by < 0 && errno == EINTR; // errno is the system call's
                    if (woken_by > 1) last_sweep_ns_ = 0; // a watched participant died or left: sweep before sleeping again
                }
                sleep_ns_override = -1;
            }
        }
        me.wake_word.store(0, std::memory_order_relaxed);
        for (EntrypointId ep : eps) sleeper_words(ep)[word_index].fetch_and(~bit, std::memory_order_relaxed);
        // Awake again: a waker may have handed us the waking word already.
        claim_waking(eps);
        if (signalled && dequeue_returns_on_signal) return 0;
        spin_until = shm::monotonic_ns() + spin_before_sleep_ns;
    }
}

bool dequeue_returns_on_signal_enabled() noexcept { return dequeue_returns_on_signal; }

void QueueState::interrupt() noexcept {
    // Pairs with the sleeper: it sets its wake word (seq_cst) and then reads
    // the flag (seq_cst); we set the flag and then clear the word and wake it,
    // so either it sees the flag or its FUTEX_WAIT sees the cleared word.
    interrupt_requested_.store(true, std::memory_order_seq_cst);
    if (!registered_for_interrupt_.load(std::memory_order_acquire)) return;
    auto& word = participant_entries_[my_index_].wake_word;
    word.store(0, std::memory_order_seq_cst);
    shm::futex_wake(word, 1);
}

} // namespace currant::detail

void currant::Queue::set_dequeue_returns_on_signal(bool enabled) noexcept {
    currant::detail::dequeue_returns_on_signal = enabled;
}

namespace currant::detail {

void QueueState::set_prefetch(std::uint32_t jobs) {
    if (jobs == 0 || jobs > 1024) throw Error(Errc::invalid_argument, "prefetch must be between 1 and 1024 jobs");
    prefetch_limit_ = jobs;
}

std::optional<Job> QueueState::dequeue_one(std::span<const EntrypointId> eps, std::int64_t timeout_ns) {
    check_usable();
    for (;;) {
        while (prefetch_position_ < prefetch_count_) {
            // A prefetched job is handed out only while its pick is still ours:
            // its lease may have expired and another consumer picked it.
            const Job& job = prefetch_[prefetch_position_++];
            const std::uint64_t word = arena_.state_word(job.handle.slot).load(std::memory_order_acquire);
            if (!(StateWord::state(word) == SlotState::picked && StateWord::owner(word) == my_tag() &&
                  StateWord::epoch(word) == job.handle.epoch))
                continue;
            // Canceled while it waited here: it never reaches a handler.
            if (cancel_requested(job.handle)) {
                finish({&job.handle, 1}, JobStatus::canceled, false);
                continue;
            }
            return job;
        }
        if (prefetch_.size() != prefetch_limit_) prefetch_.resize(prefetch_limit_);
        prefetch_count_ = dequeue(eps, prefetch_, timeout_ns);
        prefetch_position_ = 0;
        if (prefetch_count_ == 0) return std::nullopt;
    }
}

bool QueueState::finish_locked(EntrypointId ep, std::uint32_t slot, std::uint64_t word, JobStatus final_status,
                               std::uint32_t acting_owner, std::vector<std::uint32_t>& to_release,
                               std::string_view error, const std::span<const std::byte>* result) {
    // Caller holds [E]. The state word moves by CAS because a picked job's
    // owner may ack it concurrently without the lock (memory durability);
    // exactly one of the two CASes wins. Returns false if we lost. The CASes
    // into a final state are seq_cst: note_completion's load of the waiter
    // count pairs with a waiter's (results.cpp, CoreHeader::completion_signal).
    EntrypointControl& c = entrypoints_[ep];
    JobRecord& rec = record(slot);
    std::atomic<std::uint64_t>& state = arena_.state_word(slot);
    // A dead job is kept (outcomes.cpp) in every durability while max_dead > 0.
    const bool dies = final_status == JobStatus::exception;
    const bool keep = dies && c.max_dead.load(std::memory_order_relaxed) != 0;
    // A successful or canceled job is kept with its result while the
    // entrypoint has a retention (results.cpp).
    const bool keep_result = !dies && c.result_retention_ns.load(std::memory_order_relaxed) > 0;
    const bool with_result = result && final_status == JobStatus::successful;
    if (!keep && !keep_result && Durability(c.durability.load(std::memory_order_relaxed)) == Durability::memory) {
        const std::uint64_t new_word = StateWord::next(word, SlotState::reserved, acting_owner);
        // Before the CAS, like the lock-free ack: a job depending on this one
        // reads how it ended from it (dependencies.cpp, classify). A claim
        // until the CAS succeeds (queue_state.hpp, set_last).
        const JobId id = rec.job_id;
        const std::uint64_t replaced = set_last(rec, id, std::uint32_t(final_status));
        if (!state.compare_exchange_strong(word, new_word, std::memory_order_seq_cst)) {
            undo_last(rec, id, std::uint32_t(final_status), replaced);
            return false;
        }
        commit_last(rec, id, std::uint32_t(final_status)); // reserved by acting_owner: ours until released
        leave_limit(c, slot, word); // a crash before it: the repair recounts (limits.cpp)
        to_release.push_back(slot);
        note_completion(slot);
        return true;
    }
    const std::uint64_t new_word = StateWord::next(word, final_state_of(final_status), 0);
    begin_intent(c, slot, word, new_word);
    if (dies) prepare_death(c, slot, new_word, keep, error); // before the CAS: see JobRecord::dead_mark
    if (keep_result) prepare_kept_result(c, slot, new_word); // likewise
    if (with_result) {
        // Tagged with the epoch it is about to enter: a crash before the CAS
        // leaves a tag that no `successful` word of this slot will carry (a
        // reaper's requeue or death at that epoch is not `successful`).
        write_result_locked(slot, rec.job_id, StateWord::epoch(new_word), *result);
        shm::crash_point("result.written");
    }
    const std::uint64_t old_word = word;
    const bool won = state.compare_exchange_strong(word, new_word, std::memory_order_seq_cst);
    if (won && with_result) shm::crash_point("result.committed"); // the intent's log append is repaired
    if (won) note_completion(slot);
    if (won) leave_limit(c, slot, old_word);
    if (won) append_log(ep, slot, new_word); // memory durability: no log
    if (won && keep) {
        shm::crash_point("dead.kept"); // `exception`, not yet on the dead list: the repair rebuilds it
        keep_dead_locked(ep, slot, acting_owner, to_release);
    }
    c.intent.active = 0;
    return won;
}

QueueState::RequeueResult QueueState::requeue_locked(EntrypointId ep, std::uint32_t slot, std::uint64_t word,
                                                     std::int64_t delay_ns, std::uint32_t acting_owner,
                                                     std::vector<std::uint32_t>& to_release, std::string_view error) {
    EntrypointControl& c = entrypoints_[ep];
    JobRecord& rec = record(slot);
    // A cancel was requested for this pick (cancelling.cpp): it never runs
    // again. The mark is written under [E] only, which we hold.
    if (rec.cancel_epoch.load(std::memory_order_relaxed) == StateWord::epoch(word)) {
        if (!finish_locked(ep, slot, word, JobStatus::canceled, acting_owner, to_release)) return RequeueResult::raced;
        return RequeueResult::canceled;
    }
    if (rec.attempts >= rec.max_attempts) {
        if (!finish_locked(ep, slot, word, JobStatus::exception, acting_owner, to_release, error))
            return RequeueResult::raced;
        return RequeueResult::dead;
    }
    const std::int64_t now_real = shm::realtime_ns();
    const std::uint64_t new_word = StateWord::next(word, SlotState::queued, 0);
    begin_intent(c, slot, word, new_word);
    // The last error travels with the requeued job (the mirror's traceback).
    if (!error.empty()) write_error_locked(slot, rec.job_id, StateWord::epoch(new_word), error);
    if (!arena_.state_word(slot).compare_exchange_strong(word, new_word, std::memory_order_acq_rel)) {
        c.intent.active = 0;
        return RequeueResult::raced;
    }
    leave_limit(c, slot, word); // under [E]: a crash from here on is repaired by the recount
    // Queued slots are touched only under [E], which we hold: the fields
    // below are ours until we unlock. A crash here is repaired by the rebuild.
    shm::crash_point("requeue.unlinked");
    rec.execute_after_ns = delay_ns > 0 ? now_real + delay_ns : 0;
    rec.sequence = c.next_sequence++;
    rec.lease_deadline_ns.store(0, std::memory_order_relaxed);
    const bool ready = place_queued(ep, slot, now_real);
    append_log(ep, slot, new_word);
    if (ready) c.ready_count.store(c.ready_count.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    c.intent.active = 0;
    return RequeueResult::requeued;
}

std::size_t QueueState::finish(std::span<const JobHandle> jobs, JobStatus final_status, bool throw_on_first,
                               std::string_view error, const std::span<const std::byte>* result) {
    check_usable();
    if (!registered_) {
        if (throw_on_first && !jobs.empty())
            throw Error(Errc::not_owner, "queue '" + segment_.name() + "': this Queue holds no picked jobs");
        return 0;
    }
    std::size_t finished = 0;
    scratch_release_.clear();
    // Completion wake-ups wait for the entrypoint lock's release (results.cpp,
    // note_completion); declared before `held` so that on a throw the lock is
    // released first.
    struct DeferredCompletionWake {
        QueueState& self;
        explicit DeferredCompletionWake(QueueState& s) : self(s) { self.completion_wake_deferred_ = true; }
        ~DeferredCompletionWake() { self.wake_owed_completion_waiters(); }
    } deferred_wake{*this};
    // Counted picks acked without the lock give their limit slots back in
    // one [E] section per entrypoint (limits.cpp, I1 b), after `held` is
    // released (declared before it) and before the slots are freed; on a
    // throw too (the slots then stay reserved by us, given back).
    struct PendingReleases {
        QueueState& self;
        void apply() noexcept {
            if (self.scratch_pending_.empty()) return;
            self.apply_released(self.scratch_pending_, self.my_tag());
            self.scratch_pending_.clear();
        }
        ~PendingReleases() { apply(); }
    } pending{*this};
    scratch_pending_.reserve(jobs.size()); // no allocation between a CAS and its entry
    // The locked path keeps [E] across consecutive jobs of one entrypoint, so
    // a batch ack (or a deferred-ack flush) takes each lock once. Released at
    // a change of entrypoint, on a throw and at the end, before the arena
    // lock is taken; then sleepers are woken for the limit slots it freed.
    struct HeldEntrypoint {
        QueueState& self;
        EntrypointId ep = 0;
        bool held = false;
        void release() noexcept {
            if (!held) return;
            held = false;
            self.entrypoints_[ep].lock.unlock();
            self.wake_for_freed_limit(ep, std::exchange(self.limit_freed_, 0));
        }
        ~HeldEntrypoint() { release(); }
    } held{*this};
    std::vector<EntrypointId> uncounted_wakes; // woken after every lock is released (lock order)
    std::int64_t now_mono = 0;                 // read at the first finished job
    for (const JobHandle& job : jobs) {
        if (job.slot >= arena_.slot_count()) {
            if (throw_on_first) throw Error(Errc::invalid_argument, "queue '" + segment_.name() + "': job handle names slot " + std::to_string(job.slot) + " beyond the arena");
            continue;
        }
        std::atomic<std::uint64_t>& state = arena_.state_word(job.slot);
        std::uint64_t word = state.load(std::memory_order_acquire);
        JobRecord& rec = record(job.slot);
        const bool mine = StateWord::state(word) == SlotState::picked && StateWord::owner(word) == my_tag() &&
                          StateWord::epoch(word) == job.epoch && rec.job_id == job.id;
        if (!mine) {
            if (throw_on_first) {
                if (StateWord::state(word) == SlotState::picked && StateWord::owner(word) != my_tag() && rec.job_id == job.id)
                    throw Error(Errc::not_owner, "queue '" + segment_.name() + "': job " + std::to_string(job.id) + " is picked by another consumer (its lease expired and it was re-picked)");
                throw Error(Errc::stale_handle, "queue '" + segment_.name() + "': job " + std::to_string(job.id) + " is no longer picked under this handle (already finished, requeued after lease expiry, or the slot was reused)");
            }
            continue;
        }
        const EntrypointId ep = rec.entrypoint;
        if (ep >= entrypoint_count()) continue;
        EntrypointControl& c = entrypoints_[ep];
        // Our pick's time (we acquired its state word): the run time's start.
        const std::int64_t picked_at = rec.picked_at_ns.load(std::memory_order_relaxed);
        const Counter counter = final_status == JobStatus::successful ? counter_successful
                               : final_status == JobStatus::canceled ? counter_canceled : counter_failed;
        // memory durability acks without the lock, also a pick that counts
        // against the concurrency limit (its mark, written by the pick before
        // the state word we acquired, never changes while it is picked): its
        // limit slot is given back after the loop (apply_released; until
        // then the reserved slot with its counted mark still counts, I1 b).
        // A dead job that is kept goes onto the dead list: the locked path.
        const bool kept_dead = final_status == JobStatus::exception && c.max_dead.load(std::memory_order_relaxed) != 0;
        // A result, or a finished job kept for its retention, is written
        // under [E] (results.cpp): the locked path too.
        const bool kept_result = final_status != JobStatus::exception &&
                                 c.result_retention_ns.load(std::memory_order_relaxed) > 0;
        if (Durability(c.durability.load(std::memory_order_relaxed)) == Durability::memory && !kept_dead &&
            !kept_result && !result) {
            const bool counted = rec.limit_mark.load(std::memory_order_relaxed) == limit_mark(job.epoch, LimitMark::counted);
            // The state word CAS is the commit point; a reaper requeueing the
            // same pick races on the same CAS and exactly one wins.
            // The last outcome first, a claim until the CAS (queue_state.hpp,
            // set_last): a job depending on this one reads it once the word
            // leaves the job. The id the slot holds now, not job.id: if we
            // were held up here until the slot moved on, the claim names its
            // current job, which is live (harmless) or ended (undo_last puts
            // its outcome back), never ours over the slot's newer outcome.
            const JobId id = rec.job_id;
            const std::uint64_t replaced = set_last(rec, id, std::uint32_t(final_status));
            const std::uint64_t new_word = StateWord::next(word, SlotState::reserved, my_tag());
            // seq_cst: pairs with Queue::wait through note_completion (results.cpp).
            if (!state.compare_exchange_strong(word, new_word, std::memory_order_seq_cst)) {
                undo_last(rec, id, std::uint32_t(final_status), replaced);
                if (throw_on_first) throw Error(Errc::stale_handle, "queue '" + segment_.name() + "': job " + std::to_string(job.id) + " was requeued (lease expired) before it was acked");
                continue;
            }
            // Killed here: the claim stands, the reaper frees the slot;
            // readers take a claim as the outcome (queue_state.hpp).
            shm::crash_point("ack.marked");
            commit_last(rec, id, std::uint32_t(final_status)); // reserved by us until release_slots
            note_completion(job.slot);
            scratch_release_.push_back(job.slot);
            if (counted) {
                // Reserved by us with its counted mark: it still counts until
                // apply_released (a recount counts it too). Killed here: our
                // reaper gives it back before it frees the slot.
                scratch_pending_.push_back(job.slot);
                shm::crash_point("limit.release_pending");
            } else if (c.concurrency_limit.load(std::memory_order_seq_cst) != 0) {
                // A pick made before a limit was set counts against it (I2)
                // but leaves without the lock: a consumer asleep at the limit
                // rescans after setting its bit, so after our CAS read the
                // limit (seq_cst, paired with the setter's store before its
                // scan) and wake one.
                uncounted_wakes.push_back(ep);
            }
        } else {
            if (!held.held || held.ep != ep) {
                held.release();
                limit_freed_ = 0;
                lock_entrypoint(ep);
                held.ep = ep;
                held.held = true;
            }
            word = state.load(std::memory_order_acquire);
            if (!(StateWord::state(word) == SlotState::picked && StateWord::owner(word) == my_tag() &&
                  StateWord::epoch(word) == job.epoch)) {
                if (throw_on_first) throw Error(Errc::stale_handle, "queue '" + segment_.name() + "': job " + std::to_string(job.id) + " was requeued (lease expired) before it was acked");
                continue;
            }
            if (!finish_locked(ep, job.slot, word, final_status, my_tag(), scratch_release_, error, result)) continue;
        }
        count(ep, counter);
        // One clock read per call, at its first finished job: a batch ack
        // or a deferred-ack flush pays it once.
        if (now_mono == 0) now_mono = shm::monotonic_ns();
        observe_run(ep, now_mono - picked_at);
        ++finished;
    }
    held.release();
    pending.apply(); // wakes sleepers for the limit slots it gives back
    wake_owed_completion_waiters();
    for (EntrypointId ep : uncounted_wakes) wake_for_freed_limit(ep, 1);
    // Jobs waiting for the ones that ended move on, before those slots can
    // be reused (dependencies.cpp; a crash before it: the reaper settles).
    settle_if_wanted();
    // Finished slots go straight back to the arena (one lock per call), so
    // another process's producer can use them at once.
    if (!scratch_release_.empty()) release_slots(scratch_release_, my_tag());
    scratch_release_.clear();
    return finished;
}

void QueueState::ack_deferred(const JobHandle& job) {
    check_usable();
    deferred_acks_.push_back(job);
    if (job.slot < arena_.slot_count()) {
        const std::int64_t deadline = record(job.slot).lease_deadline_ns.load(std::memory_order_relaxed);
        // Flush well before the lease runs out.
        if (deadline > 0) deferred_flush_by_ = std::min(deferred_flush_by_, deadline - 100'000'000);
    }
    // The clock is read every 8 acks (and by every dequeue), not per ack.
    if (deferred_acks_.size() >= deferred_ack_batch ||
        ((deferred_acks_.size() & 7) == 0 && shm::monotonic_ns() >= deferred_flush_by_))
        flush();
}

std::size_t QueueState::flush() {
    if (deferred_acks_.empty()) return 0;
    const std::size_t done = finish(deferred_acks_, JobStatus::successful, false);
    deferred_acks_.clear();
    deferred_flush_by_ = no_deadline;
    return done;
}

bool QueueState::retry(const JobHandle& job, std::optional<std::int64_t> delay_ns, std::string_view error) {
    check_usable();
    if (job.slot >= arena_.slot_count() || !registered_)
        throw Error(Errc::stale_handle, "queue '" + segment_.name() + "': job handle is not held by this Queue");
    const EntrypointId ep = record(job.slot).entrypoint;
    if (ep >= entrypoint_count()) throw Error(Errc::stale_handle, "queue '" + segment_.name() + "': job handle is stale");
    EntrypointControl& c = entrypoints_[ep];
    RequeueResult result = RequeueResult::raced;
    std::int64_t picked_at = 0;
    scratch_release_.clear();
    limit_freed_ = 0;
    {
        lock_entrypoint(ep);
        shm::LockHolder holder(c.lock);
        const std::uint64_t word = arena_.state_word(job.slot).load(std::memory_order_acquire);
        JobRecord& rec = record(job.slot);
        if (!(StateWord::state(word) == SlotState::picked && StateWord::owner(word) == my_tag() &&
              StateWord::epoch(word) == job.epoch && rec.job_id == job.id))
            throw Error(Errc::stale_handle, describe(ep) + ": job " + std::to_string(job.id) + " is no longer picked under this handle");
        std::int64_t delay = 0;
        if (delay_ns) {
            delay = *delay_ns;
        } else {
            const std::int64_t base = c.retry_delay_ns.load(std::memory_order_relaxed);
            const std::int64_t cap = c.max_retry_delay_ns.load(std::memory_order_relaxed);
            const std::uint32_t shift = std::min<std::uint32_t>(rec.attempts ? rec.attempts - 1 : 0, 30);
            delay = std::min<std::int64_t>(cap, base > (cap >> shift) ? cap : base << shift);
        }
        picked_at = rec.picked_at_ns.load(std::memory_order_relaxed); // our pick's, read while we hold it
        result = requeue_locked(ep, job.slot, word, delay, my_tag(), scratch_release_, error);
    }
    if (result != RequeueResult::raced) observe_run(ep, shm::monotonic_ns() - picked_at);
    if (result == RequeueResult::raced)
        throw Error(Errc::stale_handle, describe(ep) + ": job " + std::to_string(job.id) + " was requeued (lease expired) before the retry");
    wake_for_freed_limit(ep, std::exchange(limit_freed_, 0)); // a job ended dead frees a slot too
    count(ep, result == RequeueResult::requeued ? counter_retried
              : result == RequeueResult::canceled ? counter_canceled : counter_failed);
    settle_if_wanted(); // ended dead or canceled: its dependents end canceled
    if (!scratch_release_.empty()) release_slots(scratch_release_, my_tag());
    scratch_release_.clear();
    // A ready job, or a delayed one that may now be the earliest: one sleeper re-checks.
    if (result == RequeueResult::requeued) wake_sleepers(ep, 1);
    return result == RequeueResult::requeued;
}

std::size_t QueueState::heartbeat(std::span<const JobHandle> jobs) {
    check_usable();
    std::size_t extended = 0;
    const std::int64_t now = shm::monotonic_ns();
    for (const JobHandle& job : jobs) {
        if (job.slot >= arena_.slot_count() || !registered_) continue;
        const std::uint64_t word = arena_.state_word(job.slot).load(std::memory_order_acquire);
        JobRecord& rec = record(job.slot);
        if (!(StateWord::state(word) == SlotState::picked && StateWord::owner(word) == my_tag() &&
              StateWord::epoch(word) == job.epoch && rec.job_id == job.id))
            continue;
        if (rec.entrypoint >= entrypoint_count()) continue;
        std::int64_t deadline = rec.lease_deadline_ns.load(std::memory_order_acquire);
        // A reaper claims an expired lease by CAS to 0; extend only a live one.
        if (deadline == 0 || deadline <= now) continue;
        const std::int64_t lease = entrypoints_[rec.entrypoint].lease_ns.load(std::memory_order_relaxed);
        if (rec.lease_deadline_ns.compare_exchange_strong(deadline, lease_deadline(now, lease), std::memory_order_acq_rel))
            ++extended;
    }
    return extended;
}

} // namespace currant::detail
