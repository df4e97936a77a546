// The participant registry: registration through a held life lock, liveness
// checks, and reaping of dead participants and expired leases.
//
// Liveness: each registered Queue object has a holder thread that owns its
// entry's robust life lock for as long as it is registered. trylock by
// anyone else: EBUSY = alive; EOWNERDEAD = the process (or thread) died, and
// the locker reaps the entry as the lock's repair step. Because repair runs
// before pthread_mutex_consistent, a reaper that dies mid-reap leaves the
// lock owner-dead again and the next locker repeats the reap, which is
// idempotent (every step re-checks state words under the owning lock).
//
// Lock order: life lock -> entrypoint lock -> arena lock. Nothing takes a
// life lock while holding an entrypoint or arena lock.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <csignal>
#include <fstream>
#include <unistd.h>
#include <utility>

#include "currant/shm/clock.hpp"
#include "currant/shm/crash_point.hpp"
#include "currant/shm/futex.hpp"
#include "queue_state.hpp"

namespace currant::detail {

using shm::SlotState;
using shm::StateWord;

namespace {
std::uint64_t process_start_time() {
    std::ifstream stat("/proc/self/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto close_paren = text.rfind(')');
    if (close_paren == std::string::npos) return 0;
    // Fields after the command name; starttime is field 22 overall.
    const char* cursor = text.c_str() + close_paren + 2;
    for (int field = 3; field < 22 && *cursor; ++field) {
        cursor = std::strchr(cursor, ' ');
        if (!cursor) return 0;
        ++cursor;
    }
    return std::strtoull(cursor, nullptr, 10);
}
} // namespace

void QueueState::ensure_registered() {
    if (registered_) return;
    check_usable();
    start_holder_thread();
    registered_ = true;
    registered_for_interrupt_.store(true, std::memory_order_release);
    cancel_signal_seen_ = participant_entries_[my_index_].cancel_signal.load(std::memory_order_acquire);
    last_sweep_ns_ = shm::monotonic_ns();
    announce_registration(); // cancelling.cpp: sleepers in wait_for_cancel watch us from now on
}

void* QueueState::holder_main(void* self) {
    static_cast<QueueState*>(self)->holder_run();
    return nullptr;
}

void QueueState::start_holder_thread() {
    holder_claim_ = std::promise<std::uint32_t>();
    auto claimed = holder_claim_.get_future();
    holder_should_release_ = false;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setstacksize(&attributes, 256 * 1024);
    // The holder thread blocks every signal (it inherits this mask), so a
    // process-directed signal such as Ctrl-C's SIGINT reaches a thread that
    // handles it, for example one asleep in dequeue, rather than this one.
    sigset_t all_signals, caller_mask;
    sigfillset(&all_signals);
    pthread_sigmask(SIG_SETMASK, &all_signals, &caller_mask);
    const int rc = pthread_create(&holder_thread_, &attributes, &QueueState::holder_main, this);
    pthread_sigmask(SIG_SETMASK, &caller_mask, nullptr);
    pthread_attr_destroy(&attributes);
    if (rc != 0) throw_system_error("pthread_create (participant holder thread)", rc);
    holder_started_ = true;
    try {
        my_index_ = claimed.get();
    } catch (...) {
        pthread_join(holder_thread_, nullptr);
        holder_started_ = false;
        throw;
    }
}

void QueueState::holder_run() {
    std::uint32_t claimed = max_participants_;
    try {
        for (std::uint32_t i = 0; i < max_participants_ && claimed == max_participants_; ++i) {
            ParticipantEntry& entry = participant_entries_[i];
            // Reaping a dead previous owner is the lock's repair step.
            const bool locked = entry.life_lock.try_lock([this, i]() noexcept { return reap_participant(i); });
            if (!locked) continue;
            if (entry.status.load(std::memory_order_relaxed) != std::uint32_t(ParticipantStatus::free)) {
                // Active but unlocked cannot happen (status is cleared before
                // unlock); leave it for doctor.
                entry.life_lock.unlock();
                continue;
            }
            entry.pid = ::getpid();
            entry.start_time = process_start_time();
            entry.wake_word.store(0, std::memory_order_relaxed);
            for (EntrypointId ep = 0; ep < max_entrypoints_; ++ep)
                for (std::uint32_t k = 0; k < counter_kinds; ++k)
                    counters(i, ep)[k].store(0, std::memory_order_relaxed);
            zero_latency(i); // already folded (a fold cut short is finished by the reap); defensive
            entry.status.store(std::uint32_t(ParticipantStatus::active), std::memory_order_release);
            claimed = i;
        }
    } catch (...) {
        holder_claim_.set_exception(std::current_exception());
        return;
    }
    if (claimed == max_participants_) {
        holder_claim_.set_exception(std::make_exception_ptr(
            Error(Errc::participant_table_full, "queue '" + segment_.name() + "': all " +
                                                    std::to_string(max_participants_) +
                                                    " participant entries are in use by live processes "
                                                    "(raise --participants at init)")));
        return;
    }
    holder_claim_.set_value(claimed);
    std::unique_lock guard(holder_mutex_);
    holder_wakeup_.wait(guard, [this] { return holder_should_release_; });
    ParticipantEntry& entry = participant_entries_[claimed];
    entry.status.store(std::uint32_t(ParticipantStatus::free), std::memory_order_release);
    entry.life_lock.unlock();
}

void QueueState::unregister() noexcept {
    if (!holder_started_) return;
    {
        std::lock_guard guard(holder_mutex_);
        holder_should_release_ = true;
    }
    holder_wakeup_.notify_one();
    registered_for_interrupt_.store(false, std::memory_order_release);
    pthread_join(holder_thread_, nullptr);
    holder_started_ = false;
    registered_ = false;
}

void QueueState::close() noexcept {
    if (closed_) return;
    // In a forked child none of this belongs to us: just unmap.
    if (opened_fork_generation_ != fork_generation() || !registered_ || segment_.retired()) {
        closed_ = true;
        if (opened_fork_generation_ == fork_generation()) unregister();
        return;
    }
    try {
        flush();
    } catch (...) {
    }
    prefetch_count_ = 0;
    prefetch_position_ = 0;
    try {
        // Jobs handed out (or prefetched) and not finished go back, attempt counted.
        requeue_holdings(my_tag(), my_tag());
    } catch (...) {
    }
    if (!slot_cache_.empty()) release_slots(slot_cache_, my_tag());
    slot_cache_.clear();
    for (EntrypointId ep = 0; ep < max_entrypoints_; ++ep)
        sleeper_words(ep)[my_index_ / 64].fetch_and(~(std::uint64_t(1) << (my_index_ % 64)),
                                                    std::memory_order_relaxed);
    drop_waking_of(my_index_); // normally released already (dequeue's every way out)
    closed_ = true;
    // Fold our counters into the entrypoints' totals before the entry is reused.
    for (EntrypointId ep = 0; ep < max_entrypoints_; ++ep)
        for (std::uint32_t k = 0; k < counter_kinds; ++k) {
            const std::uint64_t value = counters(my_index_, ep)[k].exchange(0, std::memory_order_relaxed);
            if (value) entrypoints_[ep].retired_counters[k].fetch_add(value, std::memory_order_relaxed);
        }
    fold_latency(my_index_);
    unregister();
}

std::size_t QueueState::requeue_holdings(std::uint32_t owner_tag, std::uint32_t acting_owner) {
    // Scan without locks, then verify each candidate under its entrypoint
    // lock: picked slots change owner only under [E] or by the owner's own
    // CAS, and the owner is us or dead.
    std::vector<std::vector<std::uint32_t>> by_entrypoint(entrypoint_count());
    const std::uint32_t n = arena_.slot_count();
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
        if (StateWord::state(word) != SlotState::picked || StateWord::owner(word) != owner_tag) continue;
        const std::uint32_t ep = record(slot).entrypoint;
        if (ep < by_entrypoint.size()) by_entrypoint[ep].push_back(slot);
    }
    std::size_t requeued = 0;
    std::vector<std::uint32_t> to_release;
    // The last error kept with each job (docs/dead-jobs.md).
    const std::int32_t owner_pid = owner_tag - 1 < max_participants_ ? participant_entries_[owner_tag - 1].pid : 0;
    const std::string reason = "consumer process " + std::to_string(owner_pid) +
                               (owner_tag == acting_owner ? " closed its queue without finishing the job"
                                                          : " died while the job was picked");
    for (EntrypointId ep = 0; ep < by_entrypoint.size(); ++ep) {
        if (by_entrypoint[ep].empty()) continue;
        EntrypointControl& c = entrypoints_[ep];
        bool woke = false;
        std::uint32_t ready_before = 0;
        limit_freed_ = 0;
        {
            lock_entrypoint(ep);
            shm::LockHolder holder(c.lock);
            ready_before = c.ready_count.load(std::memory_order_relaxed);
            for (std::uint32_t slot : by_entrypoint[ep]) {
                std::atomic<std::uint64_t>& state = arena_.state_word(slot);
                const std::uint64_t word = state.load(std::memory_order_acquire);
                if (StateWord::state(word) != SlotState::picked || StateWord::owner(word) != owner_tag) continue;
                // Claim the lease so that a racing heartbeat fails.
                record(slot).lease_deadline_ns.store(0, std::memory_order_release);
                const RequeueResult result = requeue_locked(ep, slot, word, 0, acting_owner, to_release, reason);
                if (result == RequeueResult::requeued) {
                    ++requeued;
                    woke = true;
                    c.retired_counters[counter_retried].fetch_add(1, std::memory_order_relaxed);
                } else if (result == RequeueResult::dead) {
                    c.retired_counters[counter_failed].fetch_add(1, std::memory_order_relaxed);
                } else if (result == RequeueResult::canceled) { // a cancel was pending (cancelling.cpp)
                    c.retired_counters[counter_canceled].fetch_add(1, std::memory_order_relaxed);
                }
            }
        }
        shm::crash_point("reap.participant");
        const std::uint32_t freed = std::exchange(limit_freed_, 0);
        const std::uint32_t ready_now = c.ready_count.load(std::memory_order_relaxed);
        if (woke && ready_now > ready_before) wake_sleepers(ep, ready_now - ready_before);
        wake_for_freed_limit(ep, freed); // its concurrency-limit slots are free again
    }
    settle_if_wanted(); // jobs that ended dead or canceled: their dependents end canceled first
    return_to_arena(to_release, acting_owner);
    return requeued;
}

bool QueueState::reap_participant(std::uint32_t index) noexcept {
    // Runs as the repair step of the dead participant's life lock, which the
    // caller now holds.
    try {
        ParticipantEntry& entry = participant_entries_[index];
        const std::uint32_t tag = index + 1;
        // Memory jobs a settle cancels on its behalf are reserved by it and
        // freed below (we may not be registered ourselves).
        const std::uint32_t owner_before = std::exchange(settle_owner_, tag);
        try {
            jobs_requeued_by_reaping_ += requeue_holdings(tag, tag);
        } catch (...) {
            settle_owner_ = owner_before;
            throw;
        }
        // It may have died between finishing a job others wait for and the
        // settle (or half-way through one): settle from the state words,
        // before its reserved slots (finished memory jobs) are freed.
        if (dependencies_->waiting_total.load(std::memory_order_relaxed) != 0) settle_dependencies();
        settle_owner_ = owner_before;
        // Counted picks it acked without the lock and had not given back
        // (limits.cpp, I1 b): given back before their slots are freed.
        apply_released_of(tag);
        shm::crash_point("reap.released_applied");
        if (arena_.release_all_reserved_by(tag) > 0) notify_space();
        // It may have died holding an entrypoint lock after publishing a job
        // that no sleeper was told about: taking each lock runs its repair;
        // then wake sleepers for whatever is ready. Its waking words first:
        // enqueues stop counting on it, and its index may be reused.
        drop_waking_of(index);
        for (EntrypointId ep = 0; ep < entrypoint_count(); ++ep) {
            EntrypointControl& c = entrypoints_[ep];
            if (c.declared.load(std::memory_order_acquire) == 0) continue;
            lock_entrypoint(ep);
            const std::uint32_t ready = c.ready_count.load(std::memory_order_relaxed);
            c.lock.unlock();
            if (ready) wake_sleepers(ep, ready);
        }
        for (EntrypointId ep = 0; ep <= max_entrypoints_; ++ep) // the last row: space waiters
            sleeper_words(ep)[index / 64].fetch_and(~(std::uint64_t(1) << (index % 64)), std::memory_order_relaxed);
        for (EntrypointId ep = 0; ep < max_entrypoints_; ++ep)
            for (std::uint32_t k = 0; k < counter_kinds; ++k) {
                const std::uint64_t value = counters(index, ep)[k].exchange(0, std::memory_order_relaxed);
                if (value) entrypoints_[ep].retired_counters[k].fetch_add(value, std::memory_order_relaxed);
            }
        fold_latency(index);
        entry.wake_word.store(0, std::memory_order_relaxed);
        // A participant killed inside Queue::wait: uncount it (results.cpp).
        if (entry.completion_waiting.exchange(0, std::memory_order_acq_rel) != 0)
            core_->completion_waiters.fetch_sub(1, std::memory_order_seq_cst);
        entry.status.store(std::uint32_t(ParticipantStatus::free), std::memory_order_release);
        return true;
    } catch (...) {
        return false;
    }
}

std::size_t QueueState::sweep_participants() {
    std::size_t reaped = 0;
    for (std::uint32_t i = 0; i < max_participants_; ++i) {
        if (registered_ && i == my_index_) continue;
        ParticipantEntry& entry = participant_entries_[i];
        if (entry.status.load(std::memory_order_acquire) != std::uint32_t(ParticipantStatus::active)) continue;
        bool was_dead = false;
        bool locked = false;
        try {
            locked = entry.life_lock.try_lock([this, i, &was_dead]() noexcept {
                was_dead = true;
                return reap_participant(i);
            });
        } catch (const Error&) {
            continue; // repair failed: the next sweep retries
        }
        if (!locked) continue;
        entry.life_lock.unlock();
        if (was_dead) ++reaped;
    }
    return reaped;
}

std::size_t QueueState::reap_expired_leases(EntrypointId ep, std::int64_t now_mono) {
    EntrypointControl& c = entrypoints_[ep];
    const std::int64_t lease = c.lease_ns.load(std::memory_order_relaxed);
    const std::uint64_t generation_before = c.pick_generation.load(std::memory_order_acquire);
    std::vector<std::uint32_t> expired;
    std::int64_t earliest = no_deadline;
    const std::uint32_t n = arena_.slot_count();
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
        if (StateWord::state(word) != SlotState::picked) continue;
        const JobRecord& rec = record(slot);
        if (rec.entrypoint != ep) continue;
        const std::int64_t deadline = rec.lease_deadline_ns.load(std::memory_order_acquire);
        if (deadline <= now_mono) expired.push_back(slot);
        else earliest = std::min(earliest, deadline);
    }
    std::vector<std::uint32_t> to_release;
    std::size_t requeued = 0;
    std::uint32_t ready_before = 0, ready_after = 0;
    const std::string expired_reason = expired.empty() ? std::string()
        : "lease of " + std::to_string(lease / 1'000'000) + " ms expired without a heartbeat";
    limit_freed_ = 0;
    {
        lock_entrypoint(ep);
        shm::LockHolder holder(c.lock);
        ready_before = c.ready_count.load(std::memory_order_relaxed);
        for (std::uint32_t slot : expired) {
            JobRecord& rec = record(slot);
            std::int64_t deadline = rec.lease_deadline_ns.load(std::memory_order_acquire);
            if (deadline > now_mono) { earliest = std::min(earliest, deadline); continue; }
            const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
            if (StateWord::state(word) != SlotState::picked || rec.entrypoint != ep) continue;
            // Claim: a heartbeat racing with us fails its CAS from here on.
            if (deadline != 0 && !rec.lease_deadline_ns.compare_exchange_strong(deadline, 0, std::memory_order_acq_rel)) {
                earliest = std::min(earliest, deadline);
                continue;
            }
            // An ack racing in memory durability CASes the same state word;
            // requeue_locked uses CAS too, so exactly one wins.
            const RequeueResult result = requeue_locked(ep, slot, word, 0, my_tag(), to_release, expired_reason);
            if (result == RequeueResult::requeued) {
                ++requeued;
                c.retired_counters[counter_retried].fetch_add(1, std::memory_order_relaxed);
            } else if (result == RequeueResult::dead) {
                c.retired_counters[counter_failed].fetch_add(1, std::memory_order_relaxed);
            } else if (result == RequeueResult::canceled) { // a cancel was pending (cancelling.cpp)
                c.retired_counters[counter_canceled].fetch_add(1, std::memory_order_relaxed);
            }
        }
        // Picks made while we scanned have deadlines of at least scan time +
        // lease; if there were none, the scan's minimum is exact (and may be
        // "no deadline", so an idle queue schedules no wake-up at all).
        if (c.pick_generation.load(std::memory_order_relaxed) != generation_before) earliest = std::min(earliest, lease_deadline(now_mono, lease));
        const std::int64_t current = c.earliest_lease_ns.load(std::memory_order_relaxed);
        c.earliest_lease_ns.store(current > now_mono ? std::min(current, earliest) : earliest,
                                  std::memory_order_relaxed);
        ready_after = c.ready_count.load(std::memory_order_relaxed);
    }
    const std::uint32_t freed = std::exchange(limit_freed_, 0);
    settle_if_wanted(); // jobs that ended dead: their dependents end canceled
    if (!to_release.empty()) release_slots(to_release, my_tag());
    if (ready_after > ready_before) wake_sleepers(ep, ready_after - ready_before);
    wake_for_freed_limit(ep, freed);
    return requeued;
}

void QueueState::wake_everyone() noexcept {
    for (std::uint32_t i = 0; i < max_participants_; ++i) {
        auto& word = participant_entries_[i].wake_word;
        if (word.load(std::memory_order_seq_cst) == 0) continue;
        word.store(0, std::memory_order_release);
        shm::futex_wake(word, 1);
    }
}

std::size_t QueueState::reap() {
    check_usable();
    // Registration may claim (and reap) a dead participant's entry: count it.
    const std::size_t reaped_before = jobs_requeued_by_reaping_;
    ensure_registered();
    sweep_participants();
    std::size_t requeued = jobs_requeued_by_reaping_ - reaped_before;
    const std::int64_t now = shm::monotonic_ns();
    for (EntrypointId ep = 0; ep < entrypoint_count(); ++ep)
        if (entrypoints_[ep].earliest_lease_ns.load(std::memory_order_relaxed) <= now)
            requeued += reap_expired_leases(ep, now);
    recycle_kept_results(0); // results past their retention (docs/results.md)
    return requeued;
}

} // namespace currant::detail
