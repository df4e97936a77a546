// Cancellation across processes (docs/cancellation.md): a canceller process
// cancels half of the jobs while consumer processes run them. Jobs to be
// canceled have handlers that wait (in wait_for_cancel) far longer than a
// cancel takes to arrive, so every one of them must end `canceled`: either
// before it was picked (never delivered) or while it ran (delivered once,
// woken, handed back); the others end `successful`, each delivered once.
#include "process_harness.hpp"

using namespace currant;
using namespace currant::harness;

TEST_CASE("a canceller process stops running and queued jobs of consumer processes; the rest complete",
          "[multiprocess][cancel]") {
    constexpr std::size_t jobs = 60;
    constexpr std::size_t consumers = 2;
    ScratchQueue scratch("mp-cancel", small_queue(256));
    const EntrypointId ep = scratch->declare_entrypoint("work");
    SharedArray<std::atomic<std::uint64_t>> ids(jobs);
    SharedArray<std::atomic<std::uint32_t>> delivered(jobs), acked(jobs), canceled_by_holder(jobs);
    SharedArray<std::atomic<std::uint32_t>> outcome(jobs); // 1 + CancelOutcome, for the canceled half
    SharedArray<std::atomic<std::uint32_t>> finished(1);
    for (std::size_t i = 0; i < jobs; ++i) ids[i] = scratch->enqueue(ep, payload_bytes(make_payload(i)));

    std::vector<pid_t> children;
    for (std::size_t c = 0; c < consumers; ++c) {
        children.push_back(fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId eps[] = {ep};
            while (finished[0].load() < jobs) {
                Job job;
                if (queue.dequeue(eps, std::span(&job, 1), 200ms) == 0) continue;
                const std::uint64_t i = read_payload(job.payload, jobs).seq;
                delivered[i].fetch_add(1);
                if (i % 2 == 0) {
                    // To be canceled: a long handler that stops when told.
                    const JobHandle handles[] = {job.handle};
                    expect(queue.wait_for_cancel(handles, 30s) == std::optional<std::size_t>(0),
                           "job " + std::to_string(i) + ": the cancel did not reach its holder");
                    queue.ack_canceled(job.handle);
                    canceled_by_holder[i].fetch_add(1);
                } else {
                    expect(!queue.cancel_requested(job.handle), "a job nobody canceled is flagged");
                    queue.ack(job.handle);
                    acked[i].fetch_add(1);
                }
                finished[0].fetch_add(1);
            }
        }));
    }
    children.push_back(fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        // The first job to cancel is certainly running when its cancel
        // arrives (an observable state, not a guessed delay).
        const JobId first = ids[0];
        expect(wait_until([&] { return queue.status(std::span(&first, 1)).at(0).status == JobStatus::picked; }),
               "job 0 was never picked");
        for (std::size_t i = 0; i < jobs; i += 2) outcome[i] = 1 + std::uint32_t(queue.cancel(ids[i]));
        // The queued ones ended at once and count as finished here.
        for (std::size_t i = 0; i < jobs; i += 2)
            if (outcome[i] == 1 + std::uint32_t(CancelOutcome::canceled)) finished[0].fetch_add(1);
    }));
    for (const pid_t child : children) REQUIRE(wait_child(child) == 0);

    std::size_t requested = 0, canceled_queued = 0;
    for (std::size_t i = 0; i < jobs; ++i) {
        INFO("job " << i);
        const JobId id = ids[i];
        const JobStatus status = scratch->status(std::span(&id, 1)).at(0).status;
        if (i % 2 == 1) {
            CHECK(delivered[i] == 1);
            CHECK(acked[i] == 1);
            CHECK(status == JobStatus::successful);
            continue;
        }
        CHECK(status == JobStatus::canceled);
        CHECK(acked[i] == 0);
        const auto o = CancelOutcome(outcome[i].load() - 1);
        REQUIRE(outcome[i] != 0);
        if (o == CancelOutcome::requested) {
            ++requested;
            CHECK(delivered[i] == 1);
            CHECK(canceled_by_holder[i] == 1);
        } else {
            CHECK(o == CancelOutcome::canceled);
            ++canceled_queued;
            CHECK(delivered[i] == 0);
        }
    }
    CHECK(requested >= 1);
    CHECK(requested + canceled_queued == jobs / 2);
    const EntrypointStats stats = scratch->stats().at(ep);
    CHECK(stats.canceled == jobs / 2);
    CHECK(stats.successful == jobs / 2);
    CHECK(stats.queued + stats.picked == 0);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("cancels from a third process punch holes into a lane ring being filled and drained; FIFO holds, each job ends once",
          "[multiprocess][cancel][lanes]") {
    // 64 slots, so the lane's ring has 64 entries: the producer keeps the
    // arena nearly full, the canceller's holes make appends find the ring
    // full and compact it (docs/architecture.md, "Lane rings").
    constexpr std::size_t jobs = 4000;
    ScratchQueue scratch("mp-ring-holes", small_queue(64, 8));
    const EntrypointId ep = scratch->declare_entrypoint("work");
    SharedArray<std::atomic<std::uint64_t>> ids(jobs);
    SharedArray<std::atomic<std::uint32_t>> delivered(jobs), acked(jobs), outcome(jobs);
    SharedArray<std::atomic<std::uint32_t>> finished(1), out_of_order(1);
    std::vector<pid_t> children;
    children.push_back(fork_child([&] { // producer
        Queue queue = Queue::open(scratch.name());
        EnqueueOptions wait_for_space;
        wait_for_space.arena_wait = std::chrono::milliseconds(30'000);
        for (std::size_t i = 0; i < jobs; ++i) ids[i] = queue.enqueue(ep, payload_bytes(make_payload(i)), wait_for_space);
    }));
    children.push_back(fork_child([&] { // canceller: every 5th job, as soon as it exists
        Queue queue = Queue::open(scratch.name());
        for (std::size_t i = 1; i < jobs; i += 5) {
            expect(wait_until([&] { return ids[i].load() != 0; }), "job " + std::to_string(i) + " never enqueued");
            const CancelOutcome o = queue.cancel(ids[i]);
            outcome[i] = 1 + std::uint32_t(o);
            if (o == CancelOutcome::canceled) finished[0].fetch_add(1);
        }
    }));
    children.push_back(fork_child([&] { // consumer: one job per call
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {ep};
        // Start once the first cancel was answered: job 1 was queued then,
        // so at least one hole is certain; later ones race with the picks.
        expect(wait_until([&] { return outcome[1].load() != 0; }), "the first cancel never happened");
        std::int64_t last = -1;
        while (finished[0].load() < jobs) {
            Job job;
            if (queue.dequeue(eps, std::span(&job, 1), 200ms) == 0) continue;
            const std::uint64_t i = read_payload(job.payload, jobs).seq;
            delivered[i].fetch_add(1);
            if (std::int64_t(i) <= last) out_of_order[0].fetch_add(1);
            last = std::int64_t(i);
            if (queue.cancel_requested(job.handle)) queue.ack_canceled(job.handle);
            else queue.ack(job.handle), acked[i].fetch_add(1);
            finished[0].fetch_add(1);
        }
    }));
    for (const pid_t child : children) REQUIRE(wait_child(child) == 0);

    CHECK(out_of_order[0] == 0); // one producer, one priority, one consumer: FIFO
    std::size_t canceled_queued = 0;
    for (std::size_t i = 0; i < jobs; ++i) {
        INFO("job " << i);
        const bool cancel_target = i % 5 == 1;
        const bool canceled_before_pick = cancel_target && outcome[i] == 1 + std::uint32_t(CancelOutcome::canceled);
        canceled_queued += canceled_before_pick;
        CHECK(delivered[i] == (canceled_before_pick ? 0u : 1u));
        if (!cancel_target) CHECK(acked[i] == 1);
    }
    CHECK(canceled_queued >= 1); // holes were made in the ring
    const EntrypointStats stats = scratch->stats().at(ep);
    CHECK(stats.queued + stats.picked == 0);
    CHECK(scratch->doctor().sound);
    CHECK(scratch->info().free_slots == scratch->info().slots);
}
