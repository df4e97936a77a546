// Multi-process tests: real producer and consumer processes (fork) exchange
// jobs through one queue segment. Each test ends by checking that every job
// is accounted for (completed exactly once, counted by acks that returned
// success), that doctor() finds the segment sound, and that the queue still
// works.
#include "process_harness.hpp"

#include <array>
#include <cstring>
#include <map>

using namespace currant;
using namespace currant::harness;

namespace {

const std::vector<std::string> three_entrypoints = {"mp-alpha", "mp-beta", "mp-gamma"};
constexpr std::array<std::int32_t, 3> three_priorities = {-5, 0, 7};

// Which entrypoint and priority job `seq` goes to.
std::uint32_t ep_index_of(std::uint64_t seq) { return std::uint32_t(seq % 3); }
std::int32_t priority_of(std::uint64_t seq) { return three_priorities[(seq / 3) % 3]; }

void declare_all(Queue& queue, const std::vector<std::string>& names, const EntrypointOptions& options = {}) {
    for (const auto& name : names) queue.declare_entrypoint(name, options);
}

// Final checks shared by the tests: (a) accounting, (b) doctor, (c) working.
void finish_checks(ScratchQueue& scratch, const Ledger& ledger, const std::function<Fate(std::uint64_t)>& fate,
                   const std::string& entrypoint) {
    require_accounted(ledger, fate);
    require_queue_empty(scratch.queue());
    require_doctor_sound(scratch.queue());
    require_queue_works(scratch.queue(), entrypoint);
}

// --- producer bodies (run in a child) --------------------------------------

enum class ProduceWith { enqueue, reserve_commit, enqueue_batch };

// Enqueues every seq in [0, jobs) with seq % producers == index.
void produce(const std::string& name, ProduceWith how, std::uint32_t index, std::uint32_t producers,
             std::uint64_t jobs, Ledger& ledger, std::atomic<std::uint64_t>& refusals) {
    Queue queue = Queue::open(name);
    const auto eps = entrypoint_ids(queue, three_entrypoints);
    std::uint64_t refused = 0;
    auto options_for = [](std::uint64_t seq) {
        EnqueueOptions options;
        options.priority = priority_of(seq);
        return options;
    };
    if (how == ProduceWith::enqueue) {
        for (std::uint64_t seq = index; seq < jobs; seq += producers) {
            refused += enqueue_with_backpressure(queue, eps[ep_index_of(seq)], make_payload(seq, index, ep_index_of(seq)),
                                                 options_for(seq));
            ledger.on_enqueued(seq);
        }
    } else if (how == ProduceWith::reserve_commit) {
        for (std::uint64_t seq = index; seq < jobs; seq += producers) {
            const EntrypointId ep = eps[ep_index_of(seq)];
            std::optional<Reservation> reservation;
            while (!reservation) {
                try {
                    reservation = queue.reserve(ep);
                } catch (const Error& error) {
                    if (error.code() != Errc::arena_full) throw;
                    if (++refused % 64 == 0) std::this_thread::sleep_for(200us);
                    else std::this_thread::yield();
                }
            }
            const JobPayload payload = make_payload(seq, index, ep_index_of(seq));
            expect(reservation->payload.size() >= sizeof payload, "reservation smaller than a payload");
            std::memcpy(reservation->payload.data(), &payload, sizeof payload); // written in place
            queue.commit(*reservation, sizeof payload, options_for(seq));
            ledger.on_enqueued(seq);
        }
    } else {
        // Batches of up to 8 jobs of one entrypoint and priority.
        std::vector<std::uint64_t> pending;
        for (std::uint64_t seq = index; seq < jobs; seq += producers) pending.push_back(seq);
        std::size_t at = 0;
        while (at < pending.size()) {
            const std::uint64_t first = pending[at];
            std::vector<JobPayload> payloads;
            for (std::size_t k = at; k < pending.size() && payloads.size() < 8; ++k) {
                const std::uint64_t seq = pending[k];
                if (ep_index_of(seq) != ep_index_of(first) || priority_of(seq) != priority_of(first)) break;
                payloads.push_back(make_payload(seq, index, ep_index_of(seq)));
            }
            std::vector<std::span<const std::byte>> spans;
            for (const auto& p : payloads) spans.push_back(payload_bytes(p));
            std::vector<JobId> ids(spans.size());
            std::size_t done = 0;
            try {
                done = queue.enqueue_batch(eps[ep_index_of(first)], spans, ids, options_for(first));
            } catch (const Error& error) {
                if (error.code() != Errc::arena_full) throw;
                if (++refused % 64 == 0) std::this_thread::sleep_for(200us);
                else std::this_thread::yield();
                continue;
            }
            for (std::size_t k = 0; k < done; ++k) ledger.on_enqueued(pending[at + k]);
            at += done;
        }
    }
    refusals.fetch_add(refused);
    queue.close();
}

// --- consumer bodies (run in a child) --------------------------------------

enum class ConsumeWith { batch_ack_each, batch_ack_span, one_ack_deferred };

// Consumes until the ledger says `jobs` acks happened.
void consume(const std::string& name, const std::vector<std::string>& names, ConsumeWith how, std::uint64_t jobs,
             Ledger& ledger, std::uint32_t batch = 16) {
    Queue queue = Queue::open(name);
    const auto eps = entrypoint_ids(queue, names);
    std::vector<Job> out(batch);
    if (how == ConsumeWith::one_ack_deferred) queue.set_prefetch(batch);
    while (ledger.total_acked() < jobs) {
        // The timeout only lets a consumer notice that the others finished.
        if (how == ConsumeWith::one_ack_deferred) {
            const std::optional<Job> job = queue.dequeue_one(eps, 100ms);
            if (!job) continue;
            const JobPayload payload = read_payload(job->payload, ledger.jobs());
            ledger.on_delivered(payload.seq, job->attempts);
            queue.ack_deferred(job->handle);
            ledger.on_acked(payload.seq); // deferred: the final stats confirm it became a fact
            continue;
        }
        const std::size_t got = queue.dequeue(eps, out, 100ms);
        std::vector<JobHandle> handles;
        std::vector<std::uint64_t> seqs;
        for (std::size_t i = 0; i < got; ++i) {
            const JobPayload payload = read_payload(out[i].payload, ledger.jobs());
            expect(out[i].attempts == 1, "a job was delivered with attempts " + std::to_string(out[i].attempts));
            ledger.on_delivered(payload.seq, out[i].attempts);
            if (how == ConsumeWith::batch_ack_each) {
                queue.ack(out[i].handle);
                ledger.on_acked(payload.seq);
            } else {
                handles.push_back(out[i].handle);
                seqs.push_back(payload.seq);
            }
        }
        if (!handles.empty()) {
            const std::size_t acked = queue.ack(handles);
            expect(acked == handles.size(), "ack of a batch of " + std::to_string(handles.size()) + " acked only " +
                                                std::to_string(acked));
            for (std::uint64_t seq : seqs) ledger.on_acked(seq);
        }
    }
    // Make the deferred acks facts before leaving. (close() is documented to
    // do this too; a separate test covers that promise.)
    queue.flush();
    queue.close();
}

std::uint64_t sum_stat(const Queue& queue, std::uint64_t EntrypointStats::*field) {
    std::uint64_t total = 0;
    for (const auto& s : queue.stats()) total += s.*field;
    return total;
}

} // namespace

TEST_CASE("3 producers and 3 consumers exchange 200000 jobs over 3 entrypoints and 3 priorities, each completed once",
          "[multiprocess][exchange]") {
    constexpr std::uint64_t jobs = 200'000;
    ScratchQueue scratch("mp-exchange", small_queue(4096));
    declare_all(scratch.queue(), three_entrypoints);
    Ledger ledger(jobs);
    SharedCounters refusals(1);

    std::vector<pid_t> children;
    children.push_back(fork_child([&] { consume(scratch.name(), three_entrypoints, ConsumeWith::batch_ack_each, jobs, ledger, 16); }));
    children.push_back(fork_child([&] { consume(scratch.name(), three_entrypoints, ConsumeWith::one_ack_deferred, jobs, ledger, 16); }));
    children.push_back(fork_child([&] { consume(scratch.name(), three_entrypoints, ConsumeWith::batch_ack_span, jobs, ledger, 8); }));
    children.push_back(fork_child([&] { produce(scratch.name(), ProduceWith::enqueue, 0, 3, jobs, ledger, refusals[0]); }));
    children.push_back(fork_child([&] { produce(scratch.name(), ProduceWith::reserve_commit, 1, 3, jobs, ledger, refusals[0]); }));
    children.push_back(fork_child([&] { produce(scratch.name(), ProduceWith::enqueue_batch, 2, 3, jobs, ledger, refusals[0]); }));
    for (pid_t pid : children) CHECK(wait_child(pid) == 0);

    CHECK(ledger.total_enqueued() == jobs);
    CHECK(ledger.total_delivered() == jobs);
    CHECK(ledger.total_acked() == jobs);
    for (std::uint64_t seq = 0; seq < jobs; ++seq) {
        if (ledger.enqueued(seq) != 1 || ledger.delivered(seq) != 1) {
            INFO("seq " << seq);
            REQUIRE(ledger.enqueued(seq) == 1);
            REQUIRE(ledger.delivered(seq) == 1);
        }
    }
    // The deferred acks were counted when handed over: the segment's totals
    // prove each became a fact exactly once.
    CHECK(sum_stat(scratch.queue(), &EntrypointStats::enqueued) == jobs);
    CHECK(sum_stat(scratch.queue(), &EntrypointStats::successful) == jobs);
    CHECK(sum_stat(scratch.queue(), &EntrypointStats::picks) == jobs);
    CHECK(sum_stat(scratch.queue(), &EntrypointStats::retried) == 0);
    CHECK(sum_stat(scratch.queue(), &EntrypointStats::failed) == 0);
    CHECK(scratch->info().free_slots == 4096); // every process closed: no slot leaked
    finish_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; }, three_entrypoints[0]);
}

TEST_CASE("producers blocked by a full 256-slot arena retry on arena_full and lose nothing", "[multiprocess][backpressure]") {
    constexpr std::uint64_t jobs = 30'000;
    constexpr std::uint32_t producers = 3;
    ScratchQueue scratch("mp-backpressure", small_queue(256));
    declare_all(scratch.queue(), three_entrypoints);
    Ledger ledger(jobs);
    SharedCounters refusals(1);
    SharedCounters producers_refused(1); // producers that saw arena_full at least once

    // Producers start alone: with no consumer the arena must fill, so each
    // of them meets back-pressure before any consumer runs.
    std::vector<pid_t> children;
    for (std::uint32_t p = 0; p < producers; ++p) {
        children.push_back(fork_child([&, p] {
            Queue queue = Queue::open(scratch.name());
            const auto eps = entrypoint_ids(queue, three_entrypoints);
            bool reported = false;
            std::uint64_t refused = 0;
            for (std::uint64_t seq = p; seq < jobs; seq += producers) {
                EnqueueOptions options;
                options.priority = priority_of(seq);
                refused += enqueue_with_backpressure(queue, eps[ep_index_of(seq)],
                                                     make_payload(seq, p, ep_index_of(seq)), options, [&] {
                                                         if (!reported) producers_refused[0].fetch_add(1);
                                                         reported = true;
                                                     });
                ledger.on_enqueued(seq);
            }
            refusals[0].fetch_add(refused);
            queue.close();
        }));
    }
    // Every producer is now blocked on the full arena (observable state, not a guess).
    const bool all_refused = wait_until([&] { return producers_refused[0].load() == producers; });
    REQUIRE(all_refused);
    CHECK(scratch->info().free_slots <= 256);
    CHECK(ledger.total_enqueued() < jobs);

    for (std::uint32_t c = 0; c < 2; ++c)
        children.push_back(fork_child([&, c] {
            consume(scratch.name(), three_entrypoints, c == 0 ? ConsumeWith::batch_ack_each : ConsumeWith::one_ack_deferred,
                    jobs, ledger, 16);
        }));
    for (pid_t pid : children) CHECK(wait_child(pid) == 0);

    CHECK(refusals[0].load() > 0);
    CHECK(ledger.total_enqueued() == jobs);
    CHECK(sum_stat(scratch.queue(), &EntrypointStats::successful) == jobs);
    CHECK(scratch->info().free_slots == 256);
    for (std::uint64_t seq = 0; seq < jobs; ++seq) {
        if (ledger.enqueued(seq) != 1 || ledger.delivered(seq) != 1) {
            INFO("seq " << seq);
            REQUIRE(ledger.enqueued(seq) == 1);
            REQUIRE(ledger.delivered(seq) == 1);
        }
    }
    finish_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; }, three_entrypoints[0]);
}

TEST_CASE("an idle consumer asleep in dequeue is woken by a producer in another process", "[multiprocess][wake]") {
    constexpr std::uint64_t rounds = 20;
    ScratchQueue scratch("mp-wake", small_queue());
    scratch->declare_entrypoint("wake");
    Ledger ledger(rounds + 3);
    Signal consumer_ready, produce_now, produced, consumed;
    SharedCounters got(1);

    // The consumers wait without any timeout: only a wake-up (or a job found
    // before sleeping) ends the wait. The parent's generous watchdog only
    // turns a lost wake-up into a failure instead of a hang.
    const pid_t consumer = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {queue.entrypoint("wake")};
        Job job;
        for (std::uint64_t round = 0; round < rounds; ++round) {
            consumer_ready.notify();
            const std::size_t n = queue.dequeue(eps, std::span<Job>(&job, 1), -1ns);
            expect(n == 1, "round " + std::to_string(round) + ": dequeue returned without the job");
            const JobPayload payload = read_payload(job.payload, ledger.jobs());
            expect(payload.seq == round, "round " + std::to_string(round) + " got seq " + std::to_string(payload.seq));
            ledger.on_delivered(payload.seq, job.attempts);
            queue.ack(job.handle);
            ledger.on_acked(payload.seq);
            got[0].fetch_add(1);
            consumed.notify();
        }
    });
    const pid_t producer = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId ep = queue.entrypoint("wake");
        for (std::uint64_t round = 0; round < rounds; ++round) {
            expect(produce_now.wait(120s), "no go signal for round " + std::to_string(round));
            queue.enqueue(ep, payload_bytes(make_payload(round)));
            ledger.on_enqueued(round);
            produced.notify();
        }
    });
    bool all_woken = true;
    for (std::uint64_t round = 0; round < rounds && all_woken; ++round) {
        REQUIRE(consumer_ready.wait(60s));
        // The consumer is really asleep in the kernel before the job exists.
        REQUIRE(wait_until_sleeping(scratch.queue(), {consumer}));
        CHECK(got[0].load() == round);
        produce_now.notify();
        REQUIRE(produced.wait(60s));
        all_woken = consumed.wait(30s);
        INFO("round " << round);
        CHECK(all_woken);
    }
    if (!all_woken) {
        ::kill(consumer, SIGKILL);
        ::kill(producer, SIGKILL);
    }
    CHECK(wait_child(producer) == (all_woken ? 0 : killed_by_sigkill));
    CHECK(wait_child(consumer) == (all_woken ? 0 : killed_by_sigkill));
    REQUIRE(got[0].load() == rounds);

    // Then three sleeping consumers are each woken by one of three jobs.
    {
        Signal ready, done;
        std::vector<pid_t> sleepers;
        for (int c = 0; c < 3; ++c)
            sleepers.push_back(fork_child([&] {
                Queue queue = Queue::open(scratch.name());
                const EntrypointId eps[] = {queue.entrypoint("wake")};
                Job job;
                ready.notify();
                const std::size_t n = queue.dequeue(eps, std::span<Job>(&job, 1), -1ns);
                expect(n == 1, "a sleeping consumer returned without a job");
                const JobPayload payload = read_payload(job.payload, ledger.jobs());
                ledger.on_delivered(payload.seq, job.attempts);
                queue.ack(job.handle);
                ledger.on_acked(payload.seq);
                done.notify();
            }));
        for (int c = 0; c < 3; ++c) REQUIRE(ready.wait(60s));
        REQUIRE(wait_until_sleeping(scratch.queue(), sleepers));
        const pid_t producer3 = fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId ep = queue.entrypoint("wake");
            for (std::uint64_t seq = rounds; seq < rounds + 3; ++seq) {
                queue.enqueue(ep, payload_bytes(make_payload(seq)));
                ledger.on_enqueued(seq);
            }
        });
        CHECK(wait_child(producer3) == 0);
        int woken = 0;
        while (woken < 3 && done.wait(30s)) ++woken;
        CHECK(woken == 3);
        if (woken < 3)
            for (pid_t pid : sleepers) ::kill(pid, SIGKILL); // only the ones still asleep are affected
        for (pid_t pid : sleepers) {
            const int status = wait_child(pid);
            CHECK((status == 0 || (woken < 3 && status == killed_by_sigkill)));
        }
        finish_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; }, "wake");
    }
}

TEST_CASE("dequeue_one consumers with ack_deferred complete every job once", "[multiprocess][deferred]") {
    constexpr std::uint64_t jobs = 30'000;
    ScratchQueue scratch("mp-deferred", small_queue(2048));
    declare_all(scratch.queue(), three_entrypoints);
    Ledger ledger(jobs);
    SharedCounters refusals(1);
    std::vector<pid_t> children;
    const std::uint32_t prefetch[] = {1, 8, 64};
    for (std::uint32_t c = 0; c < 3; ++c)
        children.push_back(fork_child([&, c] {
            consume(scratch.name(), three_entrypoints, ConsumeWith::one_ack_deferred, jobs, ledger, prefetch[c]);
        }));
    for (std::uint32_t p = 0; p < 2; ++p)
        children.push_back(fork_child([&, p] { produce(scratch.name(), ProduceWith::enqueue, p, 2, jobs, ledger, refusals[0]); }));
    for (pid_t pid : children) CHECK(wait_child(pid) == 0);

    for (std::uint64_t seq = 0; seq < jobs; ++seq) {
        if (ledger.delivered(seq) != 1) {
            INFO("seq " << seq);
            REQUIRE(ledger.delivered(seq) == 1);
        }
    }
    CHECK(sum_stat(scratch.queue(), &EntrypointStats::successful) == jobs);
    CHECK(sum_stat(scratch.queue(), &EntrypointStats::retried) == 0);
    CHECK(scratch->info().free_slots == 2048);
    finish_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; }, three_entrypoints[1]);
}

TEST_CASE("reserve/commit producers write payloads in place; abandoned reservations never become jobs",
          "[multiprocess][zerocopy]") {
    constexpr std::uint64_t jobs = 20'000;
    constexpr std::uint32_t producers = 2;
    ScratchQueue scratch("mp-zerocopy", small_queue(512));
    scratch->declare_entrypoint("zc");
    Ledger ledger(jobs);
    auto abandoned = [](std::uint64_t seq) { return seq % 7 == 3; };
    std::vector<pid_t> children;
    for (std::uint32_t p = 0; p < producers; ++p)
        children.push_back(fork_child([&, p] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId ep = queue.entrypoint("zc");
            for (std::uint64_t seq = p; seq < jobs; seq += producers) {
                std::optional<Reservation> r;
                while (!r) {
                    try {
                        r = queue.reserve(ep);
                    } catch (const Error& error) {
                        if (error.code() != Errc::arena_full) throw;
                        std::this_thread::yield();
                    }
                }
                expect(r->payload.size() == 64, "reservation capacity is not the slot payload size");
                // Fill the whole slot in place: header, then a pattern derived from seq.
                const JobPayload header = make_payload(seq, p, 0);
                std::memcpy(r->payload.data(), &header, sizeof header);
                for (std::size_t i = sizeof header; i < 64; ++i) r->payload[i] = std::byte((seq * 31 + i) & 0xff);
                if (abandoned(seq)) {
                    queue.abandon(*r);
                    continue;
                }
                queue.commit(*r, 64);
                ledger.on_enqueued(seq);
            }
            queue.close();
        }));
    const std::uint64_t expected = [&] {
        std::uint64_t n = 0;
        for (std::uint64_t seq = 0; seq < jobs; ++seq) n += abandoned(seq) ? 0 : 1;
        return n;
    }();
    children.push_back(fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {queue.entrypoint("zc")};
        std::vector<Job> out(32);
        while (ledger.total_acked() < expected) {
            const std::size_t got = queue.dequeue(eps, out, 100ms);
            for (std::size_t i = 0; i < got; ++i) {
                expect(out[i].payload.size() == 64, "payload size changed");
                const JobPayload payload = read_payload(out[i].payload, jobs);
                for (std::size_t b = sizeof(JobPayload); b < 64; ++b)
                    expect(out[i].payload[b] == std::byte((payload.seq * 31 + b) & 0xff),
                           "payload byte " + std::to_string(b) + " of seq " + std::to_string(payload.seq) + " differs");
                expect(!abandoned(payload.seq), "an abandoned reservation was delivered");
                ledger.on_delivered(payload.seq, out[i].attempts);
                queue.ack(out[i].handle);
                ledger.on_acked(payload.seq);
            }
        }
    }));
    for (pid_t pid : children) CHECK(wait_child(pid) == 0);
    CHECK(scratch->info().free_slots == 512);
    finish_checks(scratch, ledger,
                  [&](std::uint64_t seq) { return abandoned(seq) ? Fate::absent : Fate::completed_once; }, "zc");
}

TEST_CASE("a consumer process that exits normally without acking gives its jobs back", "[multiprocess][giveback]") {
    constexpr std::uint64_t jobs = 40;
    ScratchQueue scratch("mp-giveback", small_queue());
    const EntrypointId ep = scratch->declare_entrypoint("gb");
    Ledger ledger(jobs);
    {
        Queue producer = Queue::open(scratch.name());
        for (std::uint64_t seq = 0; seq < jobs; ++seq) {
            producer.enqueue(ep, payload_bytes(make_payload(seq)));
            ledger.on_enqueued(seq);
        }
        producer.close();
    }
    SharedArray<std::atomic<std::uint64_t>> taken(jobs); // 1 = handed to the child and not acked
    SharedArray<std::atomic<JobId>> ids(jobs);

    // How the child leaves, and how many of its picked jobs it acks first.
    enum class Leave { return_from_child, close, prefetch_return, ack_deferred_then_return };
    Leave leave = Leave::return_from_child;
    SECTION("returns from the child (the Queue destructor closes it)") { leave = Leave::return_from_child; }
    SECTION("calls close()") { leave = Leave::close; }
    SECTION("took one job of a prefetched batch via dequeue_one") { leave = Leave::prefetch_return; }
    SECTION("acked some with ack_deferred, left the rest") { leave = Leave::ack_deferred_then_return; }

    const pid_t child = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {queue.entrypoint("gb")};
        if (leave == Leave::prefetch_return) {
            queue.set_prefetch(10);
            const std::optional<Job> job = queue.dequeue_one(eps, 10s);
            expect(job.has_value(), "no job");
            const JobPayload payload = read_payload(job->payload, jobs);
            ledger.on_delivered(payload.seq, job->attempts);
            taken[payload.seq].store(1);
            ids[payload.seq].store(job->handle.id);
            return; // 1 handed out + 9 prefetched go back
        }
        std::vector<Job> out(10);
        const std::size_t got = queue.dequeue(eps, out, 10s);
        expect(got == 10, "picked " + std::to_string(got) + " of 10");
        for (std::size_t i = 0; i < got; ++i) {
            const JobPayload payload = read_payload(out[i].payload, jobs);
            ledger.on_delivered(payload.seq, out[i].attempts);
            ids[payload.seq].store(out[i].handle.id);
            if (leave == Leave::ack_deferred_then_return && i % 2 == 0) {
                queue.ack_deferred(out[i].handle); // becomes a fact at close
                ledger.on_acked(payload.seq);
            } else {
                taken[payload.seq].store(1);
            }
        }
        if (leave == Leave::close) queue.close();
    });
    REQUIRE(wait_child(child) == 0);

    // Right after the exit, with no reap by anyone: the child gave them back.
    std::vector<JobId> taken_ids;
    for (std::uint64_t seq = 0; seq < jobs; ++seq)
        if (taken[seq].load()) taken_ids.push_back(ids[seq].load());
    REQUIRE(!taken_ids.empty());
    for (const JobState& state : scratch->status(taken_ids)) {
        INFO("job " << state.id);
        CHECK(state.status == JobStatus::queued);
        CHECK(state.attempts == 1);
    }
    std::uint64_t picked = 0;
    for (const auto& s : scratch->stats()) picked += s.picked;
    CHECK(picked == 0);
    if (leave == Leave::prefetch_return) {
        // The 9 prefetched jobs the child never saw are queued too.
        std::uint64_t queued = 0;
        for (const auto& s : scratch->stats()) queued += s.queued;
        CHECK(queued == jobs);
    }

    drain_in_child(scratch.name(), {"gb"}, ledger);
    for (std::uint64_t seq = 0; seq < jobs; ++seq)
        if (taken[seq].load()) {
            INFO("seq " << seq);
            CHECK(ledger.attempts(seq) == 2); // delivered again, attempt counted
        }
    CHECK(scratch->info().free_slots == scratch->info().slots);
    finish_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; }, "gb");
}

TEST_CASE("eight producer processes with one entrypoint each and one consumer over all of them",
          "[multiprocess][fan-in]") {
    constexpr std::uint32_t producers = 8;
    constexpr std::uint64_t per_producer = 4'000;
    constexpr std::uint64_t jobs = producers * per_producer;
    ScratchQueue scratch("mp-fanin", small_queue(2048));
    Ledger ledger(jobs);
    Signal declared;
    std::vector<std::string> names;
    for (std::uint32_t p = 0; p < producers; ++p) names.push_back("fan-" + std::to_string(p));
    Signal start;

    std::vector<pid_t> children;
    for (std::uint32_t p = 0; p < producers; ++p)
        children.push_back(fork_child([&, p] {
            Queue queue = Queue::open(scratch.name());
            // Declarations race across processes on purpose.
            const EntrypointId ep = queue.declare_entrypoint(names[p]);
            declared.notify();
            expect(start.wait(60s), "no start signal");
            for (std::uint64_t i = 0; i < per_producer; ++i) {
                const std::uint64_t seq = p * per_producer + i;
                EnqueueOptions options;
                options.priority = (i / 10) % 2 ? 3 : 0;
                enqueue_with_backpressure(queue, ep, make_payload(seq, p, std::uint32_t(options.priority)), options);
                ledger.on_enqueued(seq);
            }
            queue.close();
        }));
    for (std::uint32_t p = 0; p < producers; ++p) REQUIRE(declared.wait(60s));
    const auto declared_names = scratch->entrypoint_names();
    REQUIRE(declared_names.size() == producers);

    SharedCounters order_violations(1);
    children.push_back(fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const auto eps = entrypoint_ids(queue, names);
        std::map<std::pair<EntrypointId, std::int32_t>, std::uint64_t> last; // FIFO per entrypoint and priority
        std::vector<Job> out(32);
        while (ledger.total_acked() < jobs) {
            const std::size_t got = queue.dequeue(eps, out, 100ms);
            for (std::size_t i = 0; i < got; ++i) {
                const JobPayload payload = read_payload(out[i].payload, jobs);
                expect(eps[payload.producer] == out[i].entrypoint, "job delivered from the wrong entrypoint");
                expect(std::int32_t(payload.tag) == out[i].priority, "job delivered with the wrong priority");
                const auto key = std::make_pair(out[i].entrypoint, out[i].priority);
                auto found = last.find(key);
                if (found != last.end() && found->second >= payload.seq) order_violations[0].fetch_add(1);
                last[key] = payload.seq;
                ledger.on_delivered(payload.seq, out[i].attempts);
                queue.ack(out[i].handle);
                ledger.on_acked(payload.seq);
            }
        }
    }));
    for (std::uint32_t p = 0; p < producers; ++p) start.notify();
    for (pid_t pid : children) CHECK(wait_child(pid) == 0);
    CHECK(order_violations[0].load() == 0);
    CHECK(ledger.total_enqueued() == jobs);
    for (std::uint64_t seq = 0; seq < jobs; ++seq)
        if (ledger.delivered(seq) != 1) {
            INFO("seq " << seq);
            REQUIRE(ledger.delivered(seq) == 1);
        }
    CHECK(scratch->info().free_slots == 2048);
    finish_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; }, names[0]);
}

TEST_CASE("deferred acks of a consumer process become facts when it closes or returns", "[multiprocess][deferred]") {
    constexpr std::uint64_t jobs = 5;
    ScratchQueue scratch("mp-deferclose", small_queue());
    const EntrypointId ep = scratch->declare_entrypoint("dc");
    Ledger ledger(jobs);
    for (std::uint64_t seq = 0; seq < jobs; ++seq) {
        scratch->enqueue(ep, payload_bytes(make_payload(seq)));
        ledger.on_enqueued(seq);
    }
    bool explicit_close = false;
    SECTION("close()") { explicit_close = true; }
    SECTION("return from the child (destructor)") { explicit_close = false; }
    const pid_t child = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {queue.entrypoint("dc")};
        for (std::uint64_t i = 0; i < jobs; ++i) {
            const std::optional<Job> job = queue.dequeue_one(eps, 10s);
            expect(job.has_value(), "no job");
            const JobPayload payload = read_payload(job->payload, jobs);
            ledger.on_delivered(payload.seq, job->attempts);
            queue.ack_deferred(job->handle);
            ledger.on_acked(payload.seq);
        }
        if (explicit_close) queue.close();
    });
    REQUIRE(wait_child(child) == 0);
    std::uint64_t successful = 0, retried = 0, queued = 0;
    for (const auto& s : scratch->stats()) {
        successful += s.successful;
        retried += s.retried;
        queued += s.queued;
    }
    // ack_deferred promises: "applied by flush(), ... and at close".
    CHECK(successful == jobs);
    CHECK(retried == 0);
    CHECK(queued == 0);
    drain_in_child(scratch.name(), {"dc"}, ledger); // a job requeued instead of acked shows up as acked twice
    finish_checks(scratch, ledger, [](std::uint64_t) { return Fate::completed_once; }, "dc");
}
