// Queue::active_jobs: the queued and picked jobs, as the dashboard lists
// them for per-row cancel (docs/observability.md).
#include "unit_support.hpp"

#include <thread>

using namespace currant;
using namespace currant::unit;

TEST_CASE("active_jobs lists picked jobs first, then queued ones oldest first, and no finished job",
          "[active_jobs]") {
    ScratchQueue q("active-order", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    const JobId picked = enqueue_text(q.queue(), ep, "p");
    const std::vector<Job> held = dequeue_now(q.queue(), ep, 1);
    REQUIRE(held.size() == 1);
    const JobId acked = enqueue_text(q.queue(), ep, "a");
    const std::vector<Job> done = dequeue_now(q.queue(), ep, 1);
    REQUIRE(done.size() == 1);
    q->ack(done[0].handle);
    const JobId first = enqueue_text(q.queue(), ep, "q1");
    std::this_thread::sleep_for(2ms);
    EnqueueOptions later;
    later.execute_after_ns = realtime_in(60s);
    later.priority = 7;
    const JobId second = enqueue_text(q.queue(), ep, "q2", later);

    const std::vector<ActiveJob> jobs = q->active_jobs();
    REQUIRE(jobs.size() == 3);
    CHECK(jobs[0].id == picked);
    CHECK(jobs[0].status == JobStatus::picked);
    CHECK(jobs[0].attempts == 1);
    CHECK_FALSE(jobs[0].cancel_requested);
    CHECK(jobs[1].id == first);
    CHECK(jobs[1].status == JobStatus::queued);
    CHECK(jobs[2].id == second);
    CHECK(jobs[2].priority == 7);
    CHECK(jobs[2].execute_after_ns == later.execute_after_ns);
    CHECK(jobs[2].enqueued_at_ns >= jobs[1].enqueued_at_ns);
    for (const ActiveJob& job : jobs) CHECK(job.id != acked);
}

TEST_CASE("active_jobs keeps to one entrypoint when given, and at most limit jobs", "[active_jobs]") {
    ScratchQueue q("active-filter", small_options());
    const EntrypointId a = q->declare_entrypoint("a");
    const EntrypointId b = q->declare_entrypoint("b");
    for (int i = 0; i < 5; ++i) enqueue_text(q.queue(), a, "x");
    const JobId in_b = enqueue_text(q.queue(), b, "y");
    const std::vector<ActiveJob> only_b = q->active_jobs(b);
    REQUIRE(only_b.size() == 1);
    CHECK(only_b[0].id == in_b);
    CHECK(only_b[0].entrypoint == b);
    CHECK(q->active_jobs(a, 3).size() == 3);
    CHECK(q->active_jobs(std::nullopt, 100).size() == 6);
    CHECK_ERRC(q->active_jobs(EntrypointId(5)), Errc::not_found);
}

TEST_CASE("active_jobs shows a cancel requested for a picked job", "[active_jobs]") {
    ScratchQueue q("active-cancel", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    const JobId id = enqueue_text(q.queue(), ep, "p");
    const std::vector<Job> held = dequeue_now(q.queue(), ep, 1);
    REQUIRE(held.size() == 1);
    Queue other = Queue::open(q.name());
    REQUIRE(other.cancel(id) == CancelOutcome::requested);
    const std::vector<ActiveJob> jobs = q->active_jobs();
    REQUIRE(jobs.size() == 1);
    CHECK(jobs[0].cancel_requested);
}
