// Crash tests for cancellation of picked jobs (docs/cancellation.md,
// docs/crash-points.md): a canceller SIGKILLed at each cancel.* point, and a
// holder killed after the request. Afterwards either the request was never
// confirmed (no mark: the job runs on and its ack counts), or it stands: the
// holder learns of it (even asleep in wait_for_cancel, woken by the kernel
// on the dead canceller's life lock) and the job ends `canceled`, never
// requeued. doctor() is sound in every case.
#include <future>

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

// A child that cancels `id` with the crash point armed and dies there.
void kill_canceller(ScratchQueue& scratch, const char* point, JobId id) {
    const pid_t child = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        shm::arm_crash_point(point, 1);
        queue.cancel(id);
        ::_exit(3); // not reached: the point kills us
    });
    require_killed(child);
}

Job pick(Queue& queue, EntrypointId ep) {
    const EntrypointId eps[] = {ep};
    Job job;
    REQUIRE(queue.dequeue(eps, std::span(&job, 1), 0ns) == 1);
    return job;
}

} // namespace

TEST_CASE("SIGKILL of a canceller at each cancel point: not confirmed, or the request stands and the job ends canceled",
          "[crash][cancel]") {
    struct Case {
        const char* point;
        bool marked; // the request is in the segment when the canceller dies
    };
    for (const Case c : {Case{"cancel.locked", false}, Case{"cancel.marked", true}, Case{"cancel.signalled", true},
                         Case{"cancel.unlocked", true}}) {
        for (Durability durability : {Durability::memory, Durability::async}) {
            CAPTURE(c.point, durability_name(durability));
            ScratchQueue scratch("crash-cancel", small_queue(64));
            EntrypointOptions options;
            options.durability = durability;
            const EntrypointId ep = scratch->declare_entrypoint("work", options);
            const JobId id = scratch->enqueue(ep, as_payload("running"));
            const JobId bystander = scratch->enqueue(ep, as_payload("queued"));
            const Job job = pick(scratch.queue(), ep);
            REQUIRE(job.handle.id == id);
            // The holder sleeps in wait_for_cancel before the canceller even
            // registers: it must re-arm for the newcomer (registrations) and
            // be woken by the kernel when that one dies holding [E].
            const JobHandle handles[] = {job.handle};
            std::atomic<pid_t> waiter_thread{0};
            auto waited = std::async(std::launch::async, [&] {
                waiter_thread = this_thread_id();
                return scratch->wait_for_cancel(handles, c.marked ? 20s : 1s);
            });
            REQUIRE(wait_until_in_futex(thread_id_once_stored(waiter_thread)));
            const auto start = std::chrono::steady_clock::now();
            kill_canceller(scratch, c.point, id);
            // Woken by the death, not by the 20 s timeout.
            REQUIRE(waited.wait_for(30s) == std::future_status::ready);
            if (c.marked) CHECK(std::chrono::steady_clock::now() - start < 10s);
            const std::optional<std::size_t> seen = waited.get();
            if (c.marked) {
                CHECK(seen == std::optional<std::size_t>(0));
                CHECK(scratch->cancel_requested(job.handle));
                CHECK(scratch->status(std::span(&id, 1)).at(0).cancel_requested);
                // The holder hands it back: it is not requeued.
                CHECK_FALSE(scratch->retry(job.handle, std::chrono::milliseconds(0)));
                CHECK(scratch->status(std::span(&id, 1)).at(0).status == JobStatus::canceled);
            } else {
                CHECK_FALSE(seen.has_value());
                CHECK_FALSE(scratch->cancel_requested(job.handle));
                // Not confirmed, nothing changed: a new request works.
                Queue canceller = Queue::open(scratch.name());
                CHECK(canceller.cancel(id) == CancelOutcome::requested);
                scratch->ack_canceled(job.handle);
                CHECK(scratch->status(std::span(&id, 1)).at(0).status == JobStatus::canceled);
            }
            // The bystander was neither lost nor canceled.
            const Job next = pick(scratch.queue(), ep);
            CHECK(next.handle.id == bystander);
            CHECK_FALSE(scratch->cancel_requested(next.handle));
            scratch->ack(next.handle);
            CHECK(scratch->stats().at(ep).canceled == 1);
            CHECK(scratch->doctor().sound);
        }
    }
}

TEST_CASE("a canceller killed after its mark, the holder polling: the repair of the lock signals it",
          "[crash][cancel]") {
    ScratchQueue scratch("crash-cancel-resignal", small_queue(64));
    const EntrypointId ep = scratch->declare_entrypoint("work");
    const JobId id = scratch->enqueue(ep, as_payload("running"));
    const Job job = pick(scratch.queue(), ep);
    const std::uint64_t wakeups = scratch->cancel_wakeups();
    kill_canceller(scratch, "cancel.marked", id); // dies holding [E], before the signal
    CHECK(scratch->cancel_requested(job.handle)); // the mark is one word: it stands
    // A dequeue locks [E] (the repair bumps our signal) and reports it.
    const EntrypointId eps[] = {ep};
    Job none;
    CHECK(scratch->dequeue(eps, std::span(&none, 1), 0ns) == 0);
    scratch->reap();
    CHECK(scratch->dequeue(eps, std::span(&none, 1), 0ns) == 0);
    CHECK(scratch->cancel_wakeups() > wakeups);
    scratch->ack_canceled(job.handle);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a holder SIGKILLed after the request: its job ends canceled, not requeued", "[crash][cancel]") {
    for (Durability durability : {Durability::memory, Durability::async}) {
        CAPTURE(durability_name(durability));
        ScratchQueue scratch("crash-cancel-holder", small_queue(64));
        EntrypointOptions options;
        options.durability = durability;
        const EntrypointId ep = scratch->declare_entrypoint("work", options);
        const JobId id = scratch->enqueue(ep, as_payload("running"));
        Signal picked;
        // The holder waits for the request, sees it, and dies in its handler.
        const pid_t child = fork_child([&] {
            Queue holder = Queue::open(scratch.name());
            const EntrypointId eps[] = {ep};
            Job job;
            expect(holder.dequeue(eps, std::span(&job, 1), 10s) == 1, "picked");
            picked.notify();
            const JobHandle handles[] = {job.handle};
            expect(holder.wait_for_cancel(handles, 20s) == std::optional<std::size_t>(0), "woken by the cancel");
            ::raise(SIGKILL);
        });
        REQUIRE(picked.wait(10s));
        Queue canceller = Queue::open(scratch.name());
        CHECK(canceller.cancel(id) == CancelOutcome::requested);
        require_killed(child);
        canceller.reap();
        CHECK(canceller.status(std::span(&id, 1)).at(0).status == JobStatus::canceled);
        const EntrypointId eps[] = {ep};
        Job none;
        CHECK(canceller.dequeue(eps, std::span(&none, 1), 100ms) == 0); // never runs again
        const EntrypointStats stats = canceller.stats().at(ep);
        CHECK(stats.canceled == 1);
        CHECK(stats.retried == 0);
        CHECK(canceller.doctor().sound);
    }
}
