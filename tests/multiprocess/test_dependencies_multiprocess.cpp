// Job dependencies across processes (docs/job-dependencies.md): producer
// processes enqueue chains and fan-ins while consumer processes run them;
// no job runs before all its dependencies succeeded, and every job runs.
#include <sys/mman.h>

#include "process_harness.hpp"

using namespace currant;
using namespace currant::harness;

namespace {

// What a job carries: its own number and the numbers of its dependencies.
struct Step {
    std::uint32_t number;
    std::uint32_t dependency_count;
    std::uint32_t dependencies[4];
};

// Shared (MAP_SHARED before fork) bookkeeping: done[n] is set by the
// consumer that ran job n before it acks, so a dependent released by that
// ack must find it set.
struct Board {
    std::atomic<std::uint32_t> done[4096];
    std::atomic<std::uint32_t> early;  // jobs that ran before a dependency was done
    std::atomic<std::uint32_t> ran;
};

} // namespace

TEST_CASE("chains and fan-ins enqueued by producer processes run in dependency order in consumer processes",
          "[multiprocess][dependencies]") {
    constexpr std::uint32_t producers = 2;
    constexpr std::uint32_t groups = 60;   // per producer: a chain of 3 and a fan-in of 3 + 1
    constexpr std::uint32_t per_group = 7;
    constexpr std::uint32_t consumers = 2;
    constexpr std::uint32_t total = producers * groups * per_group;
    static_assert(total <= 4096);
    void* memory = ::mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(memory != MAP_FAILED);
    auto* board = new (memory) Board{};

    ScratchQueue scratch("mp-dependencies", small_queue(256)); // slots are reused often
    // No result retention: a consumer often finishes a dependency before
    // its dependent is enqueued, and in `memory` durability its slot is
    // then free for the next enqueue; the queue's recent outcomes
    // (docs/job-dependencies.md) still know how it ended.
    EntrypointOptions in_memory;
    in_memory.durability = Durability::memory;
    const EntrypointId ep = scratch->declare_entrypoint("work", in_memory);
    const EntrypointId joins = scratch->declare_entrypoint("joins", in_memory);

    std::vector<pid_t> pids;
    for (std::uint32_t c = 0; c < consumers; ++c)
        pids.push_back(fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId eps[] = {ep, joins};
            for (;;) {
                Job job;
                if (queue.dequeue(eps, std::span(&job, 1), 2s) == 0) return;
                Step step;
                expect(job.payload.size() == sizeof(Step), "payload size");
                std::memcpy(&step, job.payload.data(), sizeof(Step));
                for (std::uint32_t d = 0; d < step.dependency_count; ++d)
                    if (board->done[step.dependencies[d]].load(std::memory_order_acquire) == 0)
                        board->early.fetch_add(1);
                board->done[step.number].store(1, std::memory_order_release);
                board->ran.fetch_add(1);
                queue.ack(job.handle);
            }
        }));
    for (std::uint32_t p = 0; p < producers; ++p)
        pids.push_back(fork_child([&, p] {
            Queue queue = Queue::open(scratch.name());
            auto put = [&](EntrypointId target, std::uint32_t number, std::vector<std::uint32_t> deps,
                           std::vector<JobId> dep_ids) {
                Step step{number, std::uint32_t(deps.size()), {}};
                for (std::size_t i = 0; i < deps.size(); ++i) step.dependencies[i] = deps[i];
                EnqueueOptions options;
                options.depends_on = std::move(dep_ids);
                options.arena_wait = 10s;
                return queue.enqueue(target, std::as_bytes(std::span(&step, 1)), options);
            };
            for (std::uint32_t g = 0; g < groups; ++g) {
                const std::uint32_t base = (p * groups + g) * per_group;
                // A chain: base -> base+1 -> base+2.
                const JobId a = put(ep, base, {}, {});
                const JobId b = put(ep, base + 1, {base}, {a});
                put(ep, base + 2, {base + 1}, {b});
                // A fan-in: base+3..base+5, then base+6 after all three (another entrypoint).
                const JobId x = put(ep, base + 3, {}, {});
                const JobId y = put(ep, base + 4, {}, {});
                const JobId z = put(ep, base + 5, {}, {});
                put(joins, base + 6, {base + 3, base + 4, base + 5}, {x, y, z});
            }
        }));
    for (pid_t pid : pids) CHECK(wait_child(pid) == 0);
    CHECK(board->early.load() == 0);
    CHECK(board->ran.load() == total);
    for (std::uint32_t n = 0; n < total; ++n) CHECK(board->done[n].load() == 1);
    CHECK(scratch->stats().at(ep).waiting == 0);
    CHECK(scratch->stats().at(joins).waiting == 0);
    require_doctor_sound(scratch.queue());
    ::munmap(memory, sizeof(Board));
}
