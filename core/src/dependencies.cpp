// Dependencies between jobs (docs/job-dependencies.md).
//
// A job enqueued with depends_on gets a DependencyRow: one edge per
// dependency (its job id and slot, and the edge's outcome). While one edge
// is pending the job is `waiting`: in no entrypoint index, on the queue's
// waiting list instead. Each pending edge is counted in its dependency's
// JobRecord::dependents, which is how a finisher learns that a settle is
// due.
//
// Guards. [G] (DependencyControl::lock) guards the edges' outcomes, the
// waiting list and counts, and every move out of `waiting`; such a move
// also takes the job's entrypoint lock, after [G] (lock order: life lock,
// [G], one entrypoint lock, arena lock). Nothing under [G] wakes sleepers
// (a wake may reap, and a reaper takes [G]): wakes and slot releases are
// collected and done after the unlock (flush_settled).
//
// Finishing a dependency. A finisher's seq_cst CAS into a final state is
// followed by a seq_cst load of `dependents` (note_completion); a linker
// raises `dependents` (seq_cst RMW) and then re-reads the state word
// (seq_cst). Store-buffer pattern: either the finisher sees the count and
// settles once it holds no lock (settle_if_wanted; in memory durability
// before it frees the slot), or the linker sees the job finished and
// classifies it again.
//
// Settling is idempotent and works from the truth only: for every waiting
// job, each pending edge is classified from its dependency's slot (state
// word, job_id, and the last outcome, which every finisher and
// recycler writes before the state word leaves the job), resolved if the
// dependency ended, and the job moves when all edges are resolved (queued)
// or one failed (canceled, with the reason in its outcome area). Passes
// repeat until nothing moves, so cancellations cascade.
//
// Crashes. The [G] repair rebuilds the waiting list and counts from the
// state words and rows and then settles; a dead finisher's reaper settles
// before it frees the dead process's reserved slots; each [E] section here
// writes an intent, so the entrypoint repair completes its log append and
// rebuilds the lanes from the state words.
#include <algorithm>
#include <climits>
#include <cstring>
#include <string>

#include "currant/shm/clock.hpp"
#include "currant/shm/crash_point.hpp"
#include "queue_state.hpp"

namespace currant::detail {

using shm::SlotState;
using shm::StateWord;

namespace {
enum class DependencyState { pending, successful, exception, canceled, unknown };

EdgeOutcome outcome_for(DependencyState state) noexcept {
    switch (state) {
    case DependencyState::pending: return EdgeOutcome::pending;
    case DependencyState::successful: return EdgeOutcome::successful;
    case DependencyState::exception: return EdgeOutcome::exception;
    case DependencyState::canceled: return EdgeOutcome::canceled;
    default: return EdgeOutcome::lost;
    }
}

DependencyState from_status(std::uint32_t status) noexcept {
    switch (JobStatus(status)) {
    case JobStatus::successful: return DependencyState::successful;
    case JobStatus::exception: return DependencyState::exception;
    case JobStatus::canceled: return DependencyState::canceled;
    default: return DependencyState::unknown;
    }
}

const char* unknown_dependency(EndedLookup why) noexcept {
    switch (why) {
    case EndedLookup::never_issued: return " was never issued by this queue";
    case EndedLookup::overwritten:
        return " ended too long ago: how it ended is no longer recorded (the queue remembers it while fewer "
               "ids than its recent-outcomes capacity were handed out after it)";
    case EndedLookup::purged: return " was purged: how it ended is not known";
    default:
        return " is unknown to the queue (its reservation is not committed yet or was aborted, the id "
               "belongs to another host, or its end was not recorded: an older job sharing its record "
               "ended at the same moment)";
    }
}

std::string reason_for(const DependencyEdge& edge, EdgeOutcome outcome) {
    const std::string id = std::to_string(edge.job_id);
    switch (outcome) {
    case EdgeOutcome::exception: return "canceled: dependency job " + id + " ended exception";
    case EdgeOutcome::canceled: return "canceled: dependency job " + id + " ended canceled";
    default: return "canceled: dependency job " + id + " is no longer known to the queue (its outcome was lost)";
    }
}

// How job `id`, which `slot` holds or held last, stands. linked: the job
// was published once (an edge's dependency), so a slot that still names it
// while reserved is a finisher between its CAS and freeing (pending until
// the last outcome says otherwise), never a producer writing it.
DependencyState classify(const shm::Arena& arena, std::uint32_t slot, JobId id, bool linked,
                         std::uint64_t& word) noexcept {
    if (slot >= arena.slot_count() || id == 0) return DependencyState::unknown;
    const JobRecord& rec = arena.record<JobRecord>(slot);
    for (int attempt = 0; attempt < 16; ++attempt) {
        // seq_cst: the linker's re-read after raising `dependents`.
        word = arena.state_word(slot).load(std::memory_order_seq_cst);
        const std::uint64_t job_id = rec.job_id;
        // One write's outcome or none (layout.hpp, "Last outcome"): never an
        // id of one finisher with the status of another.
        std::uint32_t last_status = 0;
        const bool last_names_id = last_outcome_for(rec, id, last_status);
        DependencyState result = DependencyState::unknown;
        if (job_id == id) {
            switch (StateWord::state(word)) {
            case SlotState::queued:
            case SlotState::picked:
            case SlotState::waiting: result = DependencyState::pending; break;
            case SlotState::successful: result = DependencyState::successful; break;
            case SlotState::exception: result = DependencyState::exception; break;
            case SlotState::canceled: result = DependencyState::canceled; break;
            case SlotState::reserved:
            case SlotState::free:
                // Finishers and recyclers write the last outcome before the
                // word leaves the job; a producer writing this job has not
                // published it (unknown to an enqueue).
                result = last_names_id ? from_status(last_status)
                         : linked          ? DependencyState::pending
                                           : DependencyState::unknown;
                break;
            }
        } else if (last_names_id) {
            result = from_status(last_status); // ended; the slot holds a newer job now
        }
        // Seqlock: the fields belong to the word we read if it did not move.
        std::atomic_thread_fence(std::memory_order_acquire);
        if (arena.state_word(slot).load(std::memory_order_relaxed) == word) return result;
    }
    return linked ? DependencyState::pending : DependencyState::unknown; // moving too fast: ask again later
}
} // namespace

// ------------------------------------------------------------ lookups

// Recent outcomes (layout.hpp). remember_ended (queue_state.hpp) runs
// before a slot's last outcome is overwritten: the entry is
// raised first (one word, so a writer killed anywhere leaves the old or the
// new entry, nothing to repair), then a release fence orders it before the
// slot's fields are overwritten, so a reader that no longer finds the job
// in its slot and then (acquire fence) reads the entry sees it. The slot
// and this record together know every ended job until a younger id with
// the same entry (more than ended_kept_span ids later) ended in a slot that
// moved on, or (rarer) such an older one raced it into the entry.
EndedLookup QueueState::recorded_end(JobId id, JobStatus& status) const noexcept {
    // The caller looked in the slots first (acquire: their last outcome's
    // overwrite follows the entry's raise, see remember_ended).
    std::atomic_thread_fence(std::memory_order_acquire);
    if ((id >> 48) != host_id_) return EndedLookup::not_recorded;
    const std::uint64_t counter = id & ended_counter_mask;
    if (counter >= segment_.header().next_job_counter.load(std::memory_order_acquire))
        return EndedLookup::never_issued;
    const std::uint64_t entry = ended_[ended_index(counter, ended_capacity_)].load(std::memory_order_relaxed);
    if ((entry >> 2) > counter) return EndedLookup::overwritten;
    if ((entry >> 2) != counter || entry == 0) return EndedLookup::not_recorded;
    switch (entry & 3) {
    case 1: status = JobStatus::successful; return EndedLookup::found;
    case 2: status = JobStatus::exception; return EndedLookup::found;
    case 3: status = JobStatus::canceled; return EndedLookup::found;
    default: return EndedLookup::purged;
    }
}

std::uint32_t QueueState::find_job_slot(JobId id, JobStatus* ended) const noexcept {
    const std::uint32_t n = arena_.slot_count();
    auto holds = [&](std::uint32_t slot) {
        const JobRecord& rec = record(slot);
        return rec.job_id == id || rec.last_job_id.load(std::memory_order_relaxed) == id;
    };
    // This process enqueued it lately: the local hint (checked, the slot may
    // have moved on). Otherwise (another process's job, or an older one):
    // scan, preferring a slot that holds it now.
    const std::uint32_t hint = id_hints_[id & (id_hint_capacity - 1)] - 1;
    if (hint < n && holds(hint)) return hint;
    // Before the scan: a job the recent outcomes hold has ended, and how
    // (an entry is written only after its job's end, with that end, and is
    // final: nothing brings a job back once its slot forgot it), so the
    // scan could only say the same. Saves the O(slots) scan for a job of
    // another process, or an old one, that already ended (layout 19).
    if (ended && recorded_end(id, *ended) == EndedLookup::found) return shm::no_slot;
    std::uint32_t found = shm::no_slot;
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        if (record(slot).job_id == id) return slot;
        if (found == shm::no_slot && record(slot).last_job_id.load(std::memory_order_relaxed) == id) found = slot;
    }
    return found;
}

std::string QueueState::read_error_of(std::uint32_t slot, JobId id) const {
    if (slot >= arena_.slot_count()) return {};
    const OutcomeHeader& header = outcome(slot);
    auto kind = std::atomic_ref(const_cast<std::uint32_t&>(header.kind));
    if (kind.load(std::memory_order_acquire) != std::uint32_t(OutcomeKind::error) || header.job_id != id) return {};
    return read_error(slot, id, header.epoch);
}

void QueueState::validate_dependencies(const EnqueueOptions& options) const {
    if (options.depends_on.size() > max_dependencies) {
        std::vector<JobId> ids = options.depends_on;
        std::sort(ids.begin(), ids.end());
        ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
        if (ids.size() > max_dependencies)
            throw Error(Errc::invalid_argument, "queue '" + segment_.name() + "': " + std::to_string(ids.size()) +
                                                    " dependencies given; a job may have at most " +
                                                    std::to_string(max_dependencies));
    }
    for (JobId id : options.depends_on)
        if (id == 0 || id > JobId(INT64_MAX))
            throw Error(Errc::invalid_argument, "queue '" + segment_.name() + "': dependency " + std::to_string(id) +
                                                    " is not a job id (ids are 1 to 2^63-1)");
    if (options.dedupe_key)
        throw Error(Errc::invalid_argument, "queue '" + segment_.name() +
                                                "': a job cannot have both a dedupe key and dependencies");
}

// ------------------------------------------------------------ [G]

void QueueState::lock_dependencies() {
    dependency_repaired_ = false;
    dependencies_->lock.lock([this]() noexcept { return repair_dependencies(); });
    // A dead owner may have finished jobs others wait for, or died in a
    // settle: settle now, from the truth (the repair rebuilt the rest).
    if (dependency_repaired_) settle_locked();
}

bool QueueState::repair_dependencies() noexcept {
    // Under [G] after a dead owner: the waiting list and counts, and every
    // JobRecord::dependents, are derived; rebuild them from the state
    // words and the rows. Idempotent; a repairer that dies is repeated.
    try {
        const std::uint32_t n = arena_.slot_count();
        std::vector<std::uint32_t> counts(n, 0);
        std::vector<std::uint32_t> per_entrypoint(max_entrypoints_, 0);
        std::uint32_t head = shm::no_slot, total = 0;
        // The dependents lists are rebuilt below from the waiting jobs'
        // pending edges (every one with a slot in range, also one whose
        // dependency's slot moved on: the settle resolves it from the truth).
        for (std::uint32_t slot = 0; slot < n; ++slot) dependency_row(slot).first_dependent = 0;
        for (std::uint32_t slot = n; slot-- > 0;) {
            if (StateWord::state(arena_.state_word(slot).load(std::memory_order_acquire)) != SlotState::waiting)
                continue;
            DependencyRow& row = dependency_row(slot);
            row.waiting_prev = shm::no_slot;
            row.waiting_next = head;
            if (head != shm::no_slot) dependency_row(head).waiting_prev = slot;
            head = slot;
            ++total;
            const JobRecord& rec = record(slot);
            if (rec.entrypoint < max_entrypoints_) ++per_entrypoint[rec.entrypoint];
            if (row.job_id.load(std::memory_order_acquire) != rec.job_id || row.count == 0 ||
                row.count > max_dependencies)
                continue; // the settle cancels it
            for (std::uint32_t i = 0; i < row.count; ++i) {
                const DependencyEdge& edge = row.edges[i];
                if (EdgeOutcome(edge.outcome.load(std::memory_order_relaxed)) != EdgeOutcome::pending ||
                    edge.slot >= n)
                    continue;
                dependents_push(slot, i);
                if (record(edge.slot).job_id == edge.job_id) ++counts[edge.slot];
            }
        }
        shm::crash_point("dependency.repair");
        dependencies_->waiting_head = head;
        for (std::uint32_t ep = 0; ep < max_entrypoints_; ++ep)
            waiting_counts_[ep].store(per_entrypoint[ep], std::memory_order_relaxed);
        dependencies_->waiting_total.store(total, std::memory_order_relaxed);
        for (std::uint32_t slot = 0; slot < n; ++slot)
            if (record(slot).dependents.load(std::memory_order_relaxed) != counts[slot])
                record(slot).dependents.store(counts[slot], std::memory_order_seq_cst);
        dependency_repaired_ = true;
        return true;
    } catch (...) {
        return false; // allocation: the next locker repeats the repair
    }
}

void QueueState::lower_dependents(std::uint32_t slot) noexcept {
    // Under [G] (or undoing our own raise): one pending edge naming this
    // slot's job was resolved. Saturates at 0: the producer of a new job in
    // the slot resets the count while the slot is reserved.
    if (slot >= arena_.slot_count()) return;
    std::atomic<std::uint32_t>& count = record(slot).dependents;
    std::uint32_t value = count.load(std::memory_order_relaxed);
    while (value != 0 && !count.compare_exchange_weak(value, value - 1, std::memory_order_seq_cst)) {
    }
}

DependencyEdge* QueueState::edge_at(std::uint32_t link) const noexcept {
    // nullptr for 0 and for a link out of range (a corrupt list).
    if (link == 0) return nullptr;
    const std::uint32_t slot = (link - 1) / max_dependencies, index = (link - 1) % max_dependencies;
    if (slot >= arena_.slot_count()) return nullptr;
    return &dependency_row(slot).edges[index];
}

void QueueState::dependents_push(std::uint32_t slot, std::uint32_t index) noexcept {
    // Under [G]: the pending edge `index` of the job in `slot` goes onto the
    // dependents list of its dependency's slot. A crash anywhere in here or
    // in dependents_remove leaves [G] to its repair, which rebuilds every
    // list from the waiting jobs' pending edges.
    DependencyEdge& edge = dependency_row(slot).edges[index];
    if (edge.slot >= arena_.slot_count()) return;
    DependencyRow& owner = dependency_row(edge.slot);
    const std::uint32_t link = edge_link(slot, index);
    edge.next = owner.first_dependent;
    edge.prev = 0;
    if (DependencyEdge* head = edge_at(owner.first_dependent)) head->prev = link;
    owner.first_dependent = link;
}

void QueueState::dependents_remove(std::uint32_t slot, std::uint32_t index) noexcept {
    // Under [G]: the edge leaves pending (resolved or abandoned), before the
    // job in `slot` can leave `waiting` (so before its row can be rewritten
    // by the slot's next producer). An edge not found where its links say
    // is a corrupt list: the next locker rebuilds them all.
    DependencyEdge& edge = dependency_row(slot).edges[index];
    if (edge.slot >= arena_.slot_count()) return;
    DependencyRow& owner = dependency_row(edge.slot);
    const std::uint32_t link = edge_link(slot, index);
    DependencyEdge* prev = edge_at(edge.prev);
    DependencyEdge* next = edge_at(edge.next);
    if (prev && prev->next == link) prev->next = edge.next;
    else if (!prev && owner.first_dependent == link) owner.first_dependent = edge.next;
    else {
        dependencies_->lock.request_repair();
        return;
    }
    if (next) next->prev = edge.prev;
    edge.next = edge.prev = 0;
}

void QueueState::waiting_unlink(std::uint32_t slot) noexcept {
    // Under [G].
    const std::uint32_t n = arena_.slot_count();
    DependencyRow& row = dependency_row(slot);
    if (row.waiting_prev < n) dependency_row(row.waiting_prev).waiting_next = row.waiting_next;
    else if (dependencies_->waiting_head == slot) dependencies_->waiting_head = row.waiting_next;
    else dependencies_->lock.request_repair();
    if (row.waiting_next < n) dependency_row(row.waiting_next).waiting_prev = row.waiting_prev;
    row.waiting_next = row.waiting_prev = shm::no_slot;
    const EntrypointId ep = record(slot).entrypoint;
    if (ep < max_entrypoints_) {
        const std::uint32_t waiting = waiting_counts_[ep].load(std::memory_order_relaxed);
        if (waiting > 0) waiting_counts_[ep].store(waiting - 1, std::memory_order_relaxed);
    }
    const std::uint32_t total = dependencies_->waiting_total.load(std::memory_order_relaxed);
    if (total > 0) dependencies_->waiting_total.store(total - 1, std::memory_order_relaxed);
}

void QueueState::abandon_edges(std::uint32_t slot) noexcept {
    // Under [G]: the job leaves `waiting` before these edges resolved; each
    // is marked first, then its count lowered (never below the truth).
    DependencyRow& row = dependency_row(slot);
    if (row.job_id.load(std::memory_order_acquire) != record(slot).job_id || row.count > max_dependencies) return;
    for (std::uint32_t i = 0; i < row.count; ++i) {
        DependencyEdge& edge = row.edges[i];
        if (EdgeOutcome(edge.outcome.load(std::memory_order_relaxed)) != EdgeOutcome::pending) continue;
        edge.outcome.store(std::uint32_t(EdgeOutcome::abandoned), std::memory_order_relaxed);
        dependents_remove(slot, i);
        if (edge.slot < arena_.slot_count() && record(edge.slot).job_id == edge.job_id) lower_dependents(edge.slot);
    }
}

bool QueueState::release_waiting_locked(std::uint32_t slot) noexcept {
    // Under [G]: every edge of the waiting job in slot succeeded.
    JobRecord& rec = record(slot);
    const EntrypointId ep = rec.entrypoint;
    if (ep >= entrypoint_count()) return false; // corrupt: doctor reports it
    EntrypointControl& c = entrypoints_[ep];
    try {
        lock_entrypoint(ep);
    } catch (...) {
        // Its edges left the lists: the next settle here walks every
        // waiting job, and so does the next [G] locker of any process (the
        // repair settles after its rebuild).
        settle_all_ = true;
        dependencies_->lock.request_repair();
        return false;
    }
    shm::LockHolder holder(c.lock);
    std::atomic<std::uint64_t>& state = arena_.state_word(slot);
    const std::uint64_t word = state.load(std::memory_order_acquire);
    if (StateWord::state(word) != SlotState::waiting) return false;
    waiting_unlink(slot);
    // A job that was due when it was enqueued (no execute_after, the common
    // case) is due now: no clock read. (A wall clock stepped back since
    // then does not make it delayed again.)
    const std::int64_t now_real =
        rec.execute_after_ns <= rec.enqueued_at_ns ? rec.enqueued_at_ns : shm::realtime_ns();
    const std::uint64_t new_word = StateWord::next(word, SlotState::queued, 0);
    // A crash from here: the entrypoint repair completes the log append if
    // the word is queued and rebuilds the lanes from the words; the [G]
    // repair lists the slot again if it is still waiting.
    begin_intent(c, slot, word, new_word);
    rec.sequence = c.next_sequence++; // FIFO from the moment it may run
    rec.lane_position = rec.lane_ring = rec.heap_position = shm::no_slot;
    const std::int64_t earliest_before = c.earliest_delayed_ns.load(std::memory_order_relaxed);
    const bool ready = place_queued(ep, slot, now_real);
    state.store(new_word, std::memory_order_release);
    shm::crash_point("dependency.released");
    append_log(ep, slot, new_word);
    if (ready) c.ready_count.store(c.ready_count.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    c.intent.active = 0;
    if (ready || c.earliest_delayed_ns.load(std::memory_order_relaxed) < earliest_before) settle_wakes_.push_back(ep);
    return true;
}

bool QueueState::cancel_waiting_locked(std::uint32_t slot, std::string_view reason) noexcept {
    // Under [G]: the waiting job in slot ends `canceled` (a dependency
    // failed, or Queue::cancel); reason goes to its outcome area.
    JobRecord& rec = record(slot);
    const EntrypointId ep = rec.entrypoint;
    if (ep >= entrypoint_count()) return false;
    EntrypointControl& c = entrypoints_[ep];
    try {
        lock_entrypoint(ep);
    } catch (...) {
        settle_all_ = true; // as in release_waiting_locked
        dependencies_->lock.request_repair();
        return false;
    }
    {
        shm::LockHolder holder(c.lock);
        std::atomic<std::uint64_t>& state = arena_.state_word(slot);
        const std::uint64_t word = state.load(std::memory_order_acquire);
        if (StateWord::state(word) != SlotState::waiting) return false;
        abandon_edges(slot);
        waiting_unlink(slot);
        const bool keep_result = c.result_retention_ns.load(std::memory_order_relaxed) > 0;
        if (!keep_result && Durability(c.durability.load(std::memory_order_relaxed)) == Durability::memory) {
            // Reserved by the settling owner until freed after [G] (its own
            // dependents are settled first); last_* before the word, like
            // every memory finisher, so they read it canceled.
            const std::uint32_t owner = settle_owner_ ? settle_owner_ : my_tag();
            const std::uint64_t new_word = StateWord::next(word, SlotState::reserved, owner);
            if (!reason.empty()) write_error_locked(slot, rec.job_id, StateWord::epoch(new_word), reason);
            set_last(rec, rec.job_id, std::uint32_t(JobStatus::canceled));
            state.store(new_word, std::memory_order_seq_cst);
            commit_last(rec, rec.job_id, std::uint32_t(JobStatus::canceled)); // reserved by us: ours
            shm::crash_point("dependency.canceled"); // reserved by us: our reaper settles, then frees it
            settle_release_.push_back(slot);
        } else {
            const std::uint64_t new_word = StateWord::next(word, SlotState::canceled, 0);
            begin_intent(c, slot, word, new_word);
            if (!reason.empty()) write_error_locked(slot, rec.job_id, StateWord::epoch(new_word), reason);
            if (keep_result) prepare_kept_result(c, slot, new_word);
            state.store(new_word, std::memory_order_seq_cst);
            shm::crash_point("dependency.canceled"); // the entrypoint repair appends the intent's record
            append_log(ep, slot, new_word);
            c.intent.active = 0;
        }
        c.retired_counters[counter_canceled].fetch_add(1, std::memory_order_relaxed);
    }
    note_completion(slot); // Queue::wait sleepers; its own dependents are settled by the next pass
    return true;
}

void QueueState::settle_locked() noexcept {
    // Under [G]. Bounded: each pass that changes something moves at least
    // one waiting job out of `waiting`.
    const std::uint32_t n = arena_.slot_count();
    settle_all_ = false; // set again by a move that fails below
    for (std::uint32_t pass = 0; pass <= n; ++pass) {
        settle_wanted_ = false;
        bool changed = false;
        // Jobs a pass releases are released after the walk in the order
        // they were enqueued (entrypoint, then the order in which they
        // started waiting, DependencyRow::wait_order): the list is newest first, and a batch
        // waiting for one job should run in its order. If collecting fails
        // (allocation), a job is released where the walk finds it.
        settle_ready_.clear();
        std::uint32_t slot = dependencies_->waiting_head;
        for (std::uint32_t walked = 0; slot != shm::no_slot; ++walked) {
            if (slot >= n || walked > n) {
                dependencies_->lock.request_repair(); // a corrupt list: the next locker rebuilds it
                return;
            }
            DependencyRow& row = dependency_row(slot);
            const std::uint32_t next = row.waiting_next;
            const JobRecord& rec = record(slot);
            if (StateWord::state(arena_.state_word(slot).load(std::memory_order_acquire)) != SlotState::waiting) {
                dependencies_->lock.request_repair();
                slot = next;
                continue;
            }
            if (row.job_id.load(std::memory_order_acquire) != rec.job_id || row.count == 0 ||
                row.count > max_dependencies) {
                dependencies_->lock.request_repair(); // its edges may sit on dependents lists: rebuild them
                changed |= cancel_waiting_locked(slot, "canceled: its dependency record is corrupt");
                slot = next;
                continue;
            }
            std::uint32_t pending = 0;
            const DependencyEdge* failed = nullptr;
            EdgeOutcome failed_how = EdgeOutcome::pending;
            for (std::uint32_t i = 0; i < row.count; ++i) {
                DependencyEdge& edge = row.edges[i];
                EdgeOutcome outcome = EdgeOutcome(edge.outcome.load(std::memory_order_relaxed));
                if (outcome == EdgeOutcome::pending) {
                    std::uint64_t word = 0;
                    DependencyState how = classify(arena_, edge.slot, edge.job_id, true, word);
                    JobStatus ended = JobStatus::unknown;
                    // Its slot moved on twice (a finisher killed before its
                    // settle, reaped late): the recent outcomes may know.
                    if (how == DependencyState::unknown &&
                        recorded_end(edge.job_id, ended) == EndedLookup::found)
                        how = from_status(std::uint32_t(ended));
                    outcome = outcome_for(how);
                    if (outcome == EdgeOutcome::pending) {
                        ++pending;
                        continue;
                    }
                    edge.outcome.store(std::uint32_t(outcome), std::memory_order_relaxed);
                    shm::crash_point("dependency.resolved"); // count too high, still listed: the repair rebuilds
                    dependents_remove(slot, i);
                    if (edge.slot < n && record(edge.slot).job_id == edge.job_id) lower_dependents(edge.slot);
                }
                if (outcome != EdgeOutcome::successful && !failed) {
                    failed = &edge;
                    failed_how = outcome;
                }
            }
            if (failed) {
                std::string reason;
                try {
                    reason = reason_for(*failed, failed_how);
                } catch (...) {
                }
                changed |= cancel_waiting_locked(slot, reason);
            } else if (pending == 0) {
                try {
                    settle_ready_.push_back(slot);
                } catch (...) {
                    changed |= release_waiting_locked(slot);
                }
            }
            slot = next;
        }
        // wait_order wraps at 2^32: compared by difference (fewer jobs than
        // that wait at once).
        if (settle_ready_.size() > 1)
            std::sort(settle_ready_.begin(), settle_ready_.end(), [this](std::uint32_t a, std::uint32_t b) {
                const std::uint32_t ea = record(a).entrypoint, eb = record(b).entrypoint;
                if (ea != eb) return ea < eb;
                return std::int32_t(dependency_row(a).wait_order - dependency_row(b).wait_order) < 0;
            });
        // Still waiting (nobody else moves a job out of `waiting` without
        // [G], which we hold): release_waiting_locked checks the word again.
        for (std::uint32_t ready : settle_ready_) changed |= release_waiting_locked(ready);
        settle_ready_.clear();
        if (!changed) break;
    }
    // Every waiting job was looked at: the noted targets are settled too.
    settle_slots_.clear();
}

void QueueState::settle_targets_locked() noexcept {
    // Under [G]. The finishers of the slots in settle_slots_ saw their
    // `dependents` count above 0 (D3): every pending edge naming their jobs
    // is on those slots' dependents lists (D6), so resolving the lists'
    // edges settles what those ends moved, without walking every waiting
    // job. Jobs it cancels are appended by their note_completion, so a
    // cancellation cascades through their lists too. Anything unexpected
    // (an edge still pending, a corrupt list or row, no room to collect)
    // falls back to settle_locked, which works from every waiting job and
    // is always right; so is this, only narrower (D5).
    settle_wanted_ = false;
    settle_ready_.clear();
    const std::uint32_t n = arena_.slot_count();
    bool full = settle_all_;
    for (std::size_t k = 0; k < settle_slots_.size() && !full; ++k) {
        const std::uint32_t target = settle_slots_[k];
        if (target >= n) continue;
        // Every step resolves the list's first edge and so removes it (or
        // falls back): start from the head again each time, since a
        // cancellation may remove other edges of this list too.
        for (std::uint32_t steps = 0; !full; ++steps) {
            const std::uint32_t link = dependency_row(target).first_dependent;
            if (link == 0) {
                // Its finisher saw a count above 0 but the list held nothing
                // (a count above the truth, or a list that lost an edge):
                // look at every waiting job, unless this slot was noted
                // twice and its list settled already.
                if (steps == 0 &&
                    std::find(settle_slots_.begin(), settle_slots_.begin() + std::ptrdiff_t(k), target) ==
                        settle_slots_.begin() + std::ptrdiff_t(k))
                    full = true;
                break;
            }
            DependencyEdge* found = edge_at(link);
            const std::uint32_t slot = (link - 1) / max_dependencies, index = (link - 1) % max_dependencies;
            DependencyRow& row = dependency_row(slot);
            const JobRecord& rec = record(slot);
            if (!found || steps > n * max_dependencies || found->slot != target || found->prev != 0 ||
                EdgeOutcome(found->outcome.load(std::memory_order_relaxed)) != EdgeOutcome::pending ||
                StateWord::state(arena_.state_word(slot).load(std::memory_order_acquire)) != SlotState::waiting ||
                row.job_id.load(std::memory_order_acquire) != rec.job_id || index >= row.count ||
                row.count > max_dependencies) {
                dependencies_->lock.request_repair(); // the next locker rebuilds the lists
                full = true;
                break;
            }
            DependencyEdge& edge = *found;
            std::uint64_t word = 0;
            DependencyState how = classify(arena_, edge.slot, edge.job_id, true, word);
            JobStatus ended = JobStatus::unknown;
            if (how == DependencyState::unknown && recorded_end(edge.job_id, ended) == EndedLookup::found)
                how = from_status(std::uint32_t(ended));
            const EdgeOutcome outcome = outcome_for(how);
            if (outcome == EdgeOutcome::pending) {
                // A newer job in the slot (its predecessor's slot moved on
                // before this settle), or a word moving too fast to read:
                // the full settle decides the same from the truth, and
                // looks at everything else as well.
                full = true;
                break;
            }
            edge.outcome.store(std::uint32_t(outcome), std::memory_order_relaxed);
            shm::crash_point("dependency.resolved"); // count too high, still listed: the repair rebuilds
            dependents_remove(slot, index);
            if (record(target).job_id == edge.job_id) lower_dependents(target);
            // The dependent: released once nothing is pending, canceled if
            // an edge failed (as settle_locked decides).
            std::uint32_t pending = 0;
            const DependencyEdge* failed = nullptr;
            EdgeOutcome failed_how = EdgeOutcome::pending;
            for (std::uint32_t i = 0; i < row.count; ++i) {
                const EdgeOutcome o = EdgeOutcome(row.edges[i].outcome.load(std::memory_order_relaxed));
                if (o == EdgeOutcome::pending) ++pending;
                else if (o != EdgeOutcome::successful && !failed) {
                    failed = &row.edges[i];
                    failed_how = o;
                }
            }
            if (failed) {
                std::string reason;
                try {
                    reason = reason_for(*failed, failed_how);
                } catch (...) {
                }
                // Its note_completion appends its slot if others wait for it.
                if (!cancel_waiting_locked(slot, reason)) full = true;
            } else if (pending == 0) {
                try {
                    settle_ready_.push_back(slot);
                } catch (...) {
                    full = true; // settle_locked releases it
                }
            }
        }
    }
    if (full) {
        settle_ready_.clear();
        settle_locked(); // clears the targets
        return;
    }
    // In the order they started waiting, per entrypoint (as settle_locked).
    if (settle_ready_.size() > 1)
        std::sort(settle_ready_.begin(), settle_ready_.end(), [this](std::uint32_t a, std::uint32_t b) {
            const std::uint32_t ea = record(a).entrypoint, eb = record(b).entrypoint;
            if (ea != eb) return ea < eb;
            return std::int32_t(dependency_row(a).wait_order - dependency_row(b).wait_order) < 0;
        });
    // (A release that cannot take [E] sets settle_all_: the next settle walks
    // every waiting job.)
    for (std::uint32_t ready : settle_ready_) release_waiting_locked(ready);
    settle_ready_.clear();
    settle_slots_.clear();
}

void QueueState::settle_dependencies(bool full) noexcept {
    if (settling_) return; // the running settle loops until nothing moves
    settling_ = true;
    try {
        lock_dependencies();
        shm::LockHolder holder(dependencies_->lock);
        if (full || settle_all_) settle_locked();
        else settle_targets_locked();
    } catch (...) {
        // [G] unavailable (repair failed): settle_wanted_ stays set; the
        // next settle, the reaper or doctor do it.
    }
    settling_ = false;
    flush_settled();
}

void QueueState::flush_settled() noexcept {
    // After [G]: wake sleepers for released jobs, free canceled memory jobs.
    if (settle_wakes_.size() == 1) {
        // One released job's entrypoint (the common case): no sort, no swap.
        const EntrypointId ep = settle_wakes_[0];
        settle_wakes_.clear(); // before the wake: a wake may reap and settle again
        wake_sleepers(ep, 1);
    } else if (!settle_wakes_.empty()) {
        std::vector<EntrypointId> wakes;
        wakes.swap(settle_wakes_);
        std::sort(wakes.begin(), wakes.end());
        for (std::size_t i = 0; i < wakes.size();) {
            std::size_t j = i;
            while (j < wakes.size() && wakes[j] == wakes[i]) ++j;
            wake_sleepers(wakes[i], std::uint32_t(j - i));
            i = j;
        }
        // Keep the capacity (a wake may have reaped and settled meanwhile:
        // then its list stays).
        wakes.clear();
        if (settle_wakes_.empty()) settle_wakes_.swap(wakes);
    }
    if (!settle_release_.empty()) {
        std::vector<std::uint32_t> slots;
        slots.swap(settle_release_);
        release_slots(slots, settle_owner_ ? settle_owner_ : my_tag());
        slots.clear();
        if (settle_release_.empty()) settle_release_.swap(slots);
    }
}

// ------------------------------------------------------------ enqueue

void QueueState::publish_dependent(EntrypointId ep, std::uint32_t slot, const EnqueueOptions& options,
                                   std::int64_t now_real, std::uint64_t& last_sequence) {
    JobRecord& rec = record(slot);
    const JobId self = rec.job_id;
    // Sorted and deduplicated on the stack (validate_dependencies bounded
    // the distinct ids): no allocation per enqueue.
    JobId sorted[max_dependencies];
    std::size_t distinct = 0;
    for (JobId id : options.depends_on) {
        if (std::find(sorted, sorted + distinct, id) != sorted + distinct) continue;
        if (distinct == max_dependencies)
            throw Error(Errc::invalid_argument, describe(ep) + ": a job may have at most " +
                                                    std::to_string(max_dependencies) + " dependencies");
        sorted[distinct++] = id;
    }
    if (distinct > 1) std::sort(sorted, sorted + distinct);
    const std::span<const JobId> ids(sorted, distinct);
    for (JobId id : ids)
        if (id == self)
            throw Error(Errc::invalid_argument, describe(ep) + ": job " + std::to_string(id) +
                                                    " cannot depend on itself");
    // The slot is reserved by us: nobody reads the row while the job is
    // not published (the [G] repair reads only waiting slots' rows).
    DependencyRow& row = dependency_row(slot);
    row.count = std::uint32_t(ids.size());
    row.waiting_next = row.waiting_prev = shm::no_slot;
    for (std::uint32_t i = 0; i < row.count; ++i) {
        row.edges[i].job_id = ids[i];
        row.edges[i].slot = shm::no_slot;
        row.edges[i].outcome.store(std::uint32_t(EdgeOutcome::pending), std::memory_order_relaxed);
        row.edges[i].next = row.edges[i].prev = 0; // on no list until linked under [G]
    }
    row.job_id.store(self, std::memory_order_release);

    // Without [G] first: if every dependency has already ended successful
    // (a final state: nothing moves a successful job anywhere but out of
    // its slot, and the slot or the recent outcomes keep saying so), there
    // is no edge to count, nothing to settle and no move out of `waiting`,
    // so the job is published as a plain one. Anything else (pending,
    // failed, unknown, a classification that could not settle) takes the
    // locked path below, which classifies again from scratch, except for a
    // dependency found pending here: its slot and state word are kept, and
    // the locked path's raise re-reads that word (see the top), so the
    // classification stands only if the job has not moved since (every
    // transition bumps the word's 44-bit epoch).
    std::uint32_t known_target[max_dependencies];
    std::uint64_t known_word[max_dependencies];
    bool known_pending[max_dependencies] = {};
    {
        std::uint32_t targets[max_dependencies];
        bool all_succeeded = true;
        for (std::uint32_t i = 0; i < row.count && all_succeeded; ++i) {
            const JobId id = row.edges[i].job_id;
            JobStatus ended_early = JobStatus::unknown;
            std::uint32_t target = find_job_slot(id, &ended_early);
            std::uint64_t word = 0;
            DependencyState how = target != shm::no_slot ? classify(arena_, target, id, false, word)
                                  : ended_early != JobStatus::unknown ? from_status(std::uint32_t(ended_early))
                                                                      : DependencyState::unknown;
            if (how == DependencyState::unknown) {
                JobStatus ended = JobStatus::unknown;
                if (recorded_end(id, ended) == EndedLookup::found) how = from_status(std::uint32_t(ended));
                target = shm::no_slot;
            }
            all_succeeded = how == DependencyState::successful;
            targets[i] = target;
            if (how == DependencyState::pending) {
                known_pending[i] = true;
                known_target[i] = target;
                known_word[i] = word;
            }
        }
        if (all_succeeded) {
            for (std::uint32_t i = 0; i < row.count; ++i) {
                row.edges[i].slot = targets[i];
                row.edges[i].outcome.store(std::uint32_t(EdgeOutcome::successful), std::memory_order_relaxed);
            }
            publish(ep, {&slot, 1}, options, now_real, last_sequence);
            return;
        }
    }

    lock_dependencies();
    shm::LockHolder holder(dependencies_->lock);
    // On a throw: our raises are undone (a crash instead: the [G] repair
    // recounts from waiting jobs only, and this one never waited).
    auto unlink_all = [&]() noexcept {
        for (std::uint32_t i = 0; i < row.count; ++i)
            if (EdgeOutcome(row.edges[i].outcome.load(std::memory_order_relaxed)) == EdgeOutcome::pending &&
                row.edges[i].slot != shm::no_slot) {
                dependents_remove(slot, i);
                lower_dependents(row.edges[i].slot);
            }
        row.job_id.store(0, std::memory_order_relaxed);
    };
    const DependencyEdge* failed = nullptr;
    EdgeOutcome failed_how = EdgeOutcome::pending;
    bool any_pending = false;
    try {
        for (std::uint32_t i = 0; i < row.count; ++i) {
            DependencyEdge& edge = row.edges[i];
            for (int attempt = 0;; ++attempt) {
                const bool known = attempt == 0 && known_pending[i];
                JobStatus ended_early = JobStatus::unknown;
                std::uint32_t target = known ? known_target[i] : find_job_slot(edge.job_id, &ended_early);
                std::uint64_t word = known ? known_word[i] : 0;
                DependencyState how = known                     ? DependencyState::pending
                                      : target != shm::no_slot ? classify(arena_, target, edge.job_id, false, word)
                                      : ended_early != JobStatus::unknown ? from_status(std::uint32_t(ended_early))
                                                                          : DependencyState::unknown;
                if (how == DependencyState::unknown) {
                    // Not in a slot (any more): the recent outcomes know
                    // how it ended, or say why they cannot.
                    JobStatus ended = JobStatus::unknown;
                    const EndedLookup found = recorded_end(edge.job_id, ended);
                    if (found != EndedLookup::found)
                        throw Error(Errc::not_found, describe(ep) + ": dependency job " + std::to_string(edge.job_id) +
                                                         unknown_dependency(found) + "; nothing was enqueued");
                    how = from_status(std::uint32_t(ended));
                    target = shm::no_slot; // resolved now: no edge to count
                }
                if (attempt > 64)
                    throw Error(Errc::not_found, describe(ep) + ": dependency job " + std::to_string(edge.job_id) +
                                                " changed state too fast to be read; nothing was enqueued");
                if (how != DependencyState::pending) {
                    edge.slot = target;
                    edge.outcome.store(std::uint32_t(outcome_for(how)), std::memory_order_relaxed);
                    if (how != DependencyState::successful && !failed) {
                        failed = &edge;
                        failed_how = outcome_for(how);
                    }
                    break;
                }
                // Pending: raise, then re-read the word (see the top).
                record(target).dependents.fetch_add(1, std::memory_order_seq_cst);
                if (arena_.state_word(target).load(std::memory_order_seq_cst) != word) {
                    lower_dependents(target);
                    continue;
                }
                edge.slot = target;
                dependents_push(slot, i); // D6: a finisher of target settles it from there
                any_pending = true;
                shm::crash_point("dependency.linked"); // listed, counted, reserved: the repair drops both
                break;
            }
        }
    } catch (...) {
        unlink_all();
        throw;
    }
    if (!failed && !any_pending) {
        // Every dependency had succeeded: a plain job. [G] first (publish
        // wakes sleepers, which may reap, which takes [G]).
        holder.release();
        flush_settled();
        publish(ep, {&slot, 1}, options, now_real, last_sequence);
        return;
    }
    EntrypointControl& c = entrypoints_[ep];
    std::atomic<std::uint64_t>& state = arena_.state_word(slot);
    if (failed) {
        // A dependency had already failed: the job ends `canceled` at once.
        for (std::uint32_t i = 0; i < row.count; ++i) {
            DependencyEdge& edge = row.edges[i];
            if (EdgeOutcome(edge.outcome.load(std::memory_order_relaxed)) != EdgeOutcome::pending) continue;
            edge.outcome.store(std::uint32_t(EdgeOutcome::abandoned), std::memory_order_relaxed);
            dependents_remove(slot, i);
            lower_dependents(edge.slot);
        }
        const std::string reason = reason_for(*failed, failed_how);
        {
            lock_entrypoint(ep);
            shm::LockHolder entrypoint_holder(c.lock);
            const std::uint64_t word = state.load(std::memory_order_relaxed);
            rec.sequence = c.next_sequence++;
            const bool keep_result = c.result_retention_ns.load(std::memory_order_relaxed) > 0;
            if (!keep_result && Durability(c.durability.load(std::memory_order_relaxed)) == Durability::memory) {
                // Still reserved by us: it only needs its status and reason.
                write_error_locked(slot, self, StateWord::epoch(word) + 1, reason);
                set_last(rec, self, std::uint32_t(JobStatus::canceled));
                commit_last(rec, self, std::uint32_t(JobStatus::canceled));
                settle_release_.push_back(slot);
            } else {
                const std::uint64_t new_word = StateWord::next(word, SlotState::canceled, 0);
                begin_intent(c, slot, word, new_word);
                write_error_locked(slot, self, StateWord::epoch(new_word), reason);
                if (keep_result) prepare_kept_result(c, slot, new_word);
                state.store(new_word, std::memory_order_seq_cst);
                append_log(ep, slot, new_word);
                c.intent.active = 0;
            }
            last_sequence = c.log_written;
        }
        count(ep, counter_enqueued);
        count(ep, counter_canceled);
        holder.release();
        flush_settled();
        return;
    }
    // [G]: the order in which jobs started waiting (queue-wide), which a
    // settle releases jobs of one entrypoint in (settle_locked).
    row.wait_order = dependencies_->next_wait_order++;
    if (Durability(c.durability.load(std::memory_order_relaxed)) == Durability::memory) {
        // No log record to write, and a waiting job is in no entrypoint
        // index: the move reserved -> waiting needs no [E] (only moves out
        // of `waiting` do, D1). A crash after the store: the [G] repair
        // lists the slot and counts its edges, as below. (The durability is
        // read without [E], as the lock-free ack reads it: an entrypoint
        // redeclared durable at this instant misses this job's `waiting`
        // record, and the mirror learns it from its next one.)
        const std::uint64_t word = state.load(std::memory_order_relaxed);
        // Release: the row and record were written before. Nothing pairs
        // with this store through a seq_cst load (no edge names this job
        // yet; a linker's re-read pairs with finishers' CASes only).
        state.store(StateWord::next(word, SlotState::waiting, 0), std::memory_order_release);
        shm::crash_point("dependency.waiting");
    } else {
        lock_entrypoint(ep);
        shm::LockHolder entrypoint_holder(c.lock);
        const std::uint64_t word = state.load(std::memory_order_relaxed);
        const std::uint64_t new_word = StateWord::next(word, SlotState::waiting, 0);
        // A crash from here: the entrypoint repair appends the intent's
        // record if the word is waiting; the [G] repair lists the slot and
        // counts its edges (or, if it is still reserved, its reaper frees it
        // and the recount drops our raises).
        begin_intent(c, slot, word, new_word);
        rec.sequence = c.next_sequence++;
        state.store(new_word, std::memory_order_seq_cst);
        shm::crash_point("dependency.waiting");
        append_log(ep, slot, new_word);
        c.intent.active = 0;
        last_sequence = c.log_written;
    }
    // [G]: onto the waiting list.
    const std::uint32_t head = dependencies_->waiting_head;
    row.waiting_next = head;
    row.waiting_prev = shm::no_slot;
    if (head < arena_.slot_count()) dependency_row(head).waiting_prev = slot;
    dependencies_->waiting_head = slot;
    waiting_counts_[ep].store(waiting_counts_[ep].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    dependencies_->waiting_total.store(dependencies_->waiting_total.load(std::memory_order_relaxed) + 1,
                                       std::memory_order_relaxed);
    count(ep, counter_enqueued);
    // A dependency may have ended between its classification and now
    // (its finisher then waits for [G] and settles); nothing else to do.
    holder.release();
    flush_settled();
}

std::size_t QueueState::enqueue_dependents(EntrypointId ep, std::span<const std::span<const std::byte>> payloads,
                                           std::span<JobId> ids, const EnqueueOptions& options, std::int64_t now_real) {
    // One job at a time ([G] per job): jobs with dependencies are not the
    // batch fast path.
    std::size_t done = 0;
    const bool sync = Durability(entrypoints_[ep].durability.load(std::memory_order_relaxed)) == Durability::sync;
    for (; done < payloads.size(); ++done) {
        std::uint32_t slot = 0;
        try {
            slot = take_slot(done == 0 ? std::int64_t(options.arena_wait.count()) * 1'000'000 : 0);
        } catch (const Error&) {
            if (done == 0) throw;
            break;
        }
        const auto& payload = payloads[done];
        if (!payload.empty()) std::memcpy(arena_.payload(slot), payload.data(), payload.size());
        const JobId id = next_job_id();
        prepare_record(slot, ep, id, payload.size(), options, now_real);
        std::uint64_t sequence = 0;
        try {
            publish_dependent(ep, slot, options, now_real, sequence);
        } catch (const Error&) {
            give_back_slot(slot);
            if (done == 0) throw;
            break;
        }
        ids[done] = id;
        if (sync) wait_for_mirror(ep, sequence, id, options);
    }
    return done;
}

CancelOutcome QueueState::cancel_waiting(std::uint32_t slot, JobId id) {
    bool canceled = false, moved = false;
    settling_ = true; // the settle below runs here, under [G]
    try {
        lock_dependencies();
        shm::LockHolder holder(dependencies_->lock);
        if (record(slot).job_id != id ||
            StateWord::state(arena_.state_word(slot).load(std::memory_order_acquire)) != SlotState::waiting) {
            moved = true; // released or canceled meanwhile: look again
        } else {
            canceled = cancel_waiting_locked(slot, {});
            settle_locked(); // the jobs waiting for it end canceled too
        }
    } catch (...) {
        settling_ = false;
        flush_settled();
        throw;
    }
    settling_ = false;
    flush_settled();
    if (moved) return cancel(id);
    return canceled ? CancelOutcome::canceled : CancelOutcome::not_cancelable;
}

// ------------------------------------------------------------ doctor

void QueueState::check_dependencies(std::vector<std::string>& problems) {
    settling_ = true;
    try {
        lock_dependencies();
        shm::LockHolder holder(dependencies_->lock);
        settle_locked(); // a finisher between its CAS and its settle is not a problem
        const std::uint32_t n = arena_.slot_count();
        std::vector<std::uint8_t> listed(n, 0);
        std::vector<std::uint32_t> pending_on(n, 0), per_entrypoint(max_entrypoints_, 0);
        std::uint32_t total = 0, previous = shm::no_slot;
        for (std::uint32_t slot = dependencies_->waiting_head; slot != shm::no_slot;
             slot = dependency_row(slot).waiting_next) {
            if (slot >= n) { problems.push_back("dependencies: waiting list link out of range"); break; }
            if (listed[slot]) { problems.push_back("dependencies: waiting list has a cycle"); break; }
            listed[slot] = 1;
            if (dependency_row(slot).waiting_prev != previous)
                problems.push_back("dependencies: waiting list back link broken at slot " + std::to_string(slot));
            previous = slot;
        }
        for (std::uint32_t slot = 0; slot < n; ++slot) {
            const bool waiting =
                StateWord::state(arena_.state_word(slot).load(std::memory_order_acquire)) == SlotState::waiting;
            if (waiting != bool(listed[slot]))
                problems.push_back("dependencies: slot " + std::to_string(slot) +
                                   (waiting ? " is waiting but not on the waiting list" : " is on the waiting list but not waiting"));
            if (!waiting) continue;
            ++total;
            const JobRecord& rec = record(slot);
            if (rec.entrypoint < max_entrypoints_) ++per_entrypoint[rec.entrypoint];
            const DependencyRow& row = dependency_row(slot);
            if (row.job_id.load(std::memory_order_acquire) != rec.job_id || row.count == 0 ||
                row.count > max_dependencies) {
                problems.push_back("dependencies: waiting job " + std::to_string(rec.job_id) +
                                   " has no sound dependency row");
                continue;
            }
            std::uint32_t pending = 0;
            for (std::uint32_t i = 0; i < row.count; ++i) {
                const DependencyEdge& edge = row.edges[i];
                if (EdgeOutcome(edge.outcome.load(std::memory_order_relaxed)) != EdgeOutcome::pending) continue;
                ++pending;
                std::uint64_t word = 0;
                if (classify(arena_, edge.slot, edge.job_id, true, word) != DependencyState::pending)
                    problems.push_back("dependencies: waiting job " + std::to_string(rec.job_id) +
                                       " still waits on job " + std::to_string(edge.job_id) + ", which ended");
                if (edge.slot < n && record(edge.slot).job_id == edge.job_id) ++pending_on[edge.slot];
            }
            if (pending == 0)
                problems.push_back("dependencies: waiting job " + std::to_string(rec.job_id) +
                                   " has no pending dependency left");
        }
        // The dependents lists (D6): each holds exactly the pending edges of
        // waiting jobs that name its slot, with sound back links.
        std::vector<std::uint8_t> on_list(std::size_t(n) * max_dependencies, 0);
        for (std::uint32_t owner = 0; owner < n; ++owner) {
            std::uint32_t previous_link = 0;
            std::size_t walked = 0;
            for (std::uint32_t link = dependency_row(owner).first_dependent; link != 0;) {
                const DependencyEdge* edge = edge_at(link);
                if (!edge) {
                    problems.push_back("dependencies: dependents list of slot " + std::to_string(owner) +
                                       " links out of range");
                    break;
                }
                const std::uint32_t dependent = (link - 1) / max_dependencies, index = (link - 1) % max_dependencies;
                if (on_list[link - 1] || ++walked > on_list.size()) {
                    problems.push_back("dependencies: dependents list of slot " + std::to_string(owner) +
                                       " has a cycle or shares an edge");
                    break;
                }
                on_list[link - 1] = 1;
                const DependencyRow& row = dependency_row(dependent);
                const bool sound =
                    StateWord::state(arena_.state_word(dependent).load(std::memory_order_acquire)) == SlotState::waiting &&
                    row.job_id.load(std::memory_order_acquire) == record(dependent).job_id && index < row.count &&
                    row.count <= max_dependencies &&
                    EdgeOutcome(edge->outcome.load(std::memory_order_relaxed)) == EdgeOutcome::pending &&
                    edge->slot == owner;
                if (!sound)
                    problems.push_back("dependencies: dependents list of slot " + std::to_string(owner) +
                                       " holds an edge of slot " + std::to_string(dependent) +
                                       " that is not a pending edge naming it");
                if (edge->prev != previous_link)
                    problems.push_back("dependencies: dependents list of slot " + std::to_string(owner) +
                                       " back link broken at an edge of slot " + std::to_string(dependent));
                previous_link = link;
                link = edge->next;
            }
        }
        for (std::uint32_t slot = 0; slot < n; ++slot) {
            if (StateWord::state(arena_.state_word(slot).load(std::memory_order_acquire)) != SlotState::waiting)
                continue;
            const DependencyRow& row = dependency_row(slot);
            if (row.job_id.load(std::memory_order_acquire) != record(slot).job_id || row.count > max_dependencies)
                continue; // reported above
            for (std::uint32_t i = 0; i < row.count; ++i)
                if (EdgeOutcome(row.edges[i].outcome.load(std::memory_order_relaxed)) == EdgeOutcome::pending &&
                    row.edges[i].slot < n && !on_list[std::size_t(slot) * max_dependencies + i])
                    problems.push_back("dependencies: waiting job " + std::to_string(record(slot).job_id) +
                                       " waits on job " + std::to_string(row.edges[i].job_id) +
                                       " but is not on its dependents list");
        }
        for (std::uint32_t slot = 0; slot < n; ++slot)
            if (record(slot).dependents.load(std::memory_order_seq_cst) < pending_on[slot])
                problems.push_back("dependencies: job " + std::to_string(record(slot).job_id) + " has " +
                                   std::to_string(record(slot).dependents.load()) + " dependents counted but " +
                                   std::to_string(pending_on[slot]) + " waiting on it");
        // Recent outcomes: each entry sits where its id maps and names an
        // id the queue has issued (a wrong entry would answer for another job).
        const std::uint64_t issued = segment_.header().next_job_counter.load(std::memory_order_acquire);
        for (std::uint32_t i = 0; i < ended_capacity_; ++i) {
            const std::uint64_t entry = ended_[i].load(std::memory_order_relaxed);
            if (entry == 0) continue;
            const std::uint64_t counter = entry >> 2;
            if (ended_index(counter, ended_capacity_) != i || counter >= issued)
                problems.push_back("dependencies: recent outcome entry " + std::to_string(i) + " names id counter " +
                                   std::to_string(counter) + ", which does not belong there");
        }
        if (dependencies_->waiting_total.load(std::memory_order_relaxed) != total)
            problems.push_back("dependencies: waiting total " +
                               std::to_string(dependencies_->waiting_total.load(std::memory_order_relaxed)) +
                               " but " + std::to_string(total) + " jobs waiting");
        for (std::uint32_t ep = 0; ep < max_entrypoints_; ++ep)
            if (waiting_counts_[ep].load(std::memory_order_relaxed) != per_entrypoint[ep])
                problems.push_back("dependencies: " +
                                   (ep < entrypoint_count() ? describe(ep) : "entrypoint #" + std::to_string(ep)) +
                                   ": waiting count " +
                                   std::to_string(waiting_counts_[ep].load(std::memory_order_relaxed)) + " but " +
                                   std::to_string(per_entrypoint[ep]) + " jobs waiting");
    } catch (...) {
        settling_ = false;
        flush_settled();
        throw;
    }
    settling_ = false;
    flush_settled();
}

} // namespace currant::detail
