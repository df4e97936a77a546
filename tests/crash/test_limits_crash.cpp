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
    // `memory` acks without the lock: limit.release_pending, below.
    for (Durability durability : {Durability::async}) {
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

TEST_CASE("SIGKILL in a memory job's last retry after it left picked, before the count is lowered (limit.released)",
          "[crash][limits]") {
    // Its last attempt ends it dead, not kept: the slot goes `reserved` by
    // the dead process with its counted mark, which the recount counts as a
    // release not yet given back; the dead process's reaper gives it back.
    ScratchQueue scratch("crash-limit-retry", small_queue());
    EntrypointOptions options;
    options.concurrency_limit = 1;
    options.durability = Durability::memory;
    options.max_attempts = 1;
    options.max_dead = 0;
    options.lease = std::chrono::minutes(10);
    const EntrypointId ep = scratch->declare_entrypoint(ep_name, options);
    const std::vector<JobId> ids = enqueue_n(scratch, ep, 2);
    const pid_t child = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        std::vector<Job> out(1);
        expect(pick_now(queue, queue.entrypoint(ep_name), out) == 1, "picked nothing");
        shm::arm_crash_point("limit.released", 1);
        queue.retry(out[0].handle);
        ::_exit(3); // not reached
    });
    require_killed(child);
    scratch->resume(ep); // takes the lock: the repair recounts
    CHECK(scratch->limits(ep).in_flight == 1); // the dead retry's slot, not given back yet
    std::vector<Job> out(8);
    CHECK(pick_now(scratch.queue(), ep, out) == 0);
    scratch->reap();
    CHECK(scratch->limits(ep).in_flight == 0);
    REQUIRE(pick_now(scratch.queue(), ep, out) == 1);
    CHECK(out[0].handle.id == ids[1]);
    CHECK(scratch->limits(ep).in_flight == 1);
    scratch->ack(out[0].handle);
    CHECK(scratch->limits(ep).in_flight == 0);
    require_doctor_sound(scratch.queue());
}

namespace {
// An entrypoint whose acks are lock-free (`memory`), limited to `limit`.
EntrypointId declare_memory_limited(ScratchQueue& scratch, std::int64_t limit) {
    EntrypointOptions options;
    options.concurrency_limit = limit;
    options.durability = Durability::memory;
    options.lease = std::chrono::minutes(10);
    return scratch->declare_entrypoint(ep_name, options);
}

// A child that picks `count` jobs and acks them in one call, killed at
// `point` (its `hit`-th pass).
pid_t acker_killed_at(const std::string& name, std::size_t count, const char* point, int hit) {
    return fork_child([=] {
        Queue queue = Queue::open(name);
        std::vector<Job> out(count);
        expect(pick_now(queue, queue.entrypoint(ep_name), out) == count, "picked too few");
        std::vector<JobHandle> handles;
        for (const Job& job : out) handles.push_back(job.handle);
        shm::arm_crash_point(point, hit);
        queue.ack(handles);
        ::_exit(3); // not reached
    });
}
} // namespace

TEST_CASE("SIGKILL after a counted lock-free ack, before its limit slot is given back: the reaper gives it back (limit.release_pending)",
          "[crash][limits]") {
    ScratchQueue scratch("crash-limit-pending", small_queue());
    const EntrypointId ep = declare_memory_limited(scratch, 1);
    const std::vector<JobId> ids = enqueue_n(scratch, ep, 2);
    require_killed(acker_killed_at(scratch.name(), 1, "limit.release_pending", 1));
    // The ack happened (the state word moved); the limit slot is still
    // counted: an over-count, never an extra pick.
    const JobId first[] = {ids[0]};
    CHECK(scratch->status(first).at(0).status == JobStatus::successful);
    CHECK(scratch->limits(ep).in_flight == 1);
    std::vector<Job> out(8);
    CHECK(pick_now(scratch.queue(), ep, out) == 0);
    scratch->resume(ep); // a recount under the lock keeps counting it
    CHECK(scratch->limits(ep).in_flight == 1);
    CHECK(scratch->reap() == 0); // nothing was picked any more; the slot is given back
    CHECK(scratch->limits(ep).in_flight == 0);
    REQUIRE(pick_now(scratch.queue(), ep, out) == 1);
    CHECK(out[0].handle.id == ids[1]);
    scratch->ack(out[0].handle);
    CHECK(scratch->limits(ep).in_flight == 0);
    require_doctor_sound(scratch.queue());
}

TEST_CASE("a consumer waiting at the limit takes the slot of a process killed before giving back its ack (limit.release_pending)",
          "[crash][limits]") {
    ScratchQueue scratch("crash-limit-pending-wait", small_queue());
    const EntrypointId ep = declare_memory_limited(scratch, 1);
    const std::vector<JobId> ids = enqueue_n(scratch, ep, 2);
    require_killed(acker_killed_at(scratch.name(), 1, "limit.release_pending", 1));
    // Nobody calls reap(): the waiting consumer sweeps before it sleeps.
    const EntrypointId eps[] = {ep};
    std::vector<Job> out(1);
    REQUIRE(scratch->dequeue(eps, out, 10s) == 1);
    CHECK(out[0].handle.id == ids[1]);
    CHECK(scratch->limits(ep).in_flight == 1);
    scratch->ack(out[0].handle);
    CHECK(scratch->limits(ep).in_flight == 0);
    require_doctor_sound(scratch.queue());
}

TEST_CASE("SIGKILL while giving back a batch's limit slots: the recount and the reaper give back each once (limit.release_applying)",
          "[crash][limits]") {
    ScratchQueue scratch("crash-limit-applying", small_queue());
    const EntrypointId ep = declare_memory_limited(scratch, 3);
    const std::vector<JobId> ids = enqueue_n(scratch, ep, 6);
    // Killed with the first of three marks rewritten, the count not lowered.
    require_killed(acker_killed_at(scratch.name(), 3, "limit.release_applying", 1));
    scratch->resume(ep); // the owner-dead lock: the recount
    CHECK(scratch->limits(ep).in_flight == 2); // two releases not given back
    const JobId acked[] = {ids[0], ids[1], ids[2]};
    for (const JobState& state : scratch->status(acked)) CHECK(state.status == JobStatus::successful);
    scratch->reap();
    CHECK(scratch->limits(ep).in_flight == 0);
    std::vector<Job> out(8);
    REQUIRE(pick_now(scratch.queue(), ep, out) == 3);
    CHECK(out[0].handle.id == ids[3]);
    CHECK(scratch->limits(ep).in_flight == 3);
    std::vector<JobHandle> handles;
    for (std::size_t i = 0; i < 3; ++i) handles.push_back(out[i].handle);
    CHECK(scratch->ack(handles) == 3);
    CHECK(scratch->limits(ep).in_flight == 0);
    require_doctor_sound(scratch.queue());
}

TEST_CASE("SIGKILL in a reaper after it gave back a dead acker's limit slot: the next reaper does not give it back twice (reap.released_applied)",
          "[crash][limits]") {
    ScratchQueue scratch("crash-limit-reaper", small_queue());
    const EntrypointId ep = declare_memory_limited(scratch, 2);
    const std::vector<JobId> ids = enqueue_n(scratch, ep, 4);
    std::vector<Job> mine(1);
    REQUIRE(pick_now(scratch.queue(), ep, mine) == 1); // one slot held by us throughout
    require_killed(acker_killed_at(scratch.name(), 1, "limit.release_pending", 1));
    CHECK(scratch->limits(ep).in_flight == 2);
    const pid_t reaper = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        shm::arm_crash_point("reap.released_applied", 1);
        queue.reap();
        ::_exit(3); // not reached
    });
    require_killed(reaper);
    CHECK(scratch->limits(ep).in_flight == 1); // given back once: ours remains
    scratch->reap(); // the dead acker again (its slot still reserved), and the dead reaper
    CHECK(scratch->limits(ep).in_flight == 1);
    std::vector<Job> out(8);
    REQUIRE(pick_now(scratch.queue(), ep, out) == 1);
    CHECK(scratch->limits(ep).in_flight == 2);
    scratch->ack(out[0].handle);
    scratch->ack(mine[0].handle);
    CHECK(scratch->limits(ep).in_flight == 0);
    require_doctor_sound(scratch.queue());
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
