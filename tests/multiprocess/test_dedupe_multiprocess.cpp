// Dedupe keys across processes (docs/dedupe.md): many processes enqueue the
// same keys at the same time; for each key exactly one job exists, and every
// process that was told "skipped" got that job's id.
#include "process_harness.hpp"

using namespace currant;
using namespace currant::harness;

TEST_CASE("processes racing to enqueue the same key create exactly one job per key", "[multiprocess][dedupe]") {
    constexpr std::size_t producers = 6;
    constexpr std::size_t rounds = 300;
    ScratchQueue scratch("mp-dedupe-race", small_queue(2048));
    const EntrypointId ep = scratch->declare_entrypoint("race");
    // ids[p * rounds + r]: the id producer p got for key r; outcome: 1
    // created, 2 skipped (the holder's id returned), 3 refused.
    SharedArray<std::atomic<std::uint64_t>> ids(producers * rounds);
    SharedArray<std::atomic<std::uint32_t>> outcome(producers * rounds);
    Signal ready, go;
    std::vector<pid_t> children;
    for (std::size_t p = 0; p < producers; ++p) {
        children.push_back(fork_child([&, p] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId mine = queue.entrypoint("race");
            const JobPayload payload = make_payload(0, std::uint32_t(p));
            ready.notify();
            expect(go.wait(60s), "no start signal");
            for (std::size_t r = 0; r < rounds; ++r) {
                EnqueueOptions options;
                options.dedupe_key = "key-" + std::to_string(r);
                options.on_duplicate = p % 2 == 0 ? OnDuplicate::skip : OnDuplicate::refuse;
                const std::size_t at = p * rounds + r;
                try {
                    ids[at] = queue.enqueue(mine, std::as_bytes(std::span(&payload, 1)), options);
                    outcome[at] = queue.last_enqueue_skipped() ? 2 : 1;
                } catch (const Error& e) {
                    expect(e.code() == Errc::already_exists, std::string("unexpected error: ") + e.what());
                    outcome[at] = 3;
                }
            }
            queue.close();
        }));
    }
    for (std::size_t p = 0; p < producers; ++p) REQUIRE(ready.wait(60s));
    for (std::size_t p = 0; p < producers; ++p) go.notify();
    for (const pid_t child : children) REQUIRE(wait_child(child) == 0);

    std::size_t created_total = 0;
    for (std::size_t r = 0; r < rounds; ++r) {
        INFO("key-" << r);
        std::size_t created = 0;
        JobId holder = 0;
        for (std::size_t p = 0; p < producers; ++p)
            if (outcome[p * rounds + r] == 1) {
                ++created;
                holder = ids[p * rounds + r];
            }
        REQUIRE(created == 1);
        for (std::size_t p = 0; p < producers; ++p) {
            const std::uint32_t o = outcome[p * rounds + r];
            REQUIRE(o != 0);
            if (o == 2) CHECK(ids[p * rounds + r] == holder);
            if (o == 3) CHECK(p % 2 == 1);
        }
        created_total += created;
    }
    CHECK(created_total == rounds);
    const EntrypointStats s = scratch->stats().at(ep);
    CHECK(s.queued == rounds);
    CHECK(s.enqueued == rounds);
    require_doctor_sound(scratch.queue());
}

TEST_CASE("a key freed by an ack in one process is taken by exactly one of the processes racing for it",
          "[multiprocess][dedupe]") {
    // One key, many rounds: the producers keep trying it while a consumer
    // process acks whatever holds it. Never more than one job with the key
    // exists: the consumer never sees two picked/queued at once.
    constexpr std::size_t producers = 4;
    constexpr std::uint64_t jobs_wanted = 200;
    ScratchQueue scratch("mp-dedupe-cycle", small_queue(256));
    scratch->declare_entrypoint("cycle");
    SharedCounters created(1);
    SharedCounters stop(1);
    std::vector<pid_t> children;
    for (std::size_t p = 0; p < producers; ++p) {
        children.push_back(fork_child([&, p] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId ep = queue.entrypoint("cycle");
            const JobPayload payload = make_payload(0, std::uint32_t(p));
            EnqueueOptions options;
            options.dedupe_key = "the-one";
            while (stop[0].load() == 0) {
                queue.enqueue(ep, std::as_bytes(std::span(&payload, 1)), options);
                if (!queue.last_enqueue_skipped()) created[0].fetch_add(1);
            }
            queue.close();
        }));
    }
    const pid_t consumer = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {queue.entrypoint("cycle")};
        std::vector<Job> out(8);
        for (std::uint64_t acked = 0; acked < jobs_wanted;) {
            const std::size_t got = queue.dequeue(eps, out, 30s);
            expect(got == 1, "expected exactly one job with the key, got " + std::to_string(got));
            queue.ack(out[0].handle);
            ++acked;
        }
        stop[0].store(1);
        queue.close();
    });
    REQUIRE(wait_child(consumer) == 0);
    for (const pid_t child : children) REQUIRE(wait_child(child) == 0);
    // Created = acked + the one possibly still queued.
    const EntrypointStats s = scratch->stats().at(0);
    CHECK(s.queued + s.picked <= 1);
    CHECK(created[0].load() == jobs_wanted + s.queued + s.picked);
    require_doctor_sound(scratch.queue());
}
