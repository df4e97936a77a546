// Latency histograms in the segment (docs/observability.md): the bucket
// function, quantiles, and what the queue counts into them: one wait per
// pick, one run per finish by the holder (ack, fail, retry), none for a
// reaper's requeue, and counts that outlive the Queue object that made them.
#include "unit_support.hpp"

#include <limits>
#include <thread>

using namespace currant;
using namespace currant::unit;

namespace {

EntrypointOptions durability(Durability d) {
    EntrypointOptions options;
    options.durability = d;
    return options;
}

} // namespace

TEST_CASE("latency_bucket_of puts each bound in its own bucket and a nanosecond more in the next", "[latency]") {
    for (std::size_t b = 0; b + 1 < latency_bucket_count; ++b) {
        INFO("bound " << latency_bucket_bounds_ns[b]);
        CHECK(latency_bucket_of(latency_bucket_bounds_ns[b]) == b);
        CHECK(latency_bucket_of(latency_bucket_bounds_ns[b] + 1) == b + 1);
        if (b) CHECK(latency_bucket_bounds_ns[b] > latency_bucket_bounds_ns[b - 1]);
    }
    CHECK(latency_bucket_of(0) == 0);
    CHECK(latency_bucket_of(-1) == 0);
    CHECK(latency_bucket_of(std::numeric_limits<std::int64_t>::max()) == latency_bucket_count - 1);
}

TEST_CASE("quantile_bound_ns is the bound of the bucket holding the rank, 0 when empty, INT64_MAX past 10 s",
          "[latency]") {
    LatencyHistogram h;
    CHECK(h.count() == 0);
    CHECK(h.quantile_bound_ns(0.5) == 0);
    h.counts[latency_bucket_of(3'000)] = 98;        // 98 jobs <= 5 us
    h.counts[latency_bucket_of(40'000'000)] = 2;    // 2 jobs <= 50 ms
    CHECK(h.count() == 100);
    CHECK(h.quantile_bound_ns(0.5) == 5'000);
    CHECK(h.quantile_bound_ns(0.98) == 5'000);
    CHECK(h.quantile_bound_ns(0.99) == 50'000'000);
    CHECK(h.quantile_bound_ns(1.0) == 50'000'000);
    h.counts[latency_bucket_count - 1] = 900;       // most in the overflow
    CHECK(h.quantile_bound_ns(0.5) == std::numeric_limits<std::int64_t>::max());
}

TEST_CASE("each pick counts one wait and each ack or fail one run, memory's lock-free ack included", "[latency]") {
    ScratchQueue q("latency-count", small_options());
    for (const Durability d : {Durability::memory, Durability::async}) {
        INFO(durability_name(d));
        const EntrypointId ep = q->declare_entrypoint(std::string("ep-") + std::string(durability_name(d)), durability(d));
        for (int i = 0; i < 4; ++i) enqueue_text(q.queue(), ep, "x");
        std::vector<Job> jobs = dequeue_now(q.queue(), ep);
        REQUIRE(jobs.size() == 4);
        CHECK(stats_of(q.queue(), ep).wait.count() == 4);
        CHECK(stats_of(q.queue(), ep).run.count() == 0);
        q->ack(jobs[0].handle);
        q->fail(jobs[1].handle, "no");
        const JobHandle batch[] = {jobs[2].handle};
        q->ack(batch);
        q->ack_deferred(jobs[3].handle);
        CHECK(stats_of(q.queue(), ep).run.count() == 3); // deferred: not a fact yet
        q->flush();
        const EntrypointStats s = stats_of(q.queue(), ep);
        CHECK(s.wait.count() == 4);
        CHECK(s.run.count() == 4);
        CHECK(s.run.sum_ns > 0);
        CHECK(s.wait.sum_ns > 0);
    }
}

TEST_CASE("a run held 30 ms is counted above the 25 ms bound and in the sum", "[latency]") {
    ScratchQueue q("latency-held", small_options());
    const EntrypointId ep = q->declare_entrypoint("held", durability(Durability::memory));
    enqueue_text(q.queue(), ep, "x");
    const std::optional<Job> job = dequeue_within(q.queue(), ep, 1s);
    REQUIRE(job);
    std::this_thread::sleep_for(30ms);
    q->ack(job->handle);
    const EntrypointStats s = stats_of(q.queue(), ep);
    REQUIRE(s.run.count() == 1);
    for (std::size_t b = 0; b <= latency_bucket_of(25'000'000); ++b) CHECK(s.run.counts[b] == 0);
    CHECK(s.run.sum_ns >= 30'000'000);
    CHECK(s.run.quantile_bound_ns(0.5) >= 50'000'000);
}

TEST_CASE("a retry counts its run, and the job's next pick counts a second wait", "[latency]") {
    ScratchQueue q("latency-retry", small_options());
    const EntrypointId ep = q->declare_entrypoint("retried", durability(Durability::async));
    enqueue_text(q.queue(), ep, "x");
    std::optional<Job> job = dequeue_within(q.queue(), ep, 1s);
    REQUIRE(job);
    REQUIRE(q->retry(job->handle, 0ms));
    CHECK(stats_of(q.queue(), ep).run.count() == 1);
    job = dequeue_within(q.queue(), ep, 1s);
    REQUIRE(job);
    q->ack(job->handle);
    const EntrypointStats s = stats_of(q.queue(), ep);
    CHECK(s.wait.count() == 2);
    CHECK(s.run.count() == 2);
}

TEST_CASE("a pick requeued by an expired lease counts no run", "[latency]") {
    ScratchQueue q("latency-lease", small_options());
    EntrypointOptions options = durability(Durability::memory);
    options.lease = 20ms;
    const EntrypointId ep = q->declare_entrypoint("leased", options);
    enqueue_text(q.queue(), ep, "x");
    const std::optional<Job> job = dequeue_within(q.queue(), ep, 1s);
    REQUIRE(job);
    std::this_thread::sleep_for(60ms);
    CHECK(q->reap() == 1);
    CHECK_THROWS_AS(q->ack(job->handle), Error); // too late: the reaper requeued it
    const EntrypointStats s = stats_of(q.queue(), ep);
    CHECK(s.wait.count() == 1);
    CHECK(s.run.count() == 0);
}

TEST_CASE("latency counts of a closed Queue stay in the totals and a new one on its entry starts empty", "[latency]") {
    ScratchQueue q("latency-closed", small_options());
    const EntrypointId ep = q->declare_entrypoint("jobs", durability(Durability::memory));
    for (int i = 0; i < 3; ++i) enqueue_text(q.queue(), ep, "x");
    {
        Queue consumer = Queue::open(q.name());
        for (const Job& job : dequeue_now(consumer, ep)) consumer.ack(job.handle);
        CHECK(stats_of(q.queue(), ep).run.count() == 3);
    } // closed: its cells folded into the entrypoint's retired cells
    EntrypointStats s = stats_of(q.queue(), ep);
    CHECK(s.wait.count() == 3);
    CHECK(s.run.count() == 3);
    const std::uint64_t sum = s.run.sum_ns;
    // A new participant takes the freed entry: nothing counted twice.
    Queue next = Queue::open(q.name());
    enqueue_text(next, ep, "y"); // registers
    s = stats_of(q.queue(), ep);
    CHECK(s.wait.count() == 3);
    CHECK(s.run.count() == 3);
    CHECK(s.run.sum_ns == sum);
}
