// Crash tests for job dependencies (docs/job-dependencies.md,
// docs/crash-points.md): a producer, a settler (the finisher of a
// dependency) and a repairer SIGKILLed at each dependency.* point while
// holding the dependency lock. Afterwards the dependent either was never
// enqueued (its producer died before the commit point) or it is waiting and
// moves on exactly as without the crash; nothing is lost or run early, and
// doctor() is sound.
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

EntrypointOptions with(Durability durability, std::uint32_t max_attempts = 5) {
    EntrypointOptions options;
    options.durability = durability;
    options.max_attempts = max_attempts;
    options.retry_delay = 0ms;
    return options;
}

EnqueueOptions after(JobId id) {
    EnqueueOptions options;
    options.depends_on = {id};
    return options;
}

JobState state_of(const Queue& queue, JobId id) {
    const JobId ids[] = {id};
    return queue.status(ids).at(0);
}

std::vector<Job> pick_now(Queue& queue, EntrypointId ep, std::size_t max = 8) {
    std::vector<Job> jobs(max);
    const EntrypointId eps[] = {ep};
    jobs.resize(queue.dequeue(eps, jobs, 0ns));
    return jobs;
}

// A child that enqueues a job after `dependency`, dying at `point`.
void kill_producer(ScratchQueue& scratch, EntrypointId ep, JobId dependency, const char* point, int hit = 1) {
    const pid_t child = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        shm::arm_crash_point(point, hit);
        queue.enqueue(ep, as_payload("dependent"), after(dependency));
        ::_exit(3); // not reached: the point kills us
    });
    require_killed(child);
}

// A child that picks `id` and acks it (or fails it), dying at `point`.
void kill_finisher(ScratchQueue& scratch, EntrypointId ep, JobId id, bool succeed, const char* point) {
    const pid_t child = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {ep};
        Job job;
        expect(queue.dequeue(eps, std::span(&job, 1), 10s) == 1, "picked");
        expect(job.handle.id == id, "picked the dependency");
        shm::arm_crash_point(point, 1);
        if (succeed) queue.ack(job.handle);
        else queue.fail(job.handle, "boom");
        ::_exit(3);
    });
    require_killed(child);
}

} // namespace

TEST_CASE("SIGKILL of a producer at dependency.linked: nothing was enqueued and the dependency is unaffected",
          "[crash][dependencies]") {
    for (Durability durability : {Durability::memory, Durability::async}) {
        CAPTURE(durability_name(durability));
        ScratchQueue scratch("crash-dep-linked", small_queue(64));
        const EntrypointId ep = scratch->declare_entrypoint("work", with(durability));
        const JobId a = scratch->enqueue(ep, as_payload("a"));
        kill_producer(scratch, ep, a, "dependency.linked");
        scratch->reap();
        CHECK(scratch->stats().at(ep).enqueued == 1);
        CHECK(scratch->stats().at(ep).waiting == 0);
        auto jobs = pick_now(scratch.queue(), ep);
        REQUIRE(jobs.size() == 1);
        CHECK(jobs[0].handle.id == a);
        scratch->ack(jobs[0].handle);
        // A new dependent after the dead producer works as usual.
        const JobId b = scratch->enqueue(ep, as_payload("b"), after(a));
        CHECK(state_of(scratch.queue(), b).status == JobStatus::queued);
        require_doctor_sound(scratch.queue());
    }
}

TEST_CASE("SIGKILL of a producer at dependency.linked after others linked to the same job: they are still released",
          "[crash][dependencies]") {
    // The dead producer's edge heads the dependents list of a, and its slot
    // goes back to the arena with the reap: the [G] repair rebuilds the
    // lists before anyone walks them, so the waiting jobs move on exactly as
    // without the crash (D6), also after the slot's reuse.
    for (Durability durability : {Durability::memory, Durability::async}) {
        CAPTURE(durability_name(durability));
        ScratchQueue scratch("crash-dep-listed", small_queue(64));
        const EntrypointId ep = scratch->declare_entrypoint("work", with(durability));
        const JobId a = scratch->enqueue(ep, as_payload("a"));
        const JobId b = scratch->enqueue(ep, as_payload("b"), after(a));
        kill_producer(scratch, ep, a, "dependency.linked");
        scratch->reap();
        // Reuse the freed slots: plain jobs and a second dependent of a.
        for (int i = 0; i < 8; ++i) scratch->enqueue(ep, as_payload("plain"));
        const JobId c = scratch->enqueue(ep, as_payload("c"), after(a));
        CHECK(scratch->stats().at(ep).waiting == 2);
        require_doctor_sound(scratch.queue());
        auto jobs = pick_now(scratch.queue(), ep, 1);
        REQUIRE(jobs.size() == 1);
        CHECK(jobs[0].handle.id == a);
        scratch->ack(jobs[0].handle);
        CHECK(state_of(scratch.queue(), b).status == JobStatus::queued);
        CHECK(state_of(scratch.queue(), c).status == JobStatus::queued);
        CHECK(scratch->stats().at(ep).waiting == 0);
        require_doctor_sound(scratch.queue());
    }
}

TEST_CASE("SIGKILL of a producer at dependency.waiting: the job waits and is released by the ack",
          "[crash][dependencies]") {
    for (Durability durability : {Durability::memory, Durability::async}) {
        CAPTURE(durability_name(durability));
        ScratchQueue scratch("crash-dep-waiting", small_queue(64));
        const EntrypointId ep = scratch->declare_entrypoint("work", with(durability));
        const JobId a = scratch->enqueue(ep, as_payload("a"));
        kill_producer(scratch, ep, a, "dependency.waiting");
        scratch->reap();
        CHECK(scratch->stats().at(ep).waiting == 1);
        require_doctor_sound(scratch.queue()); // the [G] repair listed it, the [E] repair logged it
        auto jobs = pick_now(scratch.queue(), ep);
        REQUIRE(jobs.size() == 1);
        CHECK(jobs[0].handle.id == a);
        scratch->ack(jobs[0].handle);
        jobs = pick_now(scratch.queue(), ep);
        REQUIRE(jobs.size() == 1);
        CHECK(as_text(jobs[0].payload) == "dependent");
        if (durability == Durability::async) {
            std::vector<Transition> feed(16);
            feed.resize(scratch->read_feed(ep, 1, feed));
            std::vector<JobStatus> of_dependent;
            for (const Transition& t : feed)
                if (t.id == jobs[0].handle.id) of_dependent.push_back(t.status);
            CHECK(of_dependent == std::vector<JobStatus>{JobStatus::waiting, JobStatus::queued, JobStatus::picked});
        }
        scratch->ack(jobs[0].handle);
        require_doctor_sound(scratch.queue());
    }
}

TEST_CASE("SIGKILL of a settler at dependency.resolved: the dependent is released after the reap",
          "[crash][dependencies]") {
    for (Durability durability : {Durability::memory, Durability::async}) {
        CAPTURE(durability_name(durability));
        ScratchQueue scratch("crash-dep-resolved", small_queue(64));
        const EntrypointId ep = scratch->declare_entrypoint("work", with(durability));
        const JobId a = scratch->enqueue(ep, as_payload("a"));
        const JobId b = scratch->enqueue(ep, as_payload("b"), after(a));
        kill_finisher(scratch, ep, a, true, "dependency.resolved");
        scratch->reap();
        CHECK(state_of(scratch.queue(), a).status == JobStatus::successful);
        auto jobs = pick_now(scratch.queue(), ep);
        REQUIRE(jobs.size() == 1);
        CHECK(jobs[0].handle.id == b);
        scratch->ack(jobs[0].handle);
        require_doctor_sound(scratch.queue());
    }
}

TEST_CASE("SIGKILL of a settler at dependency.released: the released job is handed out and logged once",
          "[crash][dependencies]") {
    for (Durability durability : {Durability::memory, Durability::async}) {
        CAPTURE(durability_name(durability));
        ScratchQueue scratch("crash-dep-released", small_queue(64));
        const EntrypointId ep = scratch->declare_entrypoint("work", with(durability));
        const JobId a = scratch->enqueue(ep, as_payload("a"));
        const JobId b = scratch->enqueue(ep, as_payload("b"), after(a));
        kill_finisher(scratch, ep, a, true, "dependency.released");
        scratch->reap();
        CHECK(state_of(scratch.queue(), b).status == JobStatus::queued);
        auto jobs = pick_now(scratch.queue(), ep);
        REQUIRE(jobs.size() == 1);
        CHECK(jobs[0].handle.id == b);
        if (durability == Durability::async) {
            std::vector<Transition> feed(16);
            feed.resize(scratch->read_feed(ep, 1, feed));
            std::vector<JobStatus> of_b;
            for (const Transition& t : feed)
                if (t.id == b) of_b.push_back(t.status);
            CHECK(of_b == std::vector<JobStatus>{JobStatus::waiting, JobStatus::queued, JobStatus::picked});
        }
        scratch->ack(jobs[0].handle);
        require_doctor_sound(scratch.queue());
    }
}

TEST_CASE("SIGKILL of a settler at dependency.canceled: the dependent and its own dependents end canceled",
          "[crash][dependencies]") {
    for (Durability durability : {Durability::memory, Durability::async}) {
        CAPTURE(durability_name(durability));
        ScratchQueue scratch("crash-dep-canceled", small_queue(64));
        const EntrypointId ep = scratch->declare_entrypoint("work", with(durability, 1));
        const JobId a = scratch->enqueue(ep, as_payload("a"));
        const JobId b = scratch->enqueue(ep, as_payload("b"), after(a));
        const JobId c = scratch->enqueue(ep, as_payload("c"), after(b));
        kill_finisher(scratch, ep, a, false, "dependency.canceled");
        scratch->reap();
        CHECK(state_of(scratch.queue(), a).status == JobStatus::exception);
        const JobState sb = state_of(scratch.queue(), b);
        CHECK(sb.status == JobStatus::canceled);
        CHECK(sb.reason == "canceled: dependency job " + std::to_string(a) + " ended exception");
        const JobState sc = state_of(scratch.queue(), c);
        CHECK(sc.status == JobStatus::canceled);
        CHECK(sc.reason == "canceled: dependency job " + std::to_string(b) + " ended canceled");
        CHECK(pick_now(scratch.queue(), ep).empty());
        CHECK(scratch->stats().at(ep).waiting == 0);
        require_doctor_sound(scratch.queue());
    }
}

TEST_CASE("SIGKILL of a repairer at dependency.repair: the next locker repairs and the chain still runs",
          "[crash][dependencies]") {
    ScratchQueue scratch("crash-dep-repair", small_queue(64));
    const EntrypointId ep = scratch->declare_entrypoint("work", with(Durability::async));
    const JobId a = scratch->enqueue(ep, as_payload("a"));
    kill_producer(scratch, ep, a, "dependency.waiting"); // leaves [G] to repair
    // The next locker of [G] (a second producer) dies inside the repair.
    kill_producer(scratch, ep, a, "dependency.repair");
    scratch->reap();
    CHECK(scratch->stats().at(ep).waiting == 1);
    require_doctor_sound(scratch.queue());
    auto jobs = pick_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 1);
    CHECK(jobs[0].handle.id == a);
    scratch->ack(jobs[0].handle);
    jobs = pick_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 1);
    CHECK(as_text(jobs[0].payload) == "dependent");
    scratch->ack(jobs[0].handle);
    require_doctor_sound(scratch.queue());
}

TEST_CASE("SIGKILL of a finisher at dependency.remembered: the job its slot forgets stays known to dependents",
          "[crash][dependencies]") {
    // The ack of a job in the slot where job `a` ended before moves a into
    // the recent outcomes, then overwrites the slot's last outcome; killed in
    // between, both say how a ended, and later dependents of a still see it
    // successful, before and after the slot forgets it (and so does status).
    ScratchQueue scratch("crash-dep-remembered", small_queue(16));
    EntrypointOptions options = with(Durability::memory);
    options.max_dead = 0;
    const EntrypointId ep = scratch->declare_entrypoint("work", options);
    const JobId a = scratch->enqueue(ep, as_payload("a"));
    auto jobs = pick_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 1);
    const std::uint32_t a_slot = jobs[0].handle.slot;
    scratch->ack(jobs[0].handle); // a's slot is free and remembers a
    const pid_t child = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {ep};
        for (int i = 0; i < 10000; ++i) {
            queue.enqueue(ep, as_payload("y"));
            Job job;
            expect(queue.dequeue(eps, std::span(&job, 1), 10s) == 1, "picked");
            if (job.handle.slot == a_slot) {
                shm::arm_crash_point("dependency.remembered", 1);
                queue.ack(job.handle); // moves a into the recent outcomes: killed there
                ::_exit(3);
            }
            queue.ack(job.handle);
        }
        ::_exit(4); // never got a's slot
    });
    require_killed(child);
    scratch->reap();
    const JobId b = scratch->enqueue(ep, as_payload("b"), after(a));
    CHECK(state_of(scratch.queue(), b).status == JobStatus::queued);
    // The killed ack wrote a's entry: status of a says successful too.
    CHECK(state_of(scratch.queue(), a).status == JobStatus::successful);
    // Run everything (the dead child's pick was requeued by the reap): the
    // ack of its job overwrites the slot's memory of a, and a dependent
    // still sees a successful.
    for (jobs = pick_now(scratch.queue(), ep); !jobs.empty(); jobs = pick_now(scratch.queue(), ep))
        for (const Job& job : jobs) scratch->ack(job.handle);
    // Its slot forgot it; status answers from the recent outcomes.
    const JobState remembered = state_of(scratch.queue(), a);
    CHECK(remembered.status == JobStatus::successful);
    CHECK(remembered.slot_reused);
    const JobId c = scratch->enqueue(ep, as_payload("c"), after(a));
    CHECK(state_of(scratch.queue(), c).status == JobStatus::queued);
    require_doctor_sound(scratch.queue());
}
