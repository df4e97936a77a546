// Pause and resume, the concurrency limit and the rate limit of an
// entrypoint, in one process (docs/limits.md). Several Queue objects in one
// process are separate participants, which is enough to show that a limit
// counts across consumers; the multiprocess and crash suites cover other
// processes and deaths.
#include "unit_support.hpp"

#include <cmath>
#include <limits>

using namespace currant;
using namespace currant::unit;

namespace {

// Enqueues `count` jobs "job-0", "job-1", ... and returns their ids.
std::vector<JobId> enqueue_jobs(Queue& queue, EntrypointId ep, int count) {
    std::vector<JobId> ids;
    for (int i = 0; i < count; ++i) ids.push_back(enqueue_text(queue, ep, "job-" + std::to_string(i)));
    return ids;
}

EntrypointOptions with_concurrency(std::int64_t limit) {
    EntrypointOptions options;
    options.concurrency_limit = limit;
    return options;
}

EntrypointOptions with_rate(double per_second, std::int64_t burst) {
    EntrypointOptions options;
    options.rate_limit = per_second;
    options.rate_burst = burst;
    return options;
}

} // namespace

// ------------------------------------------------------------------ pause

TEST_CASE("a paused entrypoint hands out nothing", "[limits][pause]") {
    ScratchQueue q("pause-holds", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    enqueue_jobs(q.queue(), ep, 3);
    q->pause(ep);
    CHECK(dequeue_now(q.queue(), ep).empty());
    CHECK(stats_of(q.queue(), ep).queued == 3);
}

TEST_CASE("a paused entrypoint still accepts enqueues", "[limits][pause]") {
    ScratchQueue q("pause-accepts", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    q->pause(ep);
    const JobId id = enqueue_text(q.queue(), ep, "while paused");
    CHECK(status_of(q.queue(), id) == JobStatus::queued);
}

TEST_CASE("resume releases every job held back by a pause, in order", "[limits][pause]") {
    ScratchQueue q("pause-resume", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    q->pause(ep);
    const std::vector<JobId> ids = enqueue_jobs(q.queue(), ep, 5);
    REQUIRE(dequeue_now(q.queue(), ep).empty());
    q->resume(ep);
    const std::vector<Job> jobs = dequeue_now(q.queue(), ep);
    REQUIRE(jobs.size() == ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) CHECK(jobs[i].handle.id == ids[i]);
}

TEST_CASE("jobs picked before a pause can still be acked while paused", "[limits][pause]") {
    ScratchQueue q("pause-ack", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    const JobId id = enqueue_text(q.queue(), ep, "picked first");
    const auto jobs = dequeue_now(q.queue(), ep);
    REQUIRE(jobs.size() == 1);
    q->pause(ep);
    q->ack(jobs[0].handle);
    CHECK(status_of(q.queue(), id) == JobStatus::successful);
}

TEST_CASE("a pause is seen by another Queue object opened on the segment", "[limits][pause]") {
    ScratchQueue q("pause-shared", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    enqueue_jobs(q.queue(), ep, 1);
    q->pause(ep);
    Queue other = Queue::open(q.name());
    CHECK(other.paused(other.entrypoint("work")));
    CHECK(dequeue_now(other, ep).empty());
}

TEST_CASE("pausing one entrypoint leaves the others running", "[limits][pause]") {
    ScratchQueue q("pause-other", small_options());
    const EntrypointId paused = q->declare_entrypoint("paused");
    const EntrypointId running = q->declare_entrypoint("running");
    enqueue_jobs(q.queue(), paused, 1);
    enqueue_jobs(q.queue(), running, 1);
    q->pause(paused);
    std::vector<Job> jobs(4);
    const EntrypointId both[] = {paused, running};
    REQUIRE(q->dequeue(both, jobs, 0ns) == 1);
    CHECK(jobs[0].entrypoint == running);
}

TEST_CASE("a consumer waiting on a paused entrypoint times out with nothing", "[limits][pause]") {
    ScratchQueue q("pause-wait", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    enqueue_jobs(q.queue(), ep, 1);
    q->pause(ep);
    CHECK_FALSE(dequeue_within(q.queue(), ep, 20ms).has_value());
}

TEST_CASE("stats and limits() report a pause", "[limits][pause]") {
    ScratchQueue q("pause-stats", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    q->pause(ep);
    CHECK(q->paused(ep));
    CHECK(q->limits(ep).paused);
    CHECK(stats_of(q.queue(), ep).paused);
    q->resume(ep);
    CHECK_FALSE(q->paused(ep));
    CHECK_FALSE(stats_of(q.queue(), ep).paused);
}

// ------------------------------------------------------- concurrency limit

TEST_CASE("a concurrency limit caps the jobs one dequeue picks", "[limits][concurrency]") {
    ScratchQueue q("conc-cap", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_concurrency(2));
    enqueue_jobs(q.queue(), ep, 5);
    CHECK(dequeue_now(q.queue(), ep, 16).size() == 2);
    CHECK(q->limits(ep).in_flight == 2);
}

TEST_CASE("a consumer at the limit gets nothing more until a job ends", "[limits][concurrency]") {
    ScratchQueue q("conc-full", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_concurrency(2));
    enqueue_jobs(q.queue(), ep, 5);
    const auto held = dequeue_now(q.queue(), ep, 16);
    REQUIRE(held.size() == 2);
    CHECK(dequeue_now(q.queue(), ep, 16).empty());
    q->ack(held[0].handle);
    CHECK(dequeue_now(q.queue(), ep, 16).size() == 1);
}

TEST_CASE("the concurrency limit counts the picks of every Queue object", "[limits][concurrency]") {
    ScratchQueue q("conc-objects", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_concurrency(3));
    enqueue_jobs(q.queue(), ep, 6);
    Queue second = Queue::open(q.name());
    REQUIRE(dequeue_now(q.queue(), ep, 2).size() == 2);
    CHECK(dequeue_now(second, ep, 16).size() == 1);
    CHECK(dequeue_now(second, ep, 16).empty());
}

TEST_CASE("fail gives the limit slot back", "[limits][concurrency]") {
    ScratchQueue q("conc-fail", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_concurrency(1));
    enqueue_jobs(q.queue(), ep, 2);
    const auto held = dequeue_now(q.queue(), ep);
    REQUIRE(held.size() == 1);
    q->fail(held[0].handle);
    CHECK(q->limits(ep).in_flight == 0);
    CHECK(dequeue_now(q.queue(), ep).size() == 1);
}

TEST_CASE("retry gives the limit slot back and the retried job counts again when picked", "[limits][concurrency]") {
    ScratchQueue q("conc-retry", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_concurrency(1));
    const JobId id = enqueue_text(q.queue(), ep, "again");
    const auto first = dequeue_now(q.queue(), ep);
    REQUIRE(first.size() == 1);
    REQUIRE(q->retry(first[0].handle, 0ms));
    CHECK(q->limits(ep).in_flight == 0);
    const auto second = dequeue_now(q.queue(), ep);
    REQUIRE(second.size() == 1);
    CHECK(second[0].handle.id == id);
    CHECK(q->limits(ep).in_flight == 1);
}

TEST_CASE("a batch ack gives every limit slot back", "[limits][concurrency]") {
    ScratchQueue q("conc-batch", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_concurrency(4));
    enqueue_jobs(q.queue(), ep, 8);
    const auto held = dequeue_now(q.queue(), ep, 16);
    REQUIRE(held.size() == 4);
    std::vector<JobHandle> handles;
    for (const Job& job : held) handles.push_back(job.handle);
    CHECK(q->ack(handles) == 4);
    CHECK(q->limits(ep).in_flight == 0);
    CHECK(dequeue_now(q.queue(), ep, 16).size() == 4);
}

TEST_CASE("deferred acks give the limit slots back when flushed", "[limits][concurrency]") {
    ScratchQueue q("conc-deferred", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_concurrency(2));
    enqueue_jobs(q.queue(), ep, 4);
    const auto held = dequeue_now(q.queue(), ep, 16);
    REQUIRE(held.size() == 2);
    for (const Job& job : held) q->ack_deferred(job.handle);
    CHECK(q->limits(ep).in_flight == 2); // not yet facts
    q->flush();
    CHECK(q->limits(ep).in_flight == 0);
}

TEST_CASE("acks in async durability give the limit slot back", "[limits][concurrency]") {
    ScratchQueue q("conc-async", small_options());
    EntrypointOptions options = with_concurrency(1);
    options.durability = Durability::async;
    const EntrypointId ep = q->declare_entrypoint("work", options);
    enqueue_jobs(q.queue(), ep, 2);
    const auto held = dequeue_now(q.queue(), ep);
    REQUIRE(held.size() == 1);
    q->ack(held[0].handle);
    CHECK(dequeue_now(q.queue(), ep).size() == 1);
}

TEST_CASE("closing a consumer that holds limit slots requeues its jobs and frees the slots", "[limits][concurrency]") {
    ScratchQueue q("conc-close", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_concurrency(2));
    enqueue_jobs(q.queue(), ep, 2);
    {
        Queue consumer = Queue::open(q.name());
        REQUIRE(dequeue_now(consumer, ep).size() == 2);
        REQUIRE(q->limits(ep).in_flight == 2);
        consumer.close();
    }
    CHECK(q->limits(ep).in_flight == 0);
    CHECK(dequeue_now(q.queue(), ep).size() == 2);
}

TEST_CASE("a lease that expires gives the limit slot back", "[limits][concurrency]") {
    ScratchQueue q("conc-lease", small_options());
    EntrypointOptions options = with_concurrency(1);
    options.lease = 1ms;
    const EntrypointId ep = q->declare_entrypoint("work", options);
    enqueue_jobs(q.queue(), ep, 1);
    Queue holder = Queue::open(q.name());
    REQUIRE(dequeue_now(holder, ep).size() == 1);
    // The expired lease is reaped by the waiting consumer (its sleep
    // deadline is the lease deadline), which then picks the job again.
    const auto again = dequeue_within(q.queue(), ep, 10s);
    REQUIRE(again.has_value());
    CHECK(again->attempts == 2);
    CHECK(q->limits(ep).in_flight == 1);
}

TEST_CASE("setting a limit counts the jobs already picked", "[limits][concurrency]") {
    ScratchQueue q("conc-adopt", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    enqueue_jobs(q.queue(), ep, 6);
    const auto held = dequeue_now(q.queue(), ep, 3);
    REQUIRE(held.size() == 3);
    q->set_concurrency_limit(ep, 2);
    CHECK(q->limits(ep).in_flight == 3);
    CHECK(dequeue_now(q.queue(), ep).empty());
    q->ack(held[0].handle);
    CHECK(dequeue_now(q.queue(), ep).empty()); // 2 in flight: at the limit
    q->ack(held[1].handle);
    CHECK(dequeue_now(q.queue(), ep).size() == 1);
}

TEST_CASE("removing the limit lets every ready job be picked", "[limits][concurrency]") {
    ScratchQueue q("conc-remove", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_concurrency(1));
    enqueue_jobs(q.queue(), ep, 4);
    REQUIRE(dequeue_now(q.queue(), ep).size() == 1);
    q->set_concurrency_limit(ep, std::nullopt);
    CHECK_FALSE(q->limits(ep).concurrency.has_value());
    CHECK(dequeue_now(q.queue(), ep).size() == 3);
}

TEST_CASE("a job picked under a removed limit still gives its slot back", "[limits][concurrency]") {
    ScratchQueue q("conc-remove-count", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_concurrency(1));
    enqueue_jobs(q.queue(), ep, 1);
    const auto held = dequeue_now(q.queue(), ep);
    REQUIRE(held.size() == 1);
    q->set_concurrency_limit(ep, std::nullopt);
    q->ack(held[0].handle);
    CHECK(q->limits(ep).in_flight == 0);
}

TEST_CASE("declaring again without limit options keeps the limit", "[limits][concurrency]") {
    ScratchQueue q("conc-redeclare", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_concurrency(3));
    REQUIRE(q->declare_entrypoint("work") == ep);
    REQUIRE(q->limits(ep).concurrency.has_value());
    CHECK(*q->limits(ep).concurrency == 3);
    CHECK(q->entrypoint_options(ep).concurrency_limit == std::optional<std::int64_t>(3));
}

TEST_CASE("stats report the concurrency limit and the jobs counted against it", "[limits][concurrency]") {
    ScratchQueue q("conc-stats", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_concurrency(5));
    enqueue_jobs(q.queue(), ep, 2);
    REQUIRE(dequeue_now(q.queue(), ep).size() == 2);
    const EntrypointStats s = stats_of(q.queue(), ep);
    CHECK(s.concurrency_limit == 5);
    CHECK(s.in_flight == 2);
    CHECK(s.picked == 2);
}

TEST_CASE("doctor finds a queue with limits sound", "[limits][concurrency]") {
    ScratchQueue q("conc-doctor", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_concurrency(2));
    enqueue_jobs(q.queue(), ep, 3);
    REQUIRE(dequeue_now(q.queue(), ep).size() == 2);
    const DoctorReport report = q->doctor();
    INFO((report.problems.empty() ? std::string() : report.problems.front()));
    CHECK(report.sound);
}

// --------------------------------------------------------------- rate limit

TEST_CASE("a rate limit hands out a full bucket at once and then nothing", "[limits][rate]") {
    ScratchQueue q("rate-burst", small_options());
    // One token per 1000 s: no second token can arrive during the test.
    const EntrypointId ep = q->declare_entrypoint("work", with_rate(0.001, 3));
    enqueue_jobs(q.queue(), ep, 10);
    CHECK(dequeue_now(q.queue(), ep, 16).size() == 3);
    CHECK(dequeue_now(q.queue(), ep, 16).empty());
}

TEST_CASE("acks do not give rate tokens back", "[limits][rate]") {
    ScratchQueue q("rate-ack", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_rate(0.001, 1));
    enqueue_jobs(q.queue(), ep, 2);
    const auto held = dequeue_now(q.queue(), ep);
    REQUIRE(held.size() == 1);
    q->ack(held[0].handle);
    CHECK(dequeue_now(q.queue(), ep).empty());
}

TEST_CASE("a consumer out of rate tokens waits for the next token and then starts", "[limits][rate]") {
    ScratchQueue q("rate-wait", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_rate(20, 1)); // one start per 50 ms
    enqueue_jobs(q.queue(), ep, 2);
    const std::int64_t before_first = shm::monotonic_ns();
    REQUIRE(dequeue_now(q.queue(), ep).size() == 1);
    const auto second = dequeue_within(q.queue(), ep, 30s);
    const std::int64_t after_second = shm::monotonic_ns();
    REQUIRE(second.has_value());
    // The guarantee itself, a lower bound: the two starts lie at least one
    // interval apart, so however fast the machine the two calls span it.
    CHECK(after_second - before_first >= 50'000'000);
}

TEST_CASE("setting a rate limit again refills the bucket", "[limits][rate]") {
    ScratchQueue q("rate-refill", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_rate(0.001, 1));
    enqueue_jobs(q.queue(), ep, 3);
    REQUIRE(dequeue_now(q.queue(), ep).size() == 1);
    q->set_rate_limit(ep, 0.001, 2);
    CHECK(dequeue_now(q.queue(), ep).size() == 2);
}

TEST_CASE("removing the rate limit lets every ready job start", "[limits][rate]") {
    ScratchQueue q("rate-remove", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_rate(0.001, 1));
    enqueue_jobs(q.queue(), ep, 4);
    REQUIRE(dequeue_now(q.queue(), ep).size() == 1);
    q->set_rate_limit(ep, std::nullopt);
    CHECK_FALSE(q->limits(ep).rate.has_value());
    CHECK(dequeue_now(q.queue(), ep).size() == 3);
}

TEST_CASE("limits() reports the rate and burst that were set", "[limits][rate]") {
    ScratchQueue q("rate-report", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_rate(250, 10));
    const EntrypointLimits limits = q->limits(ep);
    REQUIRE(limits.rate.has_value());
    CHECK(*limits.rate == Approx(250.0));
    CHECK(limits.burst == 10);
    CHECK(stats_of(q.queue(), ep).rate_limit == Approx(250.0));
}

// -------------------------------------------------------------- bad input

TEST_CASE("a concurrency limit of zero is refused, naming the queue and entrypoint", "[limits][errors]") {
    ScratchQueue q("bad-zero", small_options());
    const EntrypointId ep = q->declare_entrypoint("work", with_concurrency(4));
    REQUIRE_THROWS_WITH(q->set_concurrency_limit(ep, 0),
                        Catch::Contains("entrypoint 'work'") && Catch::Contains("concurrency limit must be at least 1"));
    CHECK(*q->limits(ep).concurrency == 4);
}

TEST_CASE("a negative concurrency limit is refused and nothing changes", "[limits][errors]") {
    ScratchQueue q("bad-negative", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    REQUIRE_ERRC(q->set_concurrency_limit(ep, -3), Errc::invalid_argument);
    CHECK_FALSE(q->limits(ep).concurrency.has_value());
}

TEST_CASE("a concurrency limit beyond 32 bits is refused", "[limits][errors]") {
    ScratchQueue q("bad-huge", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    REQUIRE_ERRC(q->set_concurrency_limit(ep, std::int64_t(1) << 40), Errc::invalid_argument);
}

TEST_CASE("declaring with a zero concurrency limit is refused and declares nothing", "[limits][errors]") {
    ScratchQueue q("bad-declare", small_options());
    REQUIRE_ERRC(q->declare_entrypoint("work", with_concurrency(0)), Errc::invalid_argument);
    CHECK_ERRC(q->entrypoint("work"), Errc::not_found);
}

TEST_CASE("a rate limit of zero, below zero or not a number is refused", "[limits][errors]") {
    ScratchQueue q("bad-rate", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    CHECK_ERRC(q->set_rate_limit(ep, 0.0), Errc::invalid_argument);
    CHECK_ERRC(q->set_rate_limit(ep, -1.0), Errc::invalid_argument);
    CHECK_ERRC(q->set_rate_limit(ep, std::nan("")), Errc::invalid_argument);
    CHECK_ERRC(q->set_rate_limit(ep, std::numeric_limits<double>::infinity()), Errc::invalid_argument);
    CHECK_FALSE(q->limits(ep).rate.has_value());
}

TEST_CASE("a rate burst of zero is refused", "[limits][errors]") {
    ScratchQueue q("bad-burst", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    REQUIRE_THROWS_WITH(q->set_rate_limit(ep, 10.0, 0), Catch::Contains("rate burst must be at least 1"));
}

TEST_CASE("a rate burst without a rate limit is refused at declare", "[limits][errors]") {
    ScratchQueue q("bad-burst-alone", small_options());
    EntrypointOptions options;
    options.rate_burst = 4;
    REQUIRE_ERRC(q->declare_entrypoint("work", options), Errc::invalid_argument);
}

TEST_CASE("pause, limits and their setters refuse an unknown entrypoint", "[limits][errors]") {
    ScratchQueue q("bad-unknown", small_options());
    q->declare_entrypoint("work");
    const EntrypointId unknown = 5;
    CHECK_ERRC(q->pause(unknown), Errc::not_found);
    CHECK_ERRC(q->resume(unknown), Errc::not_found);
    CHECK_ERRC(q->paused(unknown), Errc::not_found);
    CHECK_ERRC(q->set_concurrency_limit(unknown, 2), Errc::not_found);
    CHECK_ERRC(q->set_rate_limit(unknown, 2.0), Errc::not_found);
    CHECK_ERRC(q->limits(unknown), Errc::not_found);
}

TEST_CASE("a refused limit leaves the queue working", "[limits][errors]") {
    ScratchQueue q("bad-intact", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    CHECK_ERRC(q->set_concurrency_limit(ep, 0), Errc::invalid_argument);
    const JobId id = enqueue_text(q.queue(), ep, "fine");
    const auto jobs = dequeue_now(q.queue(), ep);
    REQUIRE(jobs.size() == 1);
    CHECK(jobs[0].handle.id == id);
    CHECK(q->doctor().sound);
}
