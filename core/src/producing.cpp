// Enqueue (copy and reserve/commit) and waking sleepers.
#include <algorithm>
#include <cstring>

#include "currant/shm/clock.hpp"
#include "currant/shm/crash_point.hpp"
#include "currant/shm/futex.hpp"
#include "queue_state.hpp"

namespace currant::detail {

using shm::SlotState;
using shm::StateWord;

JobId QueueState::next_job_id() noexcept {
    if (id_next_ == id_end_) {
        // Blocks of 256 ids per participant: one shared RMW per 256 jobs.
        id_next_ = segment_.header().next_job_counter.fetch_add(256, std::memory_order_relaxed);
        id_end_ = id_next_ + 256;
    }
    return (std::uint64_t(host_id_) << 48) | (id_next_++ & ((std::uint64_t(1) << 48) - 1));
}

std::uint32_t QueueState::take_slot(std::int64_t arena_wait_ns) {
    if (slot_cache_.empty()) {
        slot_cache_.resize(cache_refill_);
        std::uint32_t got = arena_.reserve(my_tag(), slot_cache_);
        if (got == 0) {
            // Dead processes may be holding slots: reap them, then try once more.
            sweep_participants();
            got = arena_.reserve(my_tag(), slot_cache_);
        }
        // Kept results (results.cpp) give way: past their retention first,
        // then the oldest. A block per scan, so the scan is rare.
        if (got == 0 && recycle_kept_results(std::max<std::size_t>(cache_refill_, arena_.slot_count() / 64)) > 0)
            got = arena_.reserve(my_tag(), slot_cache_);
        const std::int64_t deadline = arena_wait_ns > 0 ? shm::monotonic_ns() + arena_wait_ns : 0;
        while (got == 0 && arena_wait_ns > 0 && wait_for_space(deadline))
            got = arena_.reserve(my_tag(), slot_cache_);
        slot_cache_.resize(got);
        if (got == 0)
            throw Error(Errc::arena_full, "queue '" + segment_.name() + "': arena full (no free slot among " +
                                              std::to_string(arena_.slot_count()) +
                                              "; they hold queued, picked or unmirrored jobs, or sit in other "
                                              "producers' slot caches); consumers are behind or the queue "
                                              "needs more slots");
    }
    const std::uint32_t slot = slot_cache_.back();
    slot_cache_.pop_back();
    return slot;
}

bool QueueState::wait_for_space(std::int64_t deadline_mono) {
    // Returns false once the deadline has passed. Blocks in the kernel on
    // the space futex; a releaser that sees our bit wakes us.
    const std::int64_t left = deadline_mono - shm::monotonic_ns();
    if (left <= 0) return false;
    std::atomic<std::uint64_t>& word = sleeper_words(max_entrypoints_)[my_index_ / 64];
    const std::uint64_t bit = std::uint64_t(1) << (my_index_ % 64);
    const std::uint32_t signal = core_->space_signal.load(std::memory_order_acquire);
    word.fetch_or(bit, std::memory_order_seq_cst);
    if (arena_.free_count_hint() == 0) shm::futex_wait(core_->space_signal, signal, left);
    word.fetch_and(~bit, std::memory_order_relaxed);
    return true;
}

void QueueState::notify_space() noexcept {
    // Pairs with wait_for_space: the free count was raised under the arena
    // lock before this fence; a waiter set its bit before reading the count.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    std::atomic<std::uint64_t>* words = sleeper_words(max_entrypoints_);
    for (std::uint32_t w = 0; w < core_->sleeper_words; ++w) {
        if (words[w].load(std::memory_order_relaxed) == 0) continue;
        core_->space_signal.fetch_add(1, std::memory_order_release);
        shm::futex_wake(core_->space_signal, INT32_MAX);
        return;
    }
}

void QueueState::return_to_arena(std::span<const std::uint32_t> slots, std::uint32_t owner) noexcept {
    if (slots.empty()) return;
    try {
        arena_.release(owner, slots);
    } catch (...) {
        // Left reserved by owner: freed when owner closes or is reaped.
    }
    notify_space();
}

void QueueState::give_back_slot(std::uint32_t slot) noexcept {
    slot_cache_.push_back(slot);
    if (slot_cache_.size() > 2 * cache_refill_) {
        const std::size_t keep = cache_refill_;
        return_to_arena(std::span<const std::uint32_t>(slot_cache_).subspan(keep), my_tag());
        slot_cache_.resize(keep);
    }
}

void QueueState::release_slots(std::span<const std::uint32_t> slots, std::uint32_t owner) noexcept {
    return_to_arena(slots, owner);
}

void QueueState::wake_sleepers(EntrypointId ep, std::uint32_t count, bool hand_waking) noexcept {
    // Pairs with the seq_cst fetch_or of a consumer's sleeper bit followed by
    // its seq_cst load of ready_count: either we see its bit, or it sees our
    // job (the ready_count store happened before this fence).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    wake_sleepers_after_fence(ep, count, hand_waking);
}

// Waking consumers (docs/architecture.md). The waking word of ep names a
// consumer awake in dequeue that reads ep's ready_count again (seq_cst, after
// it releases the word with a seq_cst CAS) before it sleeps or returns, and
// that wakes the next sleeper if jobs are still ready when it leaves. An
// enqueue that published its job (ready_count store, then the fence below)
// and still reads that consumer's index in the word (seq_cst) precedes the
// release in the single total order, so the holder's later read sees the
// job: no wake-up is needed and none is lost. A holder SIGKILLed before its
// release: its life lock's word carries FUTEX_OWNER_DIED (set by the kernel
// at its death), so the next enqueue sees it dead, clears the word and
// wakes as before; jobs already queued whose wake was skipped are found by
// the sleepers, whose futex_waitv watches every participant's life lock (a
// death wakes one, which reaps the dead and scans). The reaper clears the
// word (drop_waking_of) before the index can be reused.
void QueueState::wake_for_ready(EntrypointId ep, std::uint32_t count) noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst); // as in wake_sleepers
    std::atomic<std::uint64_t>& waking = waking_word(ep);
    const std::uint64_t holder = waking.load(std::memory_order_seq_cst);
    if (holder != 0) {
        const std::uint64_t index = holder - 1;
        if (index < max_participants_ && !(registered_ && index == my_index_)) {
            // Read-only liveness test: a live holder's life lock word is its
            // TID; FUTEX_OWNER_DIED (0x40000000) once the kernel saw it die,
            // 0 once it left. Anything but a live owner: wake as before.
            const std::uint32_t life = participant_entries_[index].life_lock.futex_word().load(std::memory_order_relaxed);
            if (life != 0 && (life & 0x40000000u) == 0) return; // it will look again, and pass on what it leaves
        }
        std::uint64_t expected = holder;
        waking.compare_exchange_strong(expected, 0, std::memory_order_seq_cst);
    }
    wake_sleepers_after_fence(ep, count, true);
}

void QueueState::claim_waking(std::span<const EntrypointId> eps) noexcept {
    if (!registered_) return;
    for (EntrypointId ep : eps) {
        std::atomic<std::uint64_t>& waking = waking_word(ep);
        std::uint64_t expected = 0;
        // A plain read first: a held word stays shared in the readers' caches.
        if (waking.load(std::memory_order_relaxed) == 0)
            waking.compare_exchange_strong(expected, std::uint64_t(my_index_) + 1, std::memory_order_seq_cst);
    }
}

void QueueState::release_waking(std::span<const EntrypointId> eps) noexcept {
    if (!registered_) return;
    for (EntrypointId ep : eps) {
        // seq_cst even when it fails (another holder now): the caller's next
        // seq_cst read of ready_count must follow every enqueue that skipped
        // its wake because it saw us (see wake_for_ready).
        std::uint64_t expected = std::uint64_t(my_index_) + 1;
        waking_word(ep).compare_exchange_strong(expected, 0, std::memory_order_seq_cst);
    }
}

void QueueState::pass_on_ready(std::span<const EntrypointId> eps) noexcept {
    release_waking(eps);
    const std::int64_t now_mono = shm::monotonic_ns();
    for (EntrypointId ep : eps) {
        const EntrypointControl& c = entrypoints_[ep];
        if (c.ready_count.load(std::memory_order_seq_cst) == 0) continue;
        // Paused or at a limit: resume() and freed slots wake (limits.cpp).
        if (blocked_by_limits(ep, now_mono)) continue;
        wake_for_ready(ep, 1);
    }
}

void QueueState::drop_waking_of(std::uint32_t index) noexcept {
    for (EntrypointId ep = 0; ep < max_entrypoints_; ++ep) {
        std::uint64_t expected = std::uint64_t(index) + 1;
        waking_word(ep).compare_exchange_strong(expected, 0, std::memory_order_seq_cst);
    }
}

void QueueState::wake_sleepers_after_fence(EntrypointId ep, std::uint32_t count, bool hand_waking) noexcept {
    std::atomic<std::uint64_t>* words = sleeper_words(ep);
    const std::uint32_t word_count = core_->sleeper_words;
    for (std::uint32_t w = 0; w < word_count && count > 0; ++w) {
        std::uint64_t bits = words[w].load(std::memory_order_relaxed);
        while (bits != 0 && count > 0) {
            const unsigned bit = unsigned(__builtin_ctzll(bits));
            const std::uint64_t mask = std::uint64_t(1) << bit;
            bits &= ~mask;
            // Whoever clears the bit owns the wake-up of that sleeper.
            if ((words[w].fetch_and(~mask, std::memory_order_acq_rel) & mask) == 0) continue;
            const std::uint32_t index = w * 64 + bit;
            if (index >= max_participants_) continue;
            // A sleeper killed in its sleep must not swallow the wake-up: its
            // life lock is busy only while it lives (EBUSY costs no system call).
            ParticipantEntry& entry = participant_entries_[index];
            if (registered_ && index == my_index_) continue;
            try {
                if (entry.life_lock.try_lock([this, index]() noexcept { return reap_participant(index); })) {
                    entry.life_lock.unlock(); // it was dead (now reaped) or just left
                    continue;
                }
            } catch (...) {
                continue;
            }
            // Before the wake: the woken consumer holds the waking word from
            // now on (it releases it before it sleeps again or returns).
            if (hand_waking) waking_word(ep).store(std::uint64_t(index) + 1, std::memory_order_seq_cst);
            auto& word = entry.wake_word;
            word.store(0, std::memory_order_release);
            shm::futex_wake(word, 1);
            --count;
        }
    }
}

namespace {
void validate_enqueue_options(const EnqueueOptions& options) {
    if (options.execute_after_ns < 0) throw Error(Errc::invalid_argument, "execute_after must not be negative");
    if (options.log_wait.count() < 0 || options.sync_wait.count() < 0 || options.arena_wait.count() < 0)
        throw Error(Errc::invalid_argument, "wait times must not be negative");
}
} // namespace

Reservation QueueState::reserve(EntrypointId ep) {
    check_usable();
    check_entrypoint(ep);
    ensure_registered();
    const std::uint32_t slot = take_slot();
    Reservation reservation;
    reservation.slot = slot;
    reservation.epoch = StateWord::epoch(arena_.state_word(slot).load(std::memory_order_relaxed));
    reservation.entrypoint = ep;
    reservation.id = next_job_id();
    reservation.payload = std::span<std::byte>(arena_.payload(slot), arena_.payload_bytes());
    return reservation;
}

void QueueState::abandon(Reservation& reservation) noexcept {
    if (reservation.payload.data() == nullptr || !registered_) return;
    const std::uint64_t word = arena_.state_word(reservation.slot).load(std::memory_order_relaxed);
    if (StateWord::state(word) == SlotState::reserved && StateWord::owner(word) == my_tag() &&
        StateWord::epoch(word) == reservation.epoch)
        give_back_slot(reservation.slot);
    reservation.payload = {};
}

void QueueState::prepare_record(std::uint32_t slot, EntrypointId ep, JobId id, std::size_t size,
                                const EnqueueOptions& options, std::int64_t now_real) noexcept {
    // The slot is reserved by us: nobody else reads or writes it.
    JobRecord& rec = record(slot);
    rec.job_id = id;
    rec.execute_after_ns = options.execute_after_ns;
    rec.enqueued_at_ns = now_real;
    rec.lease_deadline_ns.store(0, std::memory_order_relaxed);
    rec.entrypoint = ep;
    rec.priority = options.priority;
    rec.payload_size = std::uint32_t(size);
    rec.attempts = 0;
    rec.max_attempts = options.max_attempts ? options.max_attempts
                                            : entrypoints_[ep].max_attempts.load(std::memory_order_relaxed);
    rec.mirror_dirty.store(0, std::memory_order_relaxed);
    rec.lane_position = rec.lane_ring = rec.heap_position = shm::no_slot;
    // Dependencies (dependencies.cpp): the previous job's pending edges were
    // resolved before its slot was freed; a linker's late decrement saturates.
    rec.dependents.store(0, std::memory_order_relaxed);
    id_hints_[id & (id_hint_capacity - 1)] = slot + 1; // process-local (0: none)
}

std::size_t QueueState::publish(EntrypointId ep, std::span<const std::uint32_t> slots, const EnqueueOptions& options,
                                std::int64_t now_real, std::uint64_t& last_sequence) {
    // Moves reserved slots (records prepared) to queued under one lock.
    // Returns how many were published, in order; the rest stay reserved.
    EntrypointControl& c = entrypoints_[ep];
    const Durability durability = Durability(c.durability.load(std::memory_order_relaxed));
    std::int64_t log_deadline = 0; // read the clock only if we ever have to wait
    std::size_t published = 0;
    std::uint32_t became_ready = 0;
    bool new_earliest = false;
    for (;;) {
        if (options.dedupe_key) [[unlikely]] touch_dedupe_home(ep, slots.empty() ? shm::no_slot : slots[0]); // dedupe.cpp
        lock_entrypoint(ep);
        shm::LockHolder holder(c.lock);
        std::uint64_t log_room = ~std::uint64_t(0);
        if (durability != Durability::memory) {
            // Enqueues may fill a third of the log: each queued job leaves
            // room for its pick and its end, which never wait for space (a
            // full log sends them down the mirror's slower dirty path).
            const std::uint64_t pending = c.log_written - c.log_committed.load(std::memory_order_acquire);
            const std::uint64_t enqueue_limit = std::max<std::uint64_t>(1, log_capacity_ / 3);
            log_room = pending >= enqueue_limit ? 0 : enqueue_limit - pending;
            if (log_room == 0) {
                // Enqueue is the one transition that waits for log space.
                const std::uint32_t signal = c.commit_signal.load(std::memory_order_acquire);
                holder.release();
                if (log_deadline == 0)
                    log_deadline = shm::monotonic_ns() + std::int64_t(options.log_wait.count()) * 1'000'000;
                const std::int64_t left = log_deadline - shm::monotonic_ns();
                if (left <= 0)
                    throw Error(Errc::log_full, describe(ep) + ": transition log full (" +
                                                    std::to_string(pending) + " of " +
                                                    std::to_string(log_capacity_) +
                                                    " records not yet mirrored; enqueues leave two thirds "
                                                    "for picks and completions); is currantd running?");
                shm::futex_wait(c.commit_signal, signal, std::min<std::int64_t>(left, 100'000'000));
                continue;
            }
        }
        const std::int64_t earliest_before = c.earliest_delayed_ns.load(std::memory_order_relaxed);
        for (; published < slots.size() && published < log_room; ++published) {
            const std::uint32_t slot = slots[published];
            JobRecord& rec = record(slot);
            if (rec.execute_after_ns <= now_real && c.lane_count == max_priority_lanes &&
                !lane_for(c, rec.priority, false)) {
                if (published == 0)
                    throw Error(Errc::priority_lanes_full,
                                describe(ep) + ": " + std::to_string(max_priority_lanes) +
                                    " distinct priorities are queued already; use fewer priority values");
                break;
            }
            std::atomic<std::uint64_t>& state = arena_.state_word(slot);
            const std::uint64_t word = state.load(std::memory_order_relaxed);
            const std::uint64_t new_word = StateWord::next(word, SlotState::queued, 0);
            begin_intent(c, slot, word, new_word);
            shm::crash_point("enqueue.locked");
            if (options.dedupe_key) [[unlikely]] { // a batch of one (begin_dedupe); dedupe.cpp
                if (const JobId holder = dedupe_claim(ep, slot)) {
                    c.intent.active = 0;
                    duplicate_of_ = holder;
                    break;
                }
                shm::crash_point("dedupe.indexed");
            }
            rec.sequence = c.next_sequence++;
            const bool ready = place_queued(ep, slot, now_real);
            shm::crash_point("enqueue.linked");
            state.store(new_word, std::memory_order_release);
            shm::crash_point("enqueue.published");
            if (durability != Durability::memory) append_log(ep, slot, new_word);
            if (ready) ++became_ready;
            c.intent.active = 0;
        }
        if (became_ready)
            c.ready_count.store(c.ready_count.load(std::memory_order_relaxed) + became_ready,
                                std::memory_order_release);
        new_earliest = c.earliest_delayed_ns.load(std::memory_order_relaxed) < earliest_before;
        last_sequence = c.log_written;
        break;
    }
    count(ep, counter_enqueued, published);
    // One sleeper per ready job; a new earliest delayed job wakes one so it
    // re-computes its sleep deadline.
    // No sleeper is woken for ready jobs while a live consumer is awake and
    // will look again (wake_for_ready).
    if (became_ready) wake_for_ready(ep, became_ready);
    else if (new_earliest) wake_sleepers(ep, 1);
    return published;
}

void QueueState::wait_for_mirror(EntrypointId ep, std::uint64_t sequence, JobId id, const EnqueueOptions& options) {
    EntrypointControl& c = entrypoints_[ep];
    const std::int64_t deadline = shm::monotonic_ns() + std::int64_t(options.sync_wait.count()) * 1'000'000;
    while (c.log_committed.load(std::memory_order_acquire) < sequence) {
        const std::uint32_t signal = c.commit_signal.load(std::memory_order_acquire);
        if (c.log_committed.load(std::memory_order_acquire) >= sequence) break;
        // Group commit: the mirror takes every waiting enqueue in one
        // transaction; a request made while it is busy makes it go again
        // right after, instead of after its flush interval.
        ask_mirror_to_commit();
        const std::int64_t left = deadline - shm::monotonic_ns();
        if (left <= 0)
            throw Error(Errc::timed_out, describe(ep) + ": job " + std::to_string(id) +
                                             " is queued but not yet committed by the mirror; it stays queued, "
                                             "do not resubmit it");
        shm::futex_wait(c.commit_signal, signal, left);
    }
}

JobId QueueState::commit(Reservation& reservation, std::size_t size, const EnqueueOptions& options) {
    check_usable();
    validate_enqueue_options(options);
    if (reservation.payload.data() == nullptr || !registered_ || reservation.slot >= arena_.slot_count())
        throw Error(Errc::invalid_argument, "queue '" + segment_.name() + "': reservation is empty or already used");
    const EntrypointId ep = reservation.entrypoint;
    check_entrypoint(ep);
    begin_dedupe(ep, options, 1);
    if (size > arena_.payload_bytes())
        throw Error(Errc::payload_too_large, describe(ep) + ": payload of " + std::to_string(size) +
                                                 " bytes exceeds the slot capacity of " +
                                                 std::to_string(arena_.payload_bytes()) + " bytes");
    const std::uint32_t slot = reservation.slot;
    const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_relaxed);
    if (StateWord::state(word) != SlotState::reserved || StateWord::owner(word) != my_tag() ||
        StateWord::epoch(word) != reservation.epoch)
        throw Error(Errc::stale_handle, describe(ep) + ": reservation is no longer held");
    const std::int64_t now_real = shm::realtime_ns();
    prepare_record(slot, ep, reservation.id, size, options, now_real);
    if (options.dedupe_key) write_dedupe_key(slot, reservation.id, *options.dedupe_key, dedupe_key_hash_);
    std::uint64_t sequence = 0;
    if (!options.depends_on.empty()) [[unlikely]] {
        validate_dependencies(options);
        publish_dependent(ep, slot, options, now_real, sequence); // a throw leaves the reservation held
    } else {
        publish(ep, {&slot, 1}, options, now_real, sequence);
    }
    reservation.payload = {};
    if (duplicate_of_) {
        give_back_slot(slot);
        return resolve_duplicate(ep, options);
    }
    if (Durability(entrypoints_[ep].durability.load(std::memory_order_relaxed)) == Durability::sync)
        wait_for_mirror(ep, sequence, reservation.id, options);
    return reservation.id;
}

JobId QueueState::enqueue(EntrypointId ep, std::span<const std::byte> payload, const EnqueueOptions& options) {
    // A job that does not fit takes the batch path (which words every
    // error). The common job, keyed or not, with dependencies or not, takes
    // the batch's steps for one slot, without its chunk loop: the
    // single-call enqueue is what the two-process throughput waits for
    // (BENCHMARKS.md, "Lane rings" and "Dedupe keys"). A job with
    // dependencies is published by publish_dependent (the batch's per-job
    // path for them, enqueue_dependents, does the same for one job with more
    // overhead).
    if (payload.size() > arena_.payload_bytes()) [[unlikely]] {
        JobId id = 0;
        enqueue_batch(ep, {&payload, 1}, {&id, 1}, options);
        return id;
    }
    check_usable();
    check_entrypoint(ep);
    validate_enqueue_options(options);
    const bool dependent = !options.depends_on.empty();
    if (dependent) [[unlikely]] validate_dependencies(options);
    const bool keyed = options.dedupe_key.has_value();
    if (keyed) {
        begin_dedupe(ep, options, 1); // validates the key, hashes it, resets the outcome
    } else {
        last_enqueue_skipped_ = false; // what begin_dedupe resets for a keyless enqueue
        duplicate_of_ = 0;
    }
    ensure_registered();
    const std::int64_t now_real = shm::realtime_ns();
    std::uint32_t slot = 0;
    try {
        slot = take_slot(std::int64_t(options.arena_wait.count()) * 1'000'000);
    } catch (const Error&) {
        // A full arena still answers a duplicate (dedupe.cpp).
        if (keyed && find_holder(ep, *options.dedupe_key)) return resolve_duplicate(ep, options);
        throw;
    }
    if (keyed) note_previous_key(slot); // a miss that overlaps with the record's (dedupe.cpp)
    // Reserved by us: a crash from here until publish's store leaves it
    // reserved, and our reaper frees it (as in enqueue_batch).
    if (!payload.empty()) std::memcpy(arena_.payload(slot), payload.data(), payload.size());
    const JobId id = next_job_id();
    prepare_record(slot, ep, id, payload.size(), options, now_real);
    if (keyed) write_dedupe_key(slot, id, *options.dedupe_key, dedupe_key_hash_);
    std::uint64_t sequence = 0;
    try {
        // One slot: published (queued, waiting or canceled), its key found
        // held, or a throw.
        if (dependent) [[unlikely]] publish_dependent(ep, slot, options, now_real, sequence);
        else publish(ep, {&slot, 1}, options, now_real, sequence);
    } catch (const Error&) {
        give_back_slot(slot);
        // A full log still answers a duplicate (dedupe.cpp).
        if (keyed && find_holder(ep, *options.dedupe_key)) return resolve_duplicate(ep, options);
        throw;
    }
    if (duplicate_of_) [[unlikely]] { // the key is held (dedupe.cpp): the slot goes back unused
        give_back_slot(slot);
        return resolve_duplicate(ep, options);
    }
    if (Durability(entrypoints_[ep].durability.load(std::memory_order_relaxed)) == Durability::sync)
        wait_for_mirror(ep, sequence, id, options);
    return id;
}

std::size_t QueueState::enqueue_batch(EntrypointId ep, std::span<const std::span<const std::byte>> payloads,
                                      std::span<JobId> ids, const EnqueueOptions& options) {
    check_usable();
    check_entrypoint(ep);
    validate_enqueue_options(options);
    begin_dedupe(ep, options, payloads.size());
    if (ids.size() < payloads.size())
        throw Error(Errc::invalid_argument, "queue '" + segment_.name() + "': ids_out is smaller than the batch");
    for (std::size_t i = 0; i < payloads.size(); ++i)
        if (payloads[i].size() > arena_.payload_bytes())
            throw Error(Errc::payload_too_large,
                        describe(ep) + ": payload " + (payloads.size() > 1 ? "#" + std::to_string(i) + " " : "") +
                            "of " + std::to_string(payloads[i].size()) + " bytes exceeds the slot capacity of " +
                            std::to_string(arena_.payload_bytes()) + " bytes (set --payload-bytes at init)");
    if (!options.depends_on.empty()) [[unlikely]] validate_dependencies(options);
    if (payloads.empty()) return 0;
    ensure_registered();
    const std::int64_t now_real = shm::realtime_ns();
    if (!options.depends_on.empty()) [[unlikely]] return enqueue_dependents(ep, payloads, ids, options, now_real);
    std::size_t done = 0;
    std::uint32_t slots[64];
    while (done < payloads.size()) {
        const std::size_t chunk = std::min<std::size_t>(64, payloads.size() - done);
        std::size_t taken = 0;
        try {
            const std::int64_t arena_wait_ns = std::int64_t(options.arena_wait.count()) * 1'000'000;
            for (; taken < chunk; ++taken) slots[taken] = take_slot(taken == 0 && done == 0 ? arena_wait_ns : 0);
        } catch (const Error&) {
            if (done + taken == 0) {
                // A full arena still answers a duplicate (dedupe.cpp).
                if (options.dedupe_key && find_holder(ep, *options.dedupe_key)) {
                    ids[0] = resolve_duplicate(ep, options);
                    return 1;
                }
                throw;
            }
        }
        for (std::size_t i = 0; i < taken; ++i) {
            const auto& payload = payloads[done + i];
            if (!payload.empty()) std::memcpy(arena_.payload(slots[i]), payload.data(), payload.size());
            ids[done + i] = next_job_id();
            prepare_record(slots[i], ep, ids[done + i], payload.size(), options, now_real);
            if (options.dedupe_key)
                write_dedupe_key(slots[i], ids[done + i], *options.dedupe_key, dedupe_key_hash_);
        }
        std::uint64_t sequence = 0;
        std::size_t published = 0;
        try {
            published = publish(ep, {slots, taken}, options, now_real, sequence);
        } catch (const Error&) {
            for (std::size_t i = 0; i < taken; ++i) give_back_slot(slots[i]);
            if (done == 0) {
                // A full log still answers a duplicate (dedupe.cpp).
                if (options.dedupe_key && find_holder(ep, *options.dedupe_key)) {
                    ids[0] = resolve_duplicate(ep, options);
                    return 1;
                }
                throw;
            }
            return done;
        }
        for (std::size_t i = published; i < taken; ++i) give_back_slot(slots[i]);
        if (duplicate_of_) { // a keyed batch of one whose key is held (dedupe.cpp)
            ids[done] = resolve_duplicate(ep, options);
            return 1;
        }
        if (published && Durability(entrypoints_[ep].durability.load(std::memory_order_relaxed)) == Durability::sync)
            wait_for_mirror(ep, sequence, ids[done + published - 1], options);
        done += published;
        if (published < chunk) break; // arena or log ran out
    }
    return done;
}

} // namespace currant::detail
