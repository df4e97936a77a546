// Crash tests for Queue::restore_outcome (the rebuild's entry point for
// finished jobs; docs/dead-jobs.md, docs/results.md): a restorer SIGKILLed
// before its commit point (restore.outcome.prepared) leaves nothing of the
// job and its slot is freed by the reaper, so the job can be restored again;
// killed after it (restore.outcome.committed) the job is restored and a
// dead one is listed by the repair, in death order. doctor() stays sound and
// the queue keeps working.
#include "process_harness.hpp"

#include "currant/shm/clock.hpp"
#include "currant/shm/crash_point.hpp"

using namespace currant;
using namespace currant::harness;

namespace {

const std::string ep_name = "work";
constexpr std::uint32_t slots = 64;

EntrypointOptions keeping() {
    EntrypointOptions options;
    options.durability = Durability::async;
    options.max_dead = 10;
    options.result_retention = 60'000ms;
    return options;
}

RestoredOutcome finished_job(JobId id, JobStatus status, std::int64_t at_ns) {
    static const std::string payload = "restored payload";
    static const std::string error = "the last error";
    static const std::string result = "the result";
    RestoredOutcome job;
    job.id = id;
    job.status = status;
    job.payload = as_payload(payload);
    job.attempts = 2;
    job.finished_at_ns = at_ns;
    if (status == JobStatus::exception) job.error = error;
    if (status == JobStatus::successful) job.result = as_payload(result);
    job.kept_until_ns = at_ns + 60'000'000'000;
    return job;
}

void require_killed(pid_t pid) {
    const int status = wait_child(pid);
    INFO("child exit status " << status << " (137 = SIGKILL)");
    REQUIRE(status == killed_by_sigkill);
}

JobStatus status_of(const Queue& queue, JobId id) {
    const JobId ids[] = {id};
    return queue.status(ids).at(0).status;
}

// Killed at point while restoring job in a child.
void restore_and_die(const std::string& queue_name, const RestoredOutcome& job, const char* point) {
    const pid_t child = fork_child([&] {
        Queue queue = Queue::open(queue_name);
        shm::arm_crash_point(point, 1);
        queue.restore_outcome(queue.entrypoint(ep_name), job);
        ::_exit(3); // not reached
    });
    require_killed(child);
}

} // namespace

TEST_CASE("SIGKILL of a restorer before its commit point leaves no trace; the job restores again "
          "(restore.outcome.prepared)",
          "[crash][restore]") {
    for (JobStatus status : {JobStatus::exception, JobStatus::successful}) {
        CAPTURE(job_status_name(status));
        ScratchQueue scratch("crash-restore-prepared", small_queue(slots, 16));
        const EntrypointId ep = scratch->declare_entrypoint(ep_name, keeping());
        const std::int64_t now = shm::realtime_ns();
        const RestoredOutcome job = finished_job(500, status, now);
        restore_and_die(scratch.name(), job, "restore.outcome.prepared");
        // The next locker repairs [E]; the slot stays reserved by the dead
        // restorer until it is reaped.
        CHECK(status_of(scratch.queue(), 500) == JobStatus::unknown);
        CHECK(scratch->dead_jobs(ep).empty());
        scratch->reap();
        CHECK(scratch->info().free_slots == slots);
        require_doctor_sound(scratch.queue());
        scratch->restore_outcome(ep, job); // the next rebuild's attempt
        CHECK(status_of(scratch.queue(), 500) == status);
        require_doctor_sound(scratch.queue());
        require_queue_works(scratch.queue(), ep_name);
    }
}

TEST_CASE("SIGKILL of a restorer after its commit point: the job is restored, a dead one listed in death order "
          "(restore.outcome.committed)",
          "[crash][restore]") {
    for (JobStatus status : {JobStatus::exception, JobStatus::successful}) {
        CAPTURE(job_status_name(status));
        ScratchQueue scratch("crash-restore-committed", small_queue(slots, 16));
        const EntrypointId ep = scratch->declare_entrypoint(ep_name, keeping());
        const std::int64_t now = shm::realtime_ns();
        scratch->restore_outcome(ep, finished_job(400, JobStatus::exception, now - 2'000));
        restore_and_die(scratch.name(), finished_job(500, status, now), "restore.outcome.committed");
        scratch->restore_outcome(ep, finished_job(600, JobStatus::exception, now + 2'000));
        CHECK(status_of(scratch.queue(), 500) == status);
        std::vector<JobId> dead;
        for (const DeadJob& d : scratch->dead_jobs(ep)) dead.push_back(d.id);
        if (status == JobStatus::exception) {
            CHECK(dead == std::vector<JobId>{400, 500, 600});
            CHECK(scratch->dead_jobs(ep).at(1).error == "the last error");
        } else {
            CHECK(dead == std::vector<JobId>{400, 600});
            const JobId ids[] = {500};
            const JobOutcome outcome = scratch->wait(ids, 0ns).at(0);
            REQUIRE(outcome.result.has_value());
            CHECK(as_text(*outcome.result) == "the result");
        }
        require_doctor_sound(scratch.queue());
        // A second restore of it (an interrupted rebuild run again) is refused.
        REQUIRE_THROWS_AS(scratch->restore_outcome(ep, finished_job(500, status, now)), Error);
        require_queue_works(scratch.queue(), ep_name);
        if (status == JobStatus::exception) {
            REQUIRE(scratch->requeue(500));
            const EntrypointId eps[] = {ep};
            std::vector<Job> out(1);
            REQUIRE(scratch->dequeue(eps, out, 1s) == 1);
            CHECK(out[0].handle.id == 500);
            scratch->ack(out[0].handle);
        }
        require_doctor_sound(scratch.queue());
    }
}
