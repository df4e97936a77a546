// Entrypoint pause, global concurrency limit and rate limit (docs/limits.md).
//
// Where the state lives (layout.hpp, guard notation there):
//   EntrypointControl::paused, concurrency_limit,      [E] writes, one word each;
//     rate_interval_ns, rate_burst                     seq_cst/relaxed reads without the lock
//   EntrypointControl::in_flight, legacy_picks          [E] writes; derived (repair rescans)
//   EntrypointControl::rate_tat_ns                     [E] writes; the whole token bucket in one word
//   JobRecord::limit_mark                              [E] writes: the pick (uncounted / counted),
//                                                      the give-back (counted -> uncounted)
//
// Invariants, each held at every unlock of [E]:
//   I1  in_flight = the entrypoint's slots that are
//         (a) picked, with limit_mark counted(epoch of the pick), or
//         (b) reserved at epoch e+1 with limit_mark still counted(e): a
//             counted pick acked without the lock (`memory` ack, a CAS
//             picked -> reserved(owner)) whose limit slot is not yet
//             given back (a "pending release").
//       A pick under a limit marks itself counted. A counted pick leaves
//       `picked` either under [E] (finish_locked, requeue_locked: fail,
//       retry, lease expiry, reaping, close), whose leave_limit rewrites
//       the mark to uncounted and decrements in_flight in the same section,
//       or by its owner's lock-free ack, which moves it from (a) to (b)
//       without changing the count. The owner then gives the slots of a
//       whole ack batch back in one short [E] section (apply_released:
//       each mark rewritten, one subtraction) before it frees them; the
//       reaper of an owner that died first does the same before it frees
//       the dead owner's reserved slots. So the set (b) is the acking
//       participant's ledger of releases made but not applied, kept in
//       the state words and marks themselves: single writer (the owner's
//       CAS adds to it, [E] sections remove from it), and a pure function
//       of the segment, so a recount needs nothing else.
//       Each slot's contribution is decided by one state word load and one
//       mark load, and the mark only changes under [E]: a recount under
//       [E] racing with lock-free acks counts every such slot once, before
//       its CAS (a) or after it (b).
//   I2  while concurrency_limit != 0, legacy_picks >= the number of picked
//       slots of the entrypoint that are not counted. Such picks were made
//       before the limit was set; none is made while it is set, and their
//       lock-free acks only lower the truth. The setter scans them; a pick
//       rescans while legacy_picks != 0, so the bound falls to 0 once they
//       are gone and the rescans stop.
//   So under [E] `in_flight + legacy_picks < concurrency_limit`, with a
//   fresh rescan, is exact: the limit is never exceeded, not even for one
//   job, in any interleaving (a pending release only delays a pick until
//   its owner's give-back, a few hundred nanoseconds later, or its
//   reaper's). Acks of uncounted picks in `memory` durability stay
//   lock-free and cost nothing extra.
//
// Crash recovery. Every section that writes these fields holds [E]; a
// process that dies inside one leaves the lock owner-dead, and the next
// locker's repair (repair_entrypoint -> repair_limits) recounts in_flight
// and rescans legacy_picks from the state words and marks: a pure function
// of them, so the repair is idempotent. A pick that died between its mark
// and its state word leaves a queued slot marked counted for the epoch its
// pick would have had; the repair rewrites such marks to uncounted, so
// that no later transition of that slot can look like a pending release.
// A lock-free acker that dies between its CAS and its give-back leaves
// pending releases (an over-count, never an under-count): its reaper gives
// them back under [E] before it frees the slots. Nothing else needs repair:
//   * a dead picker between its rate_tat_ns store and its state word
//     consumed one start without starting a job (the rate is never
//     exceeded, one start is lost);
//   * pause and the limit words are single stores: old or new value.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "currant/shm/clock.hpp"
#include "currant/shm/crash_point.hpp"
#include "queue_state.hpp"

namespace currant::detail {

using shm::SlotState;
using shm::StateWord;

namespace {
constexpr std::int64_t max_concurrency_limit = std::numeric_limits<std::uint32_t>::max() - 1;
constexpr double max_rate = 1e9;              // one start per nanosecond
constexpr double min_rate = 1e-6;             // one start per ~11.6 days
constexpr std::int64_t max_burst = 1'000'000'000;
// burst * interval stays far from int64 overflow when added to a monotonic time.
constexpr std::int64_t max_bucket_ns = std::int64_t(1) << 61;

std::string limit_text(double value) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%g", value);
    return buffer;
}

void check_concurrency(std::int64_t limit, const std::string& where) {
    if (limit <= 0)
        throw Error(Errc::invalid_argument, where + ": concurrency limit must be at least 1 (got " +
                                                std::to_string(limit) + "); to remove the limit, set none");
    if (limit > max_concurrency_limit)
        throw Error(Errc::invalid_argument, where + ": concurrency limit " + std::to_string(limit) +
                                                " is above the largest, " + std::to_string(max_concurrency_limit));
}

// Returns the interval in ns per start.
std::int64_t check_rate(double per_second, std::int64_t burst, const std::string& where) {
    if (!(per_second > 0) || !std::isfinite(per_second))
        throw Error(Errc::invalid_argument, where + ": rate limit must be a positive number of starts per second (got " +
                                                limit_text(per_second) + "); to remove the limit, set none");
    if (per_second > max_rate || per_second < min_rate)
        throw Error(Errc::invalid_argument, where + ": rate limit " + limit_text(per_second) +
                                                " starts per second is outside 1e-06 to 1e+09");
    if (burst <= 0)
        throw Error(Errc::invalid_argument, where + ": rate burst must be at least 1 (got " +
                                                std::to_string(burst) + ")");
    if (burst > max_burst)
        throw Error(Errc::invalid_argument, where + ": rate burst " + std::to_string(burst) + " is above the largest, " +
                                                std::to_string(max_burst));
    const std::int64_t interval = std::max<std::int64_t>(1, std::llround(1e9 / per_second));
    if (burst > max_bucket_ns / interval)
        throw Error(Errc::invalid_argument, where + ": rate burst " + std::to_string(burst) + " at " +
                                                limit_text(per_second) + " starts per second spans more than 73 years");
    return interval;
}
} // namespace

void validate_limit_options(const EntrypointOptions& options, const std::string& where) {
    if (options.concurrency_limit) check_concurrency(*options.concurrency_limit, where);
    if (options.rate_burst && !options.rate_limit)
        throw Error(Errc::invalid_argument, where + ": rate burst given without a rate limit");
    if (options.rate_limit) check_rate(*options.rate_limit, options.rate_burst.value_or(1), where);
}

// ---------------------------------------------------------------- under [E]

std::size_t QueueState::pick_allowance(EntrypointId ep, std::size_t wanted, std::int64_t now_mono) noexcept {
    EntrypointControl& c = entrypoints_[ep];
    if (c.paused.load(std::memory_order_relaxed) != 0) return 0;
    const std::uint32_t limit = c.concurrency_limit.load(std::memory_order_relaxed);
    if (limit != 0) {
        std::uint32_t legacy = c.legacy_picks.load(std::memory_order_relaxed);
        if (legacy != 0) { // I2: refresh the bound (picks made before the limit)
            legacy = count_uncounted(ep);
            c.legacy_picks.store(legacy, std::memory_order_relaxed);
        }
        const std::uint64_t used = std::uint64_t(c.in_flight.load(std::memory_order_relaxed)) + legacy;
        if (used >= limit) return 0;
        wanted = std::min<std::size_t>(wanted, std::size_t(limit - used));
    }
    const std::int64_t interval = c.rate_interval_ns.load(std::memory_order_relaxed);
    if (interval > 0) {
        const std::int64_t burst = std::max<std::uint32_t>(1, c.rate_burst.load(std::memory_order_relaxed));
        const std::int64_t tat = std::max(c.rate_tat_ns.load(std::memory_order_relaxed), now_mono);
        // Starts allowed now: those whose arrival time stays within the bucket.
        // (The setter bounds burst * interval; a corrupt tat far in the future
        // only makes room negative, and the repair clamps it.)
        const std::int64_t room = now_mono + std::min<std::int64_t>(burst, max_bucket_ns / interval) * interval - tat;
        if (room < interval) return 0;
        wanted = std::min<std::size_t>(wanted, std::size_t(room / interval));
    }
    return wanted;
}

bool QueueState::leave_limit(EntrypointControl& c, std::uint32_t slot, std::uint64_t word) noexcept {
    if (StateWord::state(word) != SlotState::picked) return false;
    std::atomic<std::uint64_t>& mark = record(slot).limit_mark;
    if (mark.load(std::memory_order_relaxed) != limit_mark(StateWord::epoch(word), LimitMark::counted)) return false;
    // Killed here: if the slot went to `reserved` (a memory-durability
    // finish), the recount takes it for a pending release and our reaper
    // gives it back (I1 b); any other state is not counted.
    shm::crash_point("limit.released");
    // Uncounted before the count drops: the slot may be `reserved` now.
    mark.store(limit_mark(StateWord::epoch(word), LimitMark::uncounted), std::memory_order_relaxed);
    const std::uint32_t in_flight = c.in_flight.load(std::memory_order_relaxed);
    // Paired with the seq_cst fence in wake_sleepers (wake_for_freed_limit),
    // which the caller reaches after unlocking.
    if (in_flight > 0) c.in_flight.store(in_flight - 1, std::memory_order_release);
    else c.lock.request_repair(); // I1 broken (corrupt segment): the next locker recounts
    ++limit_freed_;
    return true;
}

void QueueState::apply_released(std::span<const std::uint32_t> slots, std::uint32_t owner) noexcept {
    // Runs of one entrypoint share a lock section (a batch is usually one).
    std::size_t i = 0;
    while (i < slots.size()) {
        const EntrypointId ep = record(slots[i]).entrypoint; // reserved by owner: stable
        std::size_t end = i + 1;
        while (end < slots.size() && record(slots[end]).entrypoint == ep) ++end;
        std::uint32_t freed = 0;
        if (ep < entrypoint_count()) {
            EntrypointControl& c = entrypoints_[ep];
            try {
                lock_entrypoint(ep);
                shm::LockHolder holder(c.lock);
                // Killed anywhere in here: the lock is owner-dead and the
                // recount takes the marks already rewritten as given back,
                // the others as pending (our reaper gives those back).
                for (std::size_t k = i; k < end; ++k) {
                    const std::uint32_t slot = slots[k];
                    const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
                    std::atomic<std::uint64_t>& mark = record(slot).limit_mark;
                    if (StateWord::state(word) != SlotState::reserved || StateWord::owner(word) != owner ||
                        mark.load(std::memory_order_relaxed) != pending_release_mark(word))
                        continue; // given back already (a repeated reap), or not ours
                    mark.store(pending_release_mark(word) & ~std::uint64_t(3), std::memory_order_relaxed);
                    ++freed;
                    if (freed == 1) shm::crash_point("limit.release_applying");
                }
                // One subtraction for the batch. Paired with the seq_cst
                // fence in wake_sleepers (wake_for_freed_limit, after unlocking).
                const std::uint32_t in_flight = c.in_flight.load(std::memory_order_relaxed);
                if (in_flight >= freed) c.in_flight.store(in_flight - freed, std::memory_order_release);
                else c.lock.request_repair(); // I1 broken (corrupt segment): the next locker recounts
            } catch (...) {
                // The lock's repair failed (lock_entrypoint asked the next
                // locker to retry it): that repair recounts, so slots freed
                // meanwhile stop counting then. Until then: an over-count.
            }
            wake_for_freed_limit(ep, freed);
        }
        i = end;
    }
}

void QueueState::apply_released_of(std::uint32_t owner) {
    // A reaper, before it frees a dead participant's reserved slots: the
    // releases it made but did not give back (I1 b). Throws only
    // bad_alloc, before anything changed (the reap fails and is retried).
    std::vector<std::uint32_t> pending;
    const std::uint32_t n = arena_.slot_count();
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
        if (StateWord::state(word) == SlotState::reserved && StateWord::owner(word) == owner &&
            record(slot).limit_mark.load(std::memory_order_relaxed) == pending_release_mark(word))
            pending.push_back(slot);
    }
    apply_released(pending, owner);
}

std::uint32_t QueueState::count_uncounted(EntrypointId ep) const noexcept {
    const std::uint32_t n = arena_.slot_count();
    std::uint32_t uncounted = 0;
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_seq_cst);
        if (StateWord::state(word) != SlotState::picked) continue;
        const JobRecord& rec = record(slot);
        if (rec.entrypoint == ep &&
            rec.limit_mark.load(std::memory_order_acquire) != limit_mark(StateWord::epoch(word), LimitMark::counted))
            ++uncounted;
    }
    return uncounted;
}

std::uint32_t QueueState::count_in_flight(EntrypointId ep) const noexcept {
    // One state word load per slot, then its mark (which changes only under
    // [E], held by our caller): a concurrent lock-free ack moves a slot from
    // (a) to (b) of I1, and it is counted once either way.
    const std::uint32_t n = arena_.slot_count();
    std::uint32_t counted = 0;
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
        const SlotState state = StateWord::state(word);
        const JobRecord& rec = record(slot);
        if (state == SlotState::picked) {
            if (rec.entrypoint == ep &&
                rec.limit_mark.load(std::memory_order_acquire) == limit_mark(StateWord::epoch(word), LimitMark::counted))
                ++counted;
        } else if (state == SlotState::reserved) {
            // The mark first: only an acked pick's slot matches it, and its
            // entrypoint field is stable (a producer may be writing the
            // record of a slot it reserved for an enqueue).
            if (rec.limit_mark.load(std::memory_order_acquire) == pending_release_mark(word) && rec.entrypoint == ep)
                ++counted;
        }
    }
    return counted;
}

void QueueState::repair_limits(EntrypointId ep) noexcept {
    EntrypointControl& c = entrypoints_[ep];
    // A pick killed between its mark and its state word left a queued slot
    // marked counted for the epoch the pick would have had: uncount it, so
    // that no later transition of the slot looks like a pending release.
    // Queued slots of ep and all marks change only under [E], which we hold.
    const std::uint32_t n = arena_.slot_count();
    for (std::uint32_t slot = 0; slot < n; ++slot) {
        const std::uint64_t word = arena_.state_word(slot).load(std::memory_order_acquire);
        if (StateWord::state(word) != SlotState::queued) continue;
        JobRecord& rec = record(slot);
        const std::uint64_t mark = rec.limit_mark.load(std::memory_order_relaxed);
        if (rec.entrypoint == ep && (mark & 3) == std::uint64_t(LimitMark::counted))
            rec.limit_mark.store(mark & ~std::uint64_t(3), std::memory_order_relaxed);
    }
    c.in_flight.store(count_in_flight(ep), std::memory_order_release); // I1
    c.legacy_picks.store(c.concurrency_limit.load(std::memory_order_relaxed) != 0 ? count_uncounted(ep) : 0,
                         std::memory_order_release);                   // I2
    const std::int64_t interval = c.rate_interval_ns.load(std::memory_order_relaxed);
    if (interval < 0) c.rate_interval_ns.store(0, std::memory_order_relaxed);
    if (interval > 0) {
        // A bucket time beyond a full bucket from now cannot come from a pick:
        // clamp it so a corrupt word cannot stop the entrypoint for long.
        const std::int64_t burst = std::max<std::uint32_t>(1, c.rate_burst.load(std::memory_order_relaxed));
        const std::int64_t horizon = shm::monotonic_ns() + std::min<std::int64_t>(burst, max_bucket_ns / interval) * interval;
        if (c.rate_tat_ns.load(std::memory_order_relaxed) > horizon) c.rate_tat_ns.store(horizon, std::memory_order_relaxed);
    }
}

void QueueState::apply_limit_options(EntrypointId ep, const EntrypointOptions& options, bool published) {
    // Caller holds [E], or the entrypoint is not yet published. Validated before.
    EntrypointControl& c = entrypoints_[ep];
    if (options.concurrency_limit) {
        // With a limit already set, I2 holds already.
        const bool had_limit = c.concurrency_limit.exchange(std::uint32_t(*options.concurrency_limit),
                                                            std::memory_order_seq_cst) != 0;
        if (!had_limit && published) c.legacy_picks.store(count_uncounted(ep), std::memory_order_seq_cst);
    }
    if (options.rate_limit) {
        const std::int64_t burst = options.rate_burst.value_or(1);
        c.rate_interval_ns.store(check_rate(*options.rate_limit, burst, describe(ep)), std::memory_order_relaxed);
        c.rate_burst.store(std::uint32_t(burst), std::memory_order_relaxed);
        c.rate_tat_ns.store(0, std::memory_order_relaxed); // a full bucket
    }
}

// ------------------------------------------------------- without the lock

std::int64_t QueueState::next_rate_start(const EntrypointControl& c) const noexcept {
    const std::int64_t interval = c.rate_interval_ns.load(std::memory_order_relaxed);
    if (interval <= 0) return 0;
    const std::int64_t burst = std::max<std::uint32_t>(1, c.rate_burst.load(std::memory_order_relaxed));
    // Read without the lock, so possibly corrupt: saturate instead of overflowing.
    std::int64_t start = 0;
    if (__builtin_sub_overflow(c.rate_tat_ns.load(std::memory_order_relaxed),
                               (std::min<std::int64_t>(burst, max_bucket_ns / interval) - 1) * interval, &start))
        return 0;
    return start;
}

bool QueueState::concurrency_full(EntrypointId ep) const noexcept {
    const EntrypointControl& c = entrypoints_[ep];
    const std::uint32_t limit = c.concurrency_limit.load(std::memory_order_seq_cst);
    if (limit == 0) return false;
    const std::uint64_t in_flight = c.in_flight.load(std::memory_order_seq_cst);
    if (in_flight >= limit) return true;
    // Picks made before the limit may be acked without the lock, which
    // changes only their state words: rescan them (a sleeper sets its bit
    // first; such an acker wakes after its state CAS, see finish()).
    if (c.legacy_picks.load(std::memory_order_seq_cst) == 0) return false;
    return in_flight + count_uncounted(ep) >= limit;
}

bool QueueState::blocked_by_limits(EntrypointId ep, std::int64_t now_mono) const noexcept {
    // seq_cst loads: a consumer about to sleep reads these after setting its
    // sleeper bit; resume() and a releaser store, fence, then read the bits.
    const EntrypointControl& c = entrypoints_[ep];
    if (c.paused.load(std::memory_order_seq_cst) != 0) return true;
    if (concurrency_full(ep)) return true;
    return c.rate_interval_ns.load(std::memory_order_relaxed) > 0 && next_rate_start(c) > now_mono;
}

void QueueState::wake_for_freed_limit(EntrypointId ep, std::uint32_t freed) noexcept {
    if (freed == 0) return;
    // Only jobs that wait can use the freed slot; with none, an enqueue wakes.
    if (entrypoints_[ep].ready_count.load(std::memory_order_acquire) == 0) return;
    wake_sleepers(ep, freed); // its seq_cst fence pairs with blocked_by_limits
}

// ---------------------------------------------------------------- the API

void QueueState::set_paused(EntrypointId ep, bool paused) {
    check_usable();
    check_entrypoint(ep);
    EntrypointControl& c = entrypoints_[ep];
    {
        // Under [E]: once pause() returns, no pick of this entrypoint is in
        // progress and none starts.
        lock_entrypoint(ep);
        shm::LockHolder holder(c.lock);
        c.paused.store(paused ? 1 : 0, std::memory_order_seq_cst);
        shm::crash_point("pause.stored");
    }
    note_configuration_change();
    // Resume: every sleeper re-checks (each may pick, and may wake others).
    if (!paused) wake_sleepers(ep, max_participants_);
}

bool QueueState::paused(EntrypointId ep) const {
    segment_.check_not_retired();
    check_entrypoint(ep);
    return entrypoints_[ep].paused.load(std::memory_order_seq_cst) != 0;
}

void QueueState::set_concurrency_limit(EntrypointId ep, std::optional<std::int64_t> limit) {
    check_usable();
    check_entrypoint(ep);
    if (limit) check_concurrency(*limit, describe(ep));
    EntrypointControl& c = entrypoints_[ep];
    {
        lock_entrypoint(ep);
        shm::LockHolder holder(c.lock);
        // The limit first, then the scan: a setter that dies in between
        // leaves I2 to the repair. Removing a limit keeps counting the picks
        // already counted (they leave under [E]), so I1 holds either way.
        const bool had_limit = c.concurrency_limit.exchange(limit ? std::uint32_t(*limit) : 0,
                                                            std::memory_order_seq_cst) != 0;
        shm::crash_point("limit.set");
        // I2: count the picks made without a limit (with one already set, it
        // holds). The scan follows the limit's store (seq_cst): an owner that
        // acks one of them lock-free after the scan reads the limit and wakes
        // a sleeper (finish()).
        if (limit && !had_limit) c.legacy_picks.store(count_uncounted(ep), std::memory_order_seq_cst);
        if (!limit) c.legacy_picks.store(0, std::memory_order_seq_cst);
    }
    note_configuration_change();
    wake_sleepers(ep, max_participants_); // a raised or removed limit may let them pick
}

void QueueState::set_rate_limit(EntrypointId ep, std::optional<double> per_second, std::int64_t burst) {
    check_usable();
    check_entrypoint(ep);
    const std::int64_t interval = per_second ? check_rate(*per_second, burst, describe(ep)) : 0;
    EntrypointControl& c = entrypoints_[ep];
    {
        lock_entrypoint(ep);
        shm::LockHolder holder(c.lock);
        // Three words: a setter that dies between them leaves a valid bucket
        // (old burst or a full one); the picks read them under [E] only.
        c.rate_burst.store(per_second ? std::uint32_t(burst) : 0, std::memory_order_relaxed);
        c.rate_tat_ns.store(0, std::memory_order_relaxed);
        c.rate_interval_ns.store(interval, std::memory_order_seq_cst);
    }
    note_configuration_change();
    wake_sleepers(ep, max_participants_);
}

EntrypointLimits QueueState::limits(EntrypointId ep) const {
    segment_.check_not_retired();
    check_entrypoint(ep);
    const EntrypointControl& c = entrypoints_[ep];
    EntrypointLimits limits;
    limits.paused = c.paused.load(std::memory_order_seq_cst) != 0;
    if (const std::uint32_t limit = c.concurrency_limit.load(std::memory_order_relaxed)) limits.concurrency = limit;
    if (const std::int64_t interval = c.rate_interval_ns.load(std::memory_order_relaxed); interval > 0) {
        limits.rate = 1e9 / double(interval);
        limits.burst = std::max<std::uint32_t>(1, c.rate_burst.load(std::memory_order_relaxed));
    }
    limits.in_flight = c.in_flight.load(std::memory_order_relaxed);
    if (limits.concurrency && c.legacy_picks.load(std::memory_order_relaxed) != 0)
        limits.in_flight += count_uncounted(ep); // picks made before the limit count too
    return limits;
}

} // namespace currant::detail
