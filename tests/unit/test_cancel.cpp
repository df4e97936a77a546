// Cancellation of queued and picked jobs (docs/cancellation.md): one
// behaviour per test case. Cancellers are other Queue objects (other
// participants), as they would be in another process; a forked child holds
// the job where the holder's death is the behaviour under test.
#include <atomic>
#include <csignal>
#include <future>
#include <thread>

#include "unit_support.hpp"

using namespace currant;
using namespace currant::unit;
using currant::testing::fork_child;
using currant::testing::Signal;
using currant::testing::wait_child;

namespace {

EntrypointOptions with_lease(std::chrono::milliseconds lease) {
    EntrypointOptions options;
    options.lease = lease;
    return options;
}

Job pick_one(Queue& queue, EntrypointId ep) {
    auto jobs = dequeue_now(queue, ep, 1);
    REQUIRE(jobs.size() == 1);
    return jobs[0];
}

std::chrono::milliseconds since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
}

} // namespace

TEST_CASE("cancel of a queued job ends it canceled at once and it is never delivered", "[cancel]") {
    ScratchQueue scratch("cxl-queued", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    Queue canceller = Queue::open(scratch.name());
    CHECK(canceller.cancel(id) == CancelOutcome::canceled);
    CHECK(status_of(scratch.queue(), id) == JobStatus::canceled);
    CHECK(dequeue_now(scratch.queue(), ep).empty());
    CHECK(stats_of(scratch.queue(), ep).canceled == 1);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("cancel of a picked job says requested and sets the holder's flag for that pick only", "[cancel]") {
    ScratchQueue scratch("cxl-flag", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const JobId other_id = enqueue_text(scratch.queue(), ep, "y");
    auto jobs = dequeue_now(scratch.queue(), ep, 2);
    REQUIRE(jobs.size() == 2);
    const Job& job = jobs[0].handle.id == id ? jobs[0] : jobs[1];
    const Job& other = jobs[0].handle.id == id ? jobs[1] : jobs[0];
    REQUIRE(other.handle.id == other_id);
    CHECK_FALSE(scratch->cancel_requested(job.handle));

    Queue canceller = Queue::open(scratch.name());
    CHECK(canceller.cancel(id) == CancelOutcome::requested);
    CHECK(scratch->cancel_requested(job.handle));
    CHECK_FALSE(scratch->cancel_requested(other.handle));
    const JobState state = state_of(scratch.queue(), id);
    CHECK(state.status == JobStatus::picked); // until its holder acts
    CHECK(state.cancel_requested);
    CHECK_FALSE(state_of(scratch.queue(), other_id).cancel_requested);
    // Asking again is harmless and says the same.
    CHECK(canceller.cancel(id) == CancelOutcome::requested);
    scratch->ack_canceled(job.handle);
    CHECK(status_of(scratch.queue(), id) == JobStatus::canceled);
    CHECK(stats_of(scratch.queue(), ep).canceled == 1);
    scratch->ack(other.handle);
}

TEST_CASE("a cancel wakes a holder blocked in wait_for_cancel and names the job", "[cancel][wake]") {
    ScratchQueue scratch("cxl-wait", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    enqueue_text(scratch.queue(), ep, "a");
    const JobId target = enqueue_text(scratch.queue(), ep, "b");
    auto jobs = dequeue_now(scratch.queue(), ep, 2);
    REQUIRE(jobs.size() == 2);
    const JobHandle handles[] = {jobs[0].handle, jobs[1].handle};
    const std::size_t expected = jobs[0].handle.id == target ? 0 : 1;
    const auto start = std::chrono::steady_clock::now();
    auto waited = std::async(std::launch::async, [&] { return scratch->wait_for_cancel(handles, 20s); });
    std::this_thread::sleep_for(100ms); // asleep in the kernel by now
    REQUIRE(waited.wait_for(0s) == std::future_status::timeout);
    Queue canceller = Queue::open(scratch.name());
    CHECK(canceller.cancel(target) == CancelOutcome::requested);
    REQUIRE(waited.wait_for(5s) == std::future_status::ready);
    const std::optional<std::size_t> index = waited.get();
    CHECK(since(start) < 5s);
    REQUIRE(index.has_value());
    CHECK(*index == expected);
    scratch->ack(handles[1 - expected]);
    scratch->ack_canceled(handles[expected]);
}

TEST_CASE("a cancel wakes the holder blocked in dequeue, which returns early", "[cancel][wake]") {
    ScratchQueue scratch("cxl-dequeue", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const Job job = pick_one(scratch.queue(), ep);
    const std::uint64_t wakeups_before = scratch->cancel_wakeups();
    const auto start = std::chrono::steady_clock::now();
    // Nothing else is queued: without the cancel this waits the full 20 s.
    auto blocked = std::async(std::launch::async, [&] { return dequeue_within(scratch.queue(), ep, 20s); });
    std::this_thread::sleep_for(100ms);
    REQUIRE(blocked.wait_for(0s) == std::future_status::timeout);
    Queue canceller = Queue::open(scratch.name());
    CHECK(canceller.cancel(id) == CancelOutcome::requested);
    REQUIRE(blocked.wait_for(5s) == std::future_status::ready);
    CHECK_FALSE(blocked.get().has_value());
    CHECK(since(start) < 5s);
    CHECK(scratch->cancel_wakeups() == wakeups_before + 1);
    CHECK(scratch->cancel_requested(job.handle));
    scratch->ack_canceled(job.handle);
}

TEST_CASE("a dequeue woken for a cancel still takes a job that is ready", "[cancel][wake]") {
    ScratchQueue scratch("cxl-dequeue-ready", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const Job job = pick_one(scratch.queue(), ep);
    Queue canceller = Queue::open(scratch.name());
    REQUIRE(canceller.cancel(id) == CancelOutcome::requested);
    const JobId next = enqueue_text(canceller, ep, "next");
    const std::optional<Job> got = dequeue_within(scratch.queue(), ep, 1s);
    REQUIRE(got.has_value());
    CHECK(got->handle.id == next);
    CHECK(scratch->cancel_wakeups() == 1);
    scratch->ack(got->handle);
    scratch->ack_canceled(job.handle);
}

TEST_CASE("a retry of a job whose cancel was requested ends it canceled, never queued again", "[cancel][requeue]") {
    ScratchQueue scratch("cxl-retry", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const Job job = pick_one(scratch.queue(), ep);
    Queue canceller = Queue::open(scratch.name());
    REQUIRE(canceller.cancel(id) == CancelOutcome::requested);
    CHECK_FALSE(scratch->retry(job.handle, std::chrono::milliseconds(0)));
    CHECK(status_of(scratch.queue(), id) == JobStatus::canceled);
    CHECK_FALSE(dequeue_within(scratch.queue(), ep, 100ms).has_value());
    const EntrypointStats stats = stats_of(scratch.queue(), ep);
    CHECK(stats.canceled == 1);
    CHECK(stats.retried == 0);
    CHECK(stats.queued == 0);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a lease expiry of a job whose cancel was requested ends it canceled", "[cancel][requeue]") {
    ScratchQueue scratch("cxl-lease", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", with_lease(50ms));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const Job job = pick_one(scratch.queue(), ep);
    Queue canceller = Queue::open(scratch.name());
    REQUIRE(canceller.cancel(id) == CancelOutcome::requested);
    std::this_thread::sleep_for(200ms); // the lease runs out
    Queue other = Queue::open(scratch.name());
    CHECK(other.reap() == 0); // reaped, but not requeued
    CHECK(status_of(scratch.queue(), id) == JobStatus::canceled);
    CHECK(dequeue_now(other, ep).empty());
    CHECK_ERRC(scratch->ack(job.handle), Errc::stale_handle);
    CHECK(stats_of(scratch.queue(), ep).canceled == 1);
}

TEST_CASE("a holder that dies after the request: reaping ends the job canceled, not requeued", "[cancel][requeue]") {
    ScratchQueue scratch("cxl-dead", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    Signal picked, release;
    const pid_t child = fork_child([&] {
        Queue holder = Queue::open(scratch.name());
        const EntrypointId eps[] = {ep};
        Job job;
        if (holder.dequeue(eps, std::span(&job, 1), 5s) != 1) throw std::runtime_error("nothing picked");
        picked.notify();
        release.wait(10s);
        ::raise(SIGKILL);
    });
    REQUIRE(picked.wait(10s));
    CHECK(scratch->cancel(id) == CancelOutcome::requested);
    release.notify();
    CHECK(wait_child(child) == 128 + SIGKILL);
    scratch->reap();
    CHECK(status_of(scratch.queue(), id) == JobStatus::canceled);
    CHECK(dequeue_now(scratch.queue(), ep).empty());
    CHECK(stats_of(scratch.queue(), ep).canceled == 1);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a holder that closes with a requested job ends it canceled, not requeued", "[cancel][requeue]") {
    ScratchQueue scratch("cxl-close", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    {
        Queue holder = Queue::open(scratch.name());
        pick_one(holder, ep);
        REQUIRE(scratch->cancel(id) == CancelOutcome::requested);
        holder.close();
    }
    CHECK(status_of(scratch.queue(), id) == JobStatus::canceled);
    CHECK(dequeue_now(scratch.queue(), ep).empty());
}

TEST_CASE("a prefetched job canceled before it is handed out never reaches dequeue_one's caller", "[cancel][prefetch]") {
    ScratchQueue scratch("cxl-prefetch", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId first = enqueue_text(scratch.queue(), ep, "1");
    const JobId second = enqueue_text(scratch.queue(), ep, "2");
    const JobId third = enqueue_text(scratch.queue(), ep, "3");
    const EntrypointId eps[] = {ep};
    auto got = scratch->dequeue_one(eps, 0ns); // prefetches all three
    REQUIRE(got);
    REQUIRE(got->handle.id == first);
    Queue canceller = Queue::open(scratch.name());
    REQUIRE(canceller.cancel(second) == CancelOutcome::requested);
    auto next = scratch->dequeue_one(eps, 0ns);
    REQUIRE(next);
    CHECK(next->handle.id == third);
    CHECK(status_of(scratch.queue(), second) == JobStatus::canceled);
    scratch->ack(got->handle);
    scratch->ack(next->handle);
}

TEST_CASE("an ack before the cancel wins: the cancel says not cancelable", "[cancel][race]") {
    ScratchQueue scratch("cxl-ack-first", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    scratch->ack(pick_one(scratch.queue(), ep).handle);
    Queue canceller = Queue::open(scratch.name());
    CHECK(canceller.cancel(id) == CancelOutcome::not_cancelable);
    CHECK(status_of(scratch.queue(), id) == JobStatus::successful);
    CHECK(stats_of(scratch.queue(), ep).canceled == 0);
}

TEST_CASE("a handler that acks after the request: its success stands", "[cancel][race]") {
    ScratchQueue scratch("cxl-ack-after", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const Job job = pick_one(scratch.queue(), ep);
    Queue canceller = Queue::open(scratch.name());
    REQUIRE(canceller.cancel(id) == CancelOutcome::requested);
    scratch->ack(job.handle);
    CHECK(status_of(scratch.queue(), id) == JobStatus::successful);
    CHECK(canceller.cancel(id) == CancelOutcome::not_cancelable);
    CHECK(stats_of(scratch.queue(), ep).canceled == 0);
}

TEST_CASE("cancel of an unknown, finished or canceled id says not cancelable", "[cancel]") {
    ScratchQueue scratch("cxl-unknown", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId failed = enqueue_text(scratch.queue(), ep, "f");
    scratch->fail(pick_one(scratch.queue(), ep).handle);
    const JobId canceled = enqueue_text(scratch.queue(), ep, "c");
    REQUIRE(scratch->cancel(canceled) == CancelOutcome::canceled);
    CHECK(scratch->cancel(failed) == CancelOutcome::not_cancelable);
    CHECK(scratch->cancel(canceled) == CancelOutcome::not_cancelable);
    CHECK(scratch->cancel(0x0001000000000fffull) == CancelOutcome::not_cancelable);
    CHECK(cancel_outcome_name(CancelOutcome::not_cancelable) == "not_cancelable");
}

TEST_CASE("cancel of a bad id is invalid_argument, naming the queue, and loses nothing queued", "[cancel][errors]") {
    ScratchQueue scratch("cxl-bad", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "kept");
    REQUIRE_THROWS_WITH(scratch->cancel(0), Catch::Contains("cxl-bad") && Catch::Contains("not a job id"));
    CHECK_ERRC(scratch->cancel(0), Errc::invalid_argument);
    CHECK_ERRC(scratch->cancel(JobId(1) << 63), Errc::invalid_argument);
    CHECK(status_of(scratch.queue(), id) == JobStatus::queued);
    CHECK(dequeue_now(scratch.queue(), ep).size() == 1);
}

TEST_CASE("wait_for_cancel refuses a handle beyond the arena and returns at once when nothing is held",
          "[cancel][errors]") {
    ScratchQueue scratch("cxl-wait-bad", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    enqueue_text(scratch.queue(), ep, "x");
    const Job job = pick_one(scratch.queue(), ep);
    JobHandle bad = job.handle;
    bad.slot = 1'000'000;
    const JobHandle bad_list[] = {bad};
    CHECK_ERRC(scratch->wait_for_cancel(bad_list, 1s), Errc::invalid_argument);
    CHECK_FALSE(scratch->cancel_requested(bad));
    scratch->ack(job.handle);
    // Acked: no longer held, so it does not wait its 20 s.
    const JobHandle done[] = {job.handle};
    const auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(scratch->wait_for_cancel(done, 20s).has_value());
    CHECK(since(start) < 5s);
}

TEST_CASE("wait_for_cancel without a request returns nothing when its time is up", "[cancel][wake]") {
    ScratchQueue scratch("cxl-wait-timeout", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    enqueue_text(scratch.queue(), ep, "x");
    const Job job = pick_one(scratch.queue(), ep);
    const JobHandle handles[] = {job.handle};
    const auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(scratch->wait_for_cancel(handles, 100ms).has_value());
    CHECK(since(start) >= 100ms);
    scratch->ack(job.handle);
}

TEST_CASE("interrupt ends a wait_for_cancel", "[cancel][wake]") {
    ScratchQueue scratch("cxl-wait-interrupt", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    enqueue_text(scratch.queue(), ep, "x");
    const Job job = pick_one(scratch.queue(), ep);
    const JobHandle handles[] = {job.handle};
    auto waited = std::async(std::launch::async, [&] { return scratch->wait_for_cancel(handles, 20s); });
    std::this_thread::sleep_for(100ms);
    scratch->interrupt();
    REQUIRE(waited.wait_for(5s) == std::future_status::ready);
    CHECK_FALSE(waited.get().has_value());
    scratch->ack(job.handle);
}

TEST_CASE("ack_canceled gives up a job without a request: it ends canceled", "[cancel]") {
    ScratchQueue scratch("cxl-give-up", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const Job job = pick_one(scratch.queue(), ep);
    scratch->ack_canceled(job.handle);
    CHECK(status_of(scratch.queue(), id) == JobStatus::canceled);
    CHECK_ERRC(scratch->ack_canceled(job.handle), Errc::stale_handle);
}

TEST_CASE("with async durability a requested job's retry logs canceled in the feed", "[cancel][feed]") {
    ScratchQueue scratch("cxl-feed", small_options());
    EntrypointOptions options;
    options.durability = Durability::async;
    const EntrypointId ep = scratch->declare_entrypoint("jobs", options);
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const Job job = pick_one(scratch.queue(), ep);
    REQUIRE(scratch->cancel(id) == CancelOutcome::requested);
    CHECK_FALSE(scratch->retry(job.handle, std::chrono::milliseconds(0)));
    std::vector<Transition> records(16);
    records.resize(scratch->read_feed(ep, scratch->feed_committed(ep) + 1, records));
    REQUIRE_FALSE(records.empty());
    CHECK(records.back().id == id);
    CHECK(records.back().status == JobStatus::canceled);
}
