// Crash tests: a process is SIGKILLed at a named crash point inside a
// critical section (docs/crash-points.md), or by the parent after it signalled
// that it reached a state. Then the survivors prove that every job is
// accounted for (all-or-nothing for the interrupted operation, completed at
// most once), that doctor() finds the segment sound, that no slot leaked, and
// that the queue still works. Where natural the injection point is moved
// forward (hit = 1, 2, ...) until the operation completes.
#include "process_harness.hpp"

#include <csignal>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sched.h>

#include "currant/shm/crash_point.hpp"
#include "currant/shm/robust_mutex.hpp"

using namespace currant;
using namespace currant::harness;

namespace {

const std::string ep_name = "crash";

// 1024 slots over 32 participants: each process caches up to 8 free slots.
QueueOptions crash_queue() { return small_queue(1024, 32); }

void require_killed(pid_t pid) {
    const int status = wait_child(pid);
    INFO("child exit status " << status << " (137 = SIGKILL)");
    REQUIRE(status == killed_by_sigkill);
}

void kill_and_reap(pid_t pid) {
    REQUIRE(::kill(pid, SIGKILL) == 0);
    require_killed(pid);
}

// Enqueues seqs [from, to) from the parent through its own short-lived Queue
// (closed at once, so the parent holds no cached slots); returns their ids.
std::vector<JobId> produce_here(const std::string& name, const std::string& entrypoint, std::uint64_t from,
                                std::uint64_t to, Ledger& ledger, const EnqueueOptions& options = {}) {
    Queue producer = Queue::open(name);
    const EntrypointId ep = producer.entrypoint(entrypoint);
    std::vector<JobId> ids;
    for (std::uint64_t seq = from; seq < to; ++seq) {
        ids.push_back(producer.enqueue(ep, payload_bytes(make_payload(seq)), options));
        ledger.on_enqueued(seq);
    }
    producer.close();
    return ids;
}

// A consumer in another process that waits in dequeue (long timeout, the
// jobs must end the wait) until it has acked `count` jobs. Returns how many
// it got. Nobody calls reap() or doctor() for it.
std::uint64_t consume_in_child(const std::string& name, const std::vector<std::string>& names, Ledger& ledger,
                               std::uint64_t count, std::chrono::seconds timeout = 10s) {
    SharedCounters got(1);
    const pid_t pid = fork_child([&] {
        Queue queue = Queue::open(name);
        const auto eps = entrypoint_ids(queue, names);
        std::vector<Job> out(16);
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (got[0].load() < count) {
            const auto left = deadline - std::chrono::steady_clock::now();
            if (left <= 0s) break;
            const std::size_t n = queue.dequeue(eps, out, std::chrono::duration_cast<std::chrono::nanoseconds>(left));
            for (std::size_t i = 0; i < n; ++i) {
                const JobPayload payload = read_payload(out[i].payload, ledger.jobs());
                ledger.on_delivered(payload.seq, out[i].attempts);
                queue.ack(out[i].handle);
                ledger.on_acked(payload.seq);
                got[0].fetch_add(1);
            }
        }
    });
    CHECK(wait_child(pid) == 0);
    return got[0].load();
}

// The closing checks: the survivor reaps, the rest is drained by a fresh
// process, then (a) accounting, (b) doctor, no leaked slot, (c) still works.
void final_checks(ScratchQueue& scratch, Ledger& ledger, const std::function<Fate(std::uint64_t)>& fate,
                  const std::vector<std::string>& names = {ep_name}) {
    scratch->reap();
    const DoctorReport first = scratch->doctor();
    {
        INFO("doctor right after the crash and reap:\n" << describe_problems(first));
        CHECK(first.sound);
    }
    drain_in_child(scratch.name(), names, ledger);
    require_queue_empty(scratch.queue());
    require_doctor_sound(scratch.queue());
    // Every process that held slots is gone or closed, and the parent never
    // reserved one: the whole arena is free again.
    CHECK(scratch->info().free_slots == scratch->info().slots);
    require_accounted(ledger, fate);
    require_queue_works(scratch.queue(), names.front());
}

// A child that picks `per_entrypoint` jobs from each named entrypoint, tells
// the parent, and then waits to be killed.
pid_t victim_holding_picks(const std::string& name, const std::vector<std::string>& names, std::size_t per_entrypoint,
                           Ledger& ledger, Signal& reached, Signal& never, std::uint32_t prefetch = 0) {
    return fork_child([&, per_entrypoint, prefetch] {
        Queue queue = Queue::open(name);
        for (const auto& entrypoint : names) {
            const EntrypointId eps[] = {queue.entrypoint(entrypoint)};
            if (prefetch) {
                queue.set_prefetch(prefetch);
                const std::optional<Job> job = queue.dequeue_one(eps, 10s);
                expect(job.has_value(), "victim found no job");
                ledger.on_delivered(read_payload(job->payload, ledger.jobs()).seq, job->attempts);
                continue;
            }
            std::vector<Job> out(per_entrypoint);
            const std::size_t got = queue.dequeue(eps, out, 10s);
            expect(got == per_entrypoint, "victim picked " + std::to_string(got));
            for (std::size_t i = 0; i < got; ++i)
                ledger.on_delivered(read_payload(out[i].payload, ledger.jobs()).seq, out[i].attempts);
        }
        reached.notify();
        never.wait(300s); // killed before this returns
        ::_exit(2);
    });
}

// A consumer in another process picks `jobs` jobs of ep_name and is
// SIGKILLed while it holds them; nobody has reaped it yet.
void kill_consumer_holding_picks(const std::string& name, std::size_t jobs, Ledger& ledger) {
    Signal reached, never;
    const pid_t victim = victim_holding_picks(name, {ep_name}, jobs, ledger, reached, never);
    REQUIRE(reached.wait(60s));
    kill_and_reap(victim);
}

std::uint64_t total(const Queue& queue, std::uint64_t EntrypointStats::*field) {
    std::uint64_t sum = 0;
    for (const auto& s : queue.stats()) sum += s.*field;
    return sum;
}

} // namespace

// --- entrypoint lock: enqueue ----------------------------------------------

TEST_CASE("SIGKILL inside enqueue's critical section: the interrupted job is all or nothing", "[crash][enqueue]") {
    constexpr std::uint64_t jobs = 4;
    for (const char* point : {"enqueue.locked", "enqueue.linked", "enqueue.published"}) {
        const bool published = std::string(point) == "enqueue.published";
        for (int hit = 1; hit <= int(jobs) + 1; ++hit) {
            CAPTURE(point, hit);
            ScratchQueue scratch("crash-enqueue", crash_queue());
            scratch->declare_entrypoint(ep_name);
            Ledger ledger(jobs);
            const pid_t child = fork_child([&] {
                Queue queue = Queue::open(scratch.name());
                const EntrypointId ep = queue.entrypoint(ep_name);
                shm::arm_crash_point(point, hit);
                for (std::uint64_t seq = 0; seq < jobs; ++seq) {
                    queue.enqueue(ep, payload_bytes(make_payload(seq)));
                    ledger.on_enqueued(seq);
                }
            });
            const std::uint64_t interrupted = std::uint64_t(hit - 1); // the seq whose enqueue was cut
            if (hit <= int(jobs)) require_killed(child);
            else REQUIRE(wait_child(child) == 0); // moved past the last enqueue: completes
            auto fate = [&](std::uint64_t seq) {
                if (hit > int(jobs) || seq < interrupted) return Fate::completed_once;
                if (seq == interrupted && published) return Fate::completed_once;
                return Fate::absent;
            };
            std::uint64_t present = 0;
            for (std::uint64_t seq = 0; seq < jobs; ++seq) present += fate(seq) == Fate::completed_once;
            CHECK(ledger.total_enqueued() == std::min<std::uint64_t>(interrupted, jobs));

            // A consumer in another process, with nobody calling reap() or
            // doctor(), gets every job that exists: the first locker repairs.
            if (present) {
                INFO("jobs present after the crash: " << present);
                CHECK(consume_in_child(scratch.name(), {ep_name}, ledger, present) == present);
            }
            final_checks(scratch, ledger, fate);
        }
    }
}

// --- entrypoint lock: lane ring compaction ---------------------------------

TEST_CASE("SIGKILL while an append compacts a lane ring full of holes (lane.compacting, hit 1..13, then 14 completes)",
          "[crash][enqueue][lanes]") {
    // 16 slots, so each lane ring has 16 entries: 16 jobs fill it, three
    // cancels in the middle leave holes, and the 17th job's append must
    // move the 13 others together first.
    constexpr std::uint64_t jobs = 17;
    for (int hit = 1; hit <= 14; ++hit) {
        CAPTURE(hit);
        ScratchQueue scratch("crash-compact", small_queue(16, 4));
        scratch->declare_entrypoint(ep_name);
        Ledger ledger(jobs);
        const std::vector<JobId> ids = produce_here(scratch.name(), ep_name, 0, 16, ledger);
        {
            Queue canceller = Queue::open(scratch.name()); // closed at once: its freed slots go back
            for (std::uint64_t seq : {3, 7, 8}) REQUIRE(canceller.cancel(ids[seq]) == CancelOutcome::canceled);
        }
        const pid_t child = fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId ep = queue.entrypoint(ep_name);
            shm::arm_crash_point("lane.compacting", hit);
            queue.enqueue(ep, payload_bytes(make_payload(16)));
            ledger.on_enqueued(16);
        });
        const bool completed = hit > 13;
        if (completed) REQUIRE(wait_child(child) == 0);
        else require_killed(child);
        auto fate = [&](std::uint64_t seq) {
            if (seq == 3 || seq == 7 || seq == 8) return Fate::absent; // canceled before
            if (seq == 16) return completed ? Fate::completed_once : Fate::absent;
            return Fate::completed_once;
        };
        // The first locker repairs; the jobs come out in FIFO order.
        std::vector<std::uint64_t> order;
        {
            Queue consumer = Queue::open(scratch.name());
            const EntrypointId eps[] = {consumer.entrypoint(ep_name)};
            std::vector<Job> out(1);
            while (consumer.dequeue(eps, out, 0ns) == 1) {
                const JobPayload payload = read_payload(out[0].payload, ledger.jobs());
                ledger.on_delivered(payload.seq, out[0].attempts);
                consumer.ack(out[0].handle);
                ledger.on_acked(payload.seq);
                order.push_back(payload.seq);
            }
        }
        std::vector<std::uint64_t> expected;
        for (std::uint64_t seq = 0; seq < jobs; ++seq)
            if (fate(seq) == Fate::completed_once) expected.push_back(seq);
        CHECK(order == expected);
        final_checks(scratch, ledger, fate);
    }
}

// --- entrypoint lock: dequeue ----------------------------------------------

TEST_CASE("SIGKILL after the N-th pick of a batch of 16 (N = 1..16, then 17 completes)", "[crash][dequeue]") {
    constexpr std::uint64_t jobs = 20;
    constexpr int batch = 16;
    for (int hit = 1; hit <= batch + 1; ++hit) {
        CAPTURE(hit);
        ScratchQueue scratch("crash-pick", crash_queue());
        scratch->declare_entrypoint(ep_name);
        Ledger ledger(jobs);
        const std::vector<JobId> ids = produce_here(scratch.name(), ep_name, 0, jobs, ledger);
        const pid_t child = fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId eps[] = {queue.entrypoint(ep_name)};
            std::vector<Job> out(batch);
            shm::arm_crash_point("dequeue.picked_one", hit);
            const std::size_t got = queue.dequeue(eps, out, 10s);
            shm::disarm_crash_point();
            expect(got == std::size_t(batch), "picked " + std::to_string(got));
            for (std::size_t i = 0; i < got; ++i) {
                const JobPayload payload = read_payload(out[i].payload, jobs);
                ledger.on_delivered(payload.seq, out[i].attempts);
                queue.ack(out[i].handle);
                ledger.on_acked(payload.seq);
            }
        });
        if (hit <= batch) require_killed(child);
        else REQUIRE(wait_child(child) == 0);

        scratch->reap();
        const auto states = scratch->status(ids);
        for (std::uint64_t seq = 0; seq < jobs; ++seq) {
            INFO("seq " << seq);
            if (hit <= batch) {
                // FIFO: the first `hit` jobs were picked by the dead child and are back.
                CHECK(states[seq].status == JobStatus::queued);
                CHECK(states[seq].attempts == (seq < std::uint64_t(hit) ? 1u : 0u));
            } else if (seq < std::uint64_t(batch)) {
                CHECK((states[seq].status == JobStatus::successful || states[seq].status == JobStatus::unknown));
            } else {
                CHECK(states[seq].status == JobStatus::queued);
            }
        }
        final_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; });
        if (hit <= batch)
            for (std::uint64_t seq = 0; seq < jobs; ++seq) {
                INFO("seq " << seq);
                CHECK(ledger.attempts(seq) == (seq < std::uint64_t(hit) ? 2u : 1u));
            }
    }
}

// --- entrypoint lock: requeue ----------------------------------------------

TEST_CASE("SIGKILL in a retry between marking the job queued and linking it (requeue.unlinked)", "[crash][requeue]") {
    for (std::uint64_t jobs : {3u, 1u}) {
        CAPTURE(jobs);
        ScratchQueue scratch("crash-retry", crash_queue());
        scratch->declare_entrypoint(ep_name);
        Ledger ledger(jobs);
        const std::vector<JobId> ids = produce_here(scratch.name(), ep_name, 0, jobs, ledger);
        const pid_t child = fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId eps[] = {queue.entrypoint(ep_name)};
            Job job;
            expect(queue.dequeue(eps, std::span<Job>(&job, 1), 10s) == 1, "no job");
            ledger.on_delivered(read_payload(job.payload, jobs).seq, job.attempts);
            shm::arm_crash_point("requeue.unlinked", 1);
            queue.retry(job.handle, 0ms);
        });
        require_killed(child);
        // The job was marked queued before the crash: it must be delivered
        // again, to a consumer in another process, without anyone calling
        // doctor(). (reap() finds nothing to reap here: the dead process
        // holds no picked job.)
        scratch->reap();
        CHECK(scratch->status(std::span<const JobId>(ids.data(), 1))[0].status == JobStatus::queued);
        CHECK(consume_in_child(scratch.name(), {ep_name}, ledger, jobs) == jobs);
        final_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; });
        CHECK(ledger.attempts(0) == 2);
    }
}

TEST_CASE("a reaper dies in requeue.unlinked while giving back a dead consumer's jobs (hit 1..3, then 4 completes)",
          "[crash][requeue][reap]") {
    constexpr std::uint64_t jobs = 3;
    for (int hit = 1; hit <= int(jobs) + 1; ++hit) {
        CAPTURE(hit);
        ScratchQueue scratch("crash-reapreq", crash_queue());
        scratch->declare_entrypoint(ep_name);
        Ledger ledger(jobs);
        const std::vector<JobId> ids = produce_here(scratch.name(), ep_name, 0, jobs, ledger);
        kill_consumer_holding_picks(scratch.name(), jobs, ledger);
        const pid_t reaper = fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            shm::arm_crash_point("requeue.unlinked", hit);
            queue.reap();
        });
        if (hit <= int(jobs)) require_killed(reaper);
        else REQUIRE(wait_child(reaper) == 0);
        scratch->reap(); // the next reaper finishes the job
        for (const JobState& state : scratch->status(ids)) {
            INFO("job " << state.id);
            CHECK(state.status == JobStatus::queued);
            CHECK(state.attempts == 1);
        }
        // The job whose requeue was cut is queued again but its `retried`
        // count was never added (statistics are not repaired after a crash).
        CHECK(total(scratch.queue(), &EntrypointStats::retried) >= jobs - (hit <= int(jobs) ? 1 : 0));
        CHECK(total(scratch.queue(), &EntrypointStats::retried) <= jobs);
        final_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; });
    }
}

TEST_CASE("a reaper dies in requeue.unlinked while requeueing expired leases; the late owner's acks are refused",
          "[crash][requeue][lease]") {
    constexpr std::uint64_t jobs = 3;
    ScratchQueue scratch("crash-leasereq", crash_queue());
    EntrypointOptions short_lease;
    short_lease.lease = 300ms;
    scratch->declare_entrypoint(ep_name, short_lease);
    Ledger ledger(jobs);
    const std::vector<JobId> ids = produce_here(scratch.name(), ep_name, 0, jobs, ledger);
    Signal picked, try_ack, ack_result;
    SharedCounters late_acks(2); // [0] refused, [1] accepted
    // The slow owner: picks, lets the lease lapse, tries to ack afterwards.
    const pid_t owner = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {queue.entrypoint(ep_name)};
        std::vector<Job> out(jobs);
        expect(queue.dequeue(eps, out, 10s) == jobs, "owner could not pick");
        for (const Job& job : out) ledger.on_delivered(read_payload(job.payload, jobs).seq, job.attempts);
        picked.notify();
        expect(try_ack.wait(120s), "no go");
        for (const Job& job : out) {
            try {
                queue.ack(job.handle);
                late_acks[1].fetch_add(1);
                ledger.on_acked(read_payload(job.payload, jobs).seq);
            } catch (const Error& error) {
                expect(error.code() == Errc::stale_handle || error.code() == Errc::not_owner,
                       std::string("unexpected error ") + error.what());
                late_acks[0].fetch_add(1);
            }
        }
        ack_result.notify();
    });
    REQUIRE(picked.wait(60s));
    // The reaper waits for the observable expiry: it calls reap() until the
    // crash point (in the lease requeue) kills it.
    const pid_t reaper = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        shm::arm_crash_point("requeue.unlinked", 1);
        const auto deadline = std::chrono::steady_clock::now() + 60s;
        while (std::chrono::steady_clock::now() < deadline) {
            queue.reap();
            std::this_thread::sleep_for(10ms);
        }
    });
    require_killed(reaper);
    scratch->reap(); // the survivor requeues the rest
    for (const JobState& state : scratch->status(ids)) {
        INFO("job " << state.id);
        CHECK(state.status == JobStatus::queued);
    }
    try_ack.notify();
    REQUIRE(ack_result.wait(60s));
    CHECK(wait_child(owner) == 0);
    CHECK(late_acks[0].load() == jobs); // completion at most once: the stale owner cannot ack
    CHECK(late_acks[1].load() == 0);
    final_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; });
}

// --- repair interrupted by a second death ------------------------------------

TEST_CASE("repair.entrypoint: processes die while repairing after an enqueue died; the next locker repeats it",
          "[crash][repair]") {
    constexpr std::uint64_t jobs = 3;
    for (int dying_repairers = 1; dying_repairers <= 3; ++dying_repairers) {
        CAPTURE(dying_repairers);
        ScratchQueue scratch("crash-repair", crash_queue());
        scratch->declare_entrypoint(ep_name);
        Ledger ledger(jobs);
        const pid_t first = fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId ep = queue.entrypoint(ep_name);
            shm::arm_crash_point("enqueue.linked", 3); // seq 0 and 1 get in, seq 2 is cut after linking
            for (std::uint64_t seq = 0; seq < jobs; ++seq) {
                queue.enqueue(ep, payload_bytes(make_payload(seq)));
                ledger.on_enqueued(seq);
            }
        });
        require_killed(first);
        for (int r = 0; r < dying_repairers; ++r) {
            const pid_t repairer = fork_child([&] {
                Queue queue = Queue::open(scratch.name());
                const EntrypointId eps[] = {queue.entrypoint(ep_name)};
                shm::arm_crash_point("repair.entrypoint", 1);
                std::vector<Job> out(4);
                queue.dequeue(eps, out, 0ns); // ready jobs: locks, finds a dead owner, repairs
            });
            require_killed(repairer);
        }
        CHECK(consume_in_child(scratch.name(), {ep_name}, ledger, 2) == 2);
        final_checks(scratch, ledger, [](std::uint64_t seq) { return seq < 2 ? Fate::completed_once : Fate::absent; });
    }
}

TEST_CASE("repair.entrypoint: a reaper dies repairing the lock a consumer died holding mid-batch", "[crash][repair]") {
    constexpr std::uint64_t jobs = 6;
    ScratchQueue scratch("crash-repair2", crash_queue());
    scratch->declare_entrypoint(ep_name);
    Ledger ledger(jobs);
    const std::vector<JobId> ids = produce_here(scratch.name(), ep_name, 0, jobs, ledger);
    const pid_t consumer = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {queue.entrypoint(ep_name)};
        std::vector<Job> out(4);
        shm::arm_crash_point("dequeue.picked_one", 2);
        queue.dequeue(eps, out, 10s);
    });
    require_killed(consumer);
    const pid_t reaper = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        shm::arm_crash_point("repair.entrypoint", 1);
        queue.reap(); // reaping the consumer locks the entrypoint it died holding
    });
    require_killed(reaper);
    scratch->reap();
    const auto states = scratch->status(ids);
    for (std::uint64_t seq = 0; seq < jobs; ++seq) {
        INFO("seq " << seq);
        CHECK(states[seq].status == JobStatus::queued);
        CHECK(states[seq].attempts == (seq < 2 ? 1u : 0u));
    }
    final_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; });
}

TEST_CASE("lock.after_repair: a locker dies after repairing the entrypoint, before marking it consistent",
          "[crash][repair]") {
    constexpr std::uint64_t jobs = 3; // seq 0 enqueued, seq 1 cut by the first crash, seq 2 by the second
    ScratchQueue scratch("crash-afterrepair", crash_queue());
    scratch->declare_entrypoint(ep_name);
    Ledger ledger(jobs);
    Signal registered, go;
    // Registered before anyone dies, so its first repair is the entrypoint's
    // (not the reaping of the first child's registry entry).
    const pid_t second = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId ep = queue.entrypoint(ep_name);
        queue.reap(); // registers
        registered.notify();
        expect(go.wait(120s), "no go");
        shm::arm_crash_point("lock.after_repair", 1);
        queue.enqueue(ep, payload_bytes(make_payload(2)));
        ledger.on_enqueued(2);
    });
    REQUIRE(registered.wait(60s));
    const pid_t first = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId ep = queue.entrypoint(ep_name);
        shm::arm_crash_point("enqueue.linked", 2);
        for (std::uint64_t seq = 0; seq < 2; ++seq) {
            queue.enqueue(ep, payload_bytes(make_payload(seq)));
            ledger.on_enqueued(seq);
        }
    });
    require_killed(first);
    go.notify();
    require_killed(second);
    CHECK(consume_in_child(scratch.name(), {ep_name}, ledger, 1) == 1);
    final_checks(scratch, ledger, [](std::uint64_t seq) { return seq == 0 ? Fate::completed_once : Fate::absent; });
}

TEST_CASE("lock.after_repair: a reaper dies right after reaping a dead consumer, before marking its entry consistent",
          "[crash][repair][reap]") {
    constexpr std::uint64_t jobs = 3;
    ScratchQueue scratch("crash-afterreap", crash_queue());
    scratch->declare_entrypoint(ep_name);
    Ledger ledger(jobs);
    const std::vector<JobId> ids = produce_here(scratch.name(), ep_name, 0, jobs, ledger);
    kill_consumer_holding_picks(scratch.name(), jobs, ledger);
    const pid_t reaper = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        shm::arm_crash_point("lock.after_repair", 1);
        queue.reap();
    });
    require_killed(reaper);
    scratch->reap(); // repeats the (idempotent) reap
    for (const JobState& state : scratch->status(ids)) {
        INFO("job " << state.id);
        CHECK(state.status == JobStatus::queued);
        CHECK(state.attempts == 1);
    }
    CHECK(total(scratch.queue(), &EntrypointStats::retried) == jobs); // requeued once each, not twice
    CHECK(total(scratch.queue(), &EntrypointStats::picks) == jobs);
    final_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; });
}

TEST_CASE("reap.participant: a reaper dies mid-reap (after entrypoint 1..3 of 3); the next reaper finishes",
          "[crash][reap]") {
    const std::vector<std::string> names = {"reap-a", "reap-b", "reap-c"};
    constexpr std::uint64_t per = 2;
    constexpr std::uint64_t jobs = 3 * per;
    for (int hit = 1; hit <= 4; ++hit) {
        CAPTURE(hit);
        ScratchQueue scratch("crash-reap", crash_queue());
        for (const auto& name : names) scratch->declare_entrypoint(name);
        Ledger ledger(jobs);
        std::vector<JobId> ids;
        for (std::size_t e = 0; e < names.size(); ++e) {
            auto some = produce_here(scratch.name(), names[e], e * per, (e + 1) * per, ledger);
            ids.insert(ids.end(), some.begin(), some.end());
        }
        Signal reached, never;
        const pid_t victim = victim_holding_picks(scratch.name(), names, per, ledger, reached, never);
        REQUIRE(reached.wait(60s));
        kill_and_reap(victim);
        const pid_t reaper = fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            shm::arm_crash_point("reap.participant", hit);
            queue.reap();
        });
        if (hit <= 3) require_killed(reaper);
        else REQUIRE(wait_child(reaper) == 0);
        scratch->reap();
        for (const JobState& state : scratch->status(ids)) {
            INFO("job " << state.id);
            CHECK(state.status == JobStatus::queued);
            CHECK(state.attempts == 1);
        }
        CHECK(total(scratch.queue(), &EntrypointStats::retried) == jobs);
        final_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; }, names);
    }
}

// --- the arena lock -----------------------------------------------------------

// 4096 slots over 32 participants: a process reserves 32 slots at a time, so
// the crash can land on the 1st, 2nd or 3rd slot of one reservation.
QueueOptions arena_queue() { return small_queue(4096, 32); }

TEST_CASE("arena.reserve.after_mark: SIGKILL with a slot marked reserved but still on the free stack",
          "[crash][arena]") {
    constexpr std::uint64_t jobs = 11; // seq 0 is the cut enqueue; 1..10 come from a later producer
    for (int hit = 1; hit <= 3; ++hit) {
        CAPTURE(hit);
        ScratchQueue scratch("crash-reserve", arena_queue());
        scratch->declare_entrypoint(ep_name);
        Ledger ledger(jobs);
        const pid_t child = fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId ep = queue.entrypoint(ep_name);
            shm::arm_crash_point("arena.reserve.after_mark", hit);
            queue.enqueue(ep, payload_bytes(make_payload(0)));
            ledger.on_enqueued(0);
        });
        require_killed(child);
        // The next arena locker rebuilds the free stack; if a slot were
        // handed out twice, reserve() would throw corrupt_segment here.
        const pid_t producer = fork_child([&] { produce_here(scratch.name(), ep_name, 1, jobs, ledger); });
        REQUIRE(wait_child(producer) == 0);
        final_checks(scratch, ledger, [](std::uint64_t seq) { return seq == 0 ? Fate::absent : Fate::completed_once; });
    }
}

TEST_CASE("arena.release.after_mark: SIGKILL with a slot marked free but not yet pushed", "[crash][arena]") {
    constexpr std::uint64_t jobs = 11;
    for (int hit = 1; hit <= 3; ++hit) {
        CAPTURE(hit);
        ScratchQueue scratch("crash-release", arena_queue());
        scratch->declare_entrypoint(ep_name);
        Ledger ledger(jobs);
        const pid_t child = fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId ep = queue.entrypoint(ep_name);
            queue.enqueue(ep, payload_bytes(make_payload(0))); // reserves 32 slots, uses 1
            ledger.on_enqueued(0);
            shm::arm_crash_point("arena.release.after_mark", hit);
            queue.close(); // returns the 31 cached slots: dies on the hit-th
        });
        require_killed(child);
        const pid_t producer = fork_child([&] { produce_here(scratch.name(), ep_name, 1, jobs, ledger); });
        REQUIRE(wait_child(producer) == 0);
        final_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; });
    }
}

TEST_CASE("arena.rebuild: processes die while rebuilding the free stack after a dead owner", "[crash][arena]") {
    constexpr std::uint64_t jobs = 6;
    for (int dying_rebuilders = 1; dying_rebuilders <= 2; ++dying_rebuilders) {
        CAPTURE(dying_rebuilders);
        ScratchQueue scratch("crash-rebuild", arena_queue());
        scratch->declare_entrypoint(ep_name);
        Ledger ledger(jobs);
        produce_here(scratch.name(), ep_name, 0, 3, ledger);
        const pid_t first = fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId ep = queue.entrypoint(ep_name);
            shm::arm_crash_point("arena.reserve.after_mark", 2);
            queue.enqueue(ep, payload_bytes(make_payload(3)));
            ledger.on_enqueued(3);
        });
        require_killed(first);
        for (int r = 0; r < dying_rebuilders; ++r) {
            const pid_t rebuilder = fork_child([&] {
                Queue queue = Queue::open(scratch.name());
                const EntrypointId ep = queue.entrypoint(ep_name);
                shm::arm_crash_point("arena.rebuild", 1);
                queue.enqueue(ep, payload_bytes(make_payload(4)));
                ledger.on_enqueued(4);
            });
            require_killed(rebuilder);
        }
        produce_here(scratch.name(), ep_name, 5, 6, ledger);
        final_checks(scratch, ledger,
                     [](std::uint64_t seq) { return seq == 3 || seq == 4 ? Fate::absent : Fate::completed_once; });
    }
}

// --- ack ------------------------------------------------------------------------

TEST_CASE("ack.marked: SIGKILL in the middle of a batch ack (memory durability), hit 1..4, then 5 completes",
          "[crash][ack]") {
    constexpr std::uint64_t jobs = 4;
    for (int hit = 1; hit <= int(jobs) + 1; ++hit) {
        CAPTURE(hit);
        ScratchQueue scratch("crash-ack", crash_queue());
        scratch->declare_entrypoint(ep_name);
        Ledger ledger(jobs);
        const std::vector<JobId> ids = produce_here(scratch.name(), ep_name, 0, jobs, ledger);
        SharedArray<std::atomic<std::uint64_t>> order(jobs); // batch position -> seq
        const pid_t child = fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId eps[] = {queue.entrypoint(ep_name)};
            std::vector<Job> out(jobs);
            expect(queue.dequeue(eps, out, 10s) == jobs, "could not pick the batch");
            std::vector<JobHandle> handles;
            for (std::size_t i = 0; i < jobs; ++i) {
                const JobPayload payload = read_payload(out[i].payload, jobs);
                order[i].store(payload.seq);
                ledger.on_delivered(payload.seq, out[i].attempts);
                handles.push_back(out[i].handle);
            }
            shm::arm_crash_point("ack.marked", hit);
            const std::size_t acked = queue.ack(handles);
            expect(acked == jobs, "acked " + std::to_string(acked));
            for (std::size_t i = 0; i < jobs; ++i) ledger.on_acked(order[i].load());
        });
        const bool crashed = hit <= int(jobs);
        if (crashed) require_killed(child);
        else REQUIRE(wait_child(child) == 0);
        std::vector<int> position(jobs);
        for (std::size_t i = 0; i < jobs; ++i) position[order[i].load()] = int(i);

        scratch->reap();
        const auto states = scratch->status(ids);
        for (std::uint64_t seq = 0; seq < jobs; ++seq) {
            INFO("seq " << seq << " at batch position " << position[seq]);
            if (!crashed || position[seq] < hit) {
                // Its ack was applied (the state word CAS is the commit point).
                CHECK(states[seq].status == JobStatus::successful);
            } else {
                CHECK(states[seq].status == JobStatus::queued);
                CHECK(states[seq].attempts == 1);
            }
        }
        final_checks(scratch, ledger, [&](std::uint64_t seq) {
            return crashed && position[seq] < hit ? Fate::completed_by_crashed_ack : Fate::completed_once;
        });
    }
}

// --- picked jobs and reserved slots held by a process killed from outside --------

TEST_CASE("a consumer killed while holding picked jobs: reap() gives them back, attempts counted", "[crash][picked]") {
    constexpr std::uint64_t jobs = 10;
    std::uint32_t prefetch = 0;
    SECTION("picked with dequeue") { prefetch = 0; }
    SECTION("prefetched with dequeue_one") { prefetch = 8; }
    CAPTURE(prefetch);
    ScratchQueue scratch("crash-held", crash_queue());
    scratch->declare_entrypoint(ep_name);
    Ledger ledger(jobs);
    const std::vector<JobId> ids = produce_here(scratch.name(), ep_name, 0, jobs, ledger);
    Signal reached, never;
    const pid_t victim = victim_holding_picks(scratch.name(), {ep_name}, 8, ledger, reached, never, prefetch);
    REQUIRE(reached.wait(60s));
    kill_and_reap(victim);
    {
        const auto states = scratch->status(ids);
        for (std::uint64_t seq = 0; seq < jobs; ++seq) CHECK(states[seq].status == (seq < 8 ? JobStatus::picked : JobStatus::queued));
    }
    scratch->reap();
    const auto states = scratch->status(ids);
    for (std::uint64_t seq = 0; seq < jobs; ++seq) {
        INFO("seq " << seq);
        CHECK(states[seq].status == JobStatus::queued);
        CHECK(states[seq].attempts == (seq < 8 ? 1u : 0u));
    }
    final_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; });
    for (std::uint64_t seq = 0; seq < jobs; ++seq) CHECK(ledger.attempts(seq) == (seq < 8 ? 2u : 1u));
}

TEST_CASE("reap() returns the number of jobs it requeued from a dead consumer", "[crash][picked]") {
    constexpr std::uint64_t jobs = 5;
    ScratchQueue scratch("crash-reapcount", crash_queue());
    scratch->declare_entrypoint(ep_name);
    Ledger ledger(jobs);
    produce_here(scratch.name(), ep_name, 0, jobs, ledger);
    kill_consumer_holding_picks(scratch.name(), jobs, ledger);
    // queue.hpp: "Reaps dead participants and expired leases; returns jobs requeued."
    CHECK(scratch->reap() == jobs);
    final_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; });
}

// A consumer in another process, blocked in dequeue, gets the jobs of a
// consumer SIGKILLed while holding them; nobody calls reap() or doctor().
void blocked_consumer_gets_dead_consumers_jobs(std::chrono::milliseconds lease) {
    constexpr std::uint64_t jobs = 8;
    ScratchQueue scratch("crash-blocked", crash_queue());
    EntrypointOptions options;
    options.lease = lease;
    scratch->declare_entrypoint(ep_name, options);
    Ledger ledger(jobs);
    produce_here(scratch.name(), ep_name, 0, jobs, ledger);
    Signal reached, never, waiting;
    const pid_t victim = victim_holding_picks(scratch.name(), {ep_name}, jobs, ledger, reached, never);
    REQUIRE(reached.wait(60s));
    SharedCounters got(1);
    const pid_t consumer = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {queue.entrypoint(ep_name)};
        std::vector<Job> out(jobs);
        waiting.notify();
        while (got[0].load() < jobs) {
            const std::size_t n = queue.dequeue(eps, out, 120s);
            expect(n > 0, "the blocked consumer never got the dead consumer's jobs");
            for (std::size_t i = 0; i < n; ++i) {
                const JobPayload payload = read_payload(out[i].payload, jobs);
                expect(out[i].attempts == 2, "attempt not counted");
                ledger.on_delivered(payload.seq, out[i].attempts);
                queue.ack(out[i].handle);
                ledger.on_acked(payload.seq);
                got[0].fetch_add(1);
            }
        }
    });
    REQUIRE(waiting.wait(60s));
    kill_and_reap(victim);
    CHECK(wait_child(consumer) == 0);
    CHECK(got[0].load() == jobs);
    final_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; });
}

TEST_CASE("a consumer killed while holding picked jobs: a consumer blocked in dequeue gets them at lease expiry, "
          "without reap()", "[crash][picked][lease]") {
    blocked_consumer_gets_dead_consumers_jobs(300ms);
}

TEST_CASE("a consumer killed while holding picked jobs: a consumer asleep in dequeue is woken by the death itself, "
          "long before the lease expires", "[crash][picked][deathwatch]") {
    // The lease (10 min) outlasts the sleeper's 120 s wait: only the kernel's
    // robust-lock wake-up on the victim's life lock (or the sleeper's own
    // pre-sleep sweep) can bring the jobs back in time.
    blocked_consumer_gets_dead_consumers_jobs(std::chrono::minutes(10));
}

TEST_CASE("a consumer killed while asleep in dequeue does not swallow the wake-up meant for a live sleeper",
          "[crash][wake]") {
    constexpr std::uint64_t jobs = 1;
    bool reap_first = false;
    SECTION("nobody has reaped the dead sleeper yet") { reap_first = false; }
    SECTION("control: the dead sleeper was reaped before the job came") { reap_first = true; }
    CAPTURE(reap_first);
    ScratchQueue scratch("crash-sleeper", crash_queue());
    scratch->declare_entrypoint(ep_name);
    Ledger ledger(jobs);
    Signal producer_registered, produce_now, first_registered, second_ready;
    // A long-running producer, registered before anything dies (a fresh
    // process would reap dead entries it passes while registering).
    const pid_t producer = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId ep = queue.entrypoint(ep_name);
        queue.reap(); // registers
        producer_registered.notify();
        expect(produce_now.wait(120s), "no go");
        queue.enqueue(ep, payload_bytes(make_payload(0)));
        ledger.on_enqueued(0);
    });
    REQUIRE(producer_registered.wait(60s));
    // The doomed sleeper registers before the live one, so it has the lower
    // registry index (the first sleeper bit a producer looks at).
    const pid_t doomed = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {queue.entrypoint(ep_name)};
        queue.reap();
        first_registered.notify();
        Job job;
        queue.dequeue(eps, std::span<Job>(&job, 1), 300s); // killed while asleep
        ::_exit(2);
    });
    REQUIRE(first_registered.wait(60s));
    REQUIRE(wait_until_sleeping(scratch.queue(), {doomed}));
    Signal woken;
    const pid_t live = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {queue.entrypoint(ep_name)};
        Job job;
        second_ready.notify();
        // No timeout at all: only a wake-up (or a job found) ends this wait.
        const std::size_t n = queue.dequeue(eps, std::span<Job>(&job, 1), -1ns);
        expect(n == 1, "dequeue without timeout returned without a job");
        const JobPayload payload = read_payload(job.payload, jobs);
        ledger.on_delivered(payload.seq, job.attempts);
        queue.ack(job.handle);
        ledger.on_acked(payload.seq);
        woken.notify();
    });
    REQUIRE(second_ready.wait(60s));
    REQUIRE(wait_until_sleeping(scratch.queue(), {doomed, live}));
    kill_and_reap(doomed);
    if (reap_first) scratch->reap();
    produce_now.notify();
    REQUIRE(wait_child(producer) == 0);
    // Generous: the wake-up takes microseconds. Without it the live sleeper
    // would sleep forever next to a ready job.
    const bool got_job = woken.wait(10s);
    if (!got_job) ::kill(live, SIGKILL);
    const int live_status = wait_child(live);
    CHECK(got_job);
    CHECK(live_status == (got_job ? 0 : killed_by_sigkill));
    final_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; });
}

TEST_CASE("a producer killed while holding reserved slots: reap() frees them, no job appears", "[crash][reserved]") {
    constexpr std::uint64_t jobs = 4; // seq 0..2 reserved and never committed, seq 3 committed
    ScratchQueue scratch("crash-reserved", crash_queue());
    scratch->declare_entrypoint(ep_name);
    Ledger ledger(jobs);
    Signal reached, never;
    const pid_t victim = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId ep = queue.entrypoint(ep_name);
        std::vector<Reservation> held;
        for (std::uint64_t seq = 0; seq < 3; ++seq) {
            held.push_back(queue.reserve(ep));
            const JobPayload payload = make_payload(seq);
            std::memcpy(held.back().payload.data(), &payload, sizeof payload);
        }
        Reservation done = queue.reserve(ep);
        const JobPayload payload = make_payload(3);
        std::memcpy(done.payload.data(), &payload, sizeof payload);
        queue.commit(done, sizeof payload);
        ledger.on_enqueued(3);
        reached.notify();
        never.wait(300s);
        ::_exit(2);
    });
    REQUIRE(reached.wait(60s));
    kill_and_reap(victim);
    CHECK(scratch->info().free_slots < scratch->info().slots - 1); // held by the dead process until reaped
    scratch->reap();
    // Only the committed job occupies a slot now.
    CHECK(scratch->info().free_slots == scratch->info().slots - 1);
    final_checks(scratch, ledger, [](std::uint64_t seq) { return seq == 3 ? Fate::completed_once : Fate::absent; });
}

// --- creation -----------------------------------------------------------------

TEST_CASE("a creator killed half-way leaves an abandoned segment that Queue::create replaces", "[crash][create]") {
    for (const char* point : {"create.after_truncate", "create.before_magic"}) {
        CAPTURE(point);
        QueueOptions options = crash_queue();
        options.name = currant::testing::unique_queue_name("crash-create");
        Queue::remove(options.name);
        const pid_t creator = fork_child([&] {
            shm::arm_crash_point(point, 1);
            Queue::create(options);
        });
        require_killed(creator);

        Errc code = Errc::ok;
        std::string message;
        try {
            Queue::open(options.name);
        } catch (const Error& error) {
            code = error.code();
            message = error.what();
        }
        INFO("open said: " << message);
        CHECK(errc_name(code) == errc_name(Errc::segment_abandoned));

        // A second creator (another process) replaces the half-made object.
        const pid_t second = fork_child([&] {
            Queue queue = Queue::create(options);
            queue.declare_entrypoint(ep_name);
        });
        REQUIRE(wait_child(second) == 0);
        {
            Queue queue = Queue::open(options.name);
            constexpr std::uint64_t jobs = 5;
            Ledger ledger(jobs);
            const pid_t producer = fork_child([&] {
                Queue q = Queue::open(options.name);
                for (std::uint64_t seq = 0; seq < jobs; ++seq) {
                    q.enqueue(q.entrypoint(ep_name), payload_bytes(make_payload(seq)));
                    ledger.on_enqueued(seq);
                }
            });
            REQUIRE(wait_child(producer) == 0);
            drain_in_child(options.name, {ep_name}, ledger);
            require_queue_empty(queue);
            require_doctor_sound(queue);
            CHECK(queue.info().free_slots == options.slots);
            require_accounted(ledger, [](std::uint64_t) { return Fate::completed_once; });
            require_queue_works(queue, ep_name);
            queue.close();
        }
        CHECK(Queue::remove(options.name));
    }
}

// --- SIGKILL at arbitrary instructions under load -----------------------------

// Kills land at arbitrary instructions; whatever they hit, the outcome checked
// is the same. (A lock waiter killed right after its wake-up once hung the
// exchange; lock waits are now bounded, see the deterministic test below.)
// Run it alone with: build/tests/crash/test_crash "[chaos]"
TEST_CASE("consumers and producers SIGKILLed at arbitrary moments of a busy exchange: no job lost, none completed twice",
          "[crash][chaos]") {
    constexpr std::uint64_t jobs = 30'000;
    constexpr int consumer_kills = 12, producer_kills = 4;
    const std::vector<std::string> names = {"chaos-a", "chaos-b"};
    ScratchQueue scratch("crash-chaos", small_queue(4096, 64));
    for (const auto& name : names) scratch->declare_entrypoint(name);
    Ledger ledger(jobs);
    SharedArray<std::atomic<std::uint32_t>> enqueue_in_flight(jobs), ack_in_flight(jobs);
    SharedCounters control(2); // [0] next seq to enqueue, [1] stop consumers

    auto start_producer = [&] {
        return fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            const auto eps = entrypoint_ids(queue, names);
            for (;;) {
                const std::uint64_t seq = control[0].fetch_add(1);
                if (seq >= jobs) break;
                enqueue_in_flight[seq].store(1); // a kill from here to on_enqueued leaves it undecided
                EnqueueOptions options;
                options.priority = int(seq % 2);
                enqueue_with_backpressure(queue, eps[seq % 2], make_payload(seq, 0, std::uint32_t(seq % 2)), options);
                ledger.on_enqueued(seq);
            }
        });
    };
    auto start_consumer = [&] {
        return fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            const auto eps = entrypoint_ids(queue, names);
            std::vector<Job> out(16);
            while (control[1].load() == 0) {
                const std::size_t got = queue.dequeue(eps, out, 100ms);
                for (std::size_t i = 0; i < got; ++i) {
                    const JobPayload payload = read_payload(out[i].payload, jobs);
                    ledger.on_delivered(payload.seq, out[i].attempts);
                    ack_in_flight[payload.seq].store(1); // a kill from here to on_acked leaves it undecided
                    queue.ack(out[i].handle);
                    ledger.on_acked(payload.seq);
                }
            }
        });
    };
    std::vector<pid_t> producers = {start_producer(), start_producer()};
    std::vector<pid_t> consumers = {start_consumer(), start_consumer(), start_consumer()};
    int killed_consumers = 0, killed_producers = 0;
    while (killed_consumers < consumer_kills || killed_producers < producer_kills) {
        // Kill when the exchange has reached the next milestone (observable progress).
        const std::uint64_t consumer_mark = std::uint64_t(killed_consumers + 1) * jobs / (consumer_kills + 3);
        const std::uint64_t producer_mark = std::uint64_t(killed_producers + 1) * jobs / (producer_kills + 2);
        const bool progressed = wait_until([&] {
            return (killed_consumers < consumer_kills && ledger.total_acked() >= consumer_mark) ||
                   (killed_producers < producer_kills && control[0].load() >= producer_mark);
        });
        REQUIRE(progressed);
        if (killed_consumers < consumer_kills && ledger.total_acked() >= consumer_mark) {
            pid_t& victim = consumers[std::size_t(killed_consumers) % consumers.size()];
            kill_and_reap(victim);
            victim = start_consumer();
            ++killed_consumers;
        }
        if (killed_producers < producer_kills && control[0].load() >= producer_mark && control[0].load() < jobs) {
            pid_t& victim = producers[std::size_t(killed_producers) % producers.size()];
            kill_and_reap(victim);
            victim = start_producer();
            ++killed_producers;
        } else if (killed_producers < producer_kills && control[0].load() >= jobs) {
            killed_producers = producer_kills; // the producers finished first
        }
    }
    for (pid_t pid : producers) CHECK(wait_child(pid) == 0);
    // Everything enqueued is consumed once the dead consumers' jobs are back
    // (live consumers reap the dead before they sleep).
    const bool settled = wait_until(
        [&] {
            for (const auto& s : scratch->stats())
                if (s.queued || s.picked || s.delayed) return false;
            return true;
        },
        120s);
    CHECK(settled);
    control[1].store(1);
    for (pid_t pid : consumers) CHECK(wait_child(pid) == 0);

    // Completed exactly once, except where a kill left the outcome open: an
    // ack cut by a kill may have applied (then nobody acks the job again);
    // an enqueue cut by a kill (or a seq taken but never tried) may not have
    // happened, or happened without the ledger hearing of it.
    final_checks(scratch, ledger, [&](std::uint64_t seq) {
        if (ledger.acked(seq) == 0 && ack_in_flight[seq].load() && ledger.delivered(seq) >= 1)
            return Fate::completed_by_killed_acker;
        if (ledger.enqueued(seq) == 0 && ledger.acked(seq) == 0) return Fate::absent;
        return Fate::completed_once;
    }, names);
    std::uint64_t cut_acks = 0, cut_enqueues = 0, twice = 0;
    for (std::uint64_t seq = 0; seq < jobs; ++seq) {
        twice += ledger.acked(seq) > 1 || ledger.enqueued(seq) > 1;
        if (ledger.enqueued(seq) == 0) ++cut_enqueues;
        else if (ledger.acked(seq) == 0) ++cut_acks;
    }
    CHECK(twice == 0);
    CHECK(cut_enqueues <= std::uint64_t(producer_kills));
    CHECK(cut_acks <= std::uint64_t(consumer_kills));
}

// --- the lock wrapper itself: a waiter killed right after its wake-up ----------

namespace {

bool cpu_usable(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    return ::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_ISSET(cpu, &set);
}

void pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    expect(::sched_setaffinity(0, sizeof set, &set) == 0, "sched_setaffinity failed");
}

// True while pid sleeps in a futex wait (what a blocked pthread_mutex_lock does).
bool blocked_in_futex(pid_t pid) {
    if (process_state(pid) != 'S') return false;
    std::ifstream wchan("/proc/" + std::to_string(pid) + "/wchan");
    std::string where;
    wchan >> where;
    return where.find("futex") != std::string::npos;
}

struct SharedLock {
    shm::RobustMutex mutex;
    std::atomic<int> stage;
    std::atomic<int> second_waiter_got_it;
};

} // namespace

TEST_CASE("a lock waiter SIGKILLed between its wake-up and taking the lock does not strand the other waiters",
          "[crash][lock]") {
    // The woken waiter W is kept from running (pinned to the CPU where an
    // SCHED_FIFO "thief" spins on try_lock), the thief takes the lock, W is
    // killed, the thief unlocks. The remaining waiter P must still get the
    // lock: a blocked lock() has to recover from a wake-up that died with W.
    if (!cpu_usable(0) || !cpu_usable(1)) {
        WARN("needs CPUs 0 and 1; skipped");
        return;
    }
    bool kill_woken = true;
    SECTION("the woken waiter is killed") { kill_woken = true; }
    SECTION("control: the woken waiter lives") { kill_woken = false; }
    CAPTURE(kill_woken);
    SharedArray<SharedLock> shared(1);
    SharedLock& s = shared[0];
    s.mutex.initialize();
    auto repair = []() noexcept { return true; };
    enum Stage { start, held, thief_spinning, thief_holds, thief_may_block, no_realtime };
    Signal release_holder, release_thief;

    const pid_t holder = fork_child([&] {
        pin_to_cpu(1);
        s.mutex.lock(repair);
        s.stage.store(held);
        expect(release_holder.wait(120s), "no release signal");
        s.mutex.unlock();
    });
    REQUIRE(wait_until([&] { return s.stage.load() == held; }));
    const pid_t woken = fork_child([&] {
        pin_to_cpu(0);
        s.mutex.lock(repair); // first in the futex queue: the holder's unlock wakes this one
        s.mutex.unlock();
    });
    REQUIRE(wait_until([&] { return blocked_in_futex(woken); }));
    const pid_t second = fork_child([&] {
        s.mutex.lock(repair);
        s.second_waiter_got_it.store(1);
        s.mutex.unlock();
    });
    REQUIRE(wait_until([&] { return blocked_in_futex(second); }));
    const pid_t thief = fork_child([&] {
        pin_to_cpu(0);
        sched_param priority{};
        priority.sched_priority = 1;
        if (::sched_setscheduler(0, SCHED_FIFO, &priority) != 0) {
            s.stage.store(no_realtime);
            return;
        }
        s.stage.store(thief_spinning);
        const auto give_up = std::chrono::steady_clock::now() + 20s;
        while (!s.mutex.try_lock(repair))
            expect(std::chrono::steady_clock::now() < give_up, "thief never got the lock");
        s.stage.store(thief_holds);
        // Keep CPU 0 until the woken waiter's SIGKILL is pending, so that it
        // dies without ever running user code again.
        while (s.stage.load() != thief_may_block)
            expect(std::chrono::steady_clock::now() < give_up, "thief never told to go on");
        expect(release_thief.wait(120s), "thief never told to unlock");
        s.mutex.unlock(); // uncontended-looking unlock: no FUTEX_WAKE
    });
    REQUIRE(wait_until([&] { return s.stage.load() == thief_spinning || s.stage.load() == no_realtime; }));
    if (s.stage.load() == no_realtime) {
        release_holder.notify();
        CHECK(wait_child(thief) == 0);
        CHECK(wait_child(holder) == 0);
        CHECK(wait_child(woken) == 0);
        CHECK(wait_child(second) == 0);
        WARN("SCHED_FIFO not permitted (needs CAP_SYS_NICE); the lost wake-up could not be staged");
        return;
    }
    release_holder.notify(); // unlock: wakes `woken`, which cannot run on CPU 0
    REQUIRE(wait_until([&] { return s.stage.load() == thief_holds; }));
    if (kill_woken) REQUIRE(::kill(woken, SIGKILL) == 0); // it dies before it could take the lock
    s.stage.store(thief_may_block);
    if (kill_woken) require_killed(woken);
    release_thief.notify();
    if (!kill_woken) CHECK(wait_child(woken) == 0);
    CHECK(wait_child(thief) == 0);
    CHECK(wait_child(holder) == 0);
    // Generous: the lock is free now; only a lost wake-up keeps it waiting.
    const bool got_it = wait_until([&] { return s.second_waiter_got_it.load() == 1; }, 10s);
    if (!got_it) ::kill(second, SIGKILL);
    const int second_status = wait_child(second);
    CHECK(got_it);
    CHECK(second_status == (got_it ? 0 : killed_by_sigkill));
}
