// currant::Queue: the public C++ API, forwarding to detail::QueueState.
#include "currant/queue.hpp"

#include "currant/shm/segment.hpp"
#include "queue_state.hpp"

#include <limits>
#include <string>

namespace currant {

std::string_view job_status_name(JobStatus status) noexcept {
    switch (status) {
    case JobStatus::queued: return "queued";
    case JobStatus::picked: return "picked";
    case JobStatus::successful: return "successful";
    case JobStatus::exception: return "exception";
    case JobStatus::canceled: return "canceled";
    case JobStatus::waiting: return "waiting";
    case JobStatus::unknown: break;
    }
    return "unknown";
}

std::string_view cancel_outcome_name(CancelOutcome outcome) noexcept {
    switch (outcome) {
    case CancelOutcome::canceled: return "canceled";
    case CancelOutcome::requested: return "requested";
    case CancelOutcome::not_cancelable: break;
    }
    return "not_cancelable";
}

std::string_view durability_name(Durability durability) noexcept {
    switch (durability) {
    case Durability::memory: return "memory";
    case Durability::async: return "async";
    case Durability::sync: return "sync";
    }
    return "unknown";
}

static_assert(latency_bucket_of(-5) == 0 && latency_bucket_of(1'000) == 0 && latency_bucket_of(1'001) == 1 &&
              latency_bucket_of(10'000'000'000) == latency_bucket_count - 2 &&
              latency_bucket_of(10'000'000'001) == latency_bucket_count - 1);

std::uint64_t LatencyHistogram::count() const noexcept {
    std::uint64_t total = 0;
    for (const std::uint64_t c : counts) total += c;
    return total;
}

std::int64_t LatencyHistogram::quantile_bound_ns(double q) const noexcept {
    const std::uint64_t total = count();
    if (total == 0) return 0;
    if (!(q > 0)) q = 0; // NaN too
    if (q > 1) q = 1;
    // The smallest bucket whose cumulative count reaches ceil(q * total) (at least 1).
    std::uint64_t rank = std::uint64_t(q * double(total));
    if (double(rank) < q * double(total)) ++rank;
    if (rank == 0) rank = 1;
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b + 1 < latency_bucket_count; ++b) {
        seen += counts[b];
        if (seen >= rank) return latency_bucket_bounds_ns[b];
    }
    return std::numeric_limits<std::int64_t>::max();
}

std::string_view missed_ticks_name(MissedTicks policy) noexcept {
    return policy == MissedTicks::catch_up ? "catch_up" : "skip";
}

MissedTicks parse_missed_ticks(std::string_view text) {
    if (text == "skip") return MissedTicks::skip;
    if (text == "catch_up" || text == "catch-up") return MissedTicks::catch_up;
    throw Error(Errc::invalid_argument, "unknown missed-tick policy '" + std::string(text) +
                                            "' (expected skip or catch_up)");
}

std::string_view on_duplicate_name(OnDuplicate policy) noexcept {
    return policy == OnDuplicate::refuse ? "refuse" : "skip";
}

OnDuplicate parse_on_duplicate(std::string_view text) {
    if (text == "skip") return OnDuplicate::skip;
    if (text == "refuse") return OnDuplicate::refuse;
    throw Error(Errc::invalid_argument,
                "unknown on-duplicate policy '" + std::string(text) + "' (expected skip or refuse)");
}

Durability parse_durability(std::string_view text) {
    if (text == "memory") return Durability::memory;
    if (text == "async") return Durability::async;
    if (text == "sync") return Durability::sync;
    throw Error(Errc::invalid_argument,
                "unknown durability '" + std::string(text) + "' (expected memory, async or sync)");
}

namespace {
std::int64_t to_ns(std::chrono::nanoseconds timeout) noexcept {
    return timeout.count() < 0 ? -1 : std::int64_t(timeout.count());
}
} // namespace

Queue Queue::create(const QueueOptions& options) {
    if (options.slots == 0) throw Error(Errc::invalid_argument, "slots must be at least 1");
    if (options.slots > detail::max_dependency_slots) // dependency edges are linked by slot and index in 32 bits
        throw Error(Errc::invalid_argument, "slots must be at most " + std::to_string(detail::max_dependency_slots));
    if (options.max_entrypoints == 0 || options.max_entrypoints > 4096)
        throw Error(Errc::invalid_argument, "max entrypoints must be between 1 and 4096");
    if (options.max_participants == 0 || options.max_participants > 65534)
        throw Error(Errc::invalid_argument, "max participants must be between 1 and 65534");
    if (options.log_capacity == 0) throw Error(Errc::invalid_argument, "log capacity must be at least 1");
    if (options.result_bytes > (1u << 20))
        throw Error(Errc::invalid_argument, "queue '" + options.name + "': result bytes " +
                                                std::to_string(options.result_bytes) + " is more than 1 MiB (1048576)");
    shm::CreateSpec spec;
    spec.name = options.name;
    spec.parameters.slot_count = options.slots;
    spec.parameters.payload_bytes = options.payload_bytes;
    spec.parameters.record_bytes = detail::record_bytes;
    spec.parameters.max_entrypoints = options.max_entrypoints;
    spec.parameters.max_participants = options.max_participants;
    spec.parameters.log_capacity = options.log_capacity;
    spec.parameters.host_id = options.host_id;
    spec.parameters.result_bytes = options.result_bytes;
    spec.core_bytes = detail::QueueState::core_bytes_for(spec.parameters);
    spec.mode = options.mode;
    spec.group = options.group;
    if (options.first_job_counter >= (std::uint64_t(1) << 48) - 1)
        throw Error(Errc::invalid_argument, "first job counter must be below 2^48 - 1");
    const bool sealed = options.sealed;
    const std::uint64_t first_counter = options.first_job_counter;
    shm::Segment segment = shm::Segment::create(spec, [sealed, first_counter](shm::Segment& created) {
        auto& counter = created.header().next_job_counter; // shm starts it at 1: id 0 means "no job"
        if (first_counter >= counter.load(std::memory_order_relaxed))
            counter.store(first_counter + 1, std::memory_order_relaxed);
        detail::QueueState::initialize_core(created, sealed);
    });
    return Queue(std::make_unique<detail::QueueState>(std::move(segment)));
}

Queue Queue::open(std::string_view name) {
    return Queue(std::make_unique<detail::QueueState>(shm::Segment::open(name, detail::record_bytes)));
}

bool Queue::remove(std::string_view name) {
    // Open it first (when it is a valid segment) so that after retiring it we
    // can wake its sleeping consumers: they then see segment_retired.
    std::unique_ptr<detail::QueueState> state;
    try {
        state = std::make_unique<detail::QueueState>(shm::Segment::open(name, detail::record_bytes));
    } catch (const Error& error) {
        if (error.code() == Errc::invalid_argument || error.code() == Errc::permission_denied) throw;
    }
    const bool removed = shm::Segment::remove(name);
    if (state) state->wake_everyone();
    return removed;
}

Queue::Queue(std::unique_ptr<detail::QueueState> state) noexcept : state_(std::move(state)) {}
Queue::Queue(Queue&&) noexcept = default;
Queue& Queue::operator=(Queue&&) noexcept = default;
Queue::~Queue() = default;

void Queue::close() { state_->close(); }
const std::string& Queue::name() const noexcept { return state_->name(); }
QueueInfo Queue::info() const { return state_->info(); }

EntrypointId Queue::declare_entrypoint(std::string_view name, const EntrypointOptions& options) {
    return state_->declare_entrypoint(name, options);
}
EntrypointId Queue::entrypoint(std::string_view name) const { return state_->find_entrypoint(name); }
std::string Queue::entrypoint_name(EntrypointId id) const { return state_->entrypoint_name(id); }
std::vector<std::string> Queue::entrypoint_names() const {
    std::vector<std::string> names;
    for (EntrypointId id = 0; id < state_->entrypoint_count(); ++id) names.push_back(state_->entrypoint_name(id));
    return names;
}

JobId Queue::enqueue(EntrypointId entrypoint, std::span<const std::byte> payload, const EnqueueOptions& options) {
    return state_->enqueue(entrypoint, payload, options);
}

std::size_t Queue::enqueue_batch(EntrypointId entrypoint, std::span<const std::span<const std::byte>> payloads,
                                 std::span<JobId> ids_out, const EnqueueOptions& options) {
    return state_->enqueue_batch(entrypoint, payloads, ids_out, options);
}

Reservation Queue::reserve(EntrypointId entrypoint) { return state_->reserve(entrypoint); }
JobId Queue::commit(Reservation& reservation, std::size_t payload_size, const EnqueueOptions& options) {
    return state_->commit(reservation, payload_size, options);
}
bool Queue::last_enqueue_skipped() const noexcept { return state_ && state_->last_enqueue_skipped(); }
void Queue::abandon(Reservation& reservation) noexcept { state_->abandon(reservation); }

std::size_t Queue::dequeue(std::span<const EntrypointId> entrypoints, std::span<Job> out,
                           std::chrono::nanoseconds timeout) {
    return state_->dequeue(entrypoints, out, to_ns(timeout));
}
std::optional<Job> Queue::dequeue_one(std::span<const EntrypointId> entrypoints, std::chrono::nanoseconds timeout) {
    return state_->dequeue_one(entrypoints, to_ns(timeout));
}
void Queue::set_prefetch(std::uint32_t jobs) { state_->set_prefetch(jobs); }
void Queue::interrupt() noexcept { state_->interrupt(); }

void Queue::ack(const JobHandle& job) { state_->finish({&job, 1}, JobStatus::successful, true); }
std::size_t Queue::ack(std::span<const JobHandle> jobs) { return state_->finish(jobs, JobStatus::successful, false); }
void Queue::ack_deferred(const JobHandle& job) { state_->ack_deferred(job); }
std::size_t Queue::flush() { return state_->flush(); }
void Queue::fail(const JobHandle& job, std::string_view error) { state_->fail(job, error); }
bool Queue::retry(const JobHandle& job, std::optional<std::chrono::milliseconds> delay, std::string_view error) {
    std::optional<std::int64_t> delay_ns;
    if (delay) {
        if (delay->count() < 0) throw Error(Errc::invalid_argument, "retry delay must not be negative");
        // Half the int64 nanosecond range (about 146 years): the delay in ns
        // and the CLOCK_REALTIME deadline it becomes both stay representable.
        constexpr std::int64_t max_delay_ms = std::numeric_limits<std::int64_t>::max() / 1'000'000 / 2;
        if (delay->count() > max_delay_ms)
            throw Error(Errc::invalid_argument, "retry delay of " + std::to_string(delay->count()) +
                                                    " ms is too large (at most " + std::to_string(max_delay_ms) + " ms)");
        delay_ns = std::int64_t(delay->count()) * 1'000'000;
    }
    return state_->retry(job, delay_ns, error);
}
std::size_t Queue::heartbeat(std::span<const JobHandle> jobs) { return state_->heartbeat(jobs); }
CancelOutcome Queue::cancel(JobId id) { return state_->cancel(id); }
bool Queue::cancel_requested(const JobHandle& job) const noexcept { return state_->cancel_requested(job); }
std::optional<std::size_t> Queue::wait_for_cancel(std::span<const JobHandle> jobs, std::chrono::nanoseconds timeout) {
    return state_->wait_for_cancel(jobs, to_ns(timeout));
}
void Queue::ack_canceled(const JobHandle& job) { state_->finish({&job, 1}, JobStatus::canceled, true); }
std::uint64_t Queue::cancel_wakeups() const noexcept { return state_->cancel_wakeups(); }

std::vector<JobState> Queue::status(std::span<const JobId> ids) const { return state_->status(ids); }
std::vector<EntrypointStats> Queue::stats() const { return state_->stats(); }
std::vector<ActiveJob> Queue::active_jobs(std::optional<EntrypointId> entrypoint, std::size_t limit) const {
    if (entrypoint) state_->check_entrypoint(*entrypoint);
    return state_->active_jobs(entrypoint, limit);
}
std::vector<ParticipantInfo> Queue::participants() const { return state_->participants(); }
DoctorReport Queue::doctor() { return state_->doctor(); }
std::size_t Queue::reap() { return state_->reap(); }

std::size_t Queue::read_feed(EntrypointId entrypoint, std::uint64_t from_sequence, std::span<Transition> out) const {
    return state_->read_feed(entrypoint, from_sequence, out);
}
void Queue::commit_feed(EntrypointId entrypoint, std::uint64_t sequence, bool wake_waiters) {
    state_->commit_feed(entrypoint, sequence, wake_waiters);
}
void Queue::wake_feed_waiters(EntrypointId entrypoint) noexcept { state_->wake_feed_waiters(entrypoint); }
std::uint64_t Queue::feed_committed(EntrypointId entrypoint) const { return state_->feed_committed(entrypoint); }
EntrypointOptions Queue::entrypoint_options(EntrypointId id) const { return state_->entrypoint_options(id); }
bool Queue::read_job(std::uint32_t slot, JobId id, JobSnapshot& out) const { return state_->read_job(slot, id, out); }
std::uint64_t Queue::wait_for_feed(std::chrono::nanoseconds flush_after, std::chrono::nanoseconds idle_timeout,
                                   std::optional<std::uint64_t> configuration_seen,
                                   std::optional<std::uint32_t> signal_seen) {
    return state_->wait_for_feed(flush_after.count(), idle_timeout.count(), configuration_seen, signal_seen);
}
std::uint32_t Queue::feed_signal() const noexcept { return state_->feed_signal(); }
std::uint64_t Queue::configuration_generation() const { return state_->configuration_generation(); }
QueueConfiguration Queue::configuration() { return state_->configuration(); }
void Queue::restore_schedule(const ScheduleOptions& options, const ScheduleProgress& progress) {
    state_->add_schedule(options, &progress);
}
void Queue::wake_feed_waiter() noexcept { state_->wake_feed_waiter(); }
std::size_t Queue::collect_dirty(std::vector<JobSnapshot>& out) const { return state_->collect_dirty(out); }
void Queue::settle_dirty(std::span<const JobSnapshot> mirrored) { state_->settle_dirty(mirrored); }
JobId Queue::restore(EntrypointId entrypoint, const RestoredJob& job, const EnqueueOptions& options) {
    return state_->restore(entrypoint, job, options);
}
void Queue::restore_outcome(EntrypointId entrypoint, const RestoredOutcome& job) {
    state_->restore_outcome(entrypoint, job);
}
void Queue::pause(EntrypointId entrypoint) { state_->set_paused(entrypoint, true); }
void Queue::resume(EntrypointId entrypoint) { state_->set_paused(entrypoint, false); }
bool Queue::paused(EntrypointId entrypoint) const { return state_->paused(entrypoint); }
void Queue::set_concurrency_limit(EntrypointId entrypoint, std::optional<std::int64_t> limit) {
    state_->set_concurrency_limit(entrypoint, limit);
}
void Queue::set_rate_limit(EntrypointId entrypoint, std::optional<double> per_second, std::int64_t burst) {
    state_->set_rate_limit(entrypoint, per_second, burst);
}
EntrypointLimits Queue::limits(EntrypointId entrypoint) const { return state_->limits(entrypoint); }
void Queue::add_schedule(const ScheduleOptions& options) { state_->add_schedule(options); }
void Queue::remove_schedule(std::string_view name) { state_->remove_schedule(name); }
std::vector<ScheduleInfo> Queue::schedules() const { return state_->schedules(); }
std::size_t Queue::run_schedules() { return state_->run_schedules(); }
void Queue::unseal() { state_->unseal(); }
void Queue::mark_mirrored() { state_->mark_mirrored(); }
bool Queue::sealed() const { return state_->sealed(); }

} // namespace currant
