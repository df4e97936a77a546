// Job results, kept finished jobs and Queue::wait (docs/results.md), in one
// process; tests/multiprocess/test_results_multiprocess.cpp waits across
// processes and tests/crash/test_results_crash.cpp kills processes inside
// each critical section.
#include "unit_support.hpp"

#include <fcntl.h>
#include <future>
#include <sys/mman.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "currant/shm/segment.hpp"
#include "layout.hpp" // core/src: torn states written straight into the segment

using namespace currant;
using namespace currant::unit;

namespace {

EntrypointOptions kept_for(std::chrono::milliseconds retention, Durability durability = Durability::memory) {
    EntrypointOptions options;
    options.durability = durability;
    options.result_retention = retention;
    options.retry_delay = 0ms;
    return options;
}

JobHandle pick_one(Queue& queue, EntrypointId ep) {
    const auto jobs = dequeue_now(queue, ep, 1);
    REQUIRE(jobs.size() == 1);
    return jobs[0].handle;
}

JobOutcome wait_one(Queue& queue, JobId id, std::chrono::nanoseconds timeout = 0ns) {
    const JobId ids[] = {id};
    const auto outcomes = queue.wait(ids, timeout);
    REQUIRE(outcomes.size() == 1);
    return outcomes[0];
}

std::string result_text(const JobOutcome& outcome) {
    REQUIRE(outcome.result.has_value());
    return std::string(as_text(*outcome.result));
}

} // namespace

TEST_CASE("an acked result is returned by wait with the final status", "[results]") {
    for (Durability durability : {Durability::memory, Durability::async}) {
        CAPTURE(durability_name(durability));
        ScratchQueue scratch("results-ack", small_options());
        const EntrypointId ep = scratch->declare_entrypoint("work", kept_for(60s, durability));
        const JobId id = enqueue_text(scratch.queue(), ep, "in");
        const std::int64_t before = shm::realtime_ns();
        scratch->ack(pick_one(scratch.queue(), ep), as_payload("the answer"));
        const JobOutcome outcome = wait_one(scratch.queue(), id);
        CHECK(outcome.id == id);
        CHECK(outcome.finished);
        CHECK(outcome.status == JobStatus::successful);
        CHECK(result_text(outcome) == "the answer");
        CHECK(outcome.finished_at_ns >= before);
        CHECK(stats_of(scratch.queue(), ep).successful == 1);
    }
}

TEST_CASE("an empty result is a result, an ack without one has none", "[results]") {
    ScratchQueue scratch("results-empty", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", kept_for(60s));
    const JobId with_empty = enqueue_text(scratch.queue(), ep, "a");
    const JobId without = enqueue_text(scratch.queue(), ep, "b");
    scratch->ack(pick_one(scratch.queue(), ep), std::span<const std::byte>());
    scratch->ack(pick_one(scratch.queue(), ep));
    const JobOutcome empty = wait_one(scratch.queue(), with_empty);
    REQUIRE(empty.result.has_value());
    CHECK(empty.result->empty());
    const JobOutcome none = wait_one(scratch.queue(), without);
    CHECK(none.status == JobStatus::successful);
    CHECK_FALSE(none.result.has_value());
}

TEST_CASE("a result of exactly result_bytes is taken", "[results][errors]") {
    QueueOptions options = small_options();
    options.result_bytes = 16;
    ScratchQueue scratch("results-exact", options);
    const EntrypointId ep = scratch->declare_entrypoint("work", kept_for(60s));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const std::string sixteen(16, 'r');
    scratch->ack(pick_one(scratch.queue(), ep), as_payload(sixteen));
    CHECK(result_text(wait_one(scratch.queue(), id)) == sixteen);
}

TEST_CASE("an oversized result is refused naming both sizes and leaves the job picked", "[results][errors]") {
    QueueOptions options = small_options();
    options.result_bytes = 16;
    ScratchQueue scratch("results-oversized", options);
    const EntrypointId ep = scratch->declare_entrypoint("work", kept_for(60s));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const JobHandle job = pick_one(scratch.queue(), ep);
    const std::string seventeen(17, 'r');
    try {
        scratch->ack(job, as_payload(seventeen));
        FAIL("an oversized result was taken");
    } catch (const Error& error) {
        CHECK(error.code() == Errc::invalid_argument);
        const std::string message = error.what();
        CHECK(message.find("17") != std::string::npos);
        CHECK(message.find("16") != std::string::npos);
    }
    CHECK(status_of(scratch.queue(), id) == JobStatus::picked);
    CHECK(state_of(scratch.queue(), id).attempts == 1);
    scratch->ack(job, as_payload("fits")); // the handle still holds it
    CHECK(result_text(wait_one(scratch.queue(), id)) == "fits");
}

TEST_CASE("a result acked under a stale handle is refused", "[results][errors]") {
    ScratchQueue scratch("results-stale", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", kept_for(60s));
    enqueue_text(scratch.queue(), ep, "x");
    const JobHandle job = pick_one(scratch.queue(), ep);
    scratch->ack(job, as_payload("first"));
    CHECK_ERRC(scratch->ack(job, as_payload("second")), Errc::stale_handle);
}

TEST_CASE("wait returns at once for finished jobs and reports unknown ids without waiting", "[results][wait]") {
    ScratchQueue scratch("results-unknown", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", kept_for(60s));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    scratch->ack(pick_one(scratch.queue(), ep), as_payload("done"));
    const JobId never = (JobId(0x1234) << 48) | 99;
    const JobId ids[] = {never, id};
    const auto start = std::chrono::steady_clock::now();
    const auto outcomes = scratch->wait(ids, 10s);
    CHECK(std::chrono::steady_clock::now() - start < 1s);
    REQUIRE(outcomes.size() == 2);
    CHECK(outcomes[0].id == never);
    CHECK(outcomes[0].status == JobStatus::unknown);
    CHECK_FALSE(outcomes[0].finished);
    CHECK(outcomes[1].status == JobStatus::successful);
    CHECK(result_text(outcomes[1]) == "done");
}

TEST_CASE("wait refuses ids that no job can have", "[results][wait][errors]") {
    ScratchQueue scratch("results-bad-id", small_options());
    const JobId zero[] = {0};
    CHECK_ERRC(scratch->wait(zero, 0ns), Errc::invalid_argument);
    const JobId upper[] = {JobId(INT64_MAX) + 1};
    CHECK_ERRC(scratch->wait(upper, 0ns), Errc::invalid_argument);
}

TEST_CASE("wait on an unfinished job honours its timeout and reports the current status", "[results][wait]") {
    ScratchQueue scratch("results-timeout", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", kept_for(60s));
    const JobId queued = enqueue_text(scratch.queue(), ep, "q");
    const auto start = std::chrono::steady_clock::now();
    const JobOutcome outcome = wait_one(scratch.queue(), queued, 50ms);
    const auto waited = std::chrono::steady_clock::now() - start;
    CHECK(waited >= 50ms);
    CHECK(waited < 5s);
    CHECK_FALSE(outcome.finished);
    CHECK(outcome.status == JobStatus::queued);
}

TEST_CASE("wait blocks until the job is acked by another thread", "[results][wait]") {
    ScratchQueue scratch("results-wake", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", kept_for(60s));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    auto waited = std::async(std::launch::async, [&] {
        Queue waiter = Queue::open(scratch.name());
        return wait_one(waiter, id, 20s);
    });
    Queue consumer = Queue::open(scratch.name());
    const JobHandle job = pick_one(consumer, ep);
    CHECK(waited.wait_for(100ms) == std::future_status::timeout); // still asleep
    const auto acked = std::chrono::steady_clock::now();
    consumer.ack(job, as_payload("woken"));
    REQUIRE(waited.wait_for(10s) == std::future_status::ready);
    CHECK(std::chrono::steady_clock::now() - acked < 5s);
    const JobOutcome outcome = waited.get();
    CHECK(outcome.finished);
    CHECK(result_text(outcome) == "woken");
}

TEST_CASE("wait on several jobs returns when the last of them ends", "[results][wait]") {
    ScratchQueue scratch("results-several", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", kept_for(60s));
    const JobId first = enqueue_text(scratch.queue(), ep, "1");
    const JobId second = enqueue_text(scratch.queue(), ep, "2");
    auto waited = std::async(std::launch::async, [&] {
        Queue waiter = Queue::open(scratch.name());
        const JobId ids[] = {first, second};
        return waiter.wait(ids, 20s);
    });
    Queue consumer = Queue::open(scratch.name());
    consumer.ack(pick_one(consumer, ep), as_payload("one"));
    CHECK(waited.wait_for(100ms) == std::future_status::timeout); // one is still queued
    consumer.fail(pick_one(consumer, ep), "broke");
    REQUIRE(waited.wait_for(10s) == std::future_status::ready);
    const auto outcomes = waited.get();
    CHECK(outcomes[0].status == JobStatus::successful);
    CHECK(result_text(outcomes[0]) == "one");
    CHECK(outcomes[1].status == JobStatus::exception);
    CHECK(outcomes[1].error == "broke");
    CHECK_FALSE(outcomes[1].result.has_value());
}

// finish() wakes waiters after it releases the entrypoint lock, once per
// call (note_completion): a wake owed by a batch must still be made.
TEST_CASE("a batch ack wakes a waiter on every job of the batch", "[results][wait]") {
    auto durability = GENERATE(Durability::memory, Durability::async);
    auto retention = GENERATE(0ms, 60'000ms);
    ScratchQueue scratch("results-batch-wake", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", kept_for(retention, durability));
    std::vector<JobId> ids;
    for (int i = 0; i < 4; ++i) ids.push_back(enqueue_text(scratch.queue(), ep, "x"));
    auto waited = std::async(std::launch::async, [&] {
        Queue waiter = Queue::open(scratch.name());
        return waiter.wait(ids, 20s);
    });
    Queue consumer = Queue::open(scratch.name());
    const auto jobs = dequeue_now(consumer, ep, 4);
    REQUIRE(jobs.size() == 4);
    CHECK(waited.wait_for(100ms) == std::future_status::timeout); // still asleep
    std::vector<JobHandle> handles;
    for (const Job& job : jobs) handles.push_back(job.handle);
    const auto acked = std::chrono::steady_clock::now();
    CHECK(consumer.ack(handles) == 4);
    REQUIRE(waited.wait_for(10s) == std::future_status::ready);
    CHECK(std::chrono::steady_clock::now() - acked < 5s); // woken, not timed out
    for (const JobOutcome& outcome : waited.get()) {
        CHECK(outcome.finished);
        CHECK(outcome.status == JobStatus::successful);
    }
}

TEST_CASE("interrupt ends a wait early", "[results][wait]") {
    ScratchQueue scratch("results-interrupt", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", kept_for(60s));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    Queue waiter = Queue::open(scratch.name());
    auto waited = std::async(std::launch::async, [&] { return wait_one(waiter, id, 30s); });
    CHECK(waited.wait_for(100ms) == std::future_status::timeout);
    waiter.interrupt();
    REQUIRE(waited.wait_for(10s) == std::future_status::ready);
    CHECK_FALSE(waited.get().finished);
}

TEST_CASE("a canceled job is kept and reported canceled", "[results][wait]") {
    ScratchQueue scratch("results-canceled", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", kept_for(60s));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    CHECK(scratch->cancel(id) == CancelOutcome::canceled);
    const JobOutcome outcome = wait_one(scratch.queue(), id);
    CHECK(outcome.finished);
    CHECK(outcome.status == JobStatus::canceled);
    CHECK(status_of(scratch.queue(), id) == JobStatus::canceled);
}

TEST_CASE("a kept result holds its slot until its retention passes, then reap recycles it", "[results][retention]") {
    ScratchQueue scratch("results-retention", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", kept_for(50ms));
    const std::uint32_t free_before = scratch->info().free_slots;
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    scratch->ack(pick_one(scratch.queue(), ep), as_payload("kept"));
    scratch->reap();
    CHECK(result_text(wait_one(scratch.queue(), id)) == "kept"); // within its retention
    std::this_thread::sleep_for(80ms);
    scratch->reap();
    const JobOutcome outcome = wait_one(scratch.queue(), id);
    CHECK(outcome.status == JobStatus::successful); // the freed slot still names its last job
    CHECK(outcome.finished);
    CHECK_FALSE(outcome.result.has_value());
    // Every slot is back (some may sit in this Queue's slot cache).
    Queue other = Queue::open(scratch.name());
    CHECK(other.info().free_slots + 64 >= free_before);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("kept results give way to new jobs when the arena is full, oldest first", "[results][retention]") {
    ScratchQueue scratch("results-pressure", small_options(64));
    const EntrypointId ep = scratch->declare_entrypoint("work", kept_for(3600s));
    std::vector<JobId> ids;
    for (int i = 0; i < 64; ++i) {
        const JobId id = enqueue_text(scratch.queue(), ep, "x");
        ids.push_back(id);
        scratch->ack(pick_one(scratch.queue(), ep), as_payload("r" + std::to_string(i)));
    }
    // Every slot holds a kept result: new jobs still go in.
    for (int i = 0; i < 32; ++i) enqueue_text(scratch.queue(), ep, "new");
    CHECK(stats_of(scratch.queue(), ep).queued == 32);
    CHECK_FALSE(wait_one(scratch.queue(), ids.front()).result.has_value()); // the oldest went first
    CHECK(result_text(wait_one(scratch.queue(), ids.back())) == "r63");
    CHECK(scratch->doctor().sound);
}

TEST_CASE("without a retention a memory job is not kept: its slot is free at once", "[results][retention]") {
    ScratchQueue scratch("results-no-retention", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work");
    CHECK(scratch->entrypoint_options(ep).result_retention == std::optional(0ms));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    scratch->ack(pick_one(scratch.queue(), ep), as_payload("dropped"));
    const JobOutcome outcome = wait_one(scratch.queue(), id);
    CHECK(outcome.status == JobStatus::successful); // until the slot is reused
    CHECK_FALSE(outcome.result.has_value());
}

TEST_CASE("an async result without retention is mirrored, then its slot recycled", "[results][feed]") {
    ScratchQueue scratch("results-async-mirror", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", kept_for(0ms, Durability::async));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const JobHandle job = pick_one(scratch.queue(), ep);
    scratch->ack(job, as_payload("to the mirror"));
    JobSnapshot snapshot;
    REQUIRE(scratch->read_job(job.slot, id, snapshot));
    CHECK(snapshot.status == JobStatus::successful);
    REQUIRE(snapshot.result.has_value());
    CHECK(as_text(*snapshot.result) == "to the mirror");
    scratch->commit_feed(ep, scratch->feed_committed(ep) + 3); // enqueue, pick, ack
    CHECK_FALSE(scratch->read_job(job.slot, id, snapshot));
}

TEST_CASE("an async kept result outlives the mirror's commit", "[results][feed]") {
    ScratchQueue scratch("results-async-kept", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", kept_for(60s, Durability::async));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    scratch->ack(pick_one(scratch.queue(), ep), as_payload("kept"));
    scratch->commit_feed(ep, 3);
    CHECK(result_text(wait_one(scratch.queue(), id)) == "kept");
    CHECK(scratch->doctor().sound);
}

TEST_CASE("an unmirrored async result is never recycled for space", "[results][feed]") {
    ScratchQueue scratch("results-unmirrored", small_options(64));
    const EntrypointId ep = scratch->declare_entrypoint("work", kept_for(1ms, Durability::async));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    scratch->ack(pick_one(scratch.queue(), ep), as_payload("not yet mirrored"));
    std::this_thread::sleep_for(5ms);
    scratch->reap(); // past its retention, but its transition is not committed
    CHECK(result_text(wait_one(scratch.queue(), id)) == "not yet mirrored");
}

TEST_CASE("a result retention is validated and kept by a redeclare without one", "[results][errors]") {
    ScratchQueue scratch("results-options", small_options());
    EntrypointOptions negative;
    negative.result_retention = -1ms;
    CHECK_ERRC(scratch->declare_entrypoint("bad", negative), Errc::invalid_argument);
    EntrypointOptions too_long;
    too_long.result_retention = max_lease + 1ms;
    CHECK_ERRC(scratch->declare_entrypoint("bad", too_long), Errc::invalid_argument);
    const EntrypointId ep = scratch->declare_entrypoint("work", kept_for(1500ms));
    CHECK(scratch->entrypoint_options(scratch->declare_entrypoint("work")).result_retention == std::optional(1500ms));
    CHECK(scratch->entrypoint_options(ep).result_retention == std::optional(1500ms));
}

TEST_CASE("doctor reports a completion waiter count below the participants marked waiting", "[results][wait][doctor]") {
    ScratchQueue scratch("results-torn-count", small_options());
    scratch->reap(); // registers: participant entry 0 is ours
    const int fd = ::shm_open(shm::object_name_for(scratch.name()).c_str(), O_RDWR, 0);
    REQUIRE(fd >= 0);
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    void* base = ::mmap(nullptr, std::size_t(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    REQUIRE(base != MAP_FAILED);
    auto* bytes = static_cast<std::byte*>(base);
    const auto& header = *reinterpret_cast<const shm::SegmentHeader*>(bytes);
    auto& core = *reinterpret_cast<detail::CoreHeader*>(bytes + header.core_offset);
    auto* participants = reinterpret_cast<detail::ParticipantEntry*>(bytes + header.core_offset + core.participants_offset);
    CHECK(scratch->doctor().sound);
    // A waiter marked but not counted: finishers would skip its wake-up (R4).
    participants[0].completion_waiting.store(1);
    const DoctorReport torn = scratch->doctor();
    CHECK_FALSE(torn.sound);
    REQUIRE(torn.problems.size() == 1);
    CHECK(torn.problems[0].find("completion waiter count 0 is below the 1") != std::string::npos);
    // Counted too (the state a live waiter is in): sound again.
    core.completion_waiters.store(1);
    CHECK(scratch->doctor().sound);
    participants[0].completion_waiting.store(0);
    core.completion_waiters.store(0);
    ::munmap(base, std::size_t(st.st_size));
}
