// An entrypoint's derived indexes, all guarded by its lock [E]:
//   * ready lanes: one FIFO per distinct priority, each a ring of slot
//     indices (a ring per lane, positions recorded in the slots'
//     lane_position/lane_ring), lanes sorted by priority (highest first);
//   * the delayed heap: a binary min-heap on (execute_after, sequence) of
//     queued jobs not yet due, each slot knowing its heap position;
//   * the transition log (append only while durability is not `memory`).
// The slots' state words are the truth. After a dead lock owner the repair
// finishes the intent's log append, then throws every index away and
// rebuilds it from the state words, so it is idempotent and may itself be
// interrupted by a crash and repeated.
#include <algorithm>
#include <vector>

#include "currant/shm/clock.hpp"
#include "currant/shm/crash_point.hpp"
#include "queue_state.hpp"

namespace currant::detail {

using shm::SlotState;
using shm::StateWord;

void QueueState::lock_entrypoint(EntrypointId ep) {
    EntrypointControl& c = entrypoints_[ep];
    c.lock.lock([this, ep]() noexcept { return repair_entrypoint(ep); });
    // The counts that index fixed arrays are checked at every lock: a
    // corrupt one is rebuilt from the state words, never followed.
    if (c.lane_count > max_priority_lanes || c.delayed_count > arena_.slot_count()) [[unlikely]] {
        if (!repair_entrypoint(ep)) {
            c.lock.request_repair();
            c.lock.unlock();
            throw Error(Errc::repair_failed, describe(ep) + ": rebuilding a corrupt index failed; the next locker retries");
        }
    }
}

[[noreturn]] static void corrupt(shm::RobustMutex& lock, const std::string& what) {
    lock.request_repair();
    throw Error(Errc::corrupt_segment, what + "; the next locker rebuilds the index (run `currant doctor`)");
}

PriorityLane* QueueState::lane_for(EntrypointControl& c, std::int32_t priority, bool create) {
    std::uint32_t count = std::min(c.lane_count, max_priority_lanes);
    std::uint32_t i = 0;
    while (i < count && c.lanes[i].priority > priority) ++i;
    if (i < count && c.lanes[i].priority == priority) return &c.lanes[i];
    if (!create || count == max_priority_lanes) return nullptr;
    // The new lane takes a ring no other lane uses (count < 32, so one is free).
    std::uint32_t used = 0;
    for (std::uint32_t j = 0; j < count; ++j)
        if (c.lanes[j].ring < max_priority_lanes) used |= std::uint32_t(1) << c.lanes[j].ring;
    const std::uint32_t ring = std::uint32_t(__builtin_ctz(~used));
    for (std::uint32_t j = count; j > i; --j) c.lanes[j] = c.lanes[j - 1];
    c.lanes[i] = PriorityLane{priority, ring, 0, 0, 0};
    c.lane_count = count + 1;
    return &c.lanes[i];
}

// Lane rings. Every index below is read from the segment, so checked
// before use; a crash anywhere in here leaves [E] owner-dead, and the
// repair rebuilds every lane and ring from the state words.
void QueueState::lane_append(EntrypointControl& c, PriorityLane& lane, std::uint32_t slot) {
    if (lane.ring >= max_priority_lanes) corrupt(c.lock, "lane ring index out of range");
    // A span longer than the ring is never written: corrupt, and walking it
    // would loop for up to 2^32 positions.
    if (lane.tail - lane.head > lane_ring_mask_ + 1) corrupt(c.lock, "lane ring span longer than its ring");
    if (lane.tail - lane.head > lane_ring_mask_) {
        // Full: only possible with holes (a lane holds at most slot_count
        // jobs, and this one is not in it yet). Compaction costs O(ring),
        // at most once per hole-making unlink (cancel), itself O(slots).
        lane_compact(c, lane);
        if (lane.tail - lane.head > lane_ring_mask_) corrupt(c.lock, "lane ring full");
    }
    JobRecord& rec = record(slot);
    lane_ring(c, lane)[lane.tail & lane_ring_mask_] = slot;
    rec.lane_position = lane.tail;
    rec.lane_ring = lane.ring;
    ++lane.tail;
    ++lane.count;
}

void QueueState::lane_compact(EntrypointControl& c, PriorityLane& lane) {
    std::uint32_t* ring = lane_ring(c, lane);
    std::uint32_t to = lane.head;
    for (std::uint32_t from = lane.head; from != lane.tail; ++from) {
        const std::uint32_t slot = ring[from & lane_ring_mask_];
        if (slot == shm::no_slot) continue;
        if (slot >= arena_.slot_count()) corrupt(c.lock, "lane ring entry out of range");
        ring[to & lane_ring_mask_] = slot;
        record(slot).lane_position = to;
        ++to;
        shm::crash_point("lane.compacting"); // half moved: the repair rebuilds the rings
    }
    lane.tail = to;
}

bool QueueState::remove_lane_if_empty(EntrypointControl& c, PriorityLane& lane) {
    if (lane.count != 0) return false;
    const std::uint32_t index = std::uint32_t(&lane - c.lanes);
    for (std::uint32_t j = index; j + 1 < c.lane_count; ++j) c.lanes[j] = c.lanes[j + 1];
    --c.lane_count;
    return true;
}

void QueueState::lane_corrupt(EntrypointControl& c, const char* what) { corrupt(c.lock, what); }

void QueueState::lane_unlink(EntrypointControl& c, std::uint32_t slot) {
    JobRecord& rec = record(slot);
    PriorityLane* lane = lane_for(c, rec.priority, false);
    if (!lane || lane->count == 0 || lane->ring >= max_priority_lanes || rec.lane_ring != lane->ring ||
        lane->tail - lane->head > lane_ring_mask_ + 1 || rec.lane_position - lane->head >= lane->tail - lane->head)
        corrupt(c.lock, "queued job's priority lane is missing");
    std::uint32_t* ring = lane_ring(c, *lane);
    if (ring[rec.lane_position & lane_ring_mask_] != slot) corrupt(c.lock, "lane ring does not list a queued job");
    // A hole: pops skip it; holes at either end are trimmed now, the others
    // when the pops reach them or an append compacts the ring.
    ring[rec.lane_position & lane_ring_mask_] = shm::no_slot;
    rec.lane_position = rec.lane_ring = shm::no_slot;
    --lane->count;
    while (lane->head != lane->tail && ring[lane->head & lane_ring_mask_] == shm::no_slot) ++lane->head;
    while (lane->tail != lane->head && ring[(lane->tail - 1) & lane_ring_mask_] == shm::no_slot) --lane->tail;
    if (remove_lane_if_empty(c, *lane) && c.delayed_count > 0)
        update_earliest_delayed(EntrypointId(&c - entrypoints_)); // a parked job may move now
}

namespace {
bool earlier(const DelayedEntry& a, const DelayedEntry& b) noexcept {
    return a.due_ns != b.due_ns ? a.due_ns < b.due_ns : a.sequence < b.sequence;
}
} // namespace

void QueueState::heap_sift_up(EntrypointId ep, std::uint32_t position) {
    DelayedEntry* heap = delayed_heap(ep);
    while (position > 0) {
        const std::uint32_t parent = (position - 1) / 2;
        if (!earlier(heap[position], heap[parent])) break;
        if (heap[position].slot >= arena_.slot_count() || heap[parent].slot >= arena_.slot_count())
            corrupt(entrypoints_[ep].lock, "delayed heap entry out of range");
        std::swap(heap[position], heap[parent]);
        record(heap[position].slot).heap_position = position;
        record(heap[parent].slot).heap_position = parent;
        position = parent;
    }
}

void QueueState::heap_sift_down(EntrypointId ep, std::uint32_t position) {
    DelayedEntry* heap = delayed_heap(ep);
    const std::uint32_t count = entrypoints_[ep].delayed_count;
    for (;;) {
        std::uint32_t smallest = position;
        const std::uint32_t left = 2 * position + 1, right = left + 1;
        if (left < count && earlier(heap[left], heap[smallest])) smallest = left;
        if (right < count && earlier(heap[right], heap[smallest])) smallest = right;
        if (smallest == position) break;
        if (heap[position].slot >= arena_.slot_count() || heap[smallest].slot >= arena_.slot_count())
            corrupt(entrypoints_[ep].lock, "delayed heap entry out of range");
        std::swap(heap[position], heap[smallest]);
        record(heap[position].slot).heap_position = position;
        record(heap[smallest].slot).heap_position = smallest;
        position = smallest;
    }
}

void QueueState::heap_push(EntrypointId ep, std::uint32_t slot) {
    EntrypointControl& c = entrypoints_[ep];
    if (c.delayed_count >= arena_.slot_count()) corrupt(c.lock, "delayed heap overflow");
    const JobRecord& rec = record(slot);
    const std::uint32_t position = c.delayed_count++;
    delayed_heap(ep)[position] = DelayedEntry{rec.execute_after_ns, rec.sequence, slot, 0};
    record(slot).heap_position = position;
    heap_sift_up(ep, position);
    update_earliest_delayed(ep);
}

void QueueState::heap_remove(EntrypointId ep, std::uint32_t position) {
    EntrypointControl& c = entrypoints_[ep];
    DelayedEntry* heap = delayed_heap(ep);
    if (position >= c.delayed_count) corrupt(c.lock, "delayed heap position out of range");
    const std::uint32_t removed_slot = heap[position].slot;
    const std::uint32_t last = --c.delayed_count;
    if (position != last) {
        heap[position] = heap[last];
        if (heap[position].slot >= arena_.slot_count()) corrupt(c.lock, "delayed heap entry out of range");
        record(heap[position].slot).heap_position = position;
        heap_sift_down(ep, position);
        heap_sift_up(ep, position);
    }
    if (removed_slot < arena_.slot_count()) record(removed_slot).heap_position = shm::no_slot;
    update_earliest_delayed(ep);
}

void QueueState::update_earliest_delayed(EntrypointId ep) {
    EntrypointControl& c = entrypoints_[ep];
    std::int64_t earliest = no_deadline;
    if (c.delayed_count > 0) {
        const DelayedEntry& top = delayed_heap(ep)[0];
        if (top.slot >= arena_.slot_count()) corrupt(c.lock, "delayed heap entry out of range");
        // A due job that cannot get a lane (all lanes in use by other
        // priorities) waits for a lane to empty, not for a clock.
        const bool blocked = c.lane_count == max_priority_lanes &&
                             lane_for(c, record(top.slot).priority, false) == nullptr;
        if (!blocked) earliest = top.due_ns;
    }
    c.earliest_delayed_ns.store(earliest, std::memory_order_relaxed);
}

bool QueueState::place_queued(EntrypointId ep, std::uint32_t slot, std::int64_t now_realtime) {
    EntrypointControl& c = entrypoints_[ep];
    JobRecord& rec = record(slot);
    if (rec.execute_after_ns > now_realtime) {
        heap_push(ep, slot);
        return false;
    }
    PriorityLane* lane = lane_for(c, rec.priority, true);
    if (!lane) {
        // Lanes full: park it in the heap as due now; it moves when a lane frees.
        heap_push(ep, slot);
        return false;
    }
    lane_append(c, *lane, slot);
    return true;
}

void QueueState::promote_due(EntrypointId ep, std::int64_t now_realtime) {
    EntrypointControl& c = entrypoints_[ep];
    if (c.earliest_delayed_ns.load(std::memory_order_relaxed) > now_realtime) return;
    std::uint32_t promoted = 0;
    while (c.delayed_count > 0) {
        const DelayedEntry top = delayed_heap(ep)[0];
        if (top.due_ns > now_realtime || top.slot >= arena_.slot_count()) break;
        PriorityLane* lane = lane_for(c, record(top.slot).priority, true);
        if (!lane) break;
        heap_remove(ep, 0);
        lane_append(c, *lane, top.slot);
        ++promoted;
    }
    update_earliest_delayed(ep);
    if (promoted)
        c.ready_count.store(c.ready_count.load(std::memory_order_relaxed) + promoted, std::memory_order_release);
}

void QueueState::begin_intent(EntrypointControl& c, std::uint32_t slot, std::uint64_t old_word,
                              std::uint64_t new_word) {
    c.intent.slot = slot;
    c.intent.old_word = old_word;
    c.intent.new_word = new_word;
    c.intent.log_head_before = c.log_written;
    c.intent.schedule = 0; // schedules.cpp sets it for a tick, after this
    c.intent.purge = 0;    // outcomes.cpp sets it for a purge, after this
    c.intent.active = 1;
}

bool QueueState::append_log(EntrypointId ep, std::uint32_t slot, std::uint64_t word) {
    EntrypointControl& c = entrypoints_[ep];
    if (Durability(c.durability.load(std::memory_order_relaxed)) == Durability::memory) return true;
    const std::uint64_t pending = c.log_written - c.log_committed.load(std::memory_order_acquire);
    if (pending >= log_capacity_ || record(slot).mirror_dirty.load(std::memory_order_relaxed) != 0) {
        // Only enqueue waits for log space; every other transition marks the
        // slot for the mirror's dirty scan instead of blocking. A marked job
        // stays off the log until the mirror settles it, so none of its
        // logged transitions is newer than its mark.
        mark_mirror_dirty(ep, slot);
        return false;
    }
    const JobRecord& rec = record(slot);
    const std::uint64_t sequence = c.log_written + 1;
    TransitionRecord& entry = log(ep)[(sequence - 1) % log_capacity_];
    entry.sequence = sequence;
    entry.job_id = rec.job_id;
    entry.epoch = StateWord::epoch(word);
    entry.at_ns = shm::realtime_ns();
    entry.slot = slot;
    entry.status = std::uint8_t(status_of(word));
    // A purge (outcomes.cpp, purge_logged_locked) is an `exception` word
    // whose dead mark says purged for its own epoch.
    entry.flags = status_of(word) == JobStatus::exception &&
                          rec.dead_mark.load(std::memory_order_relaxed) ==
                              dead_mark(StateWord::epoch(word), DeadMark::purged)
                      ? transition_purge
                      : 0;
    entry.attempts = rec.attempts;
    c.log_written = sequence;
    c.log_head.store(sequence, std::memory_order_release); // publishes the record to the mirror
    // The first record after the mirror caught up, and the half-full mark,
    // wake a waiting mirror; all other appends cost no fence. Killed here,
    // under [E]: the entrypoint repair nudges instead (repair_entrypoint).
    if (pending == 0) shm::crash_point("log.appended");
    if (pending == 0 || pending + 1 == log_capacity_ / 2) nudge_mirror();
    return true;
}

bool QueueState::repair_entrypoint(EntrypointId ep) noexcept {
    try {
        EntrypointControl& c = entrypoints_[ep];
        const std::uint32_t n = arena_.slot_count();
        // 1. Finish the interrupted operation's log append, if it got as far
        //    as publishing the new state word.
        if (c.intent.active && c.intent.slot < n) {
            const std::uint64_t word = arena_.state_word(c.intent.slot).load(std::memory_order_acquire);
            // A purge whose purger died between its CAS and its mark: the
            // mark first, so the record says purge (purge_logged_locked).
            if (word == c.intent.new_word && c.intent.purge != 0)
                record(c.intent.slot)
                    .dead_mark.store(dead_mark(StateWord::epoch(word), DeadMark::purged), std::memory_order_release);
            if (word == c.intent.new_word && c.log_written == c.intent.log_head_before &&
                status_of(word) != JobStatus::unknown)
                append_log(ep, c.intent.slot, word);
            // A schedule's tick: advance its next tick iff the job was
            // published (schedules.cpp). A queued slot changes only under
            // [E], which we hold, so `word` is still what the firer left.
            if (c.intent.schedule != 0 && word == c.intent.new_word) finish_tick(ep, c.intent.slot);
        }
        c.intent.active = 0;
        if (c.log_written < c.log_head.load(std::memory_order_relaxed))
            c.log_written = c.log_head.load(std::memory_order_relaxed);
        c.log_head.store(c.log_written, std::memory_order_release);

        // 2. Rebuild lanes, heap and counters from the state words. Queued
        //    slots change state only under [E], which we hold.
        struct Queued { std::uint64_t sequence; std::uint32_t slot; };
        std::vector<Queued> queued;
        std::uint64_t max_sequence = 0;
        std::int64_t earliest_lease = no_deadline;
        for (std::uint32_t slot = 0; slot < n; ++slot) {
            const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
            const SlotState state = StateWord::state(word);
            JobRecord& rec = record(slot);
            if (rec.entrypoint != ep) continue;
            if (state == SlotState::queued) {
                queued.push_back({rec.sequence, slot});
                max_sequence = std::max(max_sequence, rec.sequence);
            } else if (state == SlotState::picked) {
                const std::int64_t deadline = rec.lease_deadline_ns.load(std::memory_order_relaxed);
                earliest_lease = std::min(earliest_lease, deadline == 0 ? std::int64_t(0) : deadline);
            }
        }
        shm::crash_point("repair.entrypoint");
        std::sort(queued.begin(), queued.end(),
                  [](const Queued& a, const Queued& b) { return a.sequence < b.sequence; });
        c.lane_count = 0;
        c.delayed_count = 0;
        std::uint32_t ready = 0;
        const std::int64_t now = shm::realtime_ns();
        for (const Queued& q : queued) {
            JobRecord& rec = record(q.slot);
            rec.lane_position = rec.lane_ring = rec.heap_position = shm::no_slot;
            if (place_queued(ep, q.slot, now)) ++ready;
        }
        update_earliest_delayed(ep);
        c.next_sequence = std::max(c.next_sequence, max_sequence + 1);
        c.ready_count.store(ready, std::memory_order_release);
        c.earliest_lease_ns.store(earliest_lease, std::memory_order_relaxed);
        // 3. The concurrency count and the rate bucket (limits.cpp).
        repair_limits(ep);
        // 4. The dedupe index, from the slots' state words and keys (dedupe.cpp).
        rebuild_dedupe(ep);
        // 5. The kept dead jobs' list (outcomes.cpp).
        repair_dead_list(ep);
        // 6. Cancel requests whose canceller died before it woke the holder
        //    (cancelling.cpp, cancel.marked): signal every marked pick's holder.
        resignal_marked_picks(ep);
        // 7. The mirror: an appender that died between publishing the first
        //    record after the mirror caught up and its nudge (append_log,
        //    log.appended) left it asleep, and the appenders after it see a
        //    record pending and do not nudge. Always, being rare and cheap.
        nudge_mirror();
        return true;
    } catch (...) {
        return false; // allocation failed: the next locker repeats the repair
    }
}

} // namespace currant::detail
