// Pause and limits across processes (docs/limits.md): the concurrency limit
// holds among many consumer processes, counted independently of the queue
// through a counter in shared test memory; consumers blocked by a pause or a
// limit sleep in the kernel and are woken by resume() or by a freed slot.
#include "process_harness.hpp"

#include <sched.h>
#include <iterator>
#include <sys/wait.h>

using namespace currant;
using namespace currant::harness;

namespace {

const std::string ep_name = "limited";

// Leases longer than any wait in these tests: a sleeper's deadline is the
// earliest lease, so with the default (30 s) a missing wake-up would only
// make a test slow; with these it makes the waiter's 60 s dequeue fail.
constexpr std::chrono::milliseconds long_lease = 600s;

// The exit status of a child that must exit by itself within `timeout` (an
// observable state, polled); a child still running then is killed and the
// result is -1. Used for waiters that wait forever, so that only the
// wake-up under test can end their wait.
// Counts jobs held at once by all consumers: raised after a dequeue
// returned a job, lowered before its ack is called, so at every moment it is
// at most the number of jobs the queue counts as picked.
struct HeldCounter {
    SharedCounters cells{2}; // [0] held now, [1] highest seen
    void take() {
        const std::uint64_t now = cells[0].fetch_add(1) + 1;
        std::uint64_t seen = cells[1].load();
        while (now > seen && !cells[1].compare_exchange_weak(seen, now)) {}
    }
    void give() { cells[0].fetch_sub(1); }
    std::uint64_t highest() const { return cells[1].load(); }
};

// A consumer process: picks with dequeue (batches of up to 2) or with
// dequeue_one and deferred acks, holds each job across a few yields (so
// that other processes run while it is held), until every job is acked.
void limited_consumer(const std::string& name, Ledger& ledger, HeldCounter& held, bool deferred) {
    Queue queue = Queue::open(name);
    const EntrypointId eps[] = {queue.entrypoint(ep_name)};
    std::vector<Job> out(2);
    if (deferred) queue.set_prefetch(2);
    while (ledger.total_acked() < ledger.jobs()) {
        std::size_t got = 0;
        if (deferred) {
            if (auto job = queue.dequeue_one(eps, 50ms)) { out[0] = *job; got = 1; }
        } else {
            got = queue.dequeue(eps, out, 50ms);
        }
        for (std::size_t i = 0; i < got; ++i) held.take();
        for (std::size_t i = 0; i < got; ++i) {
            const JobPayload payload = read_payload(out[i].payload, ledger.jobs());
            ledger.on_delivered(payload.seq, out[i].attempts);
            for (int k = 0; k < 3; ++k) sched_yield();
            held.give();
            if (deferred) {
                queue.ack_deferred(out[i].handle);
            } else {
                queue.ack(out[i].handle);
            }
            ledger.on_acked(payload.seq);
        }
    }
    queue.flush();
    queue.close();
}

} // namespace

TEST_CASE("8 consumer processes never hold more jobs at once than a concurrency limit of 3",
          "[multiprocess][limits][concurrency]") {
    constexpr std::uint64_t jobs = 3000;
    constexpr std::int64_t limit = 3;
    ScratchQueue scratch("mp-limit", small_queue(4096));
    EntrypointOptions options;
    options.concurrency_limit = limit;
    const EntrypointId ep = scratch->declare_entrypoint(ep_name, options);
    Ledger ledger(jobs);
    HeldCounter held;
    for (std::uint64_t seq = 0; seq < jobs; ++seq) {
        scratch->enqueue(ep, payload_bytes(make_payload(seq)));
        ledger.on_enqueued(seq);
    }
    std::vector<pid_t> consumers;
    for (int i = 0; i < 8; ++i)
        consumers.push_back(fork_child([&, i] { limited_consumer(scratch.name(), ledger, held, i % 2 == 1); }));
    for (pid_t pid : consumers) CHECK(wait_child(pid) == 0);

    INFO("highest number of jobs held at once: " << held.highest());
    CHECK(held.highest() <= std::uint64_t(limit));
    CHECK(held.highest() >= 1);
    require_accounted(ledger, [](std::uint64_t) { return Fate::completed_once; });
    CHECK(scratch->limits(ep).in_flight == 0);
    require_queue_empty(scratch.queue());
    require_doctor_sound(scratch.queue());
}

TEST_CASE("doctor's recount during other processes' lock-free counted batch acks always matches the count",
          "[multiprocess][limits][concurrency]") {
    // Consumers ack batches of counted `memory` picks without the lock and
    // give the limit slots back afterwards, each enqueueing a new job per
    // job acked until 60,000 acks; doctor recounts under the lock meanwhile.
    // A recount that missed a release made but not given back (or counted
    // one twice) reports a concurrency count mismatch.
    constexpr std::uint64_t target = 60000;
    ScratchQueue scratch("mp-limit-recount", small_queue(4096));
    EntrypointOptions options;
    options.concurrency_limit = 64;
    options.durability = Durability::memory;
    const EntrypointId ep = scratch->declare_entrypoint(ep_name, options);
    for (int i = 0; i < 512; ++i) scratch->enqueue(ep, as_payload("job"));
    SharedCounters acked{1};
    std::vector<pid_t> consumers;
    for (int i = 0; i < 2; ++i)
        consumers.push_back(fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId eps[] = {queue.entrypoint(ep_name)};
            std::vector<Job> out(16);
            std::vector<JobHandle> handles;
            while (acked[0].load() < target) {
                const std::size_t got = queue.dequeue(eps, out, 50ms);
                handles.clear();
                for (std::size_t k = 0; k < got; ++k) handles.push_back(out[k].handle);
                expect(queue.ack(handles) == got, "a batch ack fell short");
                for (std::size_t k = 0; k < got; ++k) queue.enqueue(eps[0], as_payload("job"));
                acked[0].fetch_add(got);
            }
            queue.close();
        }));
    std::size_t recounts = 0;
    std::vector<std::string> mismatches;
    while (acked[0].load() < target) {
        const DoctorReport report = scratch->doctor();
        ++recounts;
        for (const std::string& problem : report.problems)
            if (problem.find("concurrency count") != std::string::npos) mismatches.push_back(problem);
    }
    for (pid_t pid : consumers) CHECK(wait_child(pid) == 0);
    INFO("doctor runs during the acks: " << recounts);
    CHECK(recounts >= 1); // usually tens to hundreds
    INFO("first mismatch: " << (mismatches.empty() ? std::string("none") : mismatches.front()));
    CHECK(mismatches.empty());
    CHECK(scratch->limits(ep).in_flight == 0);
    require_doctor_sound(scratch.queue());
}

TEST_CASE("a consumer asleep at the concurrency limit is woken when another process acks",
          "[multiprocess][limits][concurrency]") {
    ScratchQueue scratch("mp-limit-wake", small_queue());
    EntrypointOptions options;
    options.concurrency_limit = 1;
    options.lease = long_lease;
    const EntrypointId ep = scratch->declare_entrypoint(ep_name, options);
    const JobId first = scratch->enqueue(ep, as_payload("first"));
    const JobId second = scratch->enqueue(ep, as_payload("second"));
    Job held;
    const EntrypointId eps[] = {ep};
    REQUIRE(scratch->dequeue(eps, std::span<Job>(&held, 1), 0ns) == 1);
    REQUIRE(held.handle.id == first);

    const pid_t waiter = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId mine[] = {queue.entrypoint(ep_name)};
        Job job;
        expect(queue.dequeue(mine, std::span<Job>(&job, 1), -1ns) == 1, "the waiter got no job");
        expect(job.handle.id == second, "the waiter got another job than the second");
        queue.ack(job.handle);
    });
    // Asleep in the kernel with a job ready: only the limit holds it back.
    REQUIRE(wait_until_sleeping(scratch.queue(), {waiter}));
    REQUIRE(wait_until_blocked_in_kernel(waiter));
    CHECK(scratch->stats().at(ep).queued == 1);
    scratch->ack(held.handle);
    CHECK(exit_within(waiter) == 0);
}

TEST_CASE("a consumer asleep at a limit set while jobs were picked is woken by their lock-free ack",
          "[multiprocess][limits][concurrency]") {
    ScratchQueue scratch("mp-limit-legacy", small_queue());
    EntrypointOptions options;
    options.lease = long_lease;
    const EntrypointId ep = scratch->declare_entrypoint(ep_name, options); // memory durability: lock-free acks
    const JobId first = scratch->enqueue(ep, as_payload("first"));
    const JobId second = scratch->enqueue(ep, as_payload("second"));
    Job held;
    const EntrypointId eps[] = {ep};
    REQUIRE(scratch->dequeue(eps, std::span<Job>(&held, 1), 0ns) == 1); // picked without a limit
    REQUIRE(held.handle.id == first);
    scratch->set_concurrency_limit(ep, 1); // the job already picked fills it
    REQUIRE(scratch->limits(ep).in_flight == 1);

    const pid_t waiter = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId mine[] = {queue.entrypoint(ep_name)};
        Job job;
        expect(queue.dequeue(mine, std::span<Job>(&job, 1), -1ns) == 1, "the waiter got no job");
        expect(job.handle.id == second, "the waiter got another job than the second");
        queue.ack(job.handle);
    });
    REQUIRE(wait_until_sleeping(scratch.queue(), {waiter}));
    REQUIRE(wait_until_blocked_in_kernel(waiter));
    CHECK(scratch->stats().at(ep).queued == 1);
    scratch->ack(held.handle); // uncounted pick: acked without the entrypoint lock
    CHECK(exit_within(waiter) == 0);
    CHECK(scratch->limits(ep).in_flight == 0);
}

TEST_CASE("resume wakes a consumer asleep on a paused entrypoint in another process",
          "[multiprocess][limits][pause]") {
    ScratchQueue scratch("mp-resume", small_queue());
    const EntrypointId ep = scratch->declare_entrypoint(ep_name);
    scratch->pause(ep);
    const JobId id = scratch->enqueue(ep, as_payload("held back"));
    const pid_t waiter = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId mine[] = {queue.entrypoint(ep_name)};
        Job job;
        expect(queue.dequeue(mine, std::span<Job>(&job, 1), -1ns) == 1, "the waiter got no job");
        expect(job.handle.id == id, "the waiter got another job");
        queue.ack(job.handle);
    });
    REQUIRE(wait_until_sleeping(scratch.queue(), {waiter}));
    REQUIRE(wait_until_blocked_in_kernel(waiter));
    CHECK(scratch->stats().at(ep).queued == 1); // still there, nothing handed out
    scratch->resume(ep);
    CHECK(exit_within(waiter) == 0);
}

TEST_CASE("a pause set by one process stops consumers in others until resumed, and nothing is lost",
          "[multiprocess][limits][pause]") {
    constexpr std::uint64_t jobs = 200;
    ScratchQueue scratch("mp-pause", small_queue());
    const EntrypointId ep = scratch->declare_entrypoint(ep_name);
    Ledger ledger(jobs);
    SharedCounters picked_while_paused(1);
    SharedCounters pause_flag(1); // 1 while the parent holds the entrypoint paused
    Signal resumed;
    const pid_t consumer = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId mine[] = {queue.entrypoint(ep_name)};
        std::vector<Job> out(8);
        while (ledger.total_acked() < jobs) {
            const std::size_t got = queue.dequeue(mine, out, 60s);
            if (got && pause_flag[0].load() == 1) picked_while_paused[0].fetch_add(got);
            for (std::size_t i = 0; i < got; ++i) {
                const JobPayload payload = read_payload(out[i].payload, jobs);
                ledger.on_delivered(payload.seq, out[i].attempts);
                queue.ack(out[i].handle);
                ledger.on_acked(payload.seq);
            }
        }
    });
    // First half while running, second half while paused.
    for (std::uint64_t seq = 0; seq < jobs / 2; ++seq) {
        scratch->enqueue(ep, payload_bytes(make_payload(seq)));
        ledger.on_enqueued(seq);
    }
    REQUIRE(wait_until([&] { return ledger.total_acked() == jobs / 2; }));
    scratch->pause(ep); // returns once no pick is in progress
    pause_flag[0].store(1);
    for (std::uint64_t seq = jobs / 2; seq < jobs; ++seq) {
        scratch->enqueue(ep, payload_bytes(make_payload(seq)));
        ledger.on_enqueued(seq);
    }
    REQUIRE(wait_until_sleeping(scratch.queue(), {consumer}));
    CHECK(scratch->stats().at(ep).queued == jobs / 2);
    pause_flag[0].store(0);
    scratch->resume(ep);
    CHECK(wait_child(consumer) == 0);
    CHECK(picked_while_paused[0].load() == 0);
    require_accounted(ledger, [](std::uint64_t) { return Fate::completed_once; });
    require_doctor_sound(scratch.queue());
}
