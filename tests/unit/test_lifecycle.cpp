// The job's life after the pick: ack, fail, retry, cancel, heartbeat,
// leases, deferred acks, close, status, stats, doctor, fork.
#include "unit_support.hpp"

#include <limits>
#include <thread>
#include <unistd.h>

using namespace currant;
using namespace currant::unit;
using currant::testing::fork_child;
using currant::testing::wait_child;

namespace {

EntrypointOptions with_lease(std::chrono::milliseconds lease) {
    EntrypointOptions options;
    options.lease = lease;
    return options;
}

EntrypointOptions with_attempts(std::uint32_t max_attempts) {
    EntrypointOptions options;
    options.max_attempts = max_attempts;
    return options;
}

Job pick_one(Queue& queue, EntrypointId ep) {
    auto jobs = dequeue_now(queue, ep, 1);
    REQUIRE(jobs.size() == 1);
    return jobs[0];
}

} // namespace

// --- ack ---

TEST_CASE("ack records the job successful and it leaves the picked jobs", "[ack]") {
    ScratchQueue scratch("ack", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const Job job = pick_one(scratch.queue(), ep);
    CHECK(status_of(scratch.queue(), id) == JobStatus::picked);
    CHECK(stats_of(scratch.queue(), ep).picked == 1);
    scratch->ack(job.handle);
    CHECK(status_of(scratch.queue(), id) == JobStatus::successful);
    const EntrypointStats stats = stats_of(scratch.queue(), ep);
    CHECK(stats.picked == 0);
    CHECK(stats.successful == 1);
    CHECK(dequeue_now(scratch.queue(), ep).empty());
}

TEST_CASE("acking the same handle twice fails the second time with stale_handle", "[ack]") {
    ScratchQueue scratch("ack-twice", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    enqueue_text(scratch.queue(), ep, "x");
    const Job job = pick_one(scratch.queue(), ep);
    scratch->ack(job.handle);
    REQUIRE_ERRC(scratch->ack(job.handle), Errc::stale_handle);
    CHECK_ERRC(scratch->fail(job.handle), Errc::stale_handle);
    CHECK_ERRC(scratch->retry(job.handle), Errc::stale_handle);
    CHECK(stats_of(scratch.queue(), ep).successful == 1);
}

TEST_CASE("a handle whose slot was reused by another job is stale", "[ack]") {
    ScratchQueue scratch("ack-reused", small_options(1));
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    enqueue_text(scratch.queue(), ep, "first");
    const Job first = pick_one(scratch.queue(), ep);
    scratch->ack(first.handle);
    enqueue_text(scratch.queue(), ep, "second");
    const Job second = pick_one(scratch.queue(), ep);
    REQUIRE(second.handle.slot == first.handle.slot);
    CHECK(second.handle.epoch != first.handle.epoch);
    CHECK_ERRC(scratch->ack(first.handle), Errc::stale_handle);
    CHECK(status_of(scratch.queue(), second.handle.id) == JobStatus::picked);
    scratch->ack(second.handle);
}

TEST_CASE("acking a list of handles acks the valid ones and skips stale ones", "[ack]") {
    ScratchQueue scratch("ack-list", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    for (int i = 0; i < 3; ++i) enqueue_text(scratch.queue(), ep, "x");
    auto jobs = dequeue_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 3);
    scratch->ack(jobs[1].handle);
    const JobHandle handles[] = {jobs[0].handle, jobs[1].handle, jobs[2].handle};
    CHECK(scratch->ack(handles) == 2);
    CHECK(stats_of(scratch.queue(), ep).successful == 3);
}

TEST_CASE("in memory durability a finished job's status stays known while a newer job holds its slot, and after",
          "[ack][status]") {
    ScratchQueue scratch("status-reuse", small_options(1));
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId first = enqueue_text(scratch.queue(), ep, "first");
    scratch->ack(pick_one(scratch.queue(), ep).handle);
    CHECK(status_of(scratch.queue(), first) == JobStatus::successful);
    const JobId second = enqueue_text(scratch.queue(), ep, "second");
    CHECK(status_of(scratch.queue(), second) == JobStatus::queued);
    // The slot's last outcome still names first (docs/job-dependencies.md,
    // "The last outcome"): only its status, the fields are second's.
    JobState state = state_of(scratch.queue(), first);
    CHECK(state.status == JobStatus::successful);
    CHECK(state.slot_reused);
    scratch->ack(pick_one(scratch.queue(), ep).handle);
    // second's end moved first's into the recent outcomes.
    state = state_of(scratch.queue(), first);
    CHECK(state.status == JobStatus::successful);
    CHECK(state.slot_reused);
}

// --- leases and heartbeats ---

TEST_CASE("a job whose lease expired is delivered again and the old handle cannot ack it", "[lease]") {
    ScratchQueue scratch("lease", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", with_lease(50ms));
    const JobId id = enqueue_text(scratch.queue(), ep, "slow");
    Queue first = Queue::open(scratch.name());
    const Job old_pick = pick_one(first, ep);
    std::this_thread::sleep_for(200ms); // the lease must really run out

    Queue second = Queue::open(scratch.name());
    auto again = dequeue_within(second, ep, 10s);
    REQUIRE(again);
    CHECK(again->handle.id == id);
    CHECK(again->attempts == 2);
    CHECK(again->handle.epoch != old_pick.handle.epoch);
    CHECK_THROWS_MATCHES(first.ack(old_pick.handle), Error,
                         HasErrcEither(Errc::stale_handle, Errc::not_owner));
    CHECK(status_of(scratch.queue(), id) == JobStatus::picked);
    second.ack(again->handle);
    CHECK(status_of(scratch.queue(), id) == JobStatus::successful);
    CHECK(stats_of(scratch.queue(), ep).retried == 1);
}

TEST_CASE("the same consumer re-picking its expired job gets a new handle; the old one is stale", "[lease]") {
    ScratchQueue scratch("lease-self", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", with_lease(50ms));
    enqueue_text(scratch.queue(), ep, "x");
    const Job old_pick = pick_one(scratch.queue(), ep);
    std::this_thread::sleep_for(200ms);
    auto again = dequeue_within(scratch.queue(), ep, 10s);
    REQUIRE(again);
    CHECK(again->attempts == 2);
    CHECK_ERRC(scratch->ack(old_pick.handle), Errc::stale_handle);
    scratch->ack(again->handle);
}

TEST_CASE("a consumer blocked in dequeue picks up a job when another consumer's lease expires", "[lease]") {
    ScratchQueue scratch("lease-wait", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", with_lease(100ms));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const Job held = pick_one(scratch.queue(), ep);
    Queue waiter = Queue::open(scratch.name());
    auto again = dequeue_within(waiter, ep, 20s);
    REQUIRE(again);
    CHECK(again->handle.id == id);
    CHECK(again->attempts == 2);
    CHECK_THROWS_MATCHES(scratch->ack(held.handle), Error, HasErrcEither(Errc::stale_handle, Errc::not_owner));
    waiter.ack(again->handle);
}

TEST_CASE("heartbeats extend the lease so the job is not picked again", "[lease]") {
    ScratchQueue scratch("heartbeat", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", with_lease(1000ms));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    Queue holder = Queue::open(scratch.name());
    const Job job = pick_one(holder, ep);
    const auto until = std::chrono::steady_clock::now() + 1600ms; // well past the original lease
    while (std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(100ms);
        REQUIRE(holder.heartbeat(std::span<const JobHandle>(&job.handle, 1)) == 1);
    }
    Queue other = Queue::open(scratch.name());
    CHECK(dequeue_now(other, ep).empty());
    CHECK(other.reap() == 0);
    CHECK(status_of(scratch.queue(), id) == JobStatus::picked);
    CHECK_NOTHROW(holder.ack(job.handle));
    CHECK(state_of(scratch.queue(), id).attempts == 1);
}

TEST_CASE("a heartbeat does not revive an expired lease", "[lease]") {
    ScratchQueue scratch("heartbeat-late", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", with_lease(50ms));
    enqueue_text(scratch.queue(), ep, "x");
    Queue holder = Queue::open(scratch.name());
    const Job job = pick_one(holder, ep);
    std::this_thread::sleep_for(200ms);
    CHECK(holder.heartbeat(std::span<const JobHandle>(&job.handle, 1)) == 0);
    auto again = dequeue_within(scratch.queue(), ep, 10s);
    REQUIRE(again);
    CHECK(again->attempts == 2);
}

TEST_CASE("a heartbeat ignores handles that are stale or not held by the caller", "[lease]") {
    ScratchQueue scratch("heartbeat-stale", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    enqueue_text(scratch.queue(), ep, "a");
    enqueue_text(scratch.queue(), ep, "b");
    auto jobs = dequeue_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 2);
    scratch->ack(jobs[0].handle);
    const JobHandle handles[] = {jobs[0].handle, jobs[1].handle};
    CHECK(scratch->heartbeat(handles) == 1);
    Queue other = Queue::open(scratch.name());
    enqueue_text(other, ep, "register");
    CHECK(other.heartbeat(handles) == 0);
}

TEST_CASE("dequeue_one does not hand out a prefetched job that another consumer picked after its lease expired",
          "[lease][prefetch]") {
    // queue.hpp: "A job is handed to one consumer at a time under a lease."
    ScratchQueue scratch("lease-prefetch", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", with_lease(50ms));
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    const JobId b = enqueue_text(scratch.queue(), ep, "b");
    Queue consumer = Queue::open(scratch.name());
    consumer.set_prefetch(2);
    const EntrypointId eps[] = {ep};
    auto first = consumer.dequeue_one(eps, 0ns);
    REQUIRE(first);
    REQUIRE(first->handle.id == a);
    std::this_thread::sleep_for(200ms); // both leases run out
    Queue other = Queue::open(scratch.name());
    auto taken_first = dequeue_within(other, ep, 10s);
    auto taken_second = dequeue_within(other, ep, 10s);
    REQUIRE(taken_first);
    REQUIRE(taken_second);
    REQUIRE(((taken_first->handle.id == b) || (taken_second->handle.id == b)));
    // b sits in consumer's prefetch buffer, but other holds it now.
    auto second = consumer.dequeue_one(eps, 0ns);
    CHECK_FALSE(second.has_value());
    other.ack(taken_first->handle);
    other.ack(taken_second->handle);
}

TEST_CASE("reap requeues jobs whose lease expired and returns how many", "[lease]") {
    ScratchQueue scratch("reap", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", with_lease(50ms));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    Queue holder = Queue::open(scratch.name());
    pick_one(holder, ep);
    std::this_thread::sleep_for(200ms);
    Queue reaper = Queue::open(scratch.name());
    CHECK(reaper.reap() == 1);
    CHECK(status_of(reaper, id) == JobStatus::queued);
    CHECK(state_of(reaper, id).attempts == 1);
    CHECK(reaper.reap() == 0);
}

TEST_CASE("a lease that expires on the last allowed attempt ends the job exception", "[lease]") {
    ScratchQueue scratch("lease-dead", small_options());
    EntrypointOptions options = with_lease(50ms);
    options.max_attempts = 1;
    const EntrypointId ep = scratch->declare_entrypoint("jobs", options);
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    Queue holder = Queue::open(scratch.name());
    pick_one(holder, ep);
    std::this_thread::sleep_for(200ms);
    CHECK(scratch->reap() == 0);
    CHECK(status_of(scratch.queue(), id) == JobStatus::exception);
    CHECK(stats_of(scratch.queue(), ep).failed == 1);
    CHECK(dequeue_now(scratch.queue(), ep).empty());
}

// --- retry and fail ---

TEST_CASE("retry requeues the job and the next delivery counts one more attempt", "[retry]") {
    ScratchQueue scratch("retry", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", with_attempts(5));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const Job first = pick_one(scratch.queue(), ep);
    CHECK(first.attempts == 1);
    CHECK(scratch->retry(first.handle, 0ms));
    const JobState state = state_of(scratch.queue(), id);
    CHECK(state.status == JobStatus::queued);
    CHECK(state.attempts == 1);
    const Job second = pick_one(scratch.queue(), ep);
    CHECK(second.handle.id == id);
    CHECK(second.attempts == 2);
    CHECK(text(second.payload) == "x");
    CHECK_ERRC(scratch->ack(first.handle), Errc::stale_handle);
    scratch->ack(second.handle);
    const EntrypointStats stats = stats_of(scratch.queue(), ep);
    CHECK(stats.retried == 1);
    CHECK(stats.successful == 1);
}

TEST_CASE("a retried job goes behind jobs already queued at its priority", "[retry]") {
    ScratchQueue scratch("retry-fifo", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    enqueue_text(scratch.queue(), ep, "a");
    enqueue_text(scratch.queue(), ep, "b");
    const Job a = pick_one(scratch.queue(), ep);
    REQUIRE(text(a.payload) == "a");
    REQUIRE(scratch->retry(a.handle, 0ms));
    CHECK(text(pick_one(scratch.queue(), ep).payload) == "b");
    CHECK(text(pick_one(scratch.queue(), ep).payload) == "a");
}

TEST_CASE("retry with a delay hides the job until the delay has passed", "[retry]") {
    ScratchQueue scratch("retry-delay", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const Job job = pick_one(scratch.queue(), ep);
    const auto retried_at = std::chrono::steady_clock::now();
    REQUIRE(scratch->retry(job.handle, 300ms));
    CHECK(dequeue_now(scratch.queue(), ep).empty());
    CHECK(stats_of(scratch.queue(), ep).delayed == 1);
    CHECK(status_of(scratch.queue(), id) == JobStatus::queued);
    auto again = dequeue_within(scratch.queue(), ep, 20s);
    REQUIRE(again);
    CHECK(std::chrono::steady_clock::now() - retried_at >= 290ms);
    CHECK(again->attempts == 2);
}

TEST_CASE("retry refuses a delay too large to become a deadline, and the job stays picked", "[retry]") {
    ScratchQueue scratch("retry-huge", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const Job job = pick_one(scratch.queue(), ep);
    // Found by the fuzzer under UBSan: the delay in ns overflowed int64.
    CHECK_ERRC(scratch->retry(job.handle, std::chrono::milliseconds(std::numeric_limits<std::int64_t>::max())),
               Errc::invalid_argument);
    CHECK(status_of(scratch.queue(), id) == JobStatus::picked);
    CHECK(scratch->retry(job.handle, 0ms));
}

TEST_CASE("retry without a delay backs off by the entrypoint's retry_delay", "[retry]") {
    ScratchQueue scratch("retry-backoff", small_options());
    EntrypointOptions options;
    options.retry_delay = 300ms;
    const EntrypointId ep = scratch->declare_entrypoint("jobs", options);
    enqueue_text(scratch.queue(), ep, "x");
    const Job job = pick_one(scratch.queue(), ep);
    const auto retried_at = std::chrono::steady_clock::now();
    REQUIRE(scratch->retry(job.handle));
    CHECK(dequeue_now(scratch.queue(), ep).empty());
    CHECK(stats_of(scratch.queue(), ep).delayed == 1);
    auto again = dequeue_within(scratch.queue(), ep, 20s);
    REQUIRE(again);
    CHECK(std::chrono::steady_clock::now() - retried_at >= 290ms);
}

TEST_CASE("the back-off doubles per attempt", "[retry]") {
    ScratchQueue scratch("retry-double", small_options());
    EntrypointOptions options;
    options.retry_delay = 150ms;
    const EntrypointId ep = scratch->declare_entrypoint("jobs", options);
    enqueue_text(scratch.queue(), ep, "x");
    Job job = pick_one(scratch.queue(), ep);
    REQUIRE(scratch->retry(job.handle)); // attempt 1 -> 150 ms
    auto again = dequeue_within(scratch.queue(), ep, 20s);
    REQUIRE(again);
    const auto retried_at = std::chrono::steady_clock::now();
    REQUIRE(scratch->retry(again->handle)); // attempt 2 -> 300 ms
    auto third = dequeue_within(scratch.queue(), ep, 20s);
    REQUIRE(third);
    CHECK(std::chrono::steady_clock::now() - retried_at >= 290ms);
    CHECK(third->attempts == 3);
}

TEST_CASE("the back-off is capped at max_retry_delay", "[retry]") {
    ScratchQueue scratch("retry-cap", small_options());
    EntrypointOptions options;
    options.max_attempts = 20;
    options.retry_delay = 100ms;
    options.max_retry_delay = 200ms;
    const EntrypointId ep = scratch->declare_entrypoint("jobs", options);
    enqueue_text(scratch.queue(), ep, "x");
    Job job = pick_one(scratch.queue(), ep);
    for (int i = 0; i < 11; ++i) { // build up attempts without waiting
        REQUIRE(scratch->retry(job.handle, 0ms));
        job = pick_one(scratch.queue(), ep);
    }
    REQUIRE(job.attempts == 12);
    // Uncapped this would be 100 ms * 2^11, about 200 s.
    REQUIRE(scratch->retry(job.handle));
    auto again = dequeue_within(scratch.queue(), ep, 60s);
    REQUIRE(again);
    CHECK(again->attempts == 13);
}

TEST_CASE("past max_attempts retry returns false and the job ends exception", "[retry]") {
    ScratchQueue scratch("retry-dead", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", with_attempts(2));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    CHECK(scratch->retry(pick_one(scratch.queue(), ep).handle, 0ms));
    const Job last = pick_one(scratch.queue(), ep);
    CHECK(last.attempts == 2);
    CHECK_FALSE(scratch->retry(last.handle, 0ms));
    const JobState state = state_of(scratch.queue(), id);
    CHECK(state.status == JobStatus::exception);
    CHECK(state.attempts == 2);
    CHECK(dequeue_now(scratch.queue(), ep).empty());
    const EntrypointStats stats = stats_of(scratch.queue(), ep);
    CHECK(stats.retried == 1);
    CHECK(stats.failed == 1);
    CHECK(stats.queued == 0);
    CHECK(stats.picked == 0);
}

TEST_CASE("a job's own max_attempts overrides the entrypoint's", "[retry]") {
    ScratchQueue scratch("retry-own", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", with_attempts(10));
    EnqueueOptions once;
    once.max_attempts = 1;
    const JobId id = enqueue_text(scratch.queue(), ep, "x", once);
    CHECK_FALSE(scratch->retry(pick_one(scratch.queue(), ep).handle, 0ms));
    CHECK(status_of(scratch.queue(), id) == JobStatus::exception);
}

TEST_CASE("fail ends the job exception at once, whatever attempts are left", "[fail]") {
    ScratchQueue scratch("fail", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", with_attempts(5));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const Job job = pick_one(scratch.queue(), ep);
    scratch->fail(job.handle);
    CHECK(status_of(scratch.queue(), id) == JobStatus::exception);
    CHECK(dequeue_now(scratch.queue(), ep).empty());
    CHECK(stats_of(scratch.queue(), ep).failed == 1);
    CHECK_ERRC(scratch->ack(job.handle), Errc::stale_handle);
}

// --- cancel ---

TEST_CASE("cancel of a queued job marks it canceled and it is never delivered", "[cancel]") {
    ScratchQueue scratch("cancel", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId doomed = enqueue_text(scratch.queue(), ep, "doomed");
    const JobId kept = enqueue_text(scratch.queue(), ep, "kept");
    CHECK(scratch->cancel(doomed) == CancelOutcome::canceled);
    CHECK(status_of(scratch.queue(), doomed) == JobStatus::canceled);
    auto jobs = dequeue_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 1);
    CHECK(jobs[0].handle.id == kept);
    CHECK(stats_of(scratch.queue(), ep).canceled == 1);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("cancel of a delayed job removes it before it falls due", "[cancel]") {
    ScratchQueue scratch("cancel-delayed", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    EnqueueOptions soon;
    soon.execute_after_ns = realtime_in(100ms);
    const JobId id = enqueue_text(scratch.queue(), ep, "x", soon);
    CHECK(scratch->cancel(id) == CancelOutcome::canceled);
    CHECK(status_of(scratch.queue(), id) == JobStatus::canceled);
    CHECK_FALSE(dequeue_within(scratch.queue(), ep, 300ms).has_value());
    CHECK(stats_of(scratch.queue(), ep).delayed == 0);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("cancel from another Queue object works on a queued job", "[cancel]") {
    ScratchQueue scratch("cancel-other", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    Queue other = Queue::open(scratch.name());
    CHECK(other.cancel(id) == CancelOutcome::canceled);
    CHECK(status_of(scratch.queue(), id) == JobStatus::canceled);
    CHECK(dequeue_now(scratch.queue(), ep).empty());
}

TEST_CASE("cancel of a picked job says requested and leaves it picked until its holder acts", "[cancel]") {
    ScratchQueue scratch("cancel-picked", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const Job job = pick_one(scratch.queue(), ep);
    CHECK(scratch->cancel(id) == CancelOutcome::requested);
    CHECK(status_of(scratch.queue(), id) == JobStatus::picked);
    CHECK_NOTHROW(scratch->ack(job.handle));
}

TEST_CASE("cancel of a finished, canceled or unknown job says not cancelable", "[cancel]") {
    ScratchQueue scratch("cancel-finished", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId done = enqueue_text(scratch.queue(), ep, "x");
    scratch->ack(pick_one(scratch.queue(), ep).handle);
    CHECK(scratch->cancel(done) == CancelOutcome::not_cancelable);
    const JobId canceled = enqueue_text(scratch.queue(), ep, "y");
    REQUIRE(scratch->cancel(canceled) == CancelOutcome::canceled);
    CHECK(scratch->cancel(canceled) == CancelOutcome::not_cancelable);
    CHECK(scratch->cancel(0x123456789ull) == CancelOutcome::not_cancelable);
    CHECK(stats_of(scratch.queue(), ep).canceled == 1);
}

// --- status and stats ---

TEST_CASE("status of an id that never existed is unknown", "[status]") {
    ScratchQueue scratch("status-unknown", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId real = enqueue_text(scratch.queue(), ep, "x");
    const JobId ids[] = {0x7777777ull, real, 0};
    const auto states = scratch->status(ids);
    REQUIRE(states.size() == 3);
    CHECK(states[0].id == 0x7777777ull);
    CHECK(states[0].status == JobStatus::unknown);
    CHECK(states[1].id == real);
    CHECK(states[1].status == JobStatus::queued);
    CHECK(states[2].status == JobStatus::unknown);
}

TEST_CASE("status reports a job's entrypoint, priority and attempts", "[status]") {
    ScratchQueue scratch("status-fields", small_options());
    scratch->declare_entrypoint("other");
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    EnqueueOptions options;
    options.priority = -7;
    const JobId id = enqueue_text(scratch.queue(), ep, "x", options);
    pick_one(scratch.queue(), ep);
    const JobState state = state_of(scratch.queue(), id);
    CHECK(state.id == id);
    CHECK(state.status == JobStatus::picked);
    CHECK(state.entrypoint == ep);
    CHECK(state.priority == -7);
    CHECK(state.attempts == 1);
}

TEST_CASE("the same id asked twice is answered twice", "[status]") {
    ScratchQueue scratch("status-dup", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const JobId ids[] = {id, id};
    const auto states = scratch->status(ids);
    CHECK(states[0].status == JobStatus::queued);
    CHECK(states[1].status == JobStatus::queued);
}

TEST_CASE("stats count every kind of transition and the current depths", "[stats]") {
    ScratchQueue scratch("stats", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", with_attempts(3));
    const EntrypointId idle = scratch->declare_entrypoint("idle");
    for (int i = 0; i < 6; ++i) enqueue_text(scratch.queue(), ep, std::to_string(i));
    EnqueueOptions later;
    later.execute_after_ns = realtime_in(60'000ms);
    enqueue_text(scratch.queue(), ep, "later", later);

    auto jobs = dequeue_now(scratch.queue(), ep, 4); // 0..3 picked, 4 and 5 queued
    REQUIRE(jobs.size() == 4);
    scratch->ack(jobs[0].handle);
    scratch->fail(jobs[1].handle);
    REQUIRE(scratch->retry(jobs[2].handle, 60'000ms)); // back as delayed
    const JobId queued_id = enqueue_text(scratch.queue(), ep, "to cancel");
    REQUIRE(scratch->cancel(queued_id) == CancelOutcome::canceled);

    const auto all = scratch->stats();
    REQUIRE(all.size() == 2);
    const EntrypointStats& s = all[ep];
    CHECK(s.name == "jobs");
    CHECK(s.id == ep);
    CHECK(s.durability == Durability::memory);
    CHECK(s.enqueued == 8);
    CHECK(s.picks == 4);
    CHECK(s.successful == 1);
    CHECK(s.failed == 1);
    CHECK(s.retried == 1);
    CHECK(s.canceled == 1);
    CHECK(s.queued == 2);  // "4" and "5"
    CHECK(s.delayed == 2); // "later" and the retried job
    CHECK(s.picked == 1);  // jobs[3]
    CHECK(s.log_pending == 0);
    CHECK(all[idle].name == "idle");
    CHECK(all[idle].enqueued == 0);
    scratch->ack(jobs[3].handle);
}

TEST_CASE("stats are summed over Queue objects and survive the ones that closed", "[stats]") {
    ScratchQueue scratch("stats-sum", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    {
        Queue producer = Queue::open(scratch.name());
        for (int i = 0; i < 3; ++i) enqueue_text(producer, ep, "p");
        producer.close();
    }
    enqueue_text(scratch.queue(), ep, "s");
    Queue consumer = Queue::open(scratch.name());
    for (const Job& job : dequeue_now(consumer, ep)) consumer.ack(job.handle);
    EntrypointStats stats = stats_of(scratch.queue(), ep);
    CHECK(stats.enqueued == 4);
    CHECK(stats.successful == 4);
    consumer.close();
    stats = stats_of(scratch.queue(), ep);
    CHECK(stats.enqueued == 4);
    CHECK(stats.picks == 4);
    CHECK(stats.successful == 4);
}

TEST_CASE("participants lists the registered Queue objects of this process", "[stats]") {
    ScratchQueue scratch("participants", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    CHECK(scratch->participants().empty()); // nothing registered before first use
    enqueue_text(scratch.queue(), ep, "x");
    Queue other = Queue::open(scratch.name());
    dequeue_now(other, ep);
    const auto list = scratch->participants();
    CHECK(list.size() == 2);
    for (const ParticipantInfo& p : list) {
        CHECK(p.pid == ::getpid());
        CHECK(p.alive);
    }
    CHECK(scratch->info().participants == 2);
    other.close();
    CHECK(scratch->participants().size() == 1);
}

// --- deferred acks ---

TEST_CASE("ack_deferred is not applied until flush, which returns how many it applied", "[deferred]") {
    ScratchQueue scratch("deferred", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    const JobId b = enqueue_text(scratch.queue(), ep, "b");
    auto jobs = dequeue_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 2);
    scratch->ack_deferred(jobs[0].handle);
    scratch->ack_deferred(jobs[1].handle);
    CHECK(status_of(scratch.queue(), a) == JobStatus::picked);
    CHECK(scratch->flush() == 2);
    CHECK(status_of(scratch.queue(), a) == JobStatus::successful);
    CHECK(status_of(scratch.queue(), b) == JobStatus::successful);
    CHECK(scratch->flush() == 0);
    CHECK(stats_of(scratch.queue(), ep).successful == 2);
}

TEST_CASE("deferred acks are applied before the consumer sleeps in dequeue", "[deferred]") {
    ScratchQueue scratch("deferred-sleep", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    scratch->ack_deferred(pick_one(scratch.queue(), ep).handle);
    CHECK_FALSE(dequeue_within(scratch.queue(), ep, 50ms).has_value());
    CHECK(status_of(scratch.queue(), id) == JobStatus::successful);
}

TEST_CASE("close applies deferred acks", "[deferred]") {
    ScratchQueue scratch("deferred-close", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    Queue consumer = Queue::open(scratch.name());
    consumer.ack_deferred(pick_one(consumer, ep).handle);
    consumer.close();
    CHECK(status_of(scratch.queue(), id) == JobStatus::successful);
    CHECK(stats_of(scratch.queue(), ep).retried == 0);
}

TEST_CASE("a stale deferred ack is dropped by flush without affecting others", "[deferred]") {
    ScratchQueue scratch("deferred-stale", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    enqueue_text(scratch.queue(), ep, "a");
    enqueue_text(scratch.queue(), ep, "b");
    auto jobs = dequeue_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 2);
    scratch->ack(jobs[0].handle);
    scratch->ack_deferred(jobs[0].handle);
    scratch->ack_deferred(jobs[1].handle);
    CHECK(scratch->flush() == 1);
    CHECK(stats_of(scratch.queue(), ep).successful == 2);
}

// --- close ---

TEST_CASE("close requeues the jobs the consumer held, with the attempt counted", "[close]") {
    ScratchQueue scratch("close", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    const JobId b = enqueue_text(scratch.queue(), ep, "b");
    Queue consumer = Queue::open(scratch.name());
    REQUIRE(dequeue_now(consumer, ep).size() == 2);
    consumer.close();
    CHECK(status_of(scratch.queue(), a) == JobStatus::queued);
    CHECK(status_of(scratch.queue(), b) == JobStatus::queued);

    Queue next = Queue::open(scratch.name());
    auto jobs = dequeue_now(next, ep);
    REQUIRE(jobs.size() == 2);
    CHECK(text(jobs[0].payload) == "a");
    CHECK(text(jobs[1].payload) == "b");
    CHECK(jobs[0].attempts == 2);
    CHECK(jobs[1].attempts == 2);
    CHECK(stats_of(scratch.queue(), ep).retried == 2);
}

TEST_CASE("close requeues prefetched jobs that were never handed out", "[close]") {
    ScratchQueue scratch("close-prefetch", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    for (int i = 0; i < 4; ++i) enqueue_text(scratch.queue(), ep, std::to_string(i));
    Queue consumer = Queue::open(scratch.name());
    consumer.set_prefetch(4);
    const EntrypointId eps[] = {ep};
    auto first = consumer.dequeue_one(eps, 0ns);
    REQUIRE(first);
    consumer.ack(first->handle);
    consumer.close();
    auto rest = dequeue_now(scratch.queue(), ep);
    REQUIRE(rest.size() == 3);
    for (const Job& job : rest) {
        CHECK(text(job.payload) != "0");
        CHECK(job.attempts == 2);
    }
    CHECK(stats_of(scratch.queue(), ep).successful == 1);
}

TEST_CASE("destroying a Queue object closes it and requeues what it held", "[close]") {
    ScratchQueue scratch("close-dtor", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    {
        Queue consumer = Queue::open(scratch.name());
        REQUIRE(dequeue_now(consumer, ep).size() == 1);
    }
    CHECK(status_of(scratch.queue(), id) == JobStatus::queued);
    CHECK(scratch->participants().size() <= 1);
}

TEST_CASE("close of a job on its last attempt ends it exception instead of requeueing", "[close]") {
    ScratchQueue scratch("close-dead", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", with_attempts(1));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    Queue consumer = Queue::open(scratch.name());
    REQUIRE(dequeue_now(consumer, ep).size() == 1);
    consumer.close();
    CHECK(status_of(scratch.queue(), id) == JobStatus::exception);
    CHECK(dequeue_now(scratch.queue(), ep).empty());
}

// --- doctor ---

TEST_CASE("doctor finds a healthy queue with queued, delayed and picked jobs sound", "[doctor]") {
    ScratchQueue scratch("doctor", small_options());
    const EntrypointId a = scratch->declare_entrypoint("a");
    const EntrypointId b = scratch->declare_entrypoint("b", with_attempts(2));
    for (int p = 0; p < 5; ++p) {
        EnqueueOptions options;
        options.priority = p - 2;
        enqueue_text(scratch.queue(), a, "x", options);
        enqueue_text(scratch.queue(), b, "y", options);
    }
    EnqueueOptions later;
    later.execute_after_ns = realtime_in(60'000ms);
    enqueue_text(scratch.queue(), a, "later", later);
    auto picked = dequeue_now(scratch.queue(), b, 2);
    REQUIRE(picked.size() == 2);
    scratch->ack(picked[0].handle);
    REQUIRE(scratch->retry(picked[1].handle, 60'000ms));
    dequeue_now(scratch.queue(), a, 1);

    Queue other = Queue::open(scratch.name());
    const DoctorReport report = other.doctor();
    CHECK(report.sound);
    CHECK(report.problems.empty());
    CHECK(report.dead_participants_reaped == 0);
    CHECK(report.expired_leases_requeued == 0);
}

TEST_CASE("doctor requeues expired leases and counts them", "[doctor]") {
    ScratchQueue scratch("doctor-lease", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", with_lease(50ms));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    Queue holder = Queue::open(scratch.name());
    pick_one(holder, ep);
    std::this_thread::sleep_for(200ms);
    const DoctorReport report = scratch->doctor();
    CHECK(report.sound);
    CHECK(report.expired_leases_requeued == 1);
    CHECK(status_of(scratch.queue(), id) == JobStatus::queued);
}

// --- fork ---

TEST_CASE("a Queue object used in a child after fork throws forked_process", "[fork]") {
    ScratchQueue scratch("fork", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    enqueue_text(scratch.queue(), ep, "parent's");
    Queue unregistered = Queue::open(scratch.name());
    const pid_t child = fork_child([&] {
        auto expect_forked = [](const char* what, auto&& call) {
            try {
                call();
            } catch (const Error& error) {
                if (error.code() == Errc::forked_process) return;
                throw std::runtime_error(std::string(what) + ": wrong error " +
                                         std::string(errc_name(error.code())));
            }
            throw std::runtime_error(std::string(what) + ": no error");
        };
        expect_forked("enqueue", [&] { enqueue_text(scratch.queue(), ep, "child's"); });
        expect_forked("dequeue", [&] { dequeue_now(scratch.queue(), ep); });
        expect_forked("enqueue on an unregistered object", [&] { enqueue_text(unregistered, ep, "x"); });
    });
    REQUIRE(wait_child(child) == 0);
    // The parent's objects are unaffected.
    const EntrypointStats stats = stats_of(scratch.queue(), ep);
    CHECK(stats.enqueued == 1);
    CHECK(stats.queued == 1);
    CHECK(dequeue_now(scratch.queue(), ep).size() == 1);
}

TEST_CASE("dequeue_one in a forked child throws forked_process even with prefetched jobs buffered",
          "[fork][prefetch]") {
    ScratchQueue scratch("fork-prefetch", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    for (int i = 0; i < 4; ++i) enqueue_text(scratch.queue(), ep, std::to_string(i));
    scratch->set_prefetch(4);
    const EntrypointId eps[] = {ep};
    auto first = scratch->dequeue_one(eps, 0ns);
    REQUIRE(first);
    const pid_t child = fork_child([&] {
        try {
            auto job = scratch->dequeue_one(eps, 0ns);
            throw std::runtime_error(job ? "child was handed the parent's prefetched job" : "no error");
        } catch (const Error& error) {
            if (error.code() != Errc::forked_process)
                throw std::runtime_error("wrong error " + std::string(errc_name(error.code())));
        }
    });
    REQUIRE(wait_child(child) == 0);
    scratch->ack(first->handle);
}

TEST_CASE("a forked child may open the queue again and use it", "[fork]") {
    ScratchQueue scratch("fork-reopen", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    enqueue_text(scratch.queue(), ep, "registered before fork");
    const std::string name = scratch.name();
    const pid_t child = fork_child([&] {
        Queue queue = Queue::open(name);
        enqueue_text(queue, ep, "from the child");
        queue.close();
    });
    REQUIRE(wait_child(child) == 0);
    auto jobs = dequeue_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 2);
    CHECK(text(jobs[1].payload) == "from the child");
}
