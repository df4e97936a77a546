// Waking consumers (docs/architecture.md "Waking consumers"): an enqueue
// wakes no sleeper while a live consumer is awake in dequeue and holds the
// entrypoint's waking word; that consumer looks again before it sleeps and
// wakes the next sleeper for what it leaves. These tests use consumers that
// wait without any timeout, so a lost wake-up is a job that is never
// delivered (the bounded waits below only turn that hang into a failure).
#include "process_harness.hpp"

#include <random>

#include "currant/shm/crash_point.hpp"

using namespace currant;
using namespace currant::harness;

namespace {

// One producer's bursts: enqueue a burst of 1..burst_max jobs with random
// pauses in between, then wait until every job of the burst was delivered
// before the next burst. The consumers are then idle or going to sleep
// while the next burst arrives: every burst exercises the hand-over between
// awake consumers and sleepers, and a lost wake-up leaves a burst waiting
// for ever.
void run_bursts(const std::string& queue_name, Ledger& ledger, std::uint32_t producer, std::uint64_t first,
                std::uint64_t count, std::uint32_t burst_max, SharedCounters& stalls) {
    Queue queue = Queue::open(queue_name);
    const EntrypointId ep = queue.entrypoint("work");
    std::mt19937 random(1234 + producer);
    std::uint64_t seq = first;
    while (seq < first + count) {
        const std::uint64_t burst = std::min<std::uint64_t>(1 + random() % burst_max, first + count - seq);
        const std::uint64_t burst_first = seq;
        for (std::uint64_t i = 0; i < burst; ++i, ++seq) {
            if (random() % 4 == 0) std::this_thread::sleep_for(std::chrono::microseconds(random() % 300));
            enqueue_with_backpressure(queue, ep, make_payload(seq, producer));
            ledger.on_enqueued(seq);
        }
        // Every job of the burst delivered: the consumers wait without a
        // timeout, so only a wake-up (or an awake consumer) delivers them.
        const bool delivered = wait_until(
            [&] {
                for (std::uint64_t s = burst_first; s < seq; ++s)
                    if (ledger.delivered(s) == 0) return false;
                return true;
            },
            20s);
        if (!delivered) {
            stalls[0].fetch_add(1);
            expect(false, "a burst of " + std::to_string(burst) + " jobs from seq " + std::to_string(burst_first) +
                              " was not delivered within 20 s: a lost wake-up");
        }
        if (random() % 2 == 0) std::this_thread::sleep_for(std::chrono::microseconds(random() % 2000));
    }
}

// A consumer that waits without timeout and works a random short time per
// job (so that it is sometimes awake, sometimes going to sleep, sometimes
// asleep when jobs arrive). It ends on a job whose seq is past the ledger's
// range (one stop job per consumer).
void consume_until_stopped(const std::string& queue_name, Ledger& ledger, std::uint32_t index,
                           std::uint64_t jobs) {
    Queue queue = Queue::open(queue_name);
    const EntrypointId eps[] = {queue.entrypoint("work")};
    std::mt19937 random(99 + index);
    Job job;
    for (;;) {
        const std::size_t n = queue.dequeue(eps, std::span<Job>(&job, 1), -1ns);
        expect(n == 1, "dequeue without timeout returned no job");
        JobPayload payload;
        std::memcpy(&payload, job.payload.data(), sizeof payload);
        if (payload.seq >= jobs) { // a stop job
            queue.ack(job.handle);
            ledger.extra(0).fetch_add(1);
            return;
        }
        payload = read_payload(job.payload, jobs);
        ledger.on_delivered(payload.seq, job.attempts);
        const auto work = random() % 8;
        if (work == 0) std::this_thread::sleep_for(std::chrono::microseconds(random() % 500));
        else if (work == 1) std::this_thread::yield();
        queue.ack(job.handle);
        ledger.on_acked(payload.seq);
    }
}

} // namespace

TEST_CASE("bursts from 3 producers into 8 consumers without timeouts are each delivered, none waits for a lost wake-up",
          "[multiprocess][wake]") {
    constexpr std::uint32_t producers = 3, consumers = 8;
    constexpr std::uint64_t per_producer = 3000;
    constexpr std::uint64_t jobs = producers * per_producer;
    ScratchQueue scratch("mp-waking", small_queue(1024, 32));
    scratch->declare_entrypoint("work");
    Ledger ledger(jobs);
    SharedCounters stalls(1);
    std::vector<pid_t> consumer_pids, producer_pids;
    for (std::uint32_t c = 0; c < consumers; ++c)
        consumer_pids.push_back(fork_child([&, c] { consume_until_stopped(scratch.name(), ledger, c, jobs); }));
    for (std::uint32_t p = 0; p < producers; ++p)
        producer_pids.push_back(fork_child([&, p] {
            // Bursts of up to 1, 4 and 12 jobs: single jobs into sleepers,
            // and bursts larger than the awake consumers take at once.
            const std::uint32_t burst_max[] = {1, 4, 12};
            run_bursts(scratch.name(), ledger, p, p * per_producer, per_producer, burst_max[p], stalls);
        }));
    for (pid_t pid : producer_pids) CHECK(wait_child(pid) == 0);
    CHECK(stalls[0].load() == 0);
    // One stop job per consumer, enqueued while they sleep.
    REQUIRE(wait_until_sleeping(scratch.queue(), consumer_pids));
    const EntrypointId ep = scratch->entrypoint("work");
    for (std::uint32_t c = 0; c < consumers; ++c) scratch->enqueue(ep, payload_bytes(make_payload(jobs + c)));
    // Each sleeping consumer takes one stop job: one wake-up each.
    const bool all_stopped = wait_until([&] { return ledger.extra(0).load() == consumers; }, 30s);
    CHECK(all_stopped);
    if (!all_stopped)
        for (pid_t pid : consumer_pids) ::kill(pid, SIGKILL);
    for (pid_t pid : consumer_pids) CHECK(wait_child(pid) == (all_stopped ? 0 : killed_by_sigkill));
    require_accounted(ledger, [](std::uint64_t) { return Fate::completed_once; });
    require_queue_empty(scratch.queue());
    require_doctor_sound(scratch.queue());
}

TEST_CASE("jobs left by an awake consumer that takes one are passed on to the sleepers one by one",
          "[multiprocess][wake]") {
    // The slow consumer is stopped (SIGSTOP at dequeue.awake) right after it
    // claimed the waking word: the batch's enqueue sees it awake and wakes
    // nobody. Continued, it takes one job and holds it; the four it leaves
    // must reach the four sleepers through the hand-over chain (each leaver
    // wakes the next sleeper), or they would wait for ever.
    constexpr std::uint32_t sleepers = 4;
    ScratchQueue scratch("mp-waking-chain", small_queue(256, 16));
    scratch->declare_entrypoint("work");
    {
        // This process registers now: a registration wakes every sleeper
        // (to re-arm its death watches), which would deliver the jobs below
        // without the hand-over this test is about.
        const EntrypointId eps[] = {scratch->entrypoint("work")};
        Job none;
        REQUIRE(scratch->dequeue(eps, std::span<Job>(&none, 1), 0ns) == 0);
    }
    Ledger ledger(sleepers + 1);
    Signal release, release_all, registered, go;
    std::vector<pid_t> pids;
    for (std::uint32_t c = 0; c < sleepers; ++c)
        pids.push_back(fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId eps[] = {queue.entrypoint("work")};
            Job job;
            const std::size_t n = queue.dequeue(eps, std::span<Job>(&job, 1), -1ns);
            expect(n == 1, "a sleeper got no job");
            const JobPayload payload = read_payload(job.payload, ledger.jobs());
            ledger.on_delivered(payload.seq, job.attempts);
            // Held until every job was delivered: no ack or lease change
            // of ours wakes anybody meanwhile.
            expect(release_all.wait(120s), "never released");
            queue.ack(job.handle);
            ledger.on_acked(payload.seq);
        }));
    REQUIRE(wait_until_sleeping(scratch.queue(), pids));
    const pid_t slow = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {queue.entrypoint("work")};
        Job job;
        // Register first (its registration wakes the sleepers to re-arm
        // their death watches; one of them could hold the word meanwhile).
        expect(queue.dequeue(eps, std::span<Job>(&job, 1), 0ns) == 0, "a job before the batch");
        registered.notify();
        expect(go.wait(120s), "no go");
        shm::arm_stop_point("dequeue.awake");
        const std::size_t n = queue.dequeue(eps, std::span<Job>(&job, 1), -1ns);
        expect(n == 1, "the slow consumer got no job");
        const JobPayload payload = read_payload(job.payload, ledger.jobs());
        ledger.on_delivered(payload.seq, job.attempts);
        expect(release.wait(120s), "never released");
        queue.ack(job.handle);
        ledger.on_acked(payload.seq);
    });
    REQUIRE(registered.wait(60s));
    REQUIRE(wait_until_sleeping(scratch.queue(), pids));
    go.notify();
    REQUIRE(wait_until([&] { return process_state(slow) == 'T'; }, 60s));
    {
        std::vector<JobPayload> payloads;
        for (std::uint64_t s = 0; s <= sleepers; ++s) payloads.push_back(make_payload(s));
        std::vector<std::span<const std::byte>> spans;
        for (const auto& p : payloads) spans.push_back(payload_bytes(p));
        std::vector<JobId> ids(spans.size());
        REQUIRE(scratch->enqueue_batch(scratch->entrypoint("work"), spans, ids) == spans.size());
        for (std::uint64_t s = 0; s <= sleepers; ++s) ledger.on_enqueued(s);
    }
    ::kill(slow, SIGCONT);
    // Every consumer holds its job until released: the sleepers must get
    // the four the slow one left.
    const bool spread = wait_until([&] { return ledger.total_delivered() == sleepers + 1; }, 30s);
    CHECK(spread);
    release.notify();
    for (std::uint32_t c = 0; c < sleepers; ++c) release_all.notify();
    if (!spread)
        for (pid_t pid : pids) ::kill(pid, SIGKILL);
    for (pid_t pid : pids) CHECK(wait_child(pid) == (spread ? 0 : killed_by_sigkill));
    CHECK(wait_child(slow) == 0);
    require_accounted(ledger, [](std::uint64_t) { return Fate::completed_once; });
    require_queue_empty(scratch.queue());
}
