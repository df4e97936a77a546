// Construction, region accessors and entrypoint declarations.
#include "queue_state.hpp"
#include "currant/shm/crash_point.hpp"

#include <algorithm>
#include <cstring>
#include <pthread.h>

#include "currant/shm/clock.hpp"

namespace currant::detail {

std::atomic<std::uint64_t> forks_seen{0};

namespace {
void on_fork_in_child() noexcept { forks_seen.fetch_add(1, std::memory_order_relaxed); }
// Installed when this object file is initialised; it holds QueueState's
// constructor, so every program that opens a queue links it.
const bool fork_handler_installed = [] {
    pthread_atfork(nullptr, nullptr, &on_fork_in_child);
    return true;
}();
} // namespace

std::uint64_t QueueState::core_bytes_for(const shm::SegmentParameters& parameters) {
    return compute_core_geometry(parameters).region_bytes;
}

void QueueState::initialize_core(shm::Segment& segment, bool sealed) {
    const auto& parameters = segment.header().parameters;
    const CoreGeometry geometry = compute_core_geometry(parameters);
    auto* core = segment.at<CoreHeader>(segment.header().core_offset);
    core->max_entrypoints = parameters.max_entrypoints;
    core->max_participants = parameters.max_participants;
    core->log_capacity = parameters.log_capacity;
    core->sleeper_words = geometry.sleeper_words;
    core->entrypoints_offset = geometry.entrypoints_offset;
    core->participants_offset = geometry.participants_offset;
    core->sleepers_offset = geometry.sleepers_offset;
    core->delayed_offset = geometry.delayed_offset;
    core->logs_offset = geometry.logs_offset;
    core->counters_offset = geometry.counters_offset;
    core->schedules_offset = geometry.schedules_offset;
    core->region_bytes = geometry.region_bytes;
    core->outcomes_offset = geometry.outcomes_offset;
    core->outcome_stride = geometry.outcome_stride;
    core->outcome_capacity = geometry.outcome_capacity;
    core->registry_lock.initialize();
    core->entrypoint_count.store(0, std::memory_order_relaxed);
    core->space_signal.store(0, std::memory_order_relaxed);
    core->mirror_waiting.store(0, std::memory_order_relaxed);
    core->mirror_signal.store(0, std::memory_order_relaxed);
    core->sealed.store(sealed ? 1 : 0, std::memory_order_relaxed);
    core->mirrored.store(0, std::memory_order_relaxed);
    core->schedule_epoch.store(0, std::memory_order_relaxed);
    core->configuration_generation.store(0, std::memory_order_relaxed);
    core->completion_signal.store(0, std::memory_order_relaxed);
    core->completion_waiters.store(0, std::memory_order_relaxed);
    std::byte* region = reinterpret_cast<std::byte*>(core);
    auto* entrypoints = reinterpret_cast<EntrypointControl*>(region + geometry.entrypoints_offset);
    for (std::uint32_t i = 0; i < parameters.max_entrypoints; ++i) {
        EntrypointControl& c = entrypoints[i];
        c.declared.store(0, std::memory_order_relaxed);
        c.lock.initialize();
        c.intent = Intent{};
        c.next_sequence = 1;
        c.lane_count = 0;
        c.delayed_count = 0;
        c.log_written = 0;
        c.pick_generation.store(0, std::memory_order_relaxed);
        c.ready_count.store(0, std::memory_order_relaxed);
        c.earliest_delayed_ns.store(no_deadline, std::memory_order_relaxed);
        c.earliest_lease_ns.store(no_deadline, std::memory_order_relaxed);
        c.log_head.store(0, std::memory_order_relaxed);
        c.log_committed.store(0, std::memory_order_relaxed);
        c.commit_signal.store(0, std::memory_order_relaxed);
        c.dirty_slots.store(0, std::memory_order_relaxed);
        c.clear_limits();
        c.dedupe_used = 0;   // the index and the keys start zeroed (fresh shm pages)
        c.dedupe_in_use = 0;
        c.max_dead.store(0, std::memory_order_relaxed);
        c.result_retention_ns.store(0, std::memory_order_relaxed);
        c.dead_head = c.dead_tail = shm::no_slot;
        c.dead_count = 0;
        for (auto& counter : c.retired_counters) counter.store(0, std::memory_order_relaxed);
    }
    auto* participants = reinterpret_cast<ParticipantEntry*>(region + geometry.participants_offset);
    for (std::uint32_t i = 0; i < parameters.max_participants; ++i) {
        participants[i].life_lock.initialize();
        participants[i].status.store(std::uint32_t(ParticipantStatus::free), std::memory_order_relaxed);
        participants[i].pid = 0;
        participants[i].start_time = 0;
        participants[i].wake_word.store(0, std::memory_order_relaxed);
        participants[i].completion_waiting.store(0, std::memory_order_relaxed);
    }
    auto* schedules = reinterpret_cast<ScheduleEntry*>(region + geometry.schedules_offset);
    for (std::uint32_t i = 0; i < max_schedules; ++i) {
        schedules[i].state.store(std::uint32_t(ScheduleState::free), std::memory_order_relaxed);
        schedules[i].next_tick_ns.store(no_deadline, std::memory_order_relaxed);
        schedules[i].generation.store(0, std::memory_order_relaxed);
    }
    auto* dependencies = reinterpret_cast<DependencyControl*>(region + geometry.dependency_control_offset);
    dependencies->lock.initialize();
    dependencies->waiting_head = shm::no_slot;
    dependencies->next_wait_order = 0;
    dependencies->waiting_total.store(0, std::memory_order_relaxed);
    // Waiting counts and recent outcomes (all empty) start zeroed; id hints are checked at every use and
    // rows belong to no job (job_id 0): fresh shm pages.
    // Sleeper bits, heaps, logs, counters and latency cells start zeroed (fresh shm pages).
    // Slot records: lane links and heap positions start empty.
    shm::Arena arena(segment);
    for (std::uint32_t slot = 0; slot < parameters.slot_count; ++slot) {
        auto& rec = arena.record<JobRecord>(slot);
        rec.lane_position = rec.lane_ring = shm::no_slot;
        rec.heap_position = shm::no_slot;
        rec.last_outcome.store(0, std::memory_order_relaxed);
        rec.last_job_id.store(0, std::memory_order_relaxed);
        rec.job_id = 0;
        rec.lease_deadline_ns.store(0, std::memory_order_relaxed);
        rec.mirror_dirty.store(0, std::memory_order_relaxed);
        rec.limit_mark.store(0, std::memory_order_relaxed);
        rec.dead_mark.store(0, std::memory_order_relaxed);
        rec.dead_next = rec.dead_prev = shm::no_slot;
        rec.died_at_ns = 0;
        rec.picked_at_ns.store(0, std::memory_order_relaxed);
        rec.dependents.store(0, std::memory_order_relaxed);
    }
    // Outcome areas start zeroed (kind none, job 0): fresh shm pages, left untouched.
}

QueueState::QueueState(shm::Segment segment)
    : segment_(std::move(segment)), arena_(segment_), opened_fork_generation_(fork_generation()) {
    const auto& header = segment_.header();
    core_ = segment_.at<CoreHeader>(header.core_offset);
    const CoreGeometry expected = compute_core_geometry(header.parameters);
    if (header.core_bytes != expected.region_bytes || core_->region_bytes != expected.region_bytes ||
        core_->entrypoints_offset != expected.entrypoints_offset ||
        core_->participants_offset != expected.participants_offset ||
        core_->sleepers_offset != expected.sleepers_offset || core_->delayed_offset != expected.delayed_offset ||
        core_->logs_offset != expected.logs_offset || core_->counters_offset != expected.counters_offset ||
        core_->schedules_offset != expected.schedules_offset ||
        core_->outcomes_offset != expected.outcomes_offset || core_->outcome_stride != expected.outcome_stride ||
        core_->outcome_capacity != expected.outcome_capacity ||
        core_->sleeper_words != expected.sleeper_words || core_->max_entrypoints != header.parameters.max_entrypoints ||
        core_->max_participants != header.parameters.max_participants ||
        core_->log_capacity != header.parameters.log_capacity)
        throw Error(Errc::corrupt_segment,
                    "queue '" + segment_.name() + "': core region layout does not match the header");
    std::byte* region = reinterpret_cast<std::byte*>(core_);
    entrypoints_ = reinterpret_cast<EntrypointControl*>(region + core_->entrypoints_offset);
    participant_entries_ = reinterpret_cast<ParticipantEntry*>(region + core_->participants_offset);
    schedules_ = reinterpret_cast<ScheduleEntry*>(region + core_->schedules_offset);
    dedupe_keys_ = reinterpret_cast<DedupeKey*>(region + expected.dedupe_keys_offset);
    dedupe_index_ = reinterpret_cast<DedupeEntry*>(region + expected.dedupe_index_offset);
    dedupe_capacity_ = expected.dedupe_capacity;
    outcomes_ = region + core_->outcomes_offset;
    outcome_stride_ = core_->outcome_stride;
    outcome_capacity_ = core_->outcome_capacity;
    dependencies_ = reinterpret_cast<DependencyControl*>(region + expected.dependency_control_offset);
    waiting_counts_ = reinterpret_cast<std::atomic<std::uint32_t>*>(region + expected.waiting_counts_offset);
    dependency_rows_ = reinterpret_cast<DependencyRow*>(region + expected.dependency_rows_offset);
    ended_ = reinterpret_cast<std::atomic<std::uint64_t>*>(region + expected.ended_offset);
    ended_capacity_ = expected.ended_capacity;
    lane_rings_ = reinterpret_cast<std::uint32_t*>(region + expected.lane_rings_offset);
    lane_ring_mask_ = expected.lane_ring_capacity - 1;
    result_bytes_ = header.parameters.result_bytes;
    max_entrypoints_ = core_->max_entrypoints;
    max_participants_ = core_->max_participants;
    log_capacity_ = core_->log_capacity;
    sleeper_stride_words_ = round_up(8ull * (core_->sleeper_words + 1), cache_line) / 8; // + the waking word
    counter_stride_ = round_up(8ull * counter_kinds * max_entrypoints_, cache_line) / 8;
    latency_base_ = reinterpret_cast<LatencyCells*>(region + expected.latency_offset);
    host_id_ = std::uint16_t(header.parameters.host_id);
    if (entrypoint_count() > max_entrypoints_)
        throw Error(Errc::corrupt_segment, "queue '" + segment_.name() + "': entrypoint count out of range");
    // Each process keeps a few free slots of its own; small enough that a
    // small arena is not hoarded by idle processes.
    cache_refill_ = std::clamp<std::uint32_t>(arena_.slot_count() / (4 * max_participants_), 1, 32);
    slot_cache_.reserve(4 * cache_refill_ + 64);
}

QueueState::~QueueState() { close(); }

std::atomic<std::uint64_t>* QueueState::sleeper_words(EntrypointId ep) const noexcept {
    auto* base = reinterpret_cast<std::atomic<std::uint64_t>*>(reinterpret_cast<std::byte*>(core_) +
                                                                core_->sleepers_offset);
    return base + sleeper_stride_words_ * ep;
}

DelayedEntry* QueueState::delayed_heap(EntrypointId ep) const noexcept {
    auto* base = reinterpret_cast<DelayedEntry*>(reinterpret_cast<std::byte*>(core_) + core_->delayed_offset);
    return base + std::uint64_t(arena_.slot_count()) * ep;
}

TransitionRecord* QueueState::log(EntrypointId ep) const noexcept {
    auto* base = reinterpret_cast<TransitionRecord*>(reinterpret_cast<std::byte*>(core_) + core_->logs_offset);
    return base + std::uint64_t(log_capacity_) * ep;
}

void QueueState::fold_latency(std::uint32_t participant) noexcept {
    const auto fold = [](std::atomic<std::uint64_t>& from, std::atomic<std::uint64_t>& into) noexcept {
        if (from.load(std::memory_order_relaxed) == 0) return; // nothing to move: no write, no crash point
        const std::uint64_t value = from.exchange(0, std::memory_order_relaxed);
        shm::crash_point("latency.fold"); // killed here: `value` is lost (statistics; documented)
        if (value) into.fetch_add(value, std::memory_order_relaxed); // several folders may add at once
    };
    // Declared entrypoints only: no cell of another was ever written (the
    // count only grows), and tmpfs allocates a page even when it is only
    // read, so walking all max_entrypoints would cost pages for nothing.
    const std::uint32_t declared = std::min(entrypoint_count(), max_entrypoints_); // read from the segment: bounded
    for (EntrypointId ep = 0; ep < declared; ++ep) {
        LatencyCells& from = latency_cells(participant, ep);
        LatencyCells& into = latency_cells(max_participants_, ep);
        for (std::size_t b = 0; b < latency_bucket_count; ++b) {
            fold(from.wait[b], into.wait[b]);
            fold(from.run[b], into.run[b]);
        }
        fold(from.wait_sum_ns, into.wait_sum_ns);
        fold(from.run_sum_ns, into.run_sum_ns);
    }
}

void QueueState::zero_latency(std::uint32_t participant) noexcept {
    const auto zero = [](std::atomic<std::uint64_t>& word) noexcept {
        if (word.load(std::memory_order_relaxed) != 0) word.store(0, std::memory_order_relaxed);
    };
    const std::uint32_t declared = std::min(entrypoint_count(), max_entrypoints_); // as in fold_latency
    for (EntrypointId ep = 0; ep < declared; ++ep) {
        LatencyCells& cells = latency_cells(participant, ep);
        for (std::size_t b = 0; b < latency_bucket_count; ++b) {
            zero(cells.wait[b]);
            zero(cells.run[b]);
        }
        zero(cells.wait_sum_ns);
        zero(cells.run_sum_ns);
    }
}

void QueueState::check_usable_slow() const {
    if (opened_fork_generation_ != fork_generation())
        throw Error(Errc::forked_process, "queue '" + segment_.name() +
                                              "' was opened before fork(): open it again in the child");
    if (closed_) throw Error(Errc::invalid_argument, "queue '" + segment_.name() + "' is closed");
    segment_.check_not_retired();
}

std::string QueueState::describe(EntrypointId id) const {
    std::string text = "queue '" + segment_.name() + "'";
    if (id < entrypoint_count()) text += ", entrypoint '" + std::string(name_of(entrypoints_[id])) + "'";
    return text;
}

void QueueState::entrypoint_not_found(EntrypointId id) const {
    throw Error(Errc::not_found, "queue '" + segment_.name() + "': no entrypoint with id " +
                                         std::to_string(id) + " (declare it first)");
}

namespace {
void validate_entrypoint_name(std::string_view name) {
    if (name.empty()) throw Error(Errc::invalid_argument, "entrypoint name is empty");
    if (name.size() >= entrypoint_name_bytes)
        throw Error(Errc::invalid_argument, "entrypoint name '" + std::string(name.substr(0, 20)) +
                                                "...' is longer than " +
                                                std::to_string(entrypoint_name_bytes - 1) + " bytes");
    for (unsigned char c : name)
        if (c < 0x20 || c == 0x7f)
            throw Error(Errc::invalid_argument, "entrypoint name contains a control character");
}

void validate_entrypoint_options(const EntrypointOptions& options) {
    if (options.lease.count() <= 0) throw Error(Errc::invalid_argument, "lease must be positive");
    // Stored as nanoseconds (lease_ns); a bound keeps that product and every
    // now + lease far from overflowing.
    if (options.lease > max_lease)
        throw Error(Errc::invalid_argument, "lease of " + std::to_string(options.lease.count()) +
                                                " ms is longer than the limit of 365 days");
    if (options.max_attempts == 0) throw Error(Errc::invalid_argument, "max attempts must be at least 1");
    if (options.retry_delay.count() < 0 || options.max_retry_delay.count() < 0)
        throw Error(Errc::invalid_argument, "retry delays must not be negative");
    if (options.durability && std::uint32_t(*options.durability) > std::uint32_t(Durability::sync))
        throw Error(Errc::invalid_argument, "unknown durability");
    if (options.result_retention && (options.result_retention->count() < 0 || *options.result_retention > max_lease))
        throw Error(Errc::invalid_argument, "result retention of " + std::to_string(options.result_retention->count()) +
                                                " ms is outside 0 ms to 365 days");
}

// The kept-dead-jobs cap (docs/dead-jobs.md): at most the arena's slots.
void validate_max_dead(const EntrypointOptions& options, std::uint32_t slots, const std::string& where) {
    if (options.max_dead && *options.max_dead > slots)
        throw Error(Errc::invalid_argument, where + ": max_dead " + std::to_string(*options.max_dead) +
                                                " is more than the arena's " + std::to_string(slots) + " slots");
}

void store_options(EntrypointControl& c, const EntrypointOptions& options) {
    if (options.durability) c.durability.store(std::uint32_t(*options.durability), std::memory_order_relaxed);
    c.max_attempts.store(options.max_attempts, std::memory_order_relaxed);
    c.lease_ns.store(std::int64_t(options.lease.count()) * 1'000'000, std::memory_order_relaxed);
    c.retry_delay_ns.store(std::int64_t(options.retry_delay.count()) * 1'000'000, std::memory_order_relaxed);
    c.max_retry_delay_ns.store(std::int64_t(options.max_retry_delay.count()) * 1'000'000,
                               std::memory_order_relaxed);
    if (options.max_dead) c.max_dead.store(*options.max_dead, std::memory_order_relaxed);
    if (options.result_retention)
        c.result_retention_ns.store(std::int64_t(options.result_retention->count()) * 1'000'000,
                                    std::memory_order_relaxed);
}
} // namespace

EntrypointOptions QueueState::entrypoint_options(EntrypointId id) const {
    check_entrypoint(id);
    const EntrypointControl& c = entrypoints_[id];
    EntrypointOptions options;
    options.durability = Durability(c.durability.load(std::memory_order_relaxed));
    options.max_attempts = c.max_attempts.load(std::memory_order_relaxed);
    options.lease = std::chrono::milliseconds(c.lease_ns.load(std::memory_order_relaxed) / 1'000'000);
    options.retry_delay = std::chrono::milliseconds(c.retry_delay_ns.load(std::memory_order_relaxed) / 1'000'000);
    options.max_retry_delay =
        std::chrono::milliseconds(c.max_retry_delay_ns.load(std::memory_order_relaxed) / 1'000'000);
    options.max_dead = c.max_dead.load(std::memory_order_relaxed);
    options.result_retention =
        std::chrono::milliseconds(c.result_retention_ns.load(std::memory_order_relaxed) / 1'000'000);
    const EntrypointLimits current = limits(id);
    if (current.concurrency) options.concurrency_limit = *current.concurrency;
    if (current.rate) {
        options.rate_limit = *current.rate;
        options.rate_burst = current.burst;
    }
    return options;
}

EntrypointId QueueState::declare_entrypoint(std::string_view name, const EntrypointOptions& options) {
    check_usable();
    validate_entrypoint_name(name);
    validate_entrypoint_options(options);
    validate_limit_options(options, "queue '" + segment_.name() + "', entrypoint '" + std::string(name) + "'");
    validate_max_dead(options, arena_.slot_count(), "queue '" + segment_.name() + "', entrypoint '" + std::string(name) + "'");
    // Registry repair: an entry is counted only after its declared flag was
    // published, so a declarer that died half-way left an uncounted entry
    // that the next declarer overwrites. Nothing to rebuild.
    core_->registry_lock.lock([]() noexcept { return true; });
    shm::LockHolder holder(core_->registry_lock);
    const std::uint32_t count = entrypoint_count();
    for (std::uint32_t i = 0; i < count; ++i) {
        if (name == name_of(entrypoints_[i])) {
            {
                lock_entrypoint(i);
                shm::LockHolder entry(entrypoints_[i].lock);
                store_options(entrypoints_[i], options);
                apply_limit_options(i, options, true);
            }
            if (options.concurrency_limit || options.rate_limit) wake_sleepers(i, max_participants_);
            note_configuration_change(); // options may have changed: currantd records them
            return i;
        }
    }
    if (count >= max_entrypoints_)
        throw Error(Errc::entrypoint_table_full, "queue '" + segment_.name() + "': all " +
                                                     std::to_string(max_entrypoints_) +
                                                     " entrypoints are declared (raise --entrypoints at init)");
    EntrypointControl& c = entrypoints_[count];
    std::memset(c.name, 0, sizeof c.name);
    std::memcpy(c.name, name.data(), name.size());
    EntrypointOptions resolved = options;
    if (!resolved.durability)
        resolved.durability = core_->mirrored.load(std::memory_order_acquire) ? Durability::async : Durability::memory;
    if (!resolved.max_dead) resolved.max_dead = std::min(default_max_dead, arena_.slot_count());
    if (!resolved.result_retention) resolved.result_retention = std::chrono::milliseconds(0);
    // An unpublished entry left by a declarer that died has no dead jobs.
    c.dead_head = c.dead_tail = shm::no_slot;
    c.dead_count = 0;
    store_options(c, resolved);
    // A new entrypoint has no picks yet: nothing to count, no lock needed
    // before it is published. (A previous declarer that died left an
    // unpublished entry; it may carry its limits: reset them first.)
    c.clear_limits();
    apply_limit_options(count, resolved, false);
    c.declared.store(1, std::memory_order_release);
    core_->entrypoint_count.store(count + 1, std::memory_order_release);
    note_configuration_change();
    return count;
}

EntrypointId QueueState::find_entrypoint(std::string_view name) const {
    segment_.check_not_retired();
    const std::uint32_t count = entrypoint_count();
    for (std::uint32_t i = 0; i < count; ++i)
        if (name == name_of(entrypoints_[i])) return i;
    throw Error(Errc::not_found, "queue '" + segment_.name() + "': unknown entrypoint '" + std::string(name) + "'");
}

std::string QueueState::entrypoint_name(EntrypointId id) const {
    check_entrypoint(id);
    return std::string(name_of(entrypoints_[id]));
}

} // namespace currant::detail
