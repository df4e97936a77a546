// Waking consumers (docs/architecture.md "Waking consumers"): a consumer
// killed while it holds an entrypoint's waking word must not leave jobs
// queued while other consumers sleep without a timeout.
#include "process_harness.hpp"

#include "currant/shm/crash_point.hpp"

using namespace currant;
using namespace currant::harness;

namespace {

// Two consumers asleep in dequeue without timeout, each taking one job.
std::vector<pid_t> fork_sleepers(ScratchQueue& scratch, Ledger& ledger, int count) {
    std::vector<pid_t> pids;
    for (int c = 0; c < count; ++c)
        pids.push_back(fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId eps[] = {queue.entrypoint("work")};
            Job job;
            const std::size_t n = queue.dequeue(eps, std::span<Job>(&job, 1), -1ns);
            expect(n == 1, "a sleeper got no job");
            const JobPayload payload = read_payload(job.payload, ledger.jobs());
            ledger.on_delivered(payload.seq, job.attempts);
            queue.ack(job.handle);
            ledger.on_acked(payload.seq);
        }));
    return pids;
}

void finish(ScratchQueue& scratch, Ledger& ledger, std::vector<pid_t>& sleepers, std::uint64_t expected_acks) {
    const bool delivered = wait_until([&] { return ledger.total_acked() == expected_acks; }, 30s);
    CHECK(delivered);
    if (!delivered)
        for (pid_t pid : sleepers) ::kill(pid, SIGKILL);
    // The one job per sleeper: those that got none are still asleep.
    for (pid_t pid : sleepers) ::kill(pid, SIGKILL);
    for (pid_t pid : sleepers) wait_child(pid);
    (void)scratch;
}

} // namespace

TEST_CASE("a consumer killed holding the waking word after an enqueue skipped its wake leaves no job waiting",
          "[crash][wake]") {
    // The holder is stopped right after it claimed the word, so the enqueue
    // sees a live holder and wakes nobody; then it is SIGKILLed before it
    // looked. The sleepers watch its life lock (it registered after they
    // slept: the registration made them re-arm), so its death wakes one,
    // which reaps it and takes the job.
    ScratchQueue scratch("crash-waking", small_queue(256, 16));
    scratch->declare_entrypoint("work");
    {
        // This process registers now: a registration wakes every sleeper
        // (to re-arm its death watches), which would deliver the jobs below
        // without the hand-over this test is about.
        const EntrypointId eps[] = {scratch->entrypoint("work")};
        Job none;
        REQUIRE(scratch->dequeue(eps, std::span<Job>(&none, 1), 0ns) == 0);
    }
    Ledger ledger(1);
    Signal registered, go;
    std::vector<pid_t> sleepers = fork_sleepers(scratch, ledger, 2);
    REQUIRE(wait_until_sleeping(scratch.queue(), sleepers));
    const pid_t holder = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {queue.entrypoint("work")};
        Job job;
        // Register first: the registration wakes the sleepers to re-arm
        // their death watches (one could hold the word meanwhile).
        expect(queue.dequeue(eps, std::span<Job>(&job, 1), 0ns) == 0, "a job before the enqueue");
        registered.notify();
        expect(go.wait(120s), "no go");
        shm::arm_stop_point("dequeue.awake");
        queue.dequeue(eps, std::span<Job>(&job, 1), -1ns);
        expect(false, "the holder was to be killed before it looked");
    });
    REQUIRE(registered.wait(60s));
    // The sleepers re-armed after the holder's registration and sleep again.
    REQUIRE(wait_until_sleeping(scratch.queue(), sleepers));
    go.notify();
    REQUIRE(wait_until([&] { return process_state(holder) == 'T'; }, 60s));
    scratch->enqueue(scratch->entrypoint("work"), payload_bytes(make_payload(0)));
    ledger.on_enqueued(0);
    ::kill(holder, SIGKILL);
    CHECK(wait_child(holder) == killed_by_sigkill);
    finish(scratch, ledger, sleepers, 1);
    require_accounted(ledger, [](std::uint64_t) { return Fate::completed_once; });
    require_queue_empty(scratch.queue());
    require_doctor_sound(scratch.queue());
}

TEST_CASE("an enqueue after a waking-word holder was killed wakes a sleeper", "[crash][wake]") {
    // Killed at dequeue.awake, the word names a dead participant until a
    // sleeper reaps it or the next enqueue sees FUTEX_OWNER_DIED on its
    // life lock: either way the job enqueued afterwards is delivered.
    ScratchQueue scratch("crash-waking-after", small_queue(256, 16));
    scratch->declare_entrypoint("work");
    Ledger ledger(1);
    std::vector<pid_t> sleepers = fork_sleepers(scratch, ledger, 2);
    REQUIRE(wait_until_sleeping(scratch.queue(), sleepers));
    const pid_t holder = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {queue.entrypoint("work")};
        Job job;
        shm::arm_crash_point("dequeue.awake");
        queue.dequeue(eps, std::span<Job>(&job, 1), -1ns);
        expect(false, "the holder was to die at dequeue.awake");
    });
    CHECK(wait_child(holder) == killed_by_sigkill);
    scratch->enqueue(scratch->entrypoint("work"), payload_bytes(make_payload(0)));
    ledger.on_enqueued(0);
    finish(scratch, ledger, sleepers, 1);
    require_accounted(ledger, [](std::uint64_t) { return Fate::completed_once; });
    require_queue_empty(scratch.queue());
    require_doctor_sound(scratch.queue());
}
