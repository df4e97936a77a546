// Crash tests for results and wait (docs/results.md, docs/crash-points.md):
// an acker SIGKILLed at each result.* point, a recycler killed after taking
// a kept slot, and waiters killed while counted or asleep. Afterwards either
// the ack never happened (the job runs again, no result shows) or it did
// (final status and result readable, and a waiter asleep in another process
// is woken by the death without waiting for its timeout); nothing is lost
// and doctor() is sound.
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

EntrypointOptions kept(Durability durability, std::chrono::milliseconds retention = 60s) {
    EntrypointOptions options;
    options.durability = durability;
    options.result_retention = retention;
    options.retry_delay = 0ms;
    return options;
}

JobOutcome outcome_of(Queue& queue, JobId id) {
    const JobId ids[] = {id};
    return queue.wait(ids, 0ns).at(0);
}

// A child that picks one job and acks it with `result`, dying at `point`.
void kill_acker(ScratchQueue& scratch, EntrypointId ep, const char* point, std::string_view result) {
    const pid_t child = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {ep};
        Job job;
        expect(queue.dequeue(eps, std::span(&job, 1), 10s) == 1, "picked");
        shm::arm_crash_point(point, 1);
        queue.ack(job.handle, as_payload(result));
        ::_exit(3); // not reached: the point kills us
    });
    require_killed(child);
}

} // namespace

TEST_CASE("SIGKILL of an acker at result.written: the ack never happened and no result shows",
          "[crash][results]") {
    for (Durability durability : {Durability::memory, Durability::async}) {
        CAPTURE(durability_name(durability));
        ScratchQueue scratch("crash-result-written", small_queue(64));
        const EntrypointId ep = scratch->declare_entrypoint("work", kept(durability));
        const JobId id = scratch->enqueue(ep, as_payload("job"));
        kill_acker(scratch, ep, "result.written", "lost");
        scratch->reap(); // the dead acker's pick goes back, attempt counted
        const JobOutcome outcome = outcome_of(scratch.queue(), id);
        CHECK_FALSE(outcome.finished);
        CHECK(outcome.status == JobStatus::queued);
        CHECK_FALSE(outcome.result.has_value());
        const EntrypointId eps[] = {ep};
        Job again;
        REQUIRE(scratch->dequeue(eps, std::span(&again, 1), 0ns) == 1);
        CHECK(again.handle.id == id);
        CHECK(again.attempts == 2);
        scratch->ack(again.handle, as_payload("second run"));
        const JobOutcome done = outcome_of(scratch.queue(), id);
        CHECK(done.status == JobStatus::successful);
        REQUIRE(done.result.has_value());
        CHECK(as_text(*done.result) == "second run");
        require_doctor_sound(scratch.queue());
    }
}

TEST_CASE("SIGKILL of an acker at result.committed wakes a waiter in another process with the result",
          "[crash][results]") {
    for (Durability durability : {Durability::memory, Durability::async}) {
        CAPTURE(durability_name(durability));
        ScratchQueue scratch("crash-result-committed", small_queue(64));
        const EntrypointId ep = scratch->declare_entrypoint("work", kept(durability));
        const JobId id = scratch->enqueue(ep, as_payload("job"));
        // The waiter is asleep before the acker even registers: it re-arms its
        // death watches for the newcomer and the kernel wakes it at its death.
        Queue waiter = Queue::open(scratch.name());
        std::atomic<pid_t> waiter_thread{0};
        auto waited = std::async(std::launch::async, [&] {
            waiter_thread = this_thread_id();
            const JobId ids[] = {id};
            return waiter.wait(ids, 30s).at(0);
        });
        REQUIRE(wait_until_in_futex(thread_id_once_stored(waiter_thread)));
        const auto start = std::chrono::steady_clock::now();
        kill_acker(scratch, ep, "result.committed", "committed");
        REQUIRE(waited.wait_for(40s) == std::future_status::ready);
        CHECK(std::chrono::steady_clock::now() - start < 10s); // woken by the death, not the timeout
        const JobOutcome outcome = waited.get();
        CHECK(outcome.finished);
        CHECK(outcome.status == JobStatus::successful);
        REQUIRE(outcome.result.has_value());
        CHECK(as_text(*outcome.result) == "committed");
        require_doctor_sound(scratch.queue()); // repairs [E]: the intent's log record is appended
        if (durability == Durability::async) {
            Transition feed[8];
            const std::size_t n = scratch->read_feed(ep, 1, feed);
            REQUIRE(n == 3);
            CHECK(feed[2].status == JobStatus::successful);
            CHECK(feed[2].id == id);
        }
        CHECK(outcome_of(scratch.queue(), id).status == JobStatus::successful);
    }
}

TEST_CASE("SIGKILL of a recycler at result.recycled: its reaper frees the slot, the status stays",
          "[crash][results]") {
    ScratchQueue scratch("crash-result-recycled", small_queue(64));
    const EntrypointId ep = scratch->declare_entrypoint("work", kept(Durability::memory, 1ms));
    const JobId id = scratch->enqueue(ep, as_payload("job"));
    const EntrypointId eps[] = {ep};
    Job job;
    REQUIRE(scratch->dequeue(eps, std::span(&job, 1), 0ns) == 1);
    scratch->ack(job.handle, as_payload("expired"));
    std::this_thread::sleep_for(5ms);
    const pid_t child = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        shm::arm_crash_point("result.recycled", 1);
        queue.reap(); // recycles the result past its retention
        ::_exit(3);
    });
    require_killed(child);
    require_doctor_sound(scratch.queue()); // reaps the recycler: its reserved slot is freed
    const JobOutcome outcome = outcome_of(scratch.queue(), id);
    CHECK(outcome.status == JobStatus::successful);
    CHECK_FALSE(outcome.result.has_value());
    Queue other = Queue::open(scratch.name());
    CHECK(other.info().free_slots >= 63); // every slot but those in our slot cache
    require_queue_works(scratch.queue(), "work");
}

TEST_CASE("SIGKILL of a waiter while counted, and while asleep: completions and later waits still work",
          "[crash][results]") {
    for (const char* point : {"wait.counted", ""}) {
        CAPTURE(point);
        ScratchQueue scratch("crash-result-waiter", small_queue(64));
        const EntrypointId ep = scratch->declare_entrypoint("work", kept(Durability::memory));
        const JobId id = scratch->enqueue(ep, as_payload("job"));
        Signal waiting;
        const pid_t child = fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            queue.declare_entrypoint("work"); // registers before it waits
            if (*point) shm::arm_crash_point(point, 1);
            waiting.notify();
            const JobId ids[] = {id};
            queue.wait(ids, 30s);
            ::_exit(3);
        });
        REQUIRE(waiting.wait(10s));
        if (!*point) {
            // Asleep in the kernel, then killed there.
            REQUIRE(wait_until([&] {
                for (const ParticipantInfo& p : scratch->participants())
                    if (p.pid == child) return true;
                return false;
            }));
            std::this_thread::sleep_for(50ms);
            ::kill(child, SIGKILL);
        }
        require_killed(child);
        require_doctor_sound(scratch.queue()); // the waiter count is never below the waiters
        // A new waiter is still woken by an ack.
        Queue waiter = Queue::open(scratch.name());
        auto waited = std::async(std::launch::async, [&] {
            const JobId ids[] = {id};
            return waiter.wait(ids, 30s).at(0);
        });
        CHECK(waited.wait_for(50ms) == std::future_status::timeout);
        const EntrypointId eps[] = {ep};
        Job job;
        REQUIRE(scratch->dequeue(eps, std::span(&job, 1), 0ns) == 1);
        scratch->ack(job.handle, as_payload("after"));
        REQUIRE(waited.wait_for(10s) == std::future_status::ready);
        const JobOutcome outcome = waited.get();
        REQUIRE(outcome.result.has_value());
        CHECK(as_text(*outcome.result) == "after");
        require_doctor_sound(scratch.queue());
    }
}
