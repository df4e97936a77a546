// Cron schedules in the segment (docs/schedules.md).
//
// Where the state lives (layout.hpp, guard notation there):
//   ScheduleEntry[max_schedules]    after the counters in the core region
//     state, fixed fields           [R] (the registry lock) to add; [R] and
//                                   [E] of the schedule's entrypoint to remove
//     next_tick_ns, statistics      [E] of the schedule's entrypoint
//   Intent::schedule, tick_from/to  [E]: the tick a publish commits
//   CoreHeader::schedule_epoch      bumped after every add and remove
//   CoreHeader::configuration_generation  bumped by add, remove and every
//                                   tick (before its commit point), for currantd
//
// Exactly once, with no leader. Every tick of a schedule is fired under
// the lock [E] of its target entrypoint, the same lock every enqueue there
// takes, by whichever process gets there first; a process that finds
// next_tick_ns already moved does nothing. One firing is one critical
// section that (1) writes an intent naming the schedule and the move of its
// next tick (tick_from -> tick_to), (2) links a job reserved by the firer
// into the entrypoint's indexes, (3) stores the job's state word `queued`
// (release) -- THE commit point of the tick --, (4) appends the log record,
// (5) moves next_tick_ns from tick_from to tick_to and updates the
// statistics, (6) clears the intent. Recovery of a firer killed between any
// two instructions: it held [E], so the next locker of [E] gets EOWNERDEAD
// and runs repair_entrypoint before anyone can read or change the
// entrypoint's queued jobs or the schedule's next tick:
//   * killed before (3): the job's state word is still `reserved` by the
//     dead firer, so the repair leaves next_tick_ns at tick_from and drops
//     the half-linked job from the indexes (they are rebuilt from the state
//     words); the reaper frees the slot. The tick is still due and the next
//     firer fires it: not lost.
//   * killed after (3): the state word equals the intent's new word (a
//     queued slot changes only under [E], which the repairer holds), so the
//     repair appends the log record if (4) did not happen and moves
//     next_tick_ns from tick_from to tick_to if (5) did not (finish_tick
//     compares first, so a move already made is not repeated). The job
//     stays queued: the tick fired once, and nobody fires it again because
//     next_tick_ns no longer names it: not doubled.
//   * a repairer killed mid-repair leaves [E] owner-dead again; the repair
//     is a pure function of the state words and the intent: repeated.
// The statistics (fired, last tick, last job) are written after the move;
// a kill between the two leaves them one tick behind, nothing else.
//
// Add and remove. An adder holds [R], marks a free entry `writing`, fills
// it, and publishes it with a release store of `active`; an adder killed
// while writing leaves [R] owner-dead and a `writing` entry, which the next
// holder of [R] treats as free (nothing else reads a `writing` entry). A
// remover holds [R] and the schedule's [E] and stores `free`: a firer holds
// [E] and re-checks `active` and the entrypoint under it, so it never fires
// a half-removed or half-written schedule.
//
// Who fires: every dequeue (each loop, one shared load when nothing is due)
// and run_schedules(). A consumer's sleep ends at the earliest next tick it
// knows of; an add bumps schedule_epoch and wakes sleepers, and a consumer
// about to sleep re-checks the epoch after setting its wake word (Dekker,
// see CoreHeader::schedule_epoch), so none sleeps past a new schedule's
// first tick.
#include <algorithm>
#include <cstring>
#include <deque>

#include "currant/cron.hpp"
#include "currant/shm/clock.hpp"
#include "currant/shm/crash_point.hpp"
#include "queue_state.hpp"

namespace currant::detail {

using shm::SlotState;
using shm::StateWord;

namespace {

constexpr std::int64_t ns_per_second = 1'000'000'000;
constexpr std::int64_t blocked_retry_ns = 100'000'000; // a tick that cannot fire now (full arena or log)
constexpr std::uint32_t max_catch_up = 100'000;
constexpr std::int64_t max_walk = 2'000'000;           // ticks walked per plan, at most

std::int64_t tick_ns(std::optional<std::int64_t> seconds) noexcept {
    if (!seconds || *seconds < 0 || *seconds >= INT64_MAX / ns_per_second) return no_deadline;
    return *seconds * ns_per_second;
}

std::int64_t floor_seconds(std::int64_t ns) noexcept { return ns >= 0 ? ns / ns_per_second : -((-ns + ns_per_second - 1) / ns_per_second); }

// The latest `limit` ticks in [from, now] (seconds), oldest first. Windows
// ending at `now` double until they hold `limit` ticks or reach `from`, so a
// long gap costs about as many steps as the ticks kept, not the ticks missed.
std::vector<std::int64_t> latest_ticks(const CronExpression& cron, std::int64_t from, std::int64_t now,
                                       std::uint32_t limit) {
    std::deque<std::int64_t> kept;
    for (std::int64_t window = 1;; window = window > INT64_MAX / 4 ? INT64_MAX / 2 : window * 2) {
        const std::int64_t low = now - from + 1 <= window ? from : now - window + 1;
        kept.clear();
        std::int64_t seen = 0, walked = 0;
        for (std::optional<std::int64_t> t = cron.next_after(low - 1); t && *t <= now && walked < max_walk;
             t = cron.next_after(*t), ++walked) {
            kept.push_back(*t);
            if (kept.size() > limit) kept.pop_front();
            ++seen;
        }
        if (seen >= limit || low == from || walked >= max_walk) break;
    }
    return {kept.begin(), kept.end()};
}

void validate_schedule_name(std::string_view name) {
    if (name.empty()) throw Error(Errc::invalid_argument, "schedule name is empty");
    if (name.size() >= schedule_name_bytes)
        throw Error(Errc::invalid_argument, "schedule name '" + std::string(name.substr(0, 20)) + "...' is longer than " +
                                                std::to_string(schedule_name_bytes - 1) + " bytes");
    for (unsigned char c : name)
        if (c < 0x20 || c == 0x7f) throw Error(Errc::invalid_argument, "schedule name contains a control character");
}

CronExpression cron_of(const ScheduleEntry& s) noexcept {
    CronFields f;
    f.seconds = s.seconds_mask;
    f.minutes = s.minutes_mask;
    f.hours = s.hours_mask;
    f.days = s.days_mask;
    f.months = s.months_mask;
    f.weekdays = s.weekdays_mask;
    f.any_day = s.any_day != 0;
    f.any_weekday = s.any_weekday != 0;
    return CronExpression::from_fields(f);
}

} // namespace

// ---------------------------------------------------------------- firing

void QueueState::finish_tick(EntrypointId ep, std::uint32_t slot) noexcept {
    // Under [E], with the intent's job published (state word = new word).
    const Intent& intent = entrypoints_[ep].intent;
    const std::uint32_t index = intent.schedule - 1;
    if (intent.schedule == 0 || index >= max_schedules || slot >= arena_.slot_count()) return;
    ScheduleEntry& s = schedules_[index];
    if (s.state.load(std::memory_order_acquire) != std::uint32_t(ScheduleState::active) ||
        s.entrypoint.load(std::memory_order_relaxed) != ep)
        return;
    // Already moved (the firer got past it): do not count the tick twice.
    if (s.next_tick_ns.load(std::memory_order_relaxed) != intent.tick_from) return;
    s.next_tick_ns.store(intent.tick_to, std::memory_order_relaxed);
    shm::crash_point("schedule.advanced");
    const JobRecord& rec = record(slot);
    s.fired.store(s.fired.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    s.last_tick_ns.store(rec.enqueued_at_ns, std::memory_order_relaxed);
    s.last_job_id.store(rec.job_id, std::memory_order_relaxed);
}

bool QueueState::fire_tick_locked(std::uint32_t index, EntrypointId ep, std::uint32_t slot, std::int64_t now_real,
                                  bool& blocked) {
    EntrypointControl& c = entrypoints_[ep];
    ScheduleEntry& s = schedules_[index];
    if (s.state.load(std::memory_order_acquire) != std::uint32_t(ScheduleState::active) ||
        s.entrypoint.load(std::memory_order_relaxed) != ep)
        return false; // removed (or replaced by a schedule of another entrypoint) meanwhile
    const std::int64_t from = s.next_tick_ns.load(std::memory_order_relaxed);
    if (from > now_real) return false; // another process fired it
    // Room, as an enqueue would need it; without room the tick waits (it
    // stays due) instead of blocking a consumer's dequeue.
    if (Durability(c.durability.load(std::memory_order_relaxed)) != Durability::memory) {
        const std::uint64_t pending = c.log_written - c.log_committed.load(std::memory_order_acquire);
        if (pending >= std::max<std::uint64_t>(1, log_capacity_ / 3)) {
            blocked = true;
            return false;
        }
    }
    if (c.lane_count >= max_priority_lanes && !lane_for(c, s.priority, false)) {
        blocked = true;
        return false;
    }
    const CronExpression cron = cron_of(s);
    const std::uint32_t limit = s.policy == std::uint32_t(MissedTicks::catch_up)
                                    ? std::clamp<std::uint32_t>(s.catch_up_max, 1, max_catch_up)
                                    : 1;
    const std::int64_t now_seconds = floor_seconds(now_real);
    const std::vector<std::int64_t> ticks =
        latest_ticks(cron, floor_seconds(from + ns_per_second - 1), now_seconds, limit);
    const std::int64_t after_now = tick_ns(cron.next_after(now_seconds));
    if (ticks.empty()) {
        // A next tick that is no tick (a corrupt word): one store, nothing fired.
        s.next_tick_ns.store(after_now, std::memory_order_relaxed);
        return false;
    }
    const std::int64_t tick = ticks[0] * ns_per_second;
    const std::int64_t to = ticks.size() > 1 ? ticks[1] * ns_per_second : after_now;

    // The job: the slot is reserved by us, so writing it needs no lock; we
    // hold [E] anyway, which keeps the schedule's payload stable.
    const std::uint32_t size =
        std::min({s.payload_size, schedule_payload_bytes, std::uint32_t(arena_.payload_bytes())});
    if (size) std::memcpy(arena_.payload(slot), s.payload, size);
    EnqueueOptions options;
    options.priority = s.priority;
    prepare_record(slot, ep, next_job_id(), size, options, tick); // enqueued_at = the tick
    JobRecord& rec = record(slot);
    std::atomic<std::uint64_t>& state = arena_.state_word(slot);
    const std::uint64_t word = state.load(std::memory_order_relaxed);
    const std::uint64_t new_word = StateWord::next(word, SlotState::queued, 0);
    begin_intent(c, slot, word, new_word);
    c.intent.tick_from = from;
    c.intent.tick_to = to;
    c.intent.schedule = index + 1;
    // Before the commit point and the log record (release): a mirror that
    // reads this job from the feed then sees the bump and re-reads the
    // schedule under [E], after the move (CoreHeader::configuration_generation).
    core_->configuration_generation.fetch_add(1, std::memory_order_seq_cst);
    shm::crash_point("schedule.intent");
    rec.sequence = c.next_sequence++;
    const bool ready = place_queued(ep, slot, now_real);
    state.store(new_word, std::memory_order_release); // the tick's commit point
    shm::crash_point("schedule.published");
    append_log(ep, slot, new_word);
    finish_tick(ep, slot);
    if (ready) c.ready_count.store(c.ready_count.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    c.intent.active = 0;
    return true;
}

std::size_t QueueState::fire_due_schedules(std::int64_t now_real) noexcept {
    // One acquire load while nothing changed and nothing is due.
    const std::uint64_t epoch = core_->schedule_epoch.load(std::memory_order_acquire);
    if (epoch == schedule_seen_epoch_ && now_real < schedule_due_at_) return 0;
    if (!registered_) return 0;
    schedule_seen_epoch_ = epoch;
    std::size_t fired = 0;
    std::int64_t due_at = no_deadline;
    for (std::uint32_t index = 0; index < max_schedules; ++index) {
        ScheduleEntry& s = schedules_[index];
        if (s.state.load(std::memory_order_acquire) != std::uint32_t(ScheduleState::active)) continue;
        std::int64_t next = s.next_tick_ns.load(std::memory_order_relaxed);
        bool blocked = false;
        // Each firing is its own critical section; a catch-up fires its
        // ticks one by one (bounded: catch_up_max plus the ticks that fall
        // due meanwhile).
        for (std::uint32_t round = 0; next <= now_real && round <= max_catch_up + 2; ++round) {
            const EntrypointId ep = s.entrypoint.load(std::memory_order_relaxed);
            if (ep >= entrypoint_count() || entrypoints_[ep].declared.load(std::memory_order_acquire) == 0) {
                blocked = true; // corrupt entry: never followed
                break;
            }
            bool fired_one = false;
            try {
                const std::uint32_t slot = take_slot(); // before [E]: take_slot may sweep, which locks
                try {
                    EntrypointControl& c = entrypoints_[ep];
                    lock_entrypoint(ep);
                    shm::LockHolder holder(c.lock);
                    fired_one = fire_tick_locked(index, ep, slot, now_real, blocked);
                } catch (...) {
                    give_back_slot(slot);
                    throw;
                }
                if (!fired_one) give_back_slot(slot);
            } catch (...) {
                blocked = true; // arena full, repair failed, ...: retried later
            }
            if (fired_one) {
                ++fired;
                count(ep, counter_enqueued);
                wake_sleepers(ep, 1);
                nudge_mirror(); // the moved tick is recorded (a memory entrypoint's job logs nothing)
            }
            next = s.next_tick_ns.load(std::memory_order_relaxed);
            if (!fired_one) break;
        }
        if (blocked && next <= now_real) next = now_real + blocked_retry_ns;
        due_at = std::min(due_at, next);
    }
    schedule_due_at_ = due_at;
    return fired;
}

std::size_t QueueState::run_schedules() {
    check_usable();
    ensure_registered();
    schedule_seen_epoch_ = ~std::uint64_t(0); // scan now
    return fire_due_schedules(shm::realtime_ns());
}

// ------------------------------------------------------------ add, remove

void QueueState::add_schedule(const ScheduleOptions& options, const ScheduleProgress* progress) {
    check_usable();
    validate_schedule_name(options.name);
    const std::string where = "queue '" + segment_.name() + "', schedule '" + options.name + "'";
    if (options.expression.size() >= schedule_expression_bytes)
        throw Error(Errc::invalid_argument, where + ": cron expression is longer than " +
                                                std::to_string(schedule_expression_bytes - 1) + " bytes");
    CronExpression cron = [&] {
        try {
            return CronExpression::parse(options.expression);
        } catch (const Error& e) {
            throw Error(e.code(), where + ": " + e.what());
        }
    }();
    check_entrypoint(options.entrypoint);
    const std::size_t capacity = std::min<std::size_t>(schedule_payload_bytes, arena_.payload_bytes());
    if (options.payload.size() > capacity)
        throw Error(Errc::payload_too_large, where + ": payload of " + std::to_string(options.payload.size()) +
                                                 " bytes exceeds " + std::to_string(capacity) +
                                                 " bytes (the slot capacity, and at most 1024 for a schedule)");
    if (options.missed != MissedTicks::skip && options.missed != MissedTicks::catch_up)
        throw Error(Errc::invalid_argument, where + ": unknown missed-tick policy");
    if (options.catch_up_max == 0 || options.catch_up_max > max_catch_up)
        throw Error(Errc::invalid_argument, where + ": catch_up_max must be 1.." + std::to_string(max_catch_up) +
                                                " (got " + std::to_string(options.catch_up_max) + ")");
    const std::int64_t now = shm::realtime_ns();
    const std::int64_t first = tick_ns(cron.next_after(floor_seconds(now)));
    if (first == no_deadline) throw Error(Errc::invalid_argument, where + ": the expression has no tick after now");
    if (progress && progress->next_tick_ns < 0)
        throw Error(Errc::invalid_argument, where + ": a restored next tick must not be negative (got " +
                                                std::to_string(progress->next_tick_ns) + ")");

    // [R] repair: nothing to rebuild; a `writing` entry left by a dead adder
    // is free space, and a dead remover left `free` or `active` (one store).
    core_->registry_lock.lock([]() noexcept { return true; });
    {
        shm::LockHolder holder(core_->registry_lock);
        ScheduleEntry* free_entry = nullptr;
        for (std::uint32_t i = 0; i < max_schedules; ++i) {
            ScheduleEntry& s = schedules_[i];
            const auto state = ScheduleState(s.state.load(std::memory_order_acquire));
            if (state == ScheduleState::active) {
                if (name_of(s) == options.name)
                    throw Error(Errc::already_exists, where + " exists already (remove it first)");
            } else if (!free_entry) {
                free_entry = &s;
            }
        }
        if (!free_entry)
            throw Error(Errc::invalid_argument, "queue '" + segment_.name() + "': all " + std::to_string(max_schedules) +
                                                    " schedules are in use; remove one first");
        ScheduleEntry& s = *free_entry;
        s.state.store(std::uint32_t(ScheduleState::writing), std::memory_order_relaxed);
        s.generation.fetch_add(1, std::memory_order_release);
        shm::crash_point("schedule.add.writing");
        const CronFields& f = cron.fields();
        s.seconds_mask = f.seconds;
        s.minutes_mask = f.minutes;
        s.hours_mask = f.hours;
        s.days_mask = f.days;
        s.months_mask = f.months;
        s.weekdays_mask = f.weekdays;
        s.any_day = f.any_day;
        s.any_weekday = f.any_weekday;
        s.priority = options.priority;
        s.policy = std::uint32_t(options.missed);
        s.catch_up_max = options.catch_up_max;
        s.payload_size = std::uint32_t(options.payload.size());
        if (!options.payload.empty()) std::memcpy(s.payload, options.payload.data(), options.payload.size());
        s.created_at_ns = progress && progress->created_at_ns > 0 ? progress->created_at_ns : now;
        std::memset(s.name, 0, sizeof s.name);
        std::memcpy(s.name, options.name.data(), options.name.size());
        std::memset(s.expression, 0, sizeof s.expression);
        std::memcpy(s.expression, options.expression.data(), options.expression.size());
        s.entrypoint.store(options.entrypoint, std::memory_order_relaxed);
        s.fired.store(progress ? progress->fired : 0, std::memory_order_relaxed);
        s.last_tick_ns.store(progress ? progress->last_tick_ns : 0, std::memory_order_relaxed);
        s.last_job_id.store(progress ? progress->last_job_id : 0, std::memory_order_relaxed);
        s.next_tick_ns.store(progress ? progress->next_tick_ns : first, std::memory_order_relaxed);
        s.state.store(std::uint32_t(ScheduleState::active), std::memory_order_release); // published
    }
    // Sleeping consumers computed their deadlines without this schedule:
    // bump the epoch, then (fence in wake_sleepers) wake one per entrypoint.
    core_->schedule_epoch.fetch_add(1, std::memory_order_seq_cst);
    note_configuration_change();
    for (EntrypointId ep = 0; ep < entrypoint_count(); ++ep) wake_sleepers(ep, 1);
}

void QueueState::remove_schedule(std::string_view name) {
    check_usable();
    core_->registry_lock.lock([]() noexcept { return true; });
    {
        shm::LockHolder holder(core_->registry_lock);
        ScheduleEntry* found = nullptr;
        for (std::uint32_t i = 0; i < max_schedules && !found; ++i)
            if (schedules_[i].state.load(std::memory_order_acquire) == std::uint32_t(ScheduleState::active) &&
                name_of(schedules_[i]) == name)
                found = &schedules_[i];
        if (!found)
            throw Error(Errc::not_found, "queue '" + segment_.name() + "': unknown schedule '" + std::string(name) + "'");
        const EntrypointId ep = found->entrypoint.load(std::memory_order_relaxed);
        if (ep < entrypoint_count()) {
            // Under [E] too: a firer holding it sees the schedule whole or not at all.
            lock_entrypoint(ep);
            shm::LockHolder entry(entrypoints_[ep].lock);
            found->state.store(std::uint32_t(ScheduleState::free), std::memory_order_release);
        } else {
            found->state.store(std::uint32_t(ScheduleState::free), std::memory_order_release);
        }
        found->generation.fetch_add(1, std::memory_order_release);
    }
    core_->schedule_epoch.fetch_add(1, std::memory_order_seq_cst);
    note_configuration_change();
}

std::vector<ScheduleInfo> QueueState::schedules() const {
    segment_.check_not_retired();
    std::vector<ScheduleInfo> list;
    for (std::uint32_t i = 0; i < max_schedules; ++i) {
        const ScheduleEntry& s = schedules_[i];
        // Copy, then re-check the generation: an add or remove meanwhile
        // (both bump it) makes us retry rather than report a torn entry.
        for (int attempt = 0; attempt < 8; ++attempt) {
            const std::uint64_t generation = s.generation.load(std::memory_order_acquire);
            if (s.state.load(std::memory_order_acquire) != std::uint32_t(ScheduleState::active)) break;
            ScheduleInfo info;
            info.name = std::string(name_of(s));
            std::size_t length = 0;
            while (length < schedule_expression_bytes && s.expression[length] != '\0') ++length;
            info.expression.assign(s.expression, length);
            info.entrypoint = s.entrypoint.load(std::memory_order_relaxed);
            const std::uint32_t size = std::min(s.payload_size, schedule_payload_bytes);
            info.payload.assign(s.payload, s.payload + size);
            info.priority = s.priority;
            info.missed = s.policy == std::uint32_t(MissedTicks::catch_up) ? MissedTicks::catch_up : MissedTicks::skip;
            info.catch_up_max = s.catch_up_max;
            info.next_tick_ns = s.next_tick_ns.load(std::memory_order_relaxed);
            info.last_tick_ns = s.last_tick_ns.load(std::memory_order_relaxed);
            info.fired = s.fired.load(std::memory_order_relaxed);
            info.last_job_id = s.last_job_id.load(std::memory_order_relaxed);
            info.created_at_ns = s.created_at_ns;
            std::atomic_thread_fence(std::memory_order_acquire);
            if (s.state.load(std::memory_order_relaxed) != std::uint32_t(ScheduleState::active) ||
                s.generation.load(std::memory_order_relaxed) != generation)
                continue;
            if (info.entrypoint < entrypoint_count()) info.entrypoint_name = std::string(name_of(entrypoints_[info.entrypoint]));
            list.push_back(std::move(info));
            break;
        }
    }
    std::sort(list.begin(), list.end(), [](const ScheduleInfo& a, const ScheduleInfo& b) { return a.name < b.name; });
    return list;
}

} // namespace currant::detail
