// Status, stats, info and doctor.
#include <algorithm>
#include <cstring>
#include <sys/stat.h>
#include <unordered_map>
#include <unordered_set>

#include "currant/shm/clock.hpp"
#include "currant/shm/futex.hpp"
#include "queue_state.hpp"

namespace currant::detail {

using shm::SlotState;
using shm::StateWord;

// Job id's dependencies into out, while the slot's row still belongs to
// it (dependencies.cpp): fixed once published; outcomes [G], relaxed.
void QueueState::read_dependencies_of(std::uint32_t slot, JobId id, JobState& out) const {
    const DependencyRow& row = dependency_row(slot);
    out.depends_on.clear();
    out.waiting_on = 0;
    if (row.job_id.load(std::memory_order_acquire) != id || row.count < 1 || row.count > max_dependencies) return;
    for (std::uint32_t e = 0; e < row.count; ++e) {
        out.depends_on.push_back(row.edges[e].job_id);
        if (out.status == JobStatus::waiting &&
            EdgeOutcome(row.edges[e].outcome.load(std::memory_order_relaxed)) == EdgeOutcome::pending)
            ++out.waiting_on;
    }
    if (out.status == JobStatus::canceled) out.reason = read_error_of(slot, id);
}

std::vector<JobState> QueueState::status(std::span<const JobId> ids) const {
    segment_.check_not_retired();
    std::unordered_map<JobId, std::size_t> wanted;
    for (std::size_t i = 0; i < ids.size(); ++i) wanted.emplace(ids[i], i);
    std::vector<JobState> result(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) result[i].id = ids[i];
    const std::uint32_t n = arena_.slot_count();
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
        const JobRecord& rec = record(slot);
        const SlotState state = StateWord::state(word);
        const bool live = state != SlotState::free && state != SlotState::reserved;
        const JobId live_id = live ? rec.job_id : 0;
        // The slot's last outcome, in any state: a job that ended here and
        // whose slot a newer job took is still named by it until that job
        // ends (then the recent outcomes have it). One write's pair or none
        // (layout.hpp, "Last outcome"); a live record of the same id wins.
        const JobId last_id = rec.last_job_id.load(std::memory_order_relaxed);
        std::uint32_t last_status = 0;
        const bool last_known = last_id != live_id && wanted.contains(last_id) &&
                                last_outcome_for(rec, last_id, last_status) &&
                                last_status >= std::uint32_t(JobStatus::successful) &&
                                last_status <= std::uint32_t(JobStatus::canceled);
        if (last_known) {
            // Its other fields are the job's only while the record still
            // names it (a free slot, or its finisher's reservation);
            // otherwise only the status is kept, as from the recent outcomes.
            const bool fields_kept = !live && rec.job_id == last_id;
            for (std::size_t i = 0; i < ids.size(); ++i) {
                JobState& out = result[i];
                if (ids[i] != last_id || out.status != JobStatus::unknown) continue;
                out.status = JobStatus(last_status);
                out.slot_reused = !fields_kept;
                if (fields_kept) {
                    out.entrypoint = rec.entrypoint;
                    out.priority = rec.priority;
                    out.attempts = rec.attempts;
                    read_dependencies_of(slot, last_id, out);
                }
            }
        }
        if (!live || live_id == 0 || !wanted.contains(live_id)) continue;
        for (std::size_t i = 0; i < ids.size(); ++i) {
            if (ids[i] != live_id) continue;
            JobState& out = result[i];
            out = JobState{};
            out.id = live_id;
            out.status = status_of_state(state);
            out.entrypoint = rec.entrypoint;
            out.priority = rec.priority;
            out.attempts = rec.attempts;
            out.cancel_requested = state == SlotState::picked &&
                                   rec.cancel_epoch.load(std::memory_order_acquire) == StateWord::epoch(word);
            read_dependencies_of(slot, live_id, out);
        }
    }
    // A job no slot names any more (finished, its slot reused): its final
    // status from the recent outcomes (dependencies.cpp, recorded_end),
    // read after the scan (recorded_end's acquire fence pairs with the
    // release fence between the entry's raise and the slot's overwrite, so
    // a job that left its slot before our read of it is in its entry).
    // Never a guess: an entry taken by a younger id, an id not recorded or
    // purged stay unknown. A job ended is final; a dead job requeued since
    // is in a slot again, and one our scan passed before it got there
    // reads as the exception it was during this call.
    for (JobState& out : result) {
        if (out.status != JobStatus::unknown || out.id == 0 || out.id > JobId(INT64_MAX)) continue;
        JobStatus ended = JobStatus::unknown;
        if (recorded_end(out.id, ended) == EndedLookup::found) {
            out.status = ended;
            out.slot_reused = true;
        }
    }
    return result;
}

std::vector<ActiveJob> QueueState::active_jobs(std::optional<EntrypointId> entrypoint, std::size_t limit) const {
    segment_.check_not_retired();
    std::vector<ActiveJob> found;
    const std::uint32_t count = entrypoint_count();
    const std::uint32_t n = arena_.slot_count();
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        std::atomic<std::uint64_t>& state = arena_.state_word(slot);
        const std::uint64_t word = state.load(std::memory_order_acquire);
        const SlotState s = StateWord::state(word);
        if (s != SlotState::queued && s != SlotState::picked) continue;
        const JobRecord& rec = record(slot);
        ActiveJob job;
        job.id = rec.job_id;
        job.status = s == SlotState::picked ? JobStatus::picked : JobStatus::queued;
        job.entrypoint = rec.entrypoint;
        job.priority = rec.priority;
        job.attempts = rec.attempts;
        job.enqueued_at_ns = rec.enqueued_at_ns;
        job.execute_after_ns = rec.execute_after_ns;
        job.cancel_requested = s == SlotState::picked &&
                               rec.cancel_epoch.load(std::memory_order_relaxed) == StateWord::epoch(word);
        // Seqlock-style: the copy is of this state only if the word did not
        // move meanwhile (every change of these fields moves it first or
        // happens under [E] while the job is queued, which a pick or a
        // requeue leaves with a new epoch).
        std::atomic_thread_fence(std::memory_order_acquire);
        if (state.load(std::memory_order_relaxed) != word) continue;
        if (job.entrypoint >= count || (entrypoint && job.entrypoint != *entrypoint)) continue;
        found.push_back(job);
    }
    std::sort(found.begin(), found.end(), [](const ActiveJob& a, const ActiveJob& b) {
        if (a.status != b.status) return a.status == JobStatus::picked;
        if (a.enqueued_at_ns != b.enqueued_at_ns) return a.enqueued_at_ns < b.enqueued_at_ns;
        return a.id < b.id;
    });
    if (found.size() > limit) found.resize(limit);
    return found;
}

std::vector<EntrypointStats> QueueState::stats() const {
    segment_.check_not_retired();
    const std::uint32_t count = entrypoint_count();
    std::vector<EntrypointStats> result(count);
    for (EntrypointId ep = 0; ep < count; ++ep) {
        const EntrypointControl& c = entrypoints_[ep];
        EntrypointStats& s = result[ep];
        s.id = ep;
        s.name = std::string(name_of(c));
        s.durability = Durability(c.durability.load(std::memory_order_relaxed));
        std::uint64_t totals[counter_kinds] = {};
        for (std::uint32_t k = 0; k < counter_kinds; ++k)
            totals[k] = c.retired_counters[k].load(std::memory_order_relaxed);
        for (std::uint32_t p = 0; p < max_participants_; ++p)
            for (std::uint32_t k = 0; k < counter_kinds; ++k)
                totals[k] += counters(p, ep)[k].load(std::memory_order_relaxed);
        s.enqueued = totals[counter_enqueued];
        s.picks = totals[counter_picks];
        s.successful = totals[counter_successful];
        s.failed = totals[counter_failed];
        s.retried = totals[counter_retried];
        s.canceled = totals[counter_canceled];
        // Latency cells: the retired row, then the rows of participants
        // registered now (a free entry's row was folded, and tmpfs would
        // allocate its pages just for the read). Relaxed, racy: see LatencyCells.
        const auto add = [](LatencyHistogram& into, const std::atomic<std::uint64_t>* buckets,
                            const std::atomic<std::uint64_t>& sum) noexcept {
            for (std::size_t b = 0; b < latency_bucket_count; ++b) into.counts[b] += buckets[b].load(std::memory_order_relaxed);
            into.sum_ns += sum.load(std::memory_order_relaxed);
        };
        for (std::uint32_t row = 0; row <= max_participants_; ++row) {
            if (row < max_participants_ && participant_entries_[row].status.load(std::memory_order_relaxed) ==
                                               std::uint32_t(ParticipantStatus::free))
                continue;
            const LatencyCells& cells = latency_cells(row, ep);
            add(s.wait, cells.wait, cells.wait_sum_ns);
            add(s.run, cells.run, cells.run_sum_ns);
        }
        const std::uint64_t head = c.log_head.load(std::memory_order_acquire);
        const std::uint64_t committed = c.log_committed.load(std::memory_order_acquire);
        s.log_pending = head - committed;
        s.dirty_slots = c.dirty_slots.load(std::memory_order_relaxed);
        s.paused = c.paused.load(std::memory_order_relaxed) != 0;
        s.concurrency_limit = c.concurrency_limit.load(std::memory_order_relaxed);
        s.in_flight = c.in_flight.load(std::memory_order_relaxed);
        if (s.concurrency_limit != 0 && c.legacy_picks.load(std::memory_order_relaxed) != 0)
            s.in_flight += count_uncounted(ep); // picks made before the limit count too
        if (const std::int64_t interval = c.rate_interval_ns.load(std::memory_order_relaxed); interval > 0)
            s.rate_limit = 1e9 / double(interval);
        if (head > committed) {
            // The oldest unmirrored record cannot be overwritten before it is
            // committed; a racing commit only makes this read stale.
            const std::int64_t at = log(ep)[committed % log_capacity_].at_ns;
            const std::int64_t now = shm::realtime_ns();
            s.mirror_lag_ns = at > 0 && at < now ? now - at : 0; // a corrupt time must not overflow
        }
    }
    // Depths are counted from the state words (exact at the moment of each read).
    const std::int64_t now = shm::realtime_ns();
    const std::uint32_t n = arena_.slot_count();
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
        const SlotState state = StateWord::state(word);
        if (state != SlotState::queued && state != SlotState::picked && state != SlotState::waiting &&
            state != SlotState::exception)
            continue;
        const JobRecord& rec = record(slot);
        if (rec.entrypoint >= count) continue;
        EntrypointStats& s = result[rec.entrypoint];
        if (state == SlotState::exception) s.dead += is_kept_dead(slot, word) ? 1 : 0;
        else if (state == SlotState::picked) ++s.picked;
        else if (state == SlotState::waiting) ++s.waiting;
        else if (rec.execute_after_ns > now) ++s.delayed;
        else ++s.queued;
    }
    return result;
}

std::vector<ParticipantInfo> QueueState::participants() const {
    std::vector<ParticipantInfo> result;
    for (std::uint32_t i = 0; i < max_participants_; ++i) {
        const ParticipantEntry& entry = participant_entries_[i];
        if (entry.status.load(std::memory_order_acquire) != std::uint32_t(ParticipantStatus::active)) continue;
        ParticipantInfo info;
        info.index = i;
        info.pid = entry.pid;
        info.sleeping = entry.wake_word.load(std::memory_order_relaxed) != 0;
        // Alive is judged by the life lock in doctor(); here a quick view.
        info.alive = true;
        result.push_back(info);
    }
    return result;
}

QueueInfo QueueState::info() const {
    segment_.check_not_retired();
    const auto& header = segment_.header();
    QueueInfo info;
    info.name = segment_.name();
    info.slots = header.parameters.slot_count;
    info.payload_bytes = header.parameters.payload_bytes;
    info.max_entrypoints = header.parameters.max_entrypoints;
    info.max_participants = header.parameters.max_participants;
    info.log_capacity = header.parameters.log_capacity;
    info.host_id = header.parameters.host_id;
    info.slot_bytes = header.slot_bytes;
    info.result_bytes = result_bytes_;
    info.segment_bytes = header.total_bytes;
    info.incarnation = header.incarnation;
    info.mirrored = core_->mirrored.load(std::memory_order_acquire) != 0;
    info.created_at_ns = header.creation_realtime_ns;
    info.free_slots = arena_.free_count_hint(); // the free stack's depth: no arena scan
    info.participants = std::uint32_t(participants().size());
    struct stat object {};
    if (::stat(("/dev/shm/currant." + segment_.name()).c_str(), &object) == 0) {
        info.mode = object.st_mode & 07777;
        info.owner_uid = object.st_uid;
        info.owner_gid = object.st_gid;
    }
    return info;
}

DoctorReport QueueState::doctor() {
    check_usable();
    DoctorReport report;
    // Sweep before registering: registration may claim (and silently reap)
    // a dead participant's entry, which the report must count.
    report.dead_participants_reaped = std::uint32_t(sweep_participants());
    ensure_registered();
    const std::int64_t now_mono = shm::monotonic_ns();
    for (EntrypointId ep = 0; ep < entrypoint_count(); ++ep)
        if (entrypoints_[ep].earliest_lease_ns.load(std::memory_order_relaxed) <= now_mono)
            report.expired_leases_requeued += std::uint32_t(reap_expired_leases(ep, now_mono));
    auto problem = [&](std::string text) {
        report.sound = false;
        report.problems.push_back(std::move(text));
    };
    recycle_kept_results(0); // results past their retention (docs/results.md)
    if (std::string arena_problem = arena_.check(); !arena_problem.empty()) problem("arena: " + arena_problem);
    {
        // Queue::wait: the waiter count may be too high (a waiter killed
        // between counting and marking itself), never below the marks, or a
        // finisher would skip a wake-up (results.cpp).
        std::uint32_t marked = 0;
        for (std::uint32_t i = 0; i < max_participants_; ++i)
            marked += participant_entries_[i].completion_waiting.load(std::memory_order_acquire) != 0;
        const std::uint32_t counted = core_->completion_waiters.load(std::memory_order_seq_cst);
        if (counted < marked)
            problem("completion waiter count " + std::to_string(counted) + " is below the " + std::to_string(marked) +
                    " participants waiting");
    }

    const std::uint32_t n = arena_.slot_count();
    for (EntrypointId ep = 0; ep < entrypoint_count(); ++ep) {
        EntrypointControl& c = entrypoints_[ep];
        const std::string where = describe(ep) + ": ";
        lock_entrypoint(ep);
        shm::LockHolder holder(c.lock);
        if (c.intent.active) problem(where + "an intent record is still active");
        std::vector<std::uint8_t> seen(n, 0);
        std::uint32_t ready = 0;
        if (c.lane_count > max_priority_lanes) { problem(where + "lane count out of range"); continue; }
        std::uint32_t rings_used = 0;
        for (std::uint32_t l = 0; l < c.lane_count; ++l) {
            const PriorityLane& lane = c.lanes[l];
            if (l > 0 && c.lanes[l - 1].priority <= lane.priority) problem(where + "priority lanes out of order");
            // Lane rings (entrypoint_index.cpp): a ring per lane, [head, tail)
            // no longer than the ring, each entry a hole or a queued job of
            // this lane that records its own position, in FIFO order.
            if (lane.ring >= max_priority_lanes) { problem(where + "lane ring index out of range"); continue; }
            if (rings_used & (std::uint32_t(1) << lane.ring)) problem(where + "two lanes share ring " + std::to_string(lane.ring));
            rings_used |= std::uint32_t(1) << lane.ring;
            if (lane.tail - lane.head > lane_ring_mask_ + 1) { problem(where + "lane ring span longer than the ring"); continue; }
            const std::uint32_t* ring = lane_ring(c, lane);
            std::uint32_t walked = 0;
            std::uint64_t last_sequence = 0;
            for (std::uint32_t p = lane.head; p != lane.tail; ++p) {
                const std::uint32_t slot = ring[p & lane_ring_mask_];
                if (slot == shm::no_slot) continue; // a hole left by an unlink
                if (slot >= n) { problem(where + "lane ring entry out of range"); continue; }
                if (seen[slot]) { problem(where + "slot " + std::to_string(slot) + " listed twice"); continue; }
                seen[slot] = 1;
                ++walked;
                const JobRecord& rec = record(slot);
                const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
                if (StateWord::state(word) != SlotState::queued) problem(where + "lane lists slot " + std::to_string(slot) + " which is not queued");
                if (rec.entrypoint != ep || rec.priority != lane.priority) problem(where + "lane lists a job of another entrypoint or priority");
                if (rec.lane_ring != lane.ring || rec.lane_position != p) problem(where + "slot " + std::to_string(slot) + " does not record its lane ring position");
                if (rec.sequence <= last_sequence) problem(where + "lane not in FIFO order at slot " + std::to_string(slot));
                last_sequence = rec.sequence;
            }
            if (walked != lane.count) problem(where + "lane count " + std::to_string(lane.count) + " but " + std::to_string(walked) + " in its ring");
            ready += walked;
        }
        if (c.ready_count.load(std::memory_order_relaxed) != ready)
            problem(where + "ready count " + std::to_string(c.ready_count.load()) + " but " + std::to_string(ready) + " in lanes");
        if (c.delayed_count > n) { problem(where + "delayed count out of range"); continue; }
        const DelayedEntry* heap = delayed_heap(ep);
        for (std::uint32_t i = 0; i < c.delayed_count; ++i) {
            const std::uint32_t slot = heap[i].slot;
            if (slot >= n) { problem(where + "delayed heap entry out of range"); break; }
            if (seen[slot]) { problem(where + "slot " + std::to_string(slot) + " both ready and delayed"); continue; }
            seen[slot] = 1;
            if (record(slot).heap_position != i) problem(where + "heap position of slot " + std::to_string(slot) + " is wrong");
            if (StateWord::state(arena_.state_word(slot).load(std::memory_order_acquire)) != SlotState::queued)
                problem(where + "delayed heap lists a slot that is not queued");
            if (i > 0 && heap[i].due_ns < heap[(i - 1) / 2].due_ns) problem(where + "delayed heap order broken");
        }
        for (std::uint32_t slot = 0; slot < n; ++slot) {
            const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
            if (StateWord::state(word) == SlotState::queued && record(slot).entrypoint == ep && !seen[slot])
                problem(where + "queued slot " + std::to_string(slot) + " is in no lane or heap (lost)");
        }
        if (const std::uint32_t counted = count_in_flight(ep); counted != c.in_flight.load(std::memory_order_relaxed))
            problem(where + "concurrency count " + std::to_string(c.in_flight.load()) + " but " +
                    std::to_string(counted) + " counted jobs picked");
        if (std::string dead = check_dead_list(ep); !dead.empty()) problem(where + dead); // outcomes.cpp
        if (c.log_head.load() < c.log_committed.load() || c.log_head.load() != c.log_written)
            problem(where + "transition log positions are inconsistent");
        std::vector<std::string> dedupe_problems;
        check_dedupe(ep, dedupe_problems);
        for (std::string& text : dedupe_problems) problem(where + text);
    }
    // Dependencies: the waiting list, counts and rows (dependencies.cpp).
    {
        std::vector<std::string> dependency_problems;
        check_dependencies(dependency_problems);
        for (std::string& text : dependency_problems) problem(std::move(text));
    }
    // Every picked or reserved slot must belong to a live participant.
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
        const SlotState state = StateWord::state(word);
        if (state != SlotState::picked && state != SlotState::reserved) continue;
        const std::uint32_t owner = StateWord::owner(word);
        if (owner == 0 || owner > max_participants_ ||
            participant_entries_[owner - 1].status.load(std::memory_order_acquire) != std::uint32_t(ParticipantStatus::active))
            problem("slot " + std::to_string(slot) + " is " + (state == SlotState::picked ? "picked" : "reserved") +
                    " by participant " + std::to_string(owner) + " which is not registered");
    }
    return report;
}

} // namespace currant::detail
