// Outcomes of jobs: the per-slot outcome area (a job's last error text) and
// the dead jobs kept with it until requeued or purged (docs/dead-jobs.md).
//
// Crash model. Every change below happens under the entrypoint lock [E],
// except the mirror's recycling (recycle_finished, mirroring.cpp), which is
// lock-free and meets a purge or eviction only on the dead mark's CAS (see
// JobRecord):
// * a death (finish_locked) writes the dead mark, the death order and the
//   error text, then moves the state word into `exception` by CAS (the
//   commit point), then links the slot at the dead list's tail;
// * a requeue moves a kept dead job's state word `exception` -> `queued` by
//   CAS (the commit point; intent record for the log append), then links it
//   into its lane like any requeue;
// * a requeue first claims the job's dedupe key again; if another job holds
//   it, the dead job stays dead (nothing else changed);
// * a purge or an eviction unlinks the slot, then un-keeps it (dead mark
//   kept -> none by CAS) if its death is not mirrored yet, leaving the slot
//   to the mirror's recycling; otherwise (kept_mirrored) moves its state
//   word `exception` -> `reserved`(us) by CAS (the commit point) and frees it.
// The dead list and its count are derived: a locker that finds the lock's
// owner dead rebuilds them from the state words (repair_dead_list), so a
// process killed between any two of these steps leaves the job either
// before or after its commit point, never lost or doubled. A slot left
// `reserved` by a dead purger is freed by its reaper like any reserved slot.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>

#include "currant/shm/clock.hpp"
#include "currant/shm/crash_point.hpp"
#include "queue_state.hpp"

namespace currant::detail {

using shm::SlotState;
using shm::StateWord;

namespace {
// The longest prefix of text of at most capacity bytes that does not end
// inside a UTF-8 sequence.
std::size_t cut_utf8(std::string_view text, std::size_t capacity) noexcept {
    if (text.size() <= capacity) return text.size();
    std::size_t n = capacity;
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xc0) == 0x80) --n;
    return n;
}

std::atomic_ref<std::uint32_t> kind_of(OutcomeHeader& header) noexcept { return std::atomic_ref(header.kind); }
} // namespace

// ------------------------------------------------------------ outcome area

void QueueState::write_error_locked(std::uint32_t slot, JobId id, std::uint64_t epoch,
                                    std::string_view text) noexcept {
    if (slot >= arena_.slot_count()) return;
    OutcomeHeader& header = outcome(slot);
    const std::size_t length = cut_utf8(text, outcome_capacity_);
    // Kind none while the fields change: a writer killed half-way leaves no
    // outcome, never a torn one under a valid tag. The release store of the
    // kind publishes the rest to a reader that loads it with acquire.
    kind_of(header).store(std::uint32_t(OutcomeKind::none), std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    header.job_id = id;
    header.epoch = epoch;
    header.length = std::uint32_t(length);
    header.original_length = std::uint32_t(std::min<std::size_t>(text.size(), std::numeric_limits<std::uint32_t>::max()));
    header.at_ns = shm::realtime_ns();
    if (length) std::memcpy(outcome_bytes(slot), text.data(), length);
    kind_of(header).store(std::uint32_t(OutcomeKind::error), std::memory_order_release);
}

std::string QueueState::read_error(std::uint32_t slot, JobId id, std::uint64_t epoch, bool* truncated) const {
    if (truncated) *truncated = false;
    if (slot >= arena_.slot_count()) return {};
    OutcomeHeader& header = outcome(slot);
    if (kind_of(header).load(std::memory_order_acquire) != std::uint32_t(OutcomeKind::error)) return {};
    if (header.job_id != id || header.epoch != epoch) return {};
    const std::uint32_t length = header.length;
    if (length > outcome_capacity_) return {}; // a corrupt length: no text rather than a wild read
    std::string text(reinterpret_cast<const char*>(outcome_bytes(slot)), length);
    const bool cut = header.original_length > length;
    // Without the lock (the mirror) the area may have been rewritten while
    // we copied: the kind and tag must still be what we started from.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (kind_of(header).load(std::memory_order_relaxed) != std::uint32_t(OutcomeKind::error) ||
        header.job_id != id || header.epoch != epoch)
        return {};
    if (truncated) *truncated = cut;
    return text;
}

// ------------------------------------------------------------ dying

void QueueState::prepare_death(EntrypointControl& c, std::uint32_t slot, std::uint64_t new_word, bool keep,
                               std::string_view error) noexcept {
    // Under [E], the job still picked (ours or claimed by a reaper); the
    // caller's CAS into `exception` publishes all of this (acq_rel).
    JobRecord& rec = record(slot);
    rec.sequence = c.next_sequence++; // the death order the rebuild sorts by
    rec.died_at_ns = shm::realtime_ns();
    rec.dead_next = rec.dead_prev = shm::no_slot;
    write_error_locked(slot, rec.job_id, StateWord::epoch(new_word), error);
    // `memory` mirrors nothing, so its kept deaths count as mirrored: an
    // eviction or purge frees them at once.
    const bool mirrored = Durability(c.durability.load(std::memory_order_relaxed)) == Durability::memory;
    const DeadMark kind = !keep ? DeadMark::none : mirrored ? DeadMark::kept_mirrored : DeadMark::kept;
    rec.dead_mark.store(dead_mark(StateWord::epoch(new_word), kind), std::memory_order_relaxed); // released by the CAS
}

bool QueueState::is_kept_dead(std::uint32_t slot, std::uint64_t word) const noexcept {
    if (StateWord::state(word) != SlotState::exception) return false;
    const std::uint64_t mark = record(slot).dead_mark.load(std::memory_order_acquire);
    const std::uint64_t epoch = StateWord::epoch(word);
    return mark == dead_mark(epoch, DeadMark::kept) || mark == dead_mark(epoch, DeadMark::kept_mirrored);
}

void QueueState::keep_dead_locked(EntrypointId ep, std::uint32_t slot, std::uint32_t acting_owner,
                                  std::vector<std::uint32_t>& to_release) noexcept {
    EntrypointControl& c = entrypoints_[ep];
    const std::uint32_t n = arena_.slot_count();
    JobRecord& rec = record(slot);
    rec.dead_next = shm::no_slot;
    rec.dead_prev = c.dead_tail < n ? c.dead_tail : shm::no_slot;
    if (rec.dead_prev != shm::no_slot) record(rec.dead_prev).dead_next = slot;
    else c.dead_head = slot;
    c.dead_tail = slot;
    ++c.dead_count;
    // Past the cap the oldest kept dead jobs are recycled (docs/dead-jobs.md).
    const std::uint32_t cap = c.max_dead.load(std::memory_order_relaxed);
    while (c.dead_count > cap && c.dead_head < n) {
        if (discard_dead_locked(ep, c.dead_head, acting_owner, to_release, false) == Discard::not_dead) {
            c.lock.request_repair(); // the list names a slot that is not a kept dead job
            break;
        }
        shm::crash_point("dead.evicted");
    }
}

void QueueState::dead_unlink(EntrypointControl& c, std::uint32_t slot) noexcept {
    const std::uint32_t n = arena_.slot_count();
    JobRecord& rec = record(slot);
    if (rec.dead_prev < n) record(rec.dead_prev).dead_next = rec.dead_next;
    else c.dead_head = rec.dead_next;
    if (rec.dead_next < n) record(rec.dead_next).dead_prev = rec.dead_prev;
    else c.dead_tail = rec.dead_prev;
    rec.dead_next = rec.dead_prev = shm::no_slot;
    if (c.dead_count) --c.dead_count;
}

QueueState::Discard QueueState::discard_dead_locked(EntrypointId ep, std::uint32_t slot, std::uint32_t acting_owner,
                                                    std::vector<std::uint32_t>& to_release, bool purged) noexcept {
    // Under [E]. Steps and what a crash between them leaves:
    //   1. unlink from the dead list   (still kept: the repair relinks it)
    //   2. mark kept -> none by CAS    (not kept, `exception`: the mirror's
    //      commit or dirty scan recycles it like any finished job)
    //   or, if the mark says kept_mirrored (nothing left to mirror):
    //   2'. state word exception -> reserved(us) by CAS (our reaper frees it)
    //   3'. freed by our caller (release_slots)
    if (slot >= arena_.slot_count()) return Discard::not_dead;
    EntrypointControl& c = entrypoints_[ep];
    std::atomic<std::uint64_t>& state = arena_.state_word(slot);
    std::uint64_t word = state.load(std::memory_order_acquire);
    JobRecord& rec = record(slot);
    if (!is_kept_dead(slot, word) || rec.entrypoint != ep) return Discard::not_dead;
    if (purged && Durability(c.durability.load(std::memory_order_relaxed)) != Durability::memory)
        return purge_logged_locked(ep, slot, word);
    dead_unlink(c, slot);
    shm::crash_point("dead.unlinked"); // still kept: the repair puts it back on the list
    const std::uint64_t epoch = StateWord::epoch(word);
    // The recycler (commit_feed, settle_dirty) races on this mark without
    // the lock: it moves kept -> kept_mirrored when the death is mirrored.
    // Whichever CAS comes first decides who frees the slot.
    std::uint64_t mark = dead_mark(epoch, DeadMark::kept);
    if (rec.dead_mark.compare_exchange_strong(mark, dead_mark(epoch, DeadMark::none), std::memory_order_acq_rel))
        return Discard::left_to_mirror; // the death is not mirrored yet: the recycler frees it after
    // mark == kept_mirrored: nothing will touch the slot without [E] (kept
    // slots leave `exception` only under it), so the CAS cannot lose; it is
    // a CAS all the same, like every move of a state word that a lock-free
    // reader may be examining.
    const JobId id = rec.job_id;
    const std::uint32_t last = std::uint32_t(purged ? JobStatus::unknown : JobStatus::exception);
    const std::uint64_t replaced = set_last(rec, id, last);
    if (!state.compare_exchange_strong(word, StateWord::next(word, SlotState::reserved, acting_owner),
                                       std::memory_order_acq_rel)) {
        undo_last(rec, id, last, replaced);
        return Discard::not_dead;
    }
    commit_last(rec, id, last); // reserved by acting_owner: ours until released
    if (rec.mirror_dirty.exchange(0, std::memory_order_acq_rel) != 0)
        c.dirty_slots.fetch_sub(1, std::memory_order_relaxed);
    to_release.push_back(slot);
    return Discard::freed;
}

QueueState::Discard QueueState::purge_logged_locked(EntrypointId ep, std::uint32_t slot, std::uint64_t word) noexcept {
    // Under [E], slot a kept dead job of a mirrored (async/sync) entrypoint.
    // The purge is a transition the mirror must see, so that it deletes the
    // job's currant_dead row in the transaction that moves its cursor past
    // it (a rebuild would otherwise bring the job back). Steps and what a
    // crash between them leaves:
    //   1. intent (purge), unlink from the dead list   (still kept, word
    //      unchanged: the repair relinks it; nothing is logged)
    //   2. state word exception(e) -> exception(e+1) by CAS: the commit
    //      point. The dead mark still names e, so the job is no longer kept
    //      (not listed, not requeued, not purged again)
    //   3. dead mark := purged(e+1)                    (the repair, finding
    //      the intent's new word, sets it)
    //   4. log record of the new word, flagged a purge (transition_purge),
    //      or the dirty mark if the log is full       (the repair appends it)
    // The slot stays `exception` until the mirror commits the purge; its
    // recycling (recycle_finished) then frees it: a purged mark is not a
    // keep mark. The lock-free recycler cannot take the slot between 1 and
    // 3: it frees an `exception` slot only if the mark of the word's epoch
    // is neither kept nor kept_mirrored, and until 2 the mark is one of
    // those for e (its own CAS only moves kept -> kept_mirrored), after 2 it
    // reads the epoch e+1 and, for a record of e, returns on the epoch. So
    // the CAS of 2 cannot lose; it is checked all the same.
    EntrypointControl& c = entrypoints_[ep];
    JobRecord& rec = record(slot);
    const std::uint64_t new_word = StateWord::next(word, SlotState::exception, 0);
    begin_intent(c, slot, word, new_word);
    c.intent.purge = 1;
    dead_unlink(c, slot);
    shm::crash_point("dead.unlinked"); // still kept: the repair puts it back on the list
    if (!arena_.state_word(slot).compare_exchange_strong(word, new_word, std::memory_order_acq_rel)) {
        c.intent.active = 0;
        c.lock.request_repair(); // unlinked but not moved: the repair relinks it
        return Discard::not_dead;
    }
    // Killed here: purged, not logged: the repair sets the mark and appends.
    shm::crash_point("dead.purge.committed");
    rec.dead_mark.store(dead_mark(StateWord::epoch(new_word), DeadMark::purged), std::memory_order_release);
    append_log(ep, slot, new_word);
    c.intent.active = 0;
    return Discard::left_to_mirror;
}

QueueState::DeadRequeue QueueState::requeue_dead_locked(EntrypointId ep, std::uint32_t slot, std::uint64_t word) {
    // Under [E], slot a kept dead job of ep. Steps and what a crash leaves:
    //   1. claim its dedupe key, if any (an entry naming a slot that is not
    //      queued is stale: harmless)
    //   2. intent, unlink from the dead list, attempts reset (still kept:
    //      the repair relinks it; it shows 0 attempts)
    //   3. state word exception -> queued by CAS: the commit point (the
    //      repair links it into its lane and finishes the log append)
    //   4. linked, logged, counted
    EntrypointControl& c = entrypoints_[ep];
    JobRecord& rec = record(slot);
    requeue_holder_ = 0;
    const DedupeKey& key = dedupe_keys_[slot];
    if (key.job_id == rec.job_id && key.length >= 1 && key.length <= dedupe_key_bytes) {
        // The key is held again while the job is queued; if another job took
        // it meanwhile the dead job stays dead (docs/dead-jobs.md).
        if (const JobId holder = dedupe_claim(ep, slot)) {
            requeue_holder_ = holder;
            return DeadRequeue::key_held;
        }
    }
    const std::uint64_t new_word = StateWord::next(word, SlotState::queued, 0);
    begin_intent(c, slot, word, new_word);
    dead_unlink(c, slot);
    rec.attempts = 0; // a fresh set of attempts; the log record below carries 0
    rec.execute_after_ns = 0;
    shm::crash_point("dead.requeue.unlinked"); // still kept: the repair puts it back on the list
    if (!arena_.state_word(slot).compare_exchange_strong(word, new_word, std::memory_order_acq_rel)) {
        c.intent.active = 0;
        c.lock.request_repair(); // unlinked but not moved: the repair relinks it
        return DeadRequeue::not_dead;
    }
    // A queued slot is touched only under [E], which we hold. Killed from
    // here on, the job is queued: the repair links it by its sequence (its
    // death order) and appends the intent's log record.
    shm::crash_point("dead.requeued");
    rec.sequence = c.next_sequence++;
    rec.lease_deadline_ns.store(0, std::memory_order_relaxed);
    rec.heap_position = shm::no_slot;
    rec.lane_position = rec.lane_ring = shm::no_slot;
    const std::int64_t now_real = shm::realtime_ns();
    const bool ready = place_queued(ep, slot, now_real);
    append_log(ep, slot, new_word);
    if (ready) c.ready_count.store(c.ready_count.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    c.intent.active = 0;
    return DeadRequeue::requeued;
}

// ------------------------------------------------------------ repair and check

void QueueState::repair_dead_list(EntrypointId ep) {
    EntrypointControl& c = entrypoints_[ep];
    struct Dead { std::uint64_t sequence; std::uint32_t slot; };
    std::vector<Dead> dead;
    const std::uint32_t n = arena_.slot_count();
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
        const JobRecord& rec = record(slot);
        if (rec.entrypoint == ep && is_kept_dead(slot, word)) dead.push_back({rec.sequence, slot});
    }
    std::sort(dead.begin(), dead.end(), [](const Dead& a, const Dead& b) {
        return a.sequence != b.sequence ? a.sequence < b.sequence : a.slot < b.slot;
    });
    c.dead_head = c.dead_tail = shm::no_slot;
    c.dead_count = 0;
    std::uint64_t max_sequence = 0;
    for (const Dead& d : dead) {
        JobRecord& rec = record(d.slot);
        rec.dead_prev = c.dead_tail;
        rec.dead_next = shm::no_slot;
        if (c.dead_tail != shm::no_slot) record(c.dead_tail).dead_next = d.slot;
        else c.dead_head = d.slot;
        c.dead_tail = d.slot;
        ++c.dead_count;
        max_sequence = std::max(max_sequence, d.sequence);
    }
    c.next_sequence = std::max(c.next_sequence, max_sequence + 1);
}

std::string QueueState::check_dead_list(EntrypointId ep) {
    EntrypointControl& c = entrypoints_[ep];
    const std::uint32_t n = arena_.slot_count();
    std::vector<std::uint8_t> listed(n, 0);
    std::uint32_t walked = 0, previous = shm::no_slot;
    for (std::uint32_t slot = c.dead_head; slot != shm::no_slot; slot = record(slot).dead_next) {
        if (slot >= n) return "dead list link out of range";
        if (listed[slot]) return "dead list lists slot " + std::to_string(slot) + " twice";
        listed[slot] = 1;
        const JobRecord& rec = record(slot);
        const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
        if (!is_kept_dead(slot, word) || rec.entrypoint != ep)
            return "dead list lists slot " + std::to_string(slot) + " which is not a kept dead job here";
        if (rec.dead_prev != previous) return "dead list back link broken at slot " + std::to_string(slot);
        previous = slot;
        if (++walked > n) return "dead list has a cycle";
    }
    if (c.dead_tail != previous) return "dead list tail is wrong";
    if (walked != c.dead_count)
        return "dead count " + std::to_string(c.dead_count) + " but " + std::to_string(walked) + " listed";
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
        const JobRecord& rec = record(slot);
        if (rec.entrypoint == ep && is_kept_dead(slot, word) && !listed[slot])
            return "kept dead job in slot " + std::to_string(slot) + " is not on the dead list (lost)";
    }
    return {};
}

// ------------------------------------------------------------ public calls

void QueueState::fail(const JobHandle& job, std::string_view error) {
    finish({&job, 1}, JobStatus::exception, true, error);
}

std::vector<DeadJob> QueueState::dead_jobs(std::optional<EntrypointId> only, std::size_t limit) const {
    segment_.check_not_retired();
    if (only) check_entrypoint(*only);
    auto& self = const_cast<QueueState&>(*this);
    std::vector<DeadJob> out;
    const std::uint32_t n = arena_.slot_count();
    const std::uint32_t count = entrypoint_count();
    for (EntrypointId ep = only ? *only : 0; ep < (only ? *only + 1 : count) && out.size() < limit; ++ep) {
        EntrypointControl& c = entrypoints_[ep];
        if (c.declared.load(std::memory_order_acquire) == 0) continue;
        const std::string name(name_of(c));
        // Under [E]: the list, the records' [E] fields and the outcome areas
        // of kept slots (written only under [E]) are stable while we copy.
        self.lock_entrypoint(ep);
        shm::LockHolder holder(c.lock);
        std::uint32_t walked = 0;
        for (std::uint32_t slot = c.dead_head; slot < n && out.size() < limit && walked++ < n;
             slot = record(slot).dead_next) {
            const JobRecord& rec = record(slot);
            const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
            if (!is_kept_dead(slot, word) || rec.entrypoint != ep) {
                c.lock.request_repair(); // a damaged index: the next locker rebuilds it
                break;
            }
            DeadJob& job = out.emplace_back();
            job.id = rec.job_id;
            job.entrypoint = ep;
            job.entrypoint_name = name;
            job.priority = rec.priority;
            job.attempts = rec.attempts;
            job.max_attempts = rec.max_attempts;
            job.enqueued_at_ns = rec.enqueued_at_ns;
            job.died_at_ns = rec.died_at_ns;
            job.error = read_error(slot, rec.job_id, StateWord::epoch(word), &job.error_truncated);
            const std::byte* payload = arena_.payload(slot);
            job.payload.assign(payload, payload + std::min(rec.payload_size, arena_.payload_bytes()));
        }
    }
    return out;
}

std::uint32_t QueueState::find_dead(JobId id) const noexcept {
    // A hint only (lock-free): the caller re-checks under [E].
    const std::uint32_t n = arena_.slot_count();
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
        if (record(slot).job_id == id && is_kept_dead(slot, word)) return slot;
    }
    return shm::no_slot;
}

bool QueueState::act_on_dead(JobId id, bool requeue) {
    check_usable();
    ensure_registered();
    const std::uint32_t slot = find_dead(id);
    if (slot == shm::no_slot) return false;
    const EntrypointId ep = record(slot).entrypoint;
    if (ep >= entrypoint_count()) return false;
    EntrypointControl& c = entrypoints_[ep];
    std::vector<std::uint32_t> to_release;
    bool done = false;
    {
        lock_entrypoint(ep);
        shm::LockHolder holder(c.lock);
        const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
        const JobRecord& rec = record(slot);
        if (rec.job_id != id || rec.entrypoint != ep || !is_kept_dead(slot, word)) return false;
        if (requeue) {
            const DeadRequeue result = requeue_dead_locked(ep, slot, word);
            if (result == DeadRequeue::key_held)
                throw Error(Errc::already_exists,
                            describe(ep) + ": dead job " + std::to_string(id) + " was not requeued: its dedupe key '" +
                                std::string(dedupe_keys_[slot].bytes,
                                            std::min<std::size_t>(dedupe_keys_[slot].length, dedupe_key_bytes)) +
                                "' is held by job " + std::to_string(requeue_holder_) +
                                " (queued or picked); it stays dead");
            done = result == DeadRequeue::requeued;
        } else {
            done = discard_dead_locked(ep, slot, my_tag(), to_release, true) != Discard::not_dead;
        }
    }
    if (!to_release.empty()) release_slots(to_release, my_tag());
    if (done && requeue) wake_sleepers(ep, 1);
    return done;
}

bool QueueState::requeue_dead(JobId id) { return act_on_dead(id, true); }
bool QueueState::purge_dead(JobId id) { return act_on_dead(id, false); }

std::size_t QueueState::requeue_all_dead(EntrypointId ep) {
    check_usable();
    check_entrypoint(ep);
    ensure_registered();
    EntrypointControl& c = entrypoints_[ep];
    std::size_t requeued = 0;
    {
        lock_entrypoint(ep);
        shm::LockHolder holder(c.lock);
        const std::uint32_t n = arena_.slot_count();
        std::uint32_t walked = 0;
        for (std::uint32_t slot = c.dead_head; slot < n;) {
            if (++walked > n) { // a cycle: only a corrupt segment
                c.lock.request_repair();
                break;
            }
            const std::uint32_t next = record(slot).dead_next; // read before the unlink
            const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
            const DeadRequeue result = record(slot).entrypoint == ep && is_kept_dead(slot, word)
                                           ? requeue_dead_locked(ep, slot, word)
                                           : DeadRequeue::not_dead;
            if (result == DeadRequeue::not_dead) {
                c.lock.request_repair(); // the list names a slot that is not a kept dead job
                break;
            }
            if (result == DeadRequeue::requeued) ++requeued; // key_held: it stays dead (listed)
            slot = next;
        }
    }
    if (requeued) wake_sleepers(ep, std::uint32_t(std::min<std::size_t>(requeued, max_participants_)));
    return requeued;
}

std::size_t QueueState::purge_all_dead(EntrypointId ep) {
    check_usable();
    check_entrypoint(ep);
    ensure_registered();
    EntrypointControl& c = entrypoints_[ep];
    std::vector<std::uint32_t> to_release;
    std::size_t purged = 0;
    {
        lock_entrypoint(ep);
        shm::LockHolder holder(c.lock);
        const std::uint32_t n = arena_.slot_count();
        while (c.dead_head < n) {
            if (discard_dead_locked(ep, c.dead_head, my_tag(), to_release, true) == Discard::not_dead) {
                c.lock.request_repair();
                break;
            }
            ++purged;
        }
    }
    if (!to_release.empty()) release_slots(to_release, my_tag());
    return purged;
}

} // namespace currant::detail

namespace currant {

std::vector<DeadJob> Queue::dead_jobs(std::optional<EntrypointId> entrypoint, std::size_t limit) const {
    return state_->dead_jobs(entrypoint, limit);
}
bool Queue::requeue(JobId id) { return state_->requeue_dead(id); }
std::size_t Queue::requeue_dead(EntrypointId entrypoint) { return state_->requeue_all_dead(entrypoint); }
bool Queue::purge(JobId id) { return state_->purge_dead(id); }
std::size_t Queue::purge_dead(EntrypointId entrypoint) { return state_->purge_all_dead(entrypoint); }

} // namespace currant
