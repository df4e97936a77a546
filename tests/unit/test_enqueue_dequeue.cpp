// Producing and consuming: payloads, limits, order, scheduling, waiting,
// reserve/commit, batches and prefetch.
#include "unit_support.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <pthread.h>
#include <set>
#include <thread>
#include <unistd.h>

using namespace currant;
using namespace currant::unit;

TEST_CASE("a job enqueued is dequeued with its payload bytes intact, NUL bytes included", "[enqueue]") {
    ScratchQueue scratch("roundtrip", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    std::vector<std::byte> payload;
    for (int i = 0; i < 40; ++i) payload.push_back(std::byte(i * 7 % 256));
    payload[0] = payload[10] = payload[39] = std::byte(0);
    const JobId id = scratch->enqueue(ep, payload);

    auto jobs = dequeue_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 1);
    const Job& job = jobs[0];
    CHECK(job.handle.id == id);
    CHECK(job.entrypoint == ep);
    CHECK(job.attempts == 1);
    CHECK(job.enqueued_at_ns > 0);
    REQUIRE(job.payload.size() == payload.size());
    CHECK(std::equal(job.payload.begin(), job.payload.end(), payload.begin()));
    scratch->ack(job.handle);
}

TEST_CASE("an empty payload is a valid job", "[enqueue]") {
    ScratchQueue scratch("empty", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    scratch->enqueue(ep, {});
    auto jobs = dequeue_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 1);
    CHECK(jobs[0].payload.empty());
    scratch->ack(jobs[0].handle);
}

TEST_CASE("a payload of exactly the slot capacity is accepted", "[enqueue]") {
    ScratchQueue scratch("capacity", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    std::vector<std::byte> payload(64);
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = std::byte(255 - i);
    scratch->enqueue(ep, payload);
    auto jobs = dequeue_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 1);
    REQUIRE(jobs[0].payload.size() == 64);
    CHECK(std::equal(jobs[0].payload.begin(), jobs[0].payload.end(), payload.begin()));
}

TEST_CASE("a payload one byte over capacity fails with payload_too_large and queues nothing", "[enqueue]") {
    ScratchQueue scratch("toolarge", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const std::vector<std::byte> payload(65);
    REQUIRE_ERRC(scratch->enqueue(ep, payload), Errc::payload_too_large);
    const EntrypointStats stats = stats_of(scratch.queue(), ep);
    CHECK(stats.enqueued == 0);
    CHECK(stats.queued == 0);
    CHECK(dequeue_now(scratch.queue(), ep).empty());
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a full arena refuses enqueue with arena_full and keeps queued jobs intact", "[enqueue]") {
    ScratchQueue scratch("full", small_options(8));
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    std::vector<JobId> ids;
    for (int i = 0; i < 8; ++i) ids.push_back(enqueue_text(scratch.queue(), ep, "job " + std::to_string(i)));
    REQUIRE_ERRC(enqueue_text(scratch.queue(), ep, "one too many"), Errc::arena_full);
    CHECK_ERRC(scratch->reserve(ep), Errc::arena_full);

    const EntrypointStats stats = stats_of(scratch.queue(), ep);
    CHECK(stats.enqueued == 8);
    CHECK(stats.queued == 8);
    auto jobs = dequeue_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 8);
    for (int i = 0; i < 8; ++i) {
        CHECK(jobs[i].handle.id == ids[i]);
        CHECK(text(jobs[i].payload) == "job " + std::to_string(i));
    }
    for (const Job& job : jobs) scratch->ack(job.handle);
}

TEST_CASE("with arena_wait, an enqueue into a full arena blocks until another process frees a slot", "[enqueue]") {
    ScratchQueue scratch("arenawait", small_options(4));
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    for (int i = 0; i < 4; ++i) enqueue_text(scratch.queue(), ep, "x");
    std::atomic<bool> enqueued{false};
    std::thread producer([&] {
        Queue queue = Queue::open(scratch.name());
        EnqueueOptions options;
        options.arena_wait = std::chrono::seconds(30);
        queue.enqueue(ep, as_payload("waited"), options);
        enqueued = true;
    });
    // The producer is blocked: nothing was freed.
    Queue consumer = Queue::open(scratch.name());
    auto jobs = dequeue_now(consumer, ep, 1);
    REQUIRE(jobs.size() == 1);
    CHECK_FALSE(enqueued.load());
    consumer.ack(jobs[0].handle);
    producer.join();
    CHECK(enqueued.load());
    CHECK(stats_of(scratch.queue(), ep).queued == 4);
}

TEST_CASE("with arena_wait, an enqueue into a full arena gives up with arena_full at the deadline", "[enqueue]") {
    ScratchQueue scratch("arenawaitdeadline", small_options(4));
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    for (int i = 0; i < 4; ++i) enqueue_text(scratch.queue(), ep, "x");
    EnqueueOptions options;
    options.arena_wait = std::chrono::milliseconds(50);
    REQUIRE_ERRC(scratch->enqueue(ep, as_payload("late"), options), Errc::arena_full);
    CHECK(stats_of(scratch.queue(), ep).queued == 4);
}

TEST_CASE("a negative arena_wait is refused with invalid_argument", "[enqueue][errors]") {
    ScratchQueue scratch("arenawaitneg", small_options(4));
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    EnqueueOptions options;
    options.arena_wait = std::chrono::milliseconds(-1);
    REQUIRE_ERRC(scratch->enqueue(ep, as_payload("x"), options), Errc::invalid_argument);
}

TEST_CASE("acking a job frees its slot for the next enqueue of a full arena", "[enqueue]") {
    ScratchQueue scratch("refill", small_options(4));
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    for (int i = 0; i < 4; ++i) enqueue_text(scratch.queue(), ep, "x");
    REQUIRE_ERRC(enqueue_text(scratch.queue(), ep, "y"), Errc::arena_full);
    auto jobs = dequeue_now(scratch.queue(), ep, 1);
    REQUIRE(jobs.size() == 1);
    // Picked jobs still occupy their slots.
    CHECK_ERRC(enqueue_text(scratch.queue(), ep, "y"), Errc::arena_full);
    scratch->ack(jobs[0].handle);
    CHECK_NOTHROW(enqueue_text(scratch.queue(), ep, "y"));
    CHECK(stats_of(scratch.queue(), ep).queued == 4);
}

TEST_CASE("a slot freed by another Queue object's ack can be used by a producer", "[enqueue]") {
    // DESIGN: `slots` is how many jobs the arena holds at once. A consumer's
    // ack must make room for a producer in another Queue object (process).
    ScratchQueue scratch("crossfree", small_options(4));
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    for (int i = 0; i < 4; ++i) enqueue_text(scratch.queue(), ep, "x");
    REQUIRE_ERRC(enqueue_text(scratch.queue(), ep, "y"), Errc::arena_full);
    Queue consumer = Queue::open(scratch.name());
    auto jobs = dequeue_now(consumer, ep, 1);
    REQUIRE(jobs.size() == 1);
    consumer.ack(jobs[0].handle);
    CHECK_NOTHROW(enqueue_text(scratch.queue(), ep, "y"));
}

TEST_CASE("higher priority jobs are dequeued first, FIFO within one priority", "[order]") {
    ScratchQueue scratch("priority", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    auto at = [](std::int32_t priority) {
        EnqueueOptions options;
        options.priority = priority;
        return options;
    };
    enqueue_text(scratch.queue(), ep, "low-1", at(0));
    enqueue_text(scratch.queue(), ep, "high-1", at(5));
    enqueue_text(scratch.queue(), ep, "neg-1", at(-3));
    enqueue_text(scratch.queue(), ep, "low-2", at(0));
    enqueue_text(scratch.queue(), ep, "high-2", at(5));
    enqueue_text(scratch.queue(), ep, "top", at(100));
    enqueue_text(scratch.queue(), ep, "low-3", at(0));

    std::vector<std::string> order;
    std::vector<std::int32_t> priorities;
    while (auto job = dequeue_within(scratch.queue(), ep, 0ns)) {
        order.push_back(text(job->payload));
        priorities.push_back(job->priority);
        scratch->ack(job->handle);
    }
    CHECK(order == std::vector<std::string>{"top", "high-1", "high-2", "low-1", "low-2", "low-3", "neg-1"});
    CHECK(priorities == std::vector<std::int32_t>{100, 5, 5, 0, 0, 0, -3});
}

TEST_CASE("a batch dequeue returns jobs in priority then FIFO order", "[order]") {
    ScratchQueue scratch("batchorder", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    for (int i = 0; i < 10; ++i) {
        EnqueueOptions options;
        options.priority = i % 2;
        enqueue_text(scratch.queue(), ep, std::to_string(i), options);
    }
    auto jobs = dequeue_now(scratch.queue(), ep, 16);
    REQUIRE(jobs.size() == 10);
    std::vector<std::string> order;
    for (const Job& job : jobs) order.push_back(text(job.payload));
    CHECK(order == std::vector<std::string>{"1", "3", "5", "7", "9", "0", "2", "4", "6", "8"});
}

TEST_CASE("more than 32 distinct queued priorities fail with priority_lanes_full", "[order]") {
    ScratchQueue scratch("lanes", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    for (int p = 0; p < 32; ++p) {
        EnqueueOptions options;
        options.priority = p;
        enqueue_text(scratch.queue(), ep, "x", options);
    }
    EnqueueOptions one_more;
    one_more.priority = 32;
    REQUIRE_ERRC(enqueue_text(scratch.queue(), ep, "y", one_more), Errc::priority_lanes_full);
    EnqueueOptions existing;
    existing.priority = 7;
    CHECK_NOTHROW(enqueue_text(scratch.queue(), ep, "z", existing));
    CHECK(stats_of(scratch.queue(), ep).queued == 33);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a priority lane is freed when its last job is dequeued", "[order]") {
    ScratchQueue scratch("lanes-freed", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    for (int p = 0; p < 32; ++p) {
        EnqueueOptions options;
        options.priority = p;
        enqueue_text(scratch.queue(), ep, "x", options);
    }
    auto top = dequeue_now(scratch.queue(), ep, 1); // the only job of priority 31
    REQUIRE(top.size() == 1);
    CHECK(top[0].priority == 31);
    EnqueueOptions other;
    other.priority = -5;
    CHECK_NOTHROW(enqueue_text(scratch.queue(), ep, "y", other));
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a delayed job of a new priority enqueued while all lanes are in use is delivered once a lane frees",
          "[order][schedule]") {
    ScratchQueue scratch("lanes-parked", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    for (int p = 0; p < 32; ++p) {
        EnqueueOptions options;
        options.priority = p;
        enqueue_text(scratch.queue(), ep, "ready", options);
    }
    EnqueueOptions parked;
    parked.priority = 100;
    parked.execute_after_ns = realtime_in(100ms);
    const JobId id = enqueue_text(scratch.queue(), ep, "parked", parked);
    // Drain every lane: all 32 lanes are free again.
    for (const Job& job : dequeue_now(scratch.queue(), ep, 64)) {
        CHECK(text(job.payload) == "ready");
        scratch->ack(job.handle);
    }
    auto job = dequeue_within(scratch.queue(), ep, 5s);
    REQUIRE(job);
    CHECK(job->handle.id == id);
}

TEST_CASE("a job with execute_after in the future is invisible until due, then delivered", "[schedule]") {
    ScratchQueue scratch("delayed", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    EnqueueOptions later;
    later.execute_after_ns = realtime_in(300ms);
    const JobId id = enqueue_text(scratch.queue(), ep, "later", later);

    CHECK(dequeue_now(scratch.queue(), ep).empty());
    const EntrypointStats stats = stats_of(scratch.queue(), ep);
    CHECK(stats.delayed == 1);
    CHECK(stats.queued == 0);
    CHECK(status_of(scratch.queue(), id) == JobStatus::queued);

    auto job = dequeue_within(scratch.queue(), ep, 10s);
    REQUIRE(job);
    CHECK(shm::realtime_ns() >= later.execute_after_ns);
    CHECK(job->handle.id == id);
    CHECK(text(job->payload) == "later");
    scratch->ack(job->handle);
}

TEST_CASE("a job with execute_after in the past is ready at once", "[schedule]") {
    ScratchQueue scratch("past", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    EnqueueOptions past;
    past.execute_after_ns = realtime_in(-60'000ms);
    enqueue_text(scratch.queue(), ep, "now", past);
    CHECK(dequeue_now(scratch.queue(), ep).size() == 1);
}

TEST_CASE("a ready job is not held back by a delayed job enqueued before it", "[schedule]") {
    ScratchQueue scratch("delayed-ready", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    EnqueueOptions later;
    later.execute_after_ns = realtime_in(60'000ms);
    enqueue_text(scratch.queue(), ep, "later", later);
    enqueue_text(scratch.queue(), ep, "now");
    auto jobs = dequeue_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 1);
    CHECK(text(jobs[0].payload) == "now");
}

TEST_CASE("delayed jobs are delivered in execute_after order once due", "[schedule]") {
    ScratchQueue scratch("delayed-order", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const std::int64_t base = realtime_in(200ms);
    const std::int64_t offsets_ms[] = {30, 10, 20};
    for (std::int64_t offset : offsets_ms) {
        EnqueueOptions options;
        options.execute_after_ns = base + offset * 1'000'000;
        enqueue_text(scratch.queue(), ep, std::to_string(offset), options);
    }
    std::vector<std::string> order;
    while (order.size() < 3) {
        auto job = dequeue_within(scratch.queue(), ep, 10s);
        REQUIRE(job);
        order.push_back(text(job->payload));
        scratch->ack(job->handle);
    }
    CHECK(order == std::vector<std::string>{"10", "20", "30"});
}

TEST_CASE("dequeue with timeout zero returns 0 at once when nothing is ready", "[wait]") {
    ScratchQueue scratch("zero", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    CHECK(dequeue_now(scratch.queue(), ep).empty());
    CHECK_FALSE(scratch->dequeue_one(std::array<EntrypointId, 1>{ep}, 0ns).has_value());
}

TEST_CASE("a blocking dequeue with a timeout returns 0 after at least the timeout", "[wait]") {
    ScratchQueue scratch("timeout", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(dequeue_within(scratch.queue(), ep, 200ms).has_value());
    CHECK(std::chrono::steady_clock::now() - start >= 200ms);
}

TEST_CASE("a blocked dequeue wakes up for a job enqueued by another Queue object", "[wait]") {
    ScratchQueue scratch("wake", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    std::atomic<bool> started{false};
    std::optional<Job> received;
    std::string payload;
    std::thread consumer([&] {
        Queue queue = Queue::open(scratch.name());
        started = true;
        received = dequeue_within(queue, ep, 30s);
        if (received) {
            payload = text(received->payload);
            queue.ack(received->handle);
        }
    });
    while (!started) std::this_thread::yield();
    enqueue_text(scratch.queue(), ep, "wake up");
    consumer.join();
    REQUIRE(received);
    CHECK(payload == "wake up");
}

TEST_CASE("a dequeue with a negative timeout waits until a job arrives", "[wait]") {
    ScratchQueue scratch("forever", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    std::atomic<bool> started{false};
    std::size_t got = 0;
    std::thread consumer([&] {
        Queue queue = Queue::open(scratch.name());
        started = true;
        const EntrypointId eps[] = {ep};
        Job job;
        got = queue.dequeue(eps, std::span<Job>(&job, 1), -1ns);
        if (got) queue.ack(job.handle);
    });
    while (!started) std::this_thread::yield();
    enqueue_text(scratch.queue(), ep, "finally");
    consumer.join();
    CHECK(got == 1);
}

TEST_CASE("dequeue over several entrypoints takes jobs from each", "[wait]") {
    ScratchQueue scratch("multi", small_options());
    const EntrypointId a = scratch->declare_entrypoint("a");
    const EntrypointId b = scratch->declare_entrypoint("b");
    const EntrypointId c = scratch->declare_entrypoint("c");
    enqueue_text(scratch.queue(), a, "from a");
    enqueue_text(scratch.queue(), b, "from b");
    enqueue_text(scratch.queue(), c, "from c");

    const EntrypointId wanted[] = {a, b};
    std::vector<Job> out(8);
    out.resize(scratch->dequeue(wanted, out, 0ns));
    REQUIRE(out.size() == 2);
    std::vector<std::string> got;
    for (const Job& job : out) {
        got.push_back(text(job.payload));
        CHECK(job.entrypoint == (text(job.payload) == "from a" ? a : b));
    }
    std::sort(got.begin(), got.end());
    CHECK(got == std::vector<std::string>{"from a", "from b"});
    CHECK(stats_of(scratch.queue(), c).queued == 1);
}

TEST_CASE("a blocked dequeue over several entrypoints wakes for a job on any of them", "[wait]") {
    ScratchQueue scratch("multi-wake", small_options());
    const EntrypointId a = scratch->declare_entrypoint("a");
    const EntrypointId b = scratch->declare_entrypoint("b");
    std::atomic<bool> started{false};
    std::size_t got = 0;
    EntrypointId from = 99;
    std::thread consumer([&] {
        Queue queue = Queue::open(scratch.name());
        started = true;
        const EntrypointId eps[] = {a, b};
        Job job;
        got = queue.dequeue(eps, std::span<Job>(&job, 1), 30s);
        if (got) {
            from = job.entrypoint;
            queue.ack(job.handle);
        }
    });
    while (!started) std::this_thread::yield();
    enqueue_text(scratch.queue(), b, "on b");
    consumer.join();
    CHECK(got == 1);
    CHECK(from == b);
}

TEST_CASE("a dequeue into an empty output span returns 0 and picks nothing", "[wait]") {
    ScratchQueue scratch("emptyout", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    enqueue_text(scratch.queue(), ep, "x");
    const EntrypointId eps[] = {ep};
    CHECK(scratch->dequeue(eps, std::span<Job>(), 0ns) == 0);
    CHECK(stats_of(scratch.queue(), ep).queued == 1);
}

TEST_CASE("reserve and commit write the payload in place and the consumer sees it", "[reserve]") {
    ScratchQueue scratch("reserve", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    Reservation reservation = scratch->reserve(ep);
    REQUIRE(reservation.payload.size() == 64);
    CHECK(reservation.entrypoint == ep);
    CHECK(reservation.id != 0);
    const std::string message = std::string("in\0place", 8);
    std::memcpy(reservation.payload.data(), message.data(), message.size());
    EnqueueOptions options;
    options.priority = 3;
    const JobId id = scratch->commit(reservation, message.size(), options);
    CHECK(id == reservation.id);
    CHECK(reservation.payload.data() == nullptr);

    Queue consumer = Queue::open(scratch.name());
    auto jobs = dequeue_now(consumer, ep);
    REQUIRE(jobs.size() == 1);
    CHECK(jobs[0].handle.id == id);
    CHECK(jobs[0].priority == 3);
    CHECK(text(jobs[0].payload) == message);
    consumer.ack(jobs[0].handle);
}

TEST_CASE("a reserved slot is not visible to consumers before commit", "[reserve]") {
    ScratchQueue scratch("reserve-hidden", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    Reservation reservation = scratch->reserve(ep);
    CHECK(dequeue_now(scratch.queue(), ep).empty());
    CHECK(status_of(scratch.queue(), reservation.id) == JobStatus::unknown);
    scratch->commit(reservation, 0);
    CHECK(dequeue_now(scratch.queue(), ep).size() == 1);
}

TEST_CASE("abandon returns a reserved slot to the arena", "[reserve]") {
    ScratchQueue scratch("abandon", small_options(2));
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    Reservation first = scratch->reserve(ep);
    Reservation second = scratch->reserve(ep);
    REQUIRE_ERRC(scratch->reserve(ep), Errc::arena_full);
    scratch->abandon(second);
    CHECK(second.payload.data() == nullptr);
    Reservation third = scratch->reserve(ep);
    CHECK(third.slot == second.slot);
    scratch->abandon(first);
    scratch->abandon(third);
    CHECK(dequeue_now(scratch.queue(), ep).empty());
    CHECK(stats_of(scratch.queue(), ep).enqueued == 0);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a reservation cannot be committed twice or after abandon", "[reserve]") {
    ScratchQueue scratch("commit-twice", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    Reservation reservation = scratch->reserve(ep);
    scratch->commit(reservation, 0);
    CHECK_ERRC(scratch->commit(reservation, 0), Errc::invalid_argument);
    Reservation abandoned = scratch->reserve(ep);
    scratch->abandon(abandoned);
    CHECK_ERRC(scratch->commit(abandoned, 0), Errc::invalid_argument);
    CHECK(stats_of(scratch.queue(), ep).enqueued == 1);
}

TEST_CASE("a commit larger than the slot capacity fails with payload_too_large", "[reserve]") {
    ScratchQueue scratch("commit-large", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    Reservation reservation = scratch->reserve(ep);
    CHECK_ERRC(scratch->commit(reservation, 65), Errc::payload_too_large);
    CHECK(dequeue_now(scratch.queue(), ep).empty());
    CHECK_NOTHROW(scratch->commit(reservation, 64)); // still held: a correct size goes through
    CHECK(dequeue_now(scratch.queue(), ep).size() == 1);
}

TEST_CASE("enqueue_batch queues every job in order and returns their ids", "[batch]") {
    ScratchQueue scratch("batch", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const std::span<const std::byte> payloads[] = {as_payload("one"), as_payload("two"), as_payload("three")};
    JobId ids[3] = {};
    REQUIRE(scratch->enqueue_batch(ep, payloads, ids) == 3);
    auto jobs = dequeue_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 3);
    CHECK(text(jobs[0].payload) == "one");
    CHECK(text(jobs[1].payload) == "two");
    CHECK(text(jobs[2].payload) == "three");
    for (int i = 0; i < 3; ++i) CHECK(jobs[i].handle.id == ids[i]);
}

TEST_CASE("enqueue_batch stops at the first failure and reports how many were queued", "[batch]") {
    ScratchQueue scratch("batch-partial", small_options(2));
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const std::span<const std::byte> payloads[] = {as_payload("a"), as_payload("b"), as_payload("c")};
    JobId ids[3] = {};
    CHECK(scratch->enqueue_batch(ep, payloads, ids) == 2);
    CHECK(stats_of(scratch.queue(), ep).queued == 2);
    // Nothing fits now: the first failure is thrown.
    CHECK_ERRC(scratch->enqueue_batch(ep, payloads, ids), Errc::arena_full);
}

TEST_CASE("enqueue_batch with an oversized first payload throws and queues nothing", "[batch]") {
    ScratchQueue scratch("batch-large", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const std::vector<std::byte> big(65);
    const std::span<const std::byte> payloads[] = {big, as_payload("ok")};
    JobId ids[2] = {};
    CHECK_ERRC(scratch->enqueue_batch(ep, payloads, ids), Errc::payload_too_large);
    CHECK(stats_of(scratch.queue(), ep).queued == 0);
}

TEST_CASE("dequeue_one serves jobs from a prefetch buffer of picked jobs", "[prefetch]") {
    ScratchQueue scratch("prefetch", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    for (int i = 0; i < 6; ++i) enqueue_text(scratch.queue(), ep, std::to_string(i));
    Queue consumer = Queue::open(scratch.name());
    consumer.set_prefetch(4);
    const EntrypointId eps[] = {ep};

    auto first = consumer.dequeue_one(eps, 0ns);
    REQUIRE(first);
    CHECK(text(first->payload) == "0");
    // The whole prefetch is recorded in the segment as picked by this consumer.
    CHECK(stats_of(scratch.queue(), ep).picked == 4);
    CHECK(stats_of(scratch.queue(), ep).queued == 2);
    consumer.ack(first->handle);

    std::vector<std::string> rest;
    while (auto job = consumer.dequeue_one(eps, 0ns)) {
        rest.push_back(text(job->payload));
        consumer.ack(job->handle);
    }
    CHECK(rest == std::vector<std::string>{"1", "2", "3", "4", "5"});
    CHECK(stats_of(scratch.queue(), ep).successful == 6);
}

TEST_CASE("jobs prefetched by dequeue_one are invisible to other consumers", "[prefetch]") {
    ScratchQueue scratch("prefetch-own", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    for (int i = 0; i < 3; ++i) enqueue_text(scratch.queue(), ep, std::to_string(i));
    Queue consumer = Queue::open(scratch.name());
    consumer.set_prefetch(8);
    const EntrypointId eps[] = {ep};
    auto job = consumer.dequeue_one(eps, 0ns);
    REQUIRE(job);
    CHECK(dequeue_now(scratch.queue(), ep).empty());
}

TEST_CASE("interrupt from another thread ends a dequeue that waits forever, returning no job", "[dequeue][interrupt]") {
    ScratchQueue scratch("interrupt", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    Queue consumer = Queue::open(scratch.name());
    std::atomic<int> returned{-1};
    std::thread waiter([&] {
        Job job;
        const EntrypointId eps[] = {ep};
        returned = int(consumer.dequeue(eps, {&job, 1}, std::chrono::nanoseconds(-1)));
    });
    // Interrupt until the waiter has returned: an interrupt that lands before
    // the waiter starts waiting is kept and ends its next wait.
    while (returned.load() < 0) {
        consumer.interrupt();
        std::this_thread::sleep_for(10ms);
    }
    waiter.join();
    CHECK(returned.load() == 0);
    // The queue still works for that consumer afterwards.
    enqueue_text(scratch.queue(), ep, "after");
    CHECK(dequeue_now(consumer, ep).size() == 1);
}

TEST_CASE("an interrupt requested before a dequeue makes that dequeue return at once", "[dequeue][interrupt]") {
    ScratchQueue scratch("interrupt-early", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    enqueue_text(scratch.queue(), ep, "waiting");
    scratch->interrupt();
    Job job;
    const EntrypointId eps[] = {ep};
    CHECK(scratch->dequeue(eps, {&job, 1}, std::chrono::nanoseconds(-1)) == 0);
    CHECK(scratch->dequeue(eps, {&job, 1}, std::chrono::nanoseconds(-1)) == 1); // the flag is consumed
    scratch->ack(job.handle);
}

namespace {
std::atomic<int> usr1_handled{0};
void count_usr1(int) { usr1_handled.fetch_add(1); }

// Installs a SIGUSR1 handler without SA_RESTART (as Python's) for a scope.
struct Usr1Handler {
    struct sigaction previous {};
    Usr1Handler() {
        struct sigaction action {};
        action.sa_handler = count_usr1;
        sigemptyset(&action.sa_mask);
        sigaction(SIGUSR1, &action, &previous);
    }
    ~Usr1Handler() { sigaction(SIGUSR1, &previous, nullptr); }
};

// Dequeues on a new thread (opting in or not) while this thread signals it
// every 20 ms; returns what the dequeue returned and how long it took.
std::pair<std::size_t, std::chrono::milliseconds> dequeue_under_signals(Queue& consumer, EntrypointId ep,
                                                                        bool returns_on_signal,
                                                                        std::chrono::nanoseconds timeout) {
    Usr1Handler handler;
    std::atomic<bool> done{false};
    std::size_t returned = 0;
    const auto start = std::chrono::steady_clock::now();
    std::thread waiter([&] {
        Queue::set_dequeue_returns_on_signal(returns_on_signal);
        Job job;
        const EntrypointId eps[] = {ep};
        returned = consumer.dequeue(eps, {&job, 1}, timeout);
        done = true;
    });
    while (!done.load()) {
        pthread_kill(waiter.native_handle(), SIGUSR1);
        std::this_thread::sleep_for(20ms);
    }
    waiter.join();
    return {returned, std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)};
}
} // namespace

TEST_CASE("a thread that opted in returns early from a sleeping dequeue when a signal handler runs on it", "[dequeue][signal]") {
    ScratchQueue scratch("signal-early", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    Queue consumer = Queue::open(scratch.name());
    const int handled_before = usr1_handled.load();
    const auto [returned, took] = dequeue_under_signals(consumer, ep, true, 30s);
    CHECK(returned == 0);
    CHECK(took < 10s);
    CHECK(usr1_handled.load() > handled_before);
}

TEST_CASE("by default a dequeue sleeps on through signals until its timeout", "[dequeue][signal]") {
    ScratchQueue scratch("signal-default", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    Queue consumer = Queue::open(scratch.name());
    const auto [returned, took] = dequeue_under_signals(consumer, ep, false, 400ms);
    CHECK(returned == 0);
    CHECK(took >= 400ms);
}

TEST_CASE("the participant's life-lock holder thread blocks SIGINT and SIGTERM", "[participants][signal]") {
    ScratchQueue scratch("holder-mask", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    // Threads that existed before registration (ThreadSanitizer runs one of
    // its own) are not the holder.
    std::set<std::string> before;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task"))
        before.insert(task.path().filename().string());
    enqueue_text(scratch.queue(), ep, "registers"); // starts the holder thread
    int other_threads = 0;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
        if (before.count(task.path().filename().string())) continue;
        ++other_threads;
        std::ifstream status(task.path() / "status");
        std::string line;
        std::uint64_t blocked = 0;
        while (std::getline(status, line))
            if (line.rfind("SigBlk:", 0) == 0) blocked = std::stoull(line.substr(7), nullptr, 16);
        CHECK((blocked >> (SIGINT - 1) & 1) == 1);
        CHECK((blocked >> (SIGTERM - 1) & 1) == 1);
    }
    CHECK(other_threads == 1);
}
