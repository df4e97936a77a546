// Crash tests for the latency histograms (docs/observability.md): a Queue
// killed while folding its cells at close, and a consumer killed with
// counted cells. What may be lost is the statistic of the cells being moved
// at the instant of death; the rest is folded by the reaper, nothing is
// counted twice, doctor() is sound and the queue keeps counting.
#include "process_harness.hpp"

#include "currant/shm/crash_point.hpp"

using namespace currant;
using namespace currant::harness;

namespace {

void require_killed(pid_t pid) {
    const int status = wait_child(pid);
    INFO("child exit status " << status << " (137 = SIGKILL)");
    REQUIRE(status == killed_by_sigkill);
}

EntrypointOptions memory() {
    EntrypointOptions options;
    options.durability = Durability::memory;
    return options;
}

// A child that picks and acks `jobs` jobs of ep, then closes its Queue with
// latency.fold armed at the `hit`-th folded word (0: not armed; then it is
// killed after the acks, before any close).
pid_t consume_then_die(ScratchQueue& scratch, EntrypointId ep, std::size_t jobs, int hit) {
    return fork_child([&, hit] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {ep};
        std::vector<Job> picked(jobs);
        expect(queue.dequeue(eps, picked, 10s) == jobs, "picked all");
        for (const Job& job : picked) queue.ack(job.handle);
        if (hit == 0) ::kill(::getpid(), SIGKILL);
        shm::arm_crash_point("latency.fold", hit);
        queue.close();
        ::_exit(3); // not reached: the point kills us
    });
}

} // namespace

TEST_CASE("SIGKILL of a Queue folding its latency cells at close loses at most the cell being moved",
          "[crash][latency]") {
    // Folded word by word, skipping zero words; at least four are not zero
    // here (a wait bucket, a run bucket, the two sums), so each hit kills.
    for (int hit = 1; hit <= 4; ++hit) {
        CAPTURE(hit);
        ScratchQueue scratch("crash-latency-fold", small_queue(64));
        const EntrypointId ep = scratch->declare_entrypoint("work", memory());
        for (int i = 0; i < 3; ++i) scratch->enqueue(ep, as_payload("job"));
        require_killed(consume_then_die(scratch, ep, 3, hit));
        require_doctor_sound(scratch.queue()); // reaps the dead closer: the rest of its cells are folded
        const EntrypointStats s = scratch->stats().at(ep);
        // One word was lost: one bucket (some observations of one histogram)
        // or one sum. Never more, never a count above the truth.
        CHECK(s.wait.count() <= 3);
        CHECK(s.run.count() <= 3);
        CHECK((s.wait.count() == 3 || s.run.count() == 3));
        CHECK(s.wait.count() + s.run.count() >= 3);
        const bool sum_lost = s.wait.sum_ns == 0 || s.run.sum_ns == 0;
        CHECK((!sum_lost || (s.wait.count() == 3 && s.run.count() == 3)));
        // Nothing counted twice, and the queue keeps counting.
        require_queue_works(scratch.queue(), "work");
        const EntrypointStats after = scratch->stats().at(ep);
        CHECK(after.wait.count() == s.wait.count() + 1);
        CHECK(after.run.count() == s.run.count() + 1);
    }
}

TEST_CASE("SIGKILL of a consumer after its acks: the reaper folds its latency cells, none lost",
          "[crash][latency]") {
    ScratchQueue scratch("crash-latency-consumer", small_queue(64));
    const EntrypointId ep = scratch->declare_entrypoint("work", memory());
    for (int i = 0; i < 3; ++i) scratch->enqueue(ep, as_payload("job"));
    require_killed(consume_then_die(scratch, ep, 3, 0));
    CHECK(scratch->stats().at(ep).run.count() == 3); // still in the dead participant's cells
    require_doctor_sound(scratch.queue());            // reaped: folded
    const EntrypointStats s = scratch->stats().at(ep);
    CHECK(s.wait.count() == 3);
    CHECK(s.run.count() == 3);
    // Its entry, reused by a new Queue, starts empty: nothing counted twice.
    Queue next = Queue::open(scratch.name());
    next.enqueue(ep, as_payload("x"));
    CHECK(scratch->stats().at(ep).run.count() == 3);
}
