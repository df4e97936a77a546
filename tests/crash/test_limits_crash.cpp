// Crash tests for pause and limits (docs/limits.md, docs/crash-points.md):
// a consumer SIGKILLed while it holds concurrency-limit slots gives them
// back when it is reaped, and a process killed inside each critical section
// that changes the limit state leaves a segment the next locker repairs:
// the concurrency count equals the counted picks, the pause flag holds.
#include "process_harness.hpp"

#include "currant/shm/crash_point.hpp"

#include <iterator>
#include <sys/wait.h>

using namespace currant;
using namespace currant::harness;

namespace {

const std::string ep_name = "limited";

void require_killed(pid_t pid) {
    const int status = wait_child(pid);
    INFO("child exit status " << status << " (137 = SIGKILL)");
    REQUIRE(status == killed_by_sigkill);
}

EntrypointId declare_limited(ScratchQueue& scratch, std::optional<std::int64_t> limit) {
    EntrypointOptions options;
    options.concurrency_limit = limit;
    // Longer than any wait here: a sleeper wakes at the earliest lease, which
    // would otherwise stand in for a missing wake-up.
    options.lease = std::chrono::minutes(10);
    return scratch->declare_entrypoint(ep_name, options);
}

std::vector<JobId> enqueue_n(ScratchQueue& scratch, EntrypointId ep, int count) {
    std::vector<JobId> ids;
    for (int i = 0; i < count; ++i) ids.push_back(scratch->enqueue(ep, as_payload("job " + std::to_string(i))));
    return ids;
}

std::size_t pick_now(Queue& queue, EntrypointId ep, std::vector<Job>& out) {
    const EntrypointId eps[] = {ep};
    return queue.dequeue(eps, out, 0ns);
}

// A child that picks `count` jobs, tells the parent, and waits to be killed.
pid_t holder_of(const std::string& name, std::size_t count, Signal& reached, Signal& never) {
    return fork_child([&, count] {
        Queue queue = Queue::open(name);
        const EntrypointId eps[] = {queue.entrypoint(ep_name)};
        std::vector<Job> out(count);
        expect(queue.dequeue(eps, out, 10s) == count, "the holder did not get its jobs");
        reached.notify();
        never.wait(300s); // killed before this returns
        ::_exit(2);
    });
}


// The exit status of a child that must exit by itself within `timeout` (an
// observable state, polled); a child still running then is killed and the
// result is -1. Used for waiters that wait forever, so that only the
// wake-up under test can end their wait.
} // namespace

TEST_CASE("a consumer SIGKILLed while holding concurrency-limit slots gives them back when reaped",
          "[crash][limits]") {
    ScratchQueue scratch("crash-limit-kill", small_queue());
    const EntrypointId ep = declare_limited(scratch, 2);
    const std::vector<JobId> ids = enqueue_n(scratch, ep, 4);
    Signal reached, never;
    const pid_t victim = holder_of(scratch.name(), 2, reached, never);
    REQUIRE(reached.wait(60s));
    REQUIRE(::kill(victim, SIGKILL) == 0);
    require_killed(victim);

    std::vector<Job> out(8);
    REQUIRE(scratch->limits(ep).in_flight == 2); // nobody has noticed the death yet
    CHECK(pick_now(scratch.queue(), ep, out) == 0);
    CHECK(scratch->reap() == 2);
    CHECK(scratch->limits(ep).in_flight == 0);
    REQUIRE(pick_now(scratch.queue(), ep, out) == 2);
    CHECK(out[0].handle.id == ids[2]); // the requeued jobs went to the back
    CHECK(out[1].handle.id == ids[3]);
    require_doctor_sound(scratch.queue());
}

TEST_CASE("a consumer asleep at the limit is woken by the death of the process holding the slots",
          "[crash][limits]") {
    ScratchQueue scratch("crash-limit-wake", small_queue());
    const EntrypointId ep = declare_limited(scratch, 1);
    const std::vector<JobId> ids = enqueue_n(scratch, ep, 2);
    Signal reached, never;
    const pid_t victim = holder_of(scratch.name(), 1, reached, never);
    REQUIRE(reached.wait(60s));
    // Nobody calls reap(): the waiter must learn of the death by itself (the
    // kernel wakes it on the dead holder's life lock) and take the slot.
    const pid_t waiter = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {queue.entrypoint(ep_name)};
        Job job;
        expect(queue.dequeue(eps, std::span<Job>(&job, 1), -1ns) == 1, "the waiter got no job");
        queue.ack(job.handle);
    });
    REQUIRE(wait_until_sleeping(scratch.queue(), {waiter}));
    REQUIRE(wait_until_blocked_in_kernel(waiter));
    REQUIRE(::kill(victim, SIGKILL) == 0);
    require_killed(victim);
    CHECK(exit_within(waiter) == 0);
    scratch->reap();
    CHECK(scratch->limits(ep).in_flight == 0);
    require_doctor_sound(scratch.queue());
}

TEST_CASE("SIGKILL in a counted pick before the count is raised (limit.counted_pick)",
          "[crash][limits]") {
    ScratchQueue scratch("crash-limit-pick", small_queue());
    const EntrypointId ep = declare_limited(scratch, 2);
    enqueue_n(scratch, ep, 3);
    const pid_t child = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        std::vector<Job> out(2);
        shm::arm_crash_point("limit.counted_pick", 2); // the second job of the batch
        pick_now(queue, queue.entrypoint(ep_name), out);
        ::_exit(3); // not reached
    });
    require_killed(child);
    // The next locker repairs: two jobs are picked by the dead child and
    // counted, although the count was raised for one only.
    std::vector<Job> out(8);
    CHECK(pick_now(scratch.queue(), ep, out) == 0);
    CHECK(scratch->limits(ep).in_flight == 2);
    CHECK(scratch->reap() == 2);
    CHECK(scratch->limits(ep).in_flight == 0);
    CHECK(pick_now(scratch.queue(), ep, out) == 2);
    require_doctor_sound(scratch.queue());
}

TEST_CASE("SIGKILL in the ack of a counted job before the count is lowered (limit.released)",
          "[crash][limits]") {
    for (Durability durability : {Durability::memory, Durability::async}) {
        CAPTURE(durability_name(durability));
        ScratchQueue scratch("crash-limit-ack", small_queue());
        EntrypointOptions options;
        options.concurrency_limit = 1;
        options.durability = durability;
        const EntrypointId ep = scratch->declare_entrypoint(ep_name, options);
        const std::vector<JobId> ids = enqueue_n(scratch, ep, 2);
        const pid_t child = fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            std::vector<Job> out(1);
            expect(pick_now(queue, queue.entrypoint(ep_name), out) == 1, "picked nothing");
            shm::arm_crash_point("limit.released", 1);
            queue.ack(out[0].handle);
            ::_exit(3); // not reached
        });
        require_killed(child);
        std::vector<Job> out(8);
        // The ack was applied (the state word moved) and the repair recounts:
        // the slot is free and the second job can start. A waiting consumer
        // repairs the dead owner's lock before it would sleep (a dequeue
        // that does not wait trusts the count until someone locks).
        const EntrypointId eps[] = {ep};
        REQUIRE(scratch->dequeue(eps, std::span<Job>(out.data(), 1), 10s) == 1);
        CHECK(out[0].handle.id == ids[1]);
        CHECK(scratch->limits(ep).in_flight == 1);
        const JobId first[] = {ids[0]};
        const JobStatus status = scratch->status(first).at(0).status;
        CHECK((status == JobStatus::successful || status == JobStatus::unknown));
        scratch->ack(out[0].handle);
        scratch->reap();
        require_doctor_sound(scratch.queue());
    }
}

TEST_CASE("SIGKILL after a new limit is stored, before the jobs already picked are counted (limit.set)",
          "[crash][limits]") {
    ScratchQueue scratch("crash-limit-adopt", small_queue());
    const EntrypointId ep = declare_limited(scratch, std::nullopt);
    enqueue_n(scratch, ep, 4);
    std::vector<Job> held(3);
    REQUIRE(pick_now(scratch.queue(), ep, held) == 3);
    const pid_t setter = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        shm::arm_crash_point("limit.set", 1);
        queue.set_concurrency_limit(queue.entrypoint(ep_name), 2);
        ::_exit(3); // not reached
    });
    require_killed(setter);
    // The limit word was written; the repair counts all three picks made
    // before it (their acks stay lock-free, uncounted).
    std::vector<Job> out(8);
    CHECK(pick_now(scratch.queue(), ep, out) == 0);
    CHECK(scratch->limits(ep).in_flight == 3);
    REQUIRE(scratch->limits(ep).concurrency == std::optional<std::uint32_t>(2));
    scratch->ack(held[0].handle);
    CHECK(pick_now(scratch.queue(), ep, out) == 0); // 2 in flight, limit 2
    scratch->ack(held[1].handle);
    CHECK(pick_now(scratch.queue(), ep, out) == 1);
    require_doctor_sound(scratch.queue());
}

TEST_CASE("a pause outlives the process that set it, killed while holding the lock (pause.stored)",
          "[crash][limits][pause]") {
    ScratchQueue scratch("crash-pause", small_queue());
    const EntrypointId ep = scratch->declare_entrypoint(ep_name);
    const JobId id = scratch->enqueue(ep, as_payload("kept"));
    const pid_t pauser = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        shm::arm_crash_point("pause.stored", 1);
        queue.pause(queue.entrypoint(ep_name));
        ::_exit(3); // not reached
    });
    require_killed(pauser);
    std::vector<Job> out(8);
    CHECK(pick_now(scratch.queue(), ep, out) == 0);
    CHECK(scratch->paused(ep));
    scratch->resume(ep);
    REQUIRE(pick_now(scratch.queue(), ep, out) == 1);
    CHECK(out[0].handle.id == id);
    require_doctor_sound(scratch.queue());
}
