// Crash tests for dead jobs (docs/dead-jobs.md, docs/crash-points.md): a
// process SIGKILLed at each dead.* crash point: a consumer failing a job
// (dead.kept), a death evicting the oldest kept job (dead.evicted,
// dead.unlinked), a purger (dead.unlinked), a requeuer before and after its
// commit point (dead.requeue.unlinked, dead.requeued). Afterwards every job
// is accounted for (queued, picked, kept dead, or its slot freed), doctor()
// is sound, the dead list lists exactly the kept dead jobs in death order,
// and the queue keeps working.
#include "process_harness.hpp"

#include "currant/shm/crash_point.hpp"

using namespace currant;
using namespace currant::harness;

namespace {

const std::string ep_name = "work";
constexpr std::uint32_t slots = 64;

EntrypointOptions dead_options(Durability durability, std::optional<std::uint32_t> max_dead = std::nullopt) {
    EntrypointOptions options;
    options.durability = durability;
    options.max_dead = max_dead;
    options.max_attempts = 5;
    options.retry_delay = 0ms;
    return options;
}

void require_killed(pid_t pid) {
    const int status = wait_child(pid);
    INFO("child exit status " << status << " (137 = SIGKILL)");
    REQUIRE(status == killed_by_sigkill);
}

JobHandle pick(Queue& queue, EntrypointId ep, JobId expected) {
    std::vector<Job> out(1);
    const EntrypointId eps[] = {ep};
    REQUIRE(queue.dequeue(eps, out, 0ns) == 1);
    REQUIRE(out[0].handle.id == expected);
    return out[0].handle;
}

// A job that the parent enqueues, picks and fails: kept dead with `error`.
JobId make_dead(Queue& queue, EntrypointId ep, const std::string& error, const EnqueueOptions& options = {}) {
    const JobId id = queue.enqueue(ep, as_payload("payload of " + error), options);
    queue.fail(pick(queue, ep, id), error);
    return id;
}

JobStatus status_of(const Queue& queue, JobId id) {
    const JobId ids[] = {id};
    return queue.status(ids).at(0).status;
}

std::vector<JobId> dead_ids(const Queue& queue, EntrypointId ep) {
    std::vector<JobId> ids;
    for (const DeadJob& job : queue.dead_jobs(ep)) ids.push_back(job.id);
    return ids;
}

// The mirror's part, without currantd: commit every transition logged so
// far, which recycles finished slots (and marks kept deaths mirrored).
void commit_all(Queue& queue, EntrypointId ep) {
    std::vector<Transition> feed(256);
    for (;;) {
        const std::size_t n = queue.read_feed(ep, queue.feed_committed(ep) + 1, feed);
        if (n == 0) return;
        queue.commit_feed(ep, feed[n - 1].sequence);
    }
}

// Every slot accounted for: after the dead child is reaped (its reserved
// slots freed) and the feed committed, each slot is free, holds a live job
// or holds a kept dead job; doctor() is sound (it also checks the dead list
// against the state words).
void require_accounted(Queue& queue, EntrypointId ep, Durability durability) {
    queue.reap();
    if (durability != Durability::memory) commit_all(queue, ep);
    require_doctor_sound(queue);
    const EntrypointStats s = queue.stats().at(ep);
    const std::size_t kept = queue.dead_jobs(ep).size();
    INFO("free " << queue.info().free_slots << ", queued " << s.queued << ", delayed " << s.delayed << ", picked "
                 << s.picked << ", kept dead " << kept);
    REQUIRE(queue.info().free_slots + s.queued + s.delayed + s.picked + kept == slots);
}

// The queue still works, dead jobs included: a new failure is kept with its
// error, requeued, delivered again and acked.
void require_dead_jobs_work(Queue& queue, EntrypointId ep) {
    require_queue_works(queue, ep_name);
    const JobId id = make_dead(queue, ep, "after the crash");
    const auto dead = queue.dead_jobs(ep);
    REQUIRE_FALSE(dead.empty());
    CHECK(dead.back().id == id);
    CHECK(dead.back().error == "after the crash");
    REQUIRE(queue.requeue(id));
    queue.ack(pick(queue, ep, id));
    require_doctor_sound(queue);
}

// The bystander (queued before the crash) is still delivered exactly once.
void require_delivered(Queue& queue, EntrypointId ep, JobId bystander) {
    queue.ack(pick(queue, ep, bystander));
}

} // namespace

TEST_CASE("SIGKILL of a consumer failing a job after its death, before the dead list (dead.kept)",
          "[crash][dead]") {
    for (Durability durability : {Durability::memory, Durability::async}) {
        CAPTURE(durability_name(durability));
        ScratchQueue scratch("crash-dead-kept", small_queue(slots, 16));
        const EntrypointId ep = scratch->declare_entrypoint(ep_name, dead_options(durability));
        const JobId older = make_dead(scratch.queue(), ep, "older");
        const JobId doomed = scratch->enqueue(ep, as_payload("doomed"));
        const JobId bystander = scratch->enqueue(ep, as_payload("bystander"));
        const pid_t child = fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId eps[] = {queue.entrypoint(ep_name)};
            std::vector<Job> out(1);
            queue.set_prefetch(1);
            expect(queue.dequeue(eps, out, 10s) == 1 && out[0].handle.id == doomed, "picked the wrong job");
            shm::arm_crash_point("dead.kept", 1);
            queue.fail(out[0].handle, "died failing");
            ::_exit(3); // not reached
        });
        require_killed(child);
        // The next locker repairs: the job is `exception` and kept, so the
        // rebuilt list has it after the older death, with its error.
        CHECK(status_of(scratch.queue(), doomed) == JobStatus::exception);
        const auto dead = scratch->dead_jobs(ep);
        REQUIRE(dead.size() == 2);
        CHECK(dead[0].id == older);
        CHECK(dead[1].id == doomed);
        CHECK(dead[1].error == "died failing");
        CHECK(dead[1].attempts == 1);
        CHECK(as_text(dead[1].payload) == "doomed");
        require_accounted(scratch.queue(), ep, durability);
        require_delivered(scratch.queue(), ep, bystander);
        REQUIRE(scratch->requeue(doomed));
        scratch->ack(pick(scratch.queue(), ep, doomed));
        require_dead_jobs_work(scratch.queue(), ep);
        require_accounted(scratch.queue(), ep, durability);
    }
}

TEST_CASE("SIGKILL of a death that evicts the oldest kept job past max_dead (dead.evicted, dead.unlinked)",
          "[crash][dead]") {
    struct Case {
        const char* point;
        bool evicted; // the oldest was unlinked and un-kept or freed before the kill
    };
    for (const Case c : {Case{"dead.unlinked", false}, Case{"dead.evicted", true}}) {
        for (Durability durability : {Durability::memory, Durability::async}) {
            CAPTURE(c.point, durability_name(durability));
            ScratchQueue scratch("crash-dead-evict", small_queue(slots, 16));
            const EntrypointId ep = scratch->declare_entrypoint(ep_name, dead_options(durability, 2));
            const JobId a = make_dead(scratch.queue(), ep, "a");
            const JobId b = make_dead(scratch.queue(), ep, "b");
            const JobId doomed = scratch->enqueue(ep, as_payload("c"));
            const JobId bystander = scratch->enqueue(ep, as_payload("bystander"));
            const pid_t child = fork_child([&] {
                Queue queue = Queue::open(scratch.name());
                const EntrypointId eps[] = {queue.entrypoint(ep_name)};
                std::vector<Job> out(1);
                queue.set_prefetch(1);
                expect(queue.dequeue(eps, out, 10s) == 1 && out[0].handle.id == doomed, "picked the wrong job");
                shm::arm_crash_point(c.point, 1);
                queue.fail(out[0].handle, "c");
                ::_exit(3); // not reached
            });
            require_killed(child);
            const std::vector<JobId> dead = dead_ids(scratch.queue(), ep);
            if (c.evicted) {
                CHECK(dead == std::vector<JobId>{b, doomed});
            } else {
                // Killed between unlinking `a` and un-keeping it: the repair
                // relinks it, so the list is one over max_dead until the
                // next death evicts (docs/dead-jobs.md).
                CHECK(dead == std::vector<JobId>{a, b, doomed});
            }
            // `a` is never lost silently: kept, or `exception` until its
            // slot is recycled (memory: freed by the reaper; async: by the
            // mirror's commit, since its death was not mirrored yet).
            CHECK(status_of(scratch.queue(), a) == JobStatus::exception);
            require_accounted(scratch.queue(), ep, durability);
            require_delivered(scratch.queue(), ep, bystander);
            require_dead_jobs_work(scratch.queue(), ep); // a new death: back within max_dead
            CHECK(scratch->dead_jobs(ep).size() <= 2);
            require_accounted(scratch.queue(), ep, durability);
        }
    }
}

TEST_CASE("SIGKILL of a purger after unlinking the dead job (dead.unlinked)", "[crash][dead]") {
    for (Durability durability : {Durability::memory, Durability::async}) {
        CAPTURE(durability_name(durability));
        ScratchQueue scratch("crash-dead-purge", small_queue(slots, 16));
        const EntrypointId ep = scratch->declare_entrypoint(ep_name, dead_options(durability));
        const JobId a = make_dead(scratch.queue(), ep, "a");
        const JobId b = make_dead(scratch.queue(), ep, "b");
        const JobId bystander = scratch->enqueue(ep, as_payload("bystander"));
        const pid_t child = fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            shm::arm_crash_point("dead.unlinked", 1);
            queue.purge(a);
            ::_exit(3); // not reached
        });
        require_killed(child);
        // Still kept: the repair puts it back in its place.
        CHECK(dead_ids(scratch.queue(), ep) == std::vector<JobId>{a, b});
        CHECK(scratch->dead_jobs(ep).at(0).error == "a");
        require_accounted(scratch.queue(), ep, durability);
        REQUIRE(scratch->purge(a));
        CHECK(dead_ids(scratch.queue(), ep) == std::vector<JobId>{b});
        require_accounted(scratch.queue(), ep, durability);
        require_delivered(scratch.queue(), ep, bystander);
        require_dead_jobs_work(scratch.queue(), ep);
    }
}

TEST_CASE("SIGKILL of a purger of a mirrored entrypoint after its commit point (dead.purge.committed)",
          "[crash][dead]") {
    ScratchQueue scratch("crash-dead-purge-committed", small_queue(slots, 16));
    const EntrypointId ep = scratch->declare_entrypoint(ep_name, dead_options(Durability::async));
    const JobId a = make_dead(scratch.queue(), ep, "a");
    const JobId b = make_dead(scratch.queue(), ep, "b");
    commit_all(scratch.queue(), ep); // both deaths mirrored: the purge is all the feed will hold
    const JobId bystander = scratch->enqueue(ep, as_payload("bystander"));
    const pid_t child = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        shm::arm_crash_point("dead.purge.committed", 1);
        queue.purge(a);
        ::_exit(3); // not reached
    });
    require_killed(child);
    // Purged (past its commit point): no longer kept; the repair of the
    // entrypoint (run by the next locker, here dead_jobs) logs the purge.
    CHECK(dead_ids(scratch.queue(), ep) == std::vector<JobId>{b});
    CHECK(status_of(scratch.queue(), a) == JobStatus::exception); // the slot waits for the mirror
    std::vector<Transition> feed(16);
    const std::size_t n = scratch->read_feed(ep, scratch->feed_committed(ep) + 1, feed);
    int purges = 0;
    for (std::size_t i = 0; i < n; ++i)
        if (feed[i].id == a) {
            CHECK(feed[i].purged);
            CHECK(feed[i].status == JobStatus::exception);
            ++purges;
        }
    CHECK(purges == 1);
    require_accounted(scratch.queue(), ep, Durability::async);
    CHECK(status_of(scratch.queue(), a) == JobStatus::unknown); // the mirror's commit freed it
    CHECK_FALSE(scratch->purge(a));
    require_delivered(scratch.queue(), ep, bystander);
    require_dead_jobs_work(scratch.queue(), ep);
}

TEST_CASE("SIGKILL of a requeuer before and after its commit point (dead.requeue.unlinked, dead.requeued)",
          "[crash][dead]") {
    struct Case {
        const char* point;
        bool requeued;
    };
    for (const Case c : {Case{"dead.requeue.unlinked", false}, Case{"dead.requeued", true}}) {
        for (Durability durability : {Durability::memory, Durability::async}) {
            CAPTURE(c.point, durability_name(durability));
            ScratchQueue scratch("crash-dead-requeue", small_queue(slots, 16));
            const EntrypointId ep = scratch->declare_entrypoint(ep_name, dead_options(durability));
            // `a` has a dedupe key: the requeue claims it before its commit point.
            EnqueueOptions keyed;
            keyed.dedupe_key = "key-of-a";
            const JobId a = make_dead(scratch.queue(), ep, "a", keyed);
            const JobId b = make_dead(scratch.queue(), ep, "b");
            const JobId bystander = scratch->enqueue(ep, as_payload("bystander"));
            const std::uint64_t logged_before = scratch->feed_committed(ep);
            const pid_t child = fork_child([&] {
                Queue queue = Queue::open(scratch.name());
                shm::arm_crash_point(c.point, 1);
                queue.requeue(a);
                ::_exit(3); // not reached
            });
            require_killed(child);
            if (c.requeued) {
                // Past the commit point: queued, off the list; the repair
                // linked it and finished the intent's log append.
                CHECK(status_of(scratch.queue(), a) == JobStatus::queued);
                CHECK(dead_ids(scratch.queue(), ep) == std::vector<JobId>{b});
                if (durability == Durability::async) {
                    std::vector<Transition> feed(64);
                    const std::size_t n = scratch->read_feed(ep, logged_before + 1, feed);
                    REQUIRE(n > 0);
                    CHECK(feed[n - 1].id == a);
                    CHECK(feed[n - 1].status == JobStatus::queued);
                    CHECK(feed[n - 1].attempts == 0);
                }
                require_accounted(scratch.queue(), ep, durability);
                // It holds its key again (the repair rebuilt the index from
                // the slots). After the accounting: the duplicate's slot
                // goes back to this Queue's slot cache, not the arena.
                CHECK(scratch->enqueue(ep, as_payload("duplicate"), keyed) == a);
                CHECK(scratch->last_enqueue_skipped());
                // Both are delivered; their order depends on whether the
                // requeuer gave `a` its new sequence before it died.
                std::vector<Job> out(4);
                const EntrypointId eps[] = {ep};
                REQUIRE(scratch->dequeue(eps, out, 0ns) == 2);
                const Job& requeued = out[0].handle.id == a ? out[0] : out[1];
                CHECK((out[0].handle.id == bystander || out[1].handle.id == bystander));
                CHECK(requeued.handle.id == a);
                CHECK(requeued.attempts == 1); // a fresh set of attempts
                CHECK(as_text(requeued.payload) == "payload of a");
                scratch->ack(std::span<const JobHandle>(std::vector<JobHandle>{out[0].handle, out[1].handle}));
            } else {
                // Before the commit point: still dead and listed in its place.
                CHECK(status_of(scratch.queue(), a) == JobStatus::exception);
                CHECK(dead_ids(scratch.queue(), ep) == std::vector<JobId>{a, b});
                CHECK(scratch->dead_jobs(ep).at(0).error == "a");
                require_accounted(scratch.queue(), ep, durability);
                REQUIRE(scratch->requeue(a));
                // The dead child's claim left no holder: the key is a's now.
                CHECK(scratch->enqueue(ep, as_payload("duplicate"), keyed) == a);
                CHECK(scratch->last_enqueue_skipped());
                require_delivered(scratch.queue(), ep, bystander);
                scratch->ack(pick(scratch.queue(), ep, a));
            }
            require_dead_jobs_work(scratch.queue(), ep);
            require_accounted(scratch.queue(), ep, durability);
        }
    }
}
