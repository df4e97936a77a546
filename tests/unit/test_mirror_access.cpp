// What the mirror (currantd) relies on in the core: reading a job's content
// by slot, waiting for the feed without polling, the dirty-slot scan that
// takes over when a log is full, restoring jobs under their own ids, and
// sealed queues.
#include "unit_support.hpp"

#include <thread>

using namespace currant;
using namespace currant::unit;

namespace {

EntrypointOptions async_entrypoint() {
    EntrypointOptions options;
    options.durability = Durability::async;
    return options;
}

std::vector<Transition> read_all(const Queue& queue, EntrypointId ep) {
    std::vector<Transition> out(1024);
    out.resize(queue.read_feed(ep, 1, out));
    return out;
}

} // namespace

TEST_CASE("read_job copies the content of the job a feed record names", "[mirror]") {
    ScratchQueue scratch("mirror-read", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", async_entrypoint());
    EnqueueOptions options;
    options.priority = 7;
    options.execute_after_ns = 1'000;
    const std::string payload("a\0b", 3);
    const JobId id = enqueue_text(scratch.queue(), ep, payload, options);
    const auto feed = read_all(scratch.queue(), ep);
    REQUIRE(feed.size() == 1);

    JobSnapshot job;
    REQUIRE(scratch->read_job(feed[0].slot, id, job));
    CHECK(job.id == id);
    CHECK(job.entrypoint == ep);
    CHECK(job.status == JobStatus::queued);
    CHECK(job.priority == 7);
    CHECK(job.execute_after_ns == 1'000);
    CHECK(job.enqueued_at_ns > 0);
    CHECK(job.max_attempts == 5);
    CHECK(std::string(reinterpret_cast<const char*>(job.payload.data()), job.payload.size()) == payload);
}

TEST_CASE("read_job refuses a slot that holds another job or none", "[mirror]") {
    ScratchQueue scratch("mirror-read-other", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", async_entrypoint());
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const auto feed = read_all(scratch.queue(), ep);
    JobSnapshot job;
    CHECK_FALSE(scratch->read_job(feed[0].slot, id + 1, job));
    CHECK_FALSE(scratch->read_job(feed[0].slot + 1, id, job));
    CHECK_FALSE(scratch->read_job(1'000'000, id, job));
}

TEST_CASE("wait_for_feed returns at once when transitions are pending and times out when idle", "[mirror]") {
    ScratchQueue scratch("mirror-wait", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", async_entrypoint());
    CHECK(scratch->wait_for_feed(0ms, 1ms) == 0);
    enqueue_text(scratch.queue(), ep, "x");
    CHECK(scratch->wait_for_feed(0ms, -1ms) == 1); // pending: waits flush_after (zero), not forever
}

TEST_CASE("a waiting mirror is woken by the first transition after it caught up", "[mirror]") {
    ScratchQueue scratch("mirror-wake", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", async_entrypoint());
    std::atomic<std::uint64_t> seen{0};
    std::thread mirror([&] {
        Queue queue = Queue::open(scratch.name());
        seen = queue.wait_for_feed(0ms, 60'000ms); // idle: would sleep a minute unless woken
    });
    std::this_thread::sleep_for(50ms); // let it sleep (if it has not yet, it sees the job at once)
    enqueue_text(scratch.queue(), ep, "x");
    mirror.join(); // a lost wake-up would hang here for a minute and fail the test's timeout
    CHECK(seen == 1);
}

TEST_CASE("wake_feed_waiter ends a wait with nothing pending", "[mirror]") {
    ScratchQueue scratch("mirror-wake-call", small_options());
    Queue other = Queue::open(scratch.name());
    std::atomic<bool> returned{false};
    std::thread mirror([&] {
        scratch->wait_for_feed(0ms, 60'000ms);
        returned = true;
    });
    // Repeated: the waiter may not be asleep yet when the first call comes.
    for (int i = 0; i < 500 && !returned; ++i) {
        other.wake_feed_waiter();
        std::this_thread::sleep_for(10ms);
    }
    mirror.join();
    CHECK(returned);
}

TEST_CASE("a transition that finds the log full marks its job dirty; settling recycles a finished one",
          "[mirror]") {
    QueueOptions options = small_options();
    options.log_capacity = 2;
    ScratchQueue scratch("mirror-dirty", options);
    const EntrypointId ep = scratch->declare_entrypoint("jobs", async_entrypoint());
    const JobId id = enqueue_text(scratch.queue(), ep, "x"); // sequence 1
    const Job job = dequeue_now(scratch.queue(), ep).at(0);     // sequence 2: the log is full
    scratch->ack(job.handle);                                   // not logged: marked dirty
    CHECK(stats_of(scratch.queue(), ep).dirty_slots == 1);

    std::vector<JobSnapshot> dirty;
    REQUIRE(scratch->collect_dirty(dirty) == 1);
    CHECK(dirty[0].id == id);
    CHECK(dirty[0].status == JobStatus::successful);
    CHECK(dirty[0].dirty_mark != 0);

    const std::uint32_t free_before = scratch->info().free_slots;
    scratch->commit_feed(ep, 2);
    CHECK(scratch->info().free_slots == free_before); // the final state was not in the log
    scratch->settle_dirty(dirty);
    CHECK(scratch->info().free_slots == free_before + 1);
    CHECK(stats_of(scratch.queue(), ep).dirty_slots == 0);
    std::vector<JobSnapshot> again;
    CHECK(scratch->collect_dirty(again) == 0);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a dirty job stays off the log until settled, even once the log has room", "[mirror]") {
    QueueOptions options = small_options();
    options.log_capacity = 2;
    ScratchQueue scratch("mirror-dirty-stays", options);
    const EntrypointId ep = scratch->declare_entrypoint("jobs", async_entrypoint());
    enqueue_text(scratch.queue(), ep, "x");
    const Job job = dequeue_now(scratch.queue(), ep).at(0);
    REQUIRE(scratch->retry(job.handle, 60'000ms)); // log full: dirty
    scratch->commit_feed(ep, 2);                   // room again
    std::vector<JobSnapshot> dirty;
    REQUIRE(scratch->collect_dirty(dirty) == 1);
    CHECK(dirty[0].status == JobStatus::queued);
    CHECK(dirty[0].attempts == 1);
    CHECK(read_all(scratch.queue(), ep).empty());
}

TEST_CASE("a transition after the mirror's collect keeps the mark through settle", "[mirror]") {
    QueueOptions options = small_options();
    options.log_capacity = 1;
    ScratchQueue scratch("mirror-dirty-race", options);
    const EntrypointId ep = scratch->declare_entrypoint("jobs", async_entrypoint());
    enqueue_text(scratch.queue(), ep, "x");             // sequence 1: full
    const Job job = dequeue_now(scratch.queue(), ep).at(0); // dirty (picked)
    std::vector<JobSnapshot> dirty;
    REQUIRE(scratch->collect_dirty(dirty) == 1);
    CHECK(dirty[0].status == JobStatus::picked);
    scratch->ack(job.handle); // after the collect: bumps the mark
    scratch->settle_dirty(dirty);
    std::vector<JobSnapshot> again;
    REQUIRE(scratch->collect_dirty(again) == 1);
    CHECK(again[0].status == JobStatus::successful);
}

TEST_CASE("restore queues a job under its own id and attempts and later ids stay above it", "[mirror]") {
    QueueOptions options = small_options();
    options.host_id = 3;
    ScratchQueue scratch("mirror-restore", options);
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    RestoredJob restored;
    restored.id = (JobId(3) << 48) | 5'000;
    const std::string payload = "restored";
    restored.payload = as_payload(payload);
    restored.priority = 2;
    restored.attempts = 2;
    restored.enqueued_at_ns = 123;
    CHECK(scratch->restore(ep, restored) == restored.id);
    const JobId next = enqueue_text(scratch.queue(), ep, "new");
    CHECK((next & ((JobId(1) << 48) - 1)) > 5'000);

    const Job job = dequeue_now(scratch.queue(), ep).at(0); // priority 2 first
    CHECK(job.handle.id == restored.id);
    CHECK(job.attempts == 3);
    CHECK(job.priority == 2);
    CHECK(job.enqueued_at_ns == 123);
    CHECK(text(job.payload) == payload);
}

TEST_CASE("restore refuses a payload larger than a slot and queues nothing", "[mirror]") {
    ScratchQueue scratch("mirror-restore-big", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    RestoredJob restored;
    restored.id = 77;
    const std::string payload(65, 'x');
    restored.payload = as_payload(payload);
    CHECK_ERRC(scratch->restore(ep, restored), Errc::payload_too_large);
    CHECK(dequeue_now(scratch.queue(), ep).empty());
}

TEST_CASE("first_job_counter makes a new queue's ids start above it", "[mirror]") {
    QueueOptions options = small_options();
    options.first_job_counter = 1'000'000;
    ScratchQueue scratch("mirror-first-id", options);
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    CHECK(enqueue_text(scratch.queue(), ep, "x") > 1'000'000);
}

TEST_CASE("a sealed queue takes enqueues but hands nothing out until unsealed", "[mirror]") {
    QueueOptions options = small_options();
    options.sealed = true;
    ScratchQueue scratch("mirror-sealed", options);
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    CHECK(scratch->sealed());
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    CHECK(dequeue_now(scratch.queue(), ep).empty());

    std::optional<Job> got;
    std::thread consumer([&] {
        Queue queue = Queue::open(scratch.name());
        got = dequeue_within(queue, ep, 60'000ms); // sleeps until the unseal wakes it
    });
    std::this_thread::sleep_for(50ms);
    scratch->unseal();
    consumer.join();
    CHECK_FALSE(scratch->sealed());
    REQUIRE(got);
    CHECK(got->handle.id == id);
}

TEST_CASE("without a durability a new entrypoint is memory, and async once the queue is mirrored", "[mirror]") {
    ScratchQueue scratch("mirror-default-durability", small_options());
    CHECK_FALSE(scratch->info().mirrored);
    const EntrypointId before = scratch->declare_entrypoint("before");
    CHECK(scratch->entrypoint_options(before).durability == Durability::memory);
    scratch->mark_mirrored();
    CHECK(scratch->info().mirrored);
    const EntrypointId after = scratch->declare_entrypoint("after");
    CHECK(scratch->entrypoint_options(after).durability == Durability::async);
    // Declaring again without a durability keeps each one's own.
    scratch->declare_entrypoint("before");
    CHECK(scratch->entrypoint_options(before).durability == Durability::memory);
    EntrypointOptions sync;
    sync.durability = Durability::sync;
    scratch->declare_entrypoint("after", sync);
    CHECK(scratch->entrypoint_options(after).durability == Durability::sync);
}
