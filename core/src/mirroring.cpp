// The change feed as the mirror (currantd) sees it: reading and committing
// the transition logs, waiting for them, the dirty-slot scan for
// transitions a full log could not take, and restoring jobs under their own
// ids (rebuild, remote claims).
#include <algorithm>
#include <cstring>

#include "currant/shm/clock.hpp"
#include "currant/shm/crash_point.hpp"
#include "currant/shm/futex.hpp"
#include "queue_state.hpp"

namespace currant::detail {

using shm::SlotState;
using shm::StateWord;

namespace {
bool is_final(JobStatus status) noexcept {
    return status == JobStatus::successful || status == JobStatus::exception || status == JobStatus::canceled;
}
} // namespace

std::size_t QueueState::read_feed(EntrypointId ep, std::uint64_t from, std::span<Transition> out) const {
    segment_.check_not_retired();
    check_entrypoint(ep);
    const EntrypointControl& c = entrypoints_[ep];
    const std::uint64_t head = c.log_head.load(std::memory_order_acquire);
    const std::uint64_t committed = c.log_committed.load(std::memory_order_acquire);
    if (from == 0) from = 1;
    if (from <= committed) from = committed + 1; // records at or below the cursor may be overwritten
    std::size_t produced = 0;
    for (std::uint64_t sequence = from; sequence <= head && produced < out.size(); ++sequence) {
        const TransitionRecord& entry = log(ep)[(sequence - 1) % log_capacity_];
        Transition& t = out[produced++];
        t.sequence = entry.sequence;
        t.id = entry.job_id;
        t.slot = entry.slot;
        t.status = JobStatus(entry.status);
        t.attempts = entry.attempts;
        t.epoch = entry.epoch;
        t.at_ns = entry.at_ns;
        t.purged = (entry.flags & transition_purge) != 0;
    }
    return produced;
}

void QueueState::recycle_finished(EntrypointId ep, std::uint32_t slot, std::uint64_t epoch, JobStatus status,
                                  std::vector<std::uint32_t>& to_release) noexcept {
    // The state word CAS (final state, same epoch) -> reserved(us) makes this
    // idempotent and safe against a concurrent committer. A process dying
    // after the CAS leaves the slot reserved by it: its reaper frees it.
    if (slot >= arena_.slot_count()) return;
    std::atomic<std::uint64_t>& state = arena_.state_word(slot);
    std::uint64_t word = state.load(std::memory_order_acquire);
    if (StateWord::epoch(word) != epoch || status_of(word) != status) return;
    JobRecord& rec = record(slot);
    // A kept job: a death (kept until requeued or purged, outcomes.cpp) or a
    // successful or canceled job kept for its result retention (results.cpp).
    // Its dead mark names this epoch; the mirror moves it kept ->
    // kept_mirrored by CAS, which a purge or eviction races on under [E]. A
    // job so marked stays in its slot: only its dirty mark goes, cleared by
    // CAS from the value read while the word was still this state (a
    // requeue after it bumps the mark, so the CAS fails). A job not (or no
    // longer) kept is recycled below like any finished job.
    if (status == JobStatus::exception || rec.dead_mark.load(std::memory_order_acquire) >> 2 == epoch) {
        std::uint64_t mark = dead_mark(epoch, DeadMark::kept);
        if (rec.dead_mark.compare_exchange_strong(mark, dead_mark(epoch, DeadMark::kept_mirrored),
                                                  std::memory_order_acq_rel) ||
            mark == dead_mark(epoch, DeadMark::kept_mirrored)) {
            std::uint32_t dirty = rec.mirror_dirty.load(std::memory_order_acquire);
            if (dirty != 0 && state.load(std::memory_order_acquire) == word &&
                rec.mirror_dirty.compare_exchange_strong(dirty, 0, std::memory_order_acq_rel))
                entrypoints_[ep].dirty_slots.fetch_sub(1, std::memory_order_relaxed);
            return;
        }
    }
    // A purged dead job (outcomes.cpp, purge_logged_locked) reads unknown
    // once freed, as a purge of a `memory` one does.
    const bool purged = status == JobStatus::exception &&
                        rec.dead_mark.load(std::memory_order_acquire) == dead_mark(epoch, DeadMark::purged);
    const JobId id = rec.job_id;
    const std::uint32_t last = std::uint32_t(purged ? JobStatus::unknown : status);
    const std::uint64_t replaced = set_last(rec, id, last);
    if (!state.compare_exchange_strong(word, StateWord::next(word, SlotState::reserved, my_tag()),
                                       std::memory_order_acq_rel)) {
        undo_last(rec, id, last, replaced); // a loser's claim: queue_state.hpp
        return;
    }
    commit_last(rec, id, last); // reserved by us until released
    if (rec.mirror_dirty.exchange(0, std::memory_order_acq_rel) != 0)
        entrypoints_[ep].dirty_slots.fetch_sub(1, std::memory_order_relaxed);
    to_release.push_back(slot);
}

void QueueState::commit_feed(EntrypointId ep, std::uint64_t sequence, bool wake_waiters) {
    check_usable();
    check_entrypoint(ep);
    ensure_registered();
    EntrypointControl& c = entrypoints_[ep];
    const std::uint64_t head = c.log_head.load(std::memory_order_acquire);
    if (sequence > head)
        throw Error(Errc::invalid_argument, describe(ep) + ": cannot commit sequence " + std::to_string(sequence) +
                                                " beyond the log head " + std::to_string(head));
    std::uint64_t previous = c.log_committed.load(std::memory_order_acquire);
    if (sequence <= previous) return;
    // Recycle finished slots whose final transition is now committed.
    std::vector<std::uint32_t> to_release;
    for (std::uint64_t s = previous + 1; s <= sequence; ++s) {
        const TransitionRecord& entry = log(ep)[(s - 1) % log_capacity_];
        const JobStatus status = JobStatus(entry.status);
        if (is_final(status)) recycle_finished(ep, entry.slot, entry.epoch, status, to_release);
    }
    while (previous < sequence &&
           !c.log_committed.compare_exchange_weak(previous, sequence, std::memory_order_acq_rel)) {
    }
    return_to_arena(to_release, my_tag());
    if (wake_waiters) wake_feed_waiters(ep);
}

void QueueState::wake_feed_waiters(EntrypointId ep) noexcept {
    if (ep >= entrypoint_count()) return;
    // After the log_committed CAS (acq_rel) of the commit it announces: a
    // waiter loads commit_signal (acquire) before it re-checks
    // log_committed, so either it sees the new cursor or its futex_wait
    // finds the signal moved (or is woken by this wake).
    EntrypointControl& c = entrypoints_[ep];
    c.commit_signal.fetch_add(1, std::memory_order_release);
    shm::futex_wake(c.commit_signal, INT32_MAX);
}

std::uint64_t QueueState::feed_committed(EntrypointId ep) const {
    check_entrypoint(ep);
    return entrypoints_[ep].log_committed.load(std::memory_order_acquire);
}

bool QueueState::read_job(std::uint32_t slot, JobId id, JobSnapshot& out) const {
    segment_.check_not_retired();
    if (slot >= arena_.slot_count()) return false;
    const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
    const JobStatus status = status_of(word);
    const JobRecord& rec = record(slot);
    if (status == JobStatus::unknown || rec.job_id != id) return false;
    // Fixed while the job is live: id, entrypoint, priority, payload and its
    // size, enqueue time, max attempts. attempts and execute_after change
    // under [E] at retries: read without the lock they may be one
    // transition newer than the feed record, which the mirror writes next.
    if (rec.entrypoint >= entrypoint_count() || rec.payload_size > arena_.payload_bytes()) return false;
    out.id = id;
    out.slot = slot;
    out.epoch = StateWord::epoch(word);
    out.entrypoint = rec.entrypoint;
    out.status = status;
    out.priority = rec.priority;
    out.attempts = rec.attempts;
    out.max_attempts = rec.max_attempts;
    out.enqueued_at_ns = rec.enqueued_at_ns;
    out.execute_after_ns = rec.execute_after_ns;
    const std::byte* payload = arena_.payload(slot);
    out.payload.assign(payload, payload + rec.payload_size);
    out.dirty_mark = 0;
    // The dedupe key, fixed while the job lives; trusted only if the state
    // word did not move while we copied it (see DedupeKey).
    out.dedupe_key.reset();
    const DedupeKey& key = dedupe_keys_[slot];
    if (key.job_id == id && key.length >= 1 && key.length <= dedupe_key_bytes) {
        std::string text(key.bytes, key.length);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (arena_.state_word(slot).load(std::memory_order_relaxed) == word) out.dedupe_key = std::move(text);
    }
    // The last error (outcomes.cpp) of a job that died or was requeued with
    // one, and the reason of a job a dependency canceled (dependencies.cpp).
    out.error = status == JobStatus::exception || status == JobStatus::queued || status == JobStatus::canceled
                    ? read_error(slot, id, out.epoch)
                    : std::string();
    // The result (results.cpp) of a successful job, while its slot holds it.
    out.result = status == JobStatus::successful ? read_result(slot, id, out.epoch) : std::nullopt;
    out.kept_dead = is_kept_dead(slot, word);
    // A purge (outcomes.cpp, purge_logged_locked) moved the word one epoch
    // past the death it ends; the death's error, tagged with that epoch, is
    // still in the area, for the death's own row if the mirror has it in
    // the same batch (or only as a dirty purge: the death's row then comes
    // from this snapshot, docs/dead-jobs.md "Purges").
    out.purged = status == JobStatus::exception &&
                 rec.dead_mark.load(std::memory_order_acquire) == dead_mark(out.epoch, DeadMark::purged);
    if (out.purged) out.error = read_error(slot, id, out.epoch - 1);
    // [E]: written before the CAS into `exception`, which our acquire load
    // of the word follows; a purge leaves it.
    out.died_at_ns = out.kept_dead || out.purged ? rec.died_at_ns : 0;
    // Its dependencies (dependencies.cpp): fixed once published, the row
    // belongs to it while row.job_id names it.
    out.depends_on.clear();
    const DependencyRow& row = dependency_row(slot);
    if (row.job_id.load(std::memory_order_acquire) == id && row.count >= 1 && row.count <= max_dependencies)
        for (std::uint32_t e = 0; e < row.count; ++e) out.depends_on.push_back(row.edges[e].job_id);
    return true;
}

std::uint64_t QueueState::feed_pending() const noexcept {
    std::uint64_t pending = 0;
    const std::uint32_t count = entrypoint_count();
    for (EntrypointId ep = 0; ep < count; ++ep) {
        const EntrypointControl& c = entrypoints_[ep];
        pending += c.log_head.load(std::memory_order_seq_cst) - c.log_committed.load(std::memory_order_seq_cst);
        pending += c.dirty_slots.load(std::memory_order_seq_cst);
    }
    return pending;
}

void QueueState::note_configuration_change() noexcept {
    core_->configuration_generation.fetch_add(1, std::memory_order_seq_cst);
    nudge_mirror();
}

std::uint64_t QueueState::configuration_generation() const {
    segment_.check_not_retired();
    return core_->configuration_generation.load(std::memory_order_acquire);
}

QueueConfiguration QueueState::configuration() {
    check_usable();
    QueueConfiguration out;
    // First: whatever changes after this load bumps it again, so a record
    // made from what follows is at least as new as `generation`.
    out.generation = core_->configuration_generation.load(std::memory_order_acquire);
    const std::uint32_t count = entrypoint_count();
    for (EntrypointId ep = 0; ep < count; ++ep) {
        EntrypointConfiguration entry;
        entry.id = ep;
        entry.name = std::string(name_of(entrypoints_[ep]));
        entry.options = entrypoint_options(ep);
        entry.paused = entrypoints_[ep].paused.load(std::memory_order_seq_cst) != 0;
        out.entrypoints.push_back(std::move(entry));
    }
    out.schedules = schedules();
    // A tick moves next_tick_ns under [E] after its job's log record is
    // published (schedules.cpp, steps 4 and 5): a reader that saw the job
    // in the feed could still read the old next tick without the lock.
    // Under [E] (its repair completes a dead firer's move) it reads the
    // move of every tick whose job is in the feed.
    for (ScheduleInfo& schedule : out.schedules) {
        if (schedule.entrypoint >= count) continue;
        lock_entrypoint(schedule.entrypoint);
        shm::LockHolder holder(entrypoints_[schedule.entrypoint].lock);
        for (std::uint32_t i = 0; i < max_schedules; ++i) {
            const ScheduleEntry& s = schedules_[i];
            if (s.state.load(std::memory_order_acquire) != std::uint32_t(ScheduleState::active) ||
                s.entrypoint.load(std::memory_order_relaxed) != schedule.entrypoint || name_of(s) != schedule.name)
                continue;
            schedule.next_tick_ns = s.next_tick_ns.load(std::memory_order_relaxed);
            schedule.fired = s.fired.load(std::memory_order_relaxed);
            schedule.last_tick_ns = s.last_tick_ns.load(std::memory_order_relaxed);
            schedule.last_job_id = s.last_job_id.load(std::memory_order_relaxed);
        }
    }
    return out;
}

void QueueState::nudge_mirror() noexcept {
    // Pairs with wait_for_feed (see CoreHeader::mirror_waiting).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (core_->mirror_waiting.load(std::memory_order_relaxed) == 0) return;
    if (core_->mirror_waiting.exchange(0, std::memory_order_acq_rel) == 0) return;
    wake_feed_waiter();
}

void QueueState::wake_feed_waiter() noexcept {
    core_->mirror_signal.fetch_add(1, std::memory_order_release);
    shm::futex_wake(core_->mirror_signal, INT32_MAX);
}

void QueueState::ask_mirror_to_commit() noexcept {
    // After the caller's record is published (its [E] release). The bump
    // is seq_cst: a mirror whose feed_signal() load (seq_cst) reads an
    // older value reads the feed after it and sees the record, or compares
    // at its next wait and does not sleep. Then the Dekker pairing with
    // wait_for_feed's mirror_waiting store wakes a mirror already asleep
    // (its futex_wait sees the bumped word, or we see the flag).
    core_->mirror_signal.fetch_add(1, std::memory_order_seq_cst);
    if (core_->mirror_waiting.load(std::memory_order_seq_cst) == 0) return;
    if (core_->mirror_waiting.exchange(0, std::memory_order_acq_rel) == 0) return;
    shm::futex_wake(core_->mirror_signal, INT32_MAX);
}

std::uint32_t QueueState::feed_signal() const noexcept {
    return core_->mirror_signal.load(std::memory_order_seq_cst);
}

std::uint64_t QueueState::wait_for_feed(std::int64_t flush_after_ns, std::int64_t idle_timeout_ns,
                                        std::optional<std::uint64_t> configuration_seen,
                                        std::optional<std::uint32_t> signal_seen) {
    segment_.check_not_retired();
    // With signal_seen: a bump since then (a sync enqueuer asked while the
    // caller was mirroring) makes the futex_wait below return at once.
    const std::uint32_t signal = signal_seen ? *signal_seen : core_->mirror_signal.load(std::memory_order_acquire);
    core_->mirror_waiting.store(1, std::memory_order_seq_cst);
    std::uint64_t pending = feed_pending();
    // After the flag (seq_cst): a changer bumps the generation, fences and
    // reads the flag (note_configuration_change), so either we see its bump
    // here or it sees the flag and wakes us.
    const bool reconfigured =
        configuration_seen && core_->configuration_generation.load(std::memory_order_seq_cst) != *configuration_seen;
    const std::int64_t timeout = reconfigured ? 0 : pending ? flush_after_ns : idle_timeout_ns;
    if (timeout != 0) shm::futex_wait(core_->mirror_signal, signal, timeout);
    core_->mirror_waiting.store(0, std::memory_order_relaxed);
    return feed_pending();
}

void QueueState::mark_mirror_dirty(EntrypointId ep, std::uint32_t slot) noexcept {
    if (record(slot).mirror_dirty.fetch_add(1, std::memory_order_acq_rel) == 0)
        entrypoints_[ep].dirty_slots.fetch_add(1, std::memory_order_relaxed);
    // A full log has a pending record, so the mirror is not asleep for
    // good; the nudge only makes it come sooner.
    nudge_mirror();
}

std::size_t QueueState::collect_dirty(std::vector<JobSnapshot>& out) const {
    segment_.check_not_retired();
    bool any = false;
    for (EntrypointId ep = 0; ep < entrypoint_count(); ++ep)
        any = any || entrypoints_[ep].dirty_slots.load(std::memory_order_acquire) != 0;
    if (!any) return 0;
    std::size_t found = 0;
    const std::uint32_t n = arena_.slot_count();
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        const JobRecord& rec = record(slot);
        const std::uint32_t mark = rec.mirror_dirty.load(std::memory_order_acquire);
        if (mark == 0) continue;
        // Read the job's state under its entrypoint lock: attempts and
        // execute_after are [E] fields.
        const std::uint32_t ep = rec.entrypoint;
        if (ep >= entrypoint_count()) continue;
        auto& self = const_cast<QueueState&>(*this);
        self.lock_entrypoint(ep);
        shm::LockHolder holder(entrypoints_[ep].lock);
        JobSnapshot snapshot;
        if (!read_job(slot, rec.job_id, snapshot)) continue;
        snapshot.dirty_mark = mark;
        out.push_back(std::move(snapshot));
        ++found;
    }
    return found;
}

void QueueState::settle_dirty(std::span<const JobSnapshot> mirrored) {
    check_usable();
    ensure_registered();
    std::vector<std::uint32_t> to_release;
    for (const JobSnapshot& job : mirrored) {
        if (job.slot >= arena_.slot_count() || job.dirty_mark == 0 || job.entrypoint >= entrypoint_count()) continue;
        JobRecord& rec = record(job.slot);
        if (rec.job_id != job.id) continue;
        // Recycle a finished slot first: its final state is now mirrored.
        if (is_final(job.status)) {
            recycle_finished(job.entrypoint, job.slot, job.epoch, job.status, to_release);
            continue;
        }
        std::uint32_t mark = job.dirty_mark;
        if (rec.mirror_dirty.compare_exchange_strong(mark, 0, std::memory_order_acq_rel))
            entrypoints_[job.entrypoint].dirty_slots.fetch_sub(1, std::memory_order_relaxed);
    }
    return_to_arena(to_release, my_tag());
}

JobId QueueState::restore(EntrypointId ep, const RestoredJob& job, const EnqueueOptions& options) {
    check_usable();
    check_entrypoint(ep);
    if (job.id == 0) throw Error(Errc::invalid_argument, describe(ep) + ": a restored job needs its id");
    if (job.payload.size() > arena_.payload_bytes())
        throw Error(Errc::payload_too_large, describe(ep) + ": restored job " + std::to_string(job.id) + " has " +
                                                 std::to_string(job.payload.size()) +
                                                 " payload bytes, more than the slot capacity of " +
                                                 std::to_string(arena_.payload_bytes()));
    if (job.execute_after_ns < 0) throw Error(Errc::invalid_argument, "execute_after must not be negative");
    begin_dedupe(ep, options, 1);
    ensure_registered();
    // Ids of this host stay unique: later ids are taken above this one.
    constexpr std::uint64_t counter_mask = (std::uint64_t(1) << 48) - 1;
    if ((job.id >> 48) == host_id_) {
        auto& counter = segment_.header().next_job_counter;
        std::uint64_t current = counter.load(std::memory_order_relaxed);
        const std::uint64_t floor = (job.id & counter_mask) + 1;
        while (current < floor && !counter.compare_exchange_weak(current, floor, std::memory_order_relaxed)) {
        }
    }
    std::uint32_t slot = 0;
    try {
        slot = take_slot(std::int64_t(options.arena_wait.count()) * 1'000'000);
    } catch (const Error&) {
        if (options.dedupe_key && find_holder(ep, *options.dedupe_key)) return resolve_duplicate(ep, options);
        throw;
    }
    if (!job.payload.empty()) std::memcpy(arena_.payload(slot), job.payload.data(), job.payload.size());
    const std::int64_t now_real = shm::realtime_ns();
    EnqueueOptions placed = options;
    placed.priority = job.priority;
    placed.execute_after_ns = job.execute_after_ns;
    placed.max_attempts = job.max_attempts;
    prepare_record(slot, ep, job.id, job.payload.size(), placed, now_real);
    JobRecord& rec = record(slot);
    rec.attempts = job.attempts;
    if (job.enqueued_at_ns > 0) rec.enqueued_at_ns = job.enqueued_at_ns;
    if (options.dedupe_key) write_dedupe_key(slot, job.id, *options.dedupe_key, dedupe_key_hash_);
    std::uint64_t sequence = 0;
    try {
        if (!options.depends_on.empty()) { // waiting again (docs/job-dependencies.md)
            validate_dependencies(options);
            publish_dependent(ep, slot, placed, now_real, sequence);
        } else {
            publish(ep, {&slot, 1}, placed, now_real, sequence);
        }
    } catch (const Error&) {
        give_back_slot(slot);
        throw;
    }
    if (duplicate_of_) {
        give_back_slot(slot);
        return resolve_duplicate(ep, options);
    }
    return job.id;
}

void QueueState::restore_outcome(EntrypointId ep, const RestoredOutcome& job) {
    check_usable();
    check_entrypoint(ep);
    const std::string what = describe(ep) + ": restored job " + std::to_string(job.id);
    if (job.id == 0 || job.id > JobId(INT64_MAX))
        throw Error(Errc::invalid_argument, describe(ep) + ": " + std::to_string(job.id) +
                                                " is not a job id (ids are 1 to 2^63-1)");
    const bool dies = job.status == JobStatus::exception;
    if (!dies && job.status != JobStatus::successful && job.status != JobStatus::canceled)
        throw Error(Errc::invalid_argument, what + " has status " + std::string(job_status_name(job.status)) +
                                                "; only exception, successful and canceled jobs are restored finished");
    if (job.result && job.status != JobStatus::successful)
        throw Error(Errc::invalid_argument, what + " is " + std::string(job_status_name(job.status)) +
                                                ": only a successful job has a result");
    if (job.result && job.result->size() > result_bytes_)
        throw Error(Errc::invalid_argument, what + " has a result of " + std::to_string(job.result->size()) +
                                                " bytes, larger than the queue's " + std::to_string(result_bytes_) +
                                                " result bytes (QueueOptions::result_bytes)");
    if (job.payload.size() > arena_.payload_bytes())
        throw Error(Errc::payload_too_large, what + " has " + std::to_string(job.payload.size()) +
                                                 " payload bytes, more than the slot capacity of " +
                                                 std::to_string(arena_.payload_bytes()));
    if (job.dedupe_key && (job.dedupe_key->empty() || job.dedupe_key->size() > dedupe_key_bytes))
        throw Error(Errc::invalid_argument, what + " has a dedupe key of " + std::to_string(job.dedupe_key->size()) +
                                                " bytes (1 to " + std::to_string(dedupe_key_bytes) + ")");
    const std::uint32_t n = arena_.slot_count();
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        const SlotState state = StateWord::state(arena_.state_word(slot).load(std::memory_order_acquire));
        if (state != SlotState::free && state != SlotState::reserved && record(slot).job_id == job.id)
            throw Error(Errc::already_exists, what + " is in the segment already (" +
                                                  std::string(job_status_name(status_of_state(state))) + ")");
    }
    ensure_registered();
    constexpr std::uint64_t counter_mask = (std::uint64_t(1) << 48) - 1;
    if ((job.id >> 48) == host_id_) { // later ids are taken above this one, as restore() does
        auto& counter = segment_.header().next_job_counter;
        std::uint64_t current = counter.load(std::memory_order_relaxed);
        const std::uint64_t floor = (job.id & counter_mask) + 1;
        while (current < floor && !counter.compare_exchange_weak(current, floor, std::memory_order_relaxed)) {
        }
    }
    const std::int64_t now_real = shm::realtime_ns();
    const std::int64_t finished = job.finished_at_ns > 0 ? job.finished_at_ns : now_real;
    // Reserved by us: until the CAS below nobody else reads or writes it,
    // and if we die before it our reaper frees it (release_all_reserved_by).
    const std::uint32_t slot = take_slot();
    if (!job.payload.empty()) std::memcpy(arena_.payload(slot), job.payload.data(), job.payload.size());
    EnqueueOptions placed;
    placed.priority = job.priority;
    placed.max_attempts = job.max_attempts;
    prepare_record(slot, ep, job.id, job.payload.size(), placed, now_real);
    JobRecord& rec = record(slot);
    rec.attempts = job.attempts;
    rec.enqueued_at_ns = job.enqueued_at_ns > 0 ? job.enqueued_at_ns : finished;
    // A dead job's key (docs/dedupe.md) is not held while it is dead; a
    // requeue claims it again from here (requeue_dead_locked).
    if (dies && job.dedupe_key) write_dedupe_key(slot, job.id, *job.dedupe_key, dedupe_hash(*job.dedupe_key));
    else dedupe_keys_[slot].job_id = 0;
    EntrypointControl& c = entrypoints_[ep];
    std::vector<std::uint32_t> to_release;
    {
        lock_entrypoint(ep);
        shm::LockHolder holder(c.lock);
        std::atomic<std::uint64_t>& state = arena_.state_word(slot);
        std::uint64_t word = state.load(std::memory_order_acquire);
        const SlotState final_state = dies                                   ? SlotState::exception
                                      : job.status == JobStatus::successful ? SlotState::successful
                                                                            : SlotState::canceled;
        const std::uint64_t new_word = StateWord::next(word, final_state, 0);
        const std::uint64_t epoch = StateWord::epoch(new_word);
        // Everything the final state shows is written before the CAS, which
        // publishes it (seq_cst, as a finisher's: finish_locked).
        // kept_mirrored: its end is in PostgreSQL already, so nothing is
        // logged and the mirror never sees it (no second currant_log or
        // currant_results row); a purge, eviction or expiry frees it at once.
        rec.dead_next = rec.dead_prev = shm::no_slot;
        rec.cancel_epoch.store(0, std::memory_order_relaxed);
        if (dies) {
            rec.sequence = c.next_sequence++; // the death order: the caller restores oldest first
            rec.died_at_ns = finished;
            write_error_locked(slot, job.id, epoch, job.error);
        } else {
            // The retention left, from now on the monotonic clock.
            const std::int64_t left = std::max<std::int64_t>(0, job.kept_until_ns - now_real);
            std::int64_t until = 0;
            if (__builtin_add_overflow(shm::monotonic_ns(), left, &until)) until = no_deadline - 1;
            rec.kept_until_ns.store(until, std::memory_order_relaxed);
            if (job.result) {
                write_result_locked(slot, job.id, epoch, *job.result);
                outcome(slot).at_ns = finished; // the finish time wait() reports; the slot is still ours
            } else {
                write_error_locked(slot, job.id, epoch, {}); // no stale result of an earlier job at this tag
            }
        }
        rec.dead_mark.store(dead_mark(epoch, DeadMark::kept_mirrored), std::memory_order_relaxed);
        shm::crash_point("restore.outcome.prepared"); // still reserved by us: our reaper frees the slot
        if (!state.compare_exchange_strong(word, new_word, std::memory_order_seq_cst)) {
            // Only a corrupt segment moves a slot we reserved.
            give_back_slot(slot);
            throw Error(Errc::corrupt_segment, what + ": its reserved slot " + std::to_string(slot) +
                                                   " changed under us");
        }
        // Killed here, holding [E]: a kept dead job not on the list; the
        // repair of [E] lists it (repair_dead_list). A kept result has no list.
        shm::crash_point("restore.outcome.committed");
        if (dies) keep_dead_locked(ep, slot, my_tag(), to_release);
    }
    if (!to_release.empty()) release_slots(to_release, my_tag());
}

void QueueState::mark_mirrored() {
    check_usable();
    core_->mirrored.store(1, std::memory_order_release);
}

void QueueState::unseal() {
    check_usable();
    core_->sealed.store(0, std::memory_order_seq_cst);
    wake_everyone();
}

} // namespace currant::detail
