// Single-process micro-benchmarks of the queue operations (Google Benchmark).
// They measure the cost of each call without a second process bouncing the
// cache lines; the two-process figures come from currant_two_process.
#include <benchmark/benchmark.h>
#include <unistd.h>
#include <vector>

#include "currant/queue.hpp"

using namespace currant;

namespace {

struct Fixture {
    std::string name = "micro-" + std::to_string(getpid());
    Queue queue;
    EntrypointId ep;
    Fixture() : queue(make()), ep(queue.declare_entrypoint("bench")) {}
    Queue make() {
        Queue::remove(name);
        QueueOptions options;
        options.name = name;
        options.slots = 8192;
        options.payload_bytes = 64;
        options.max_entrypoints = 4;
        options.max_participants = 8;
        options.log_capacity = 16;
        return Queue::create(options);
    }
    ~Fixture() {
        queue.close();
        Queue::remove(name);
    }
};

void enqueue_dequeue_ack_single(benchmark::State& state) {
    Fixture f;
    std::byte payload[64] = {};
    Job job;
    for (auto _ : state) {
        f.queue.enqueue(f.ep, payload);
        f.queue.dequeue({&f.ep, 1}, {&job, 1}, std::chrono::nanoseconds(0));
        f.queue.ack(job.handle);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(enqueue_dequeue_ack_single);

void enqueue_dequeue_one_ack_deferred(benchmark::State& state) {
    Fixture f;
    f.queue.set_prefetch(64);
    std::byte payload[64] = {};
    for (auto _ : state) {
        f.queue.enqueue(f.ep, payload);
        auto job = f.queue.dequeue_one({&f.ep, 1}, std::chrono::nanoseconds(0));
        f.queue.ack_deferred(job->handle);
    }
    f.queue.flush();
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(enqueue_dequeue_one_ack_deferred);

void enqueue_dequeue_ack_batch(benchmark::State& state) {
    Fixture f;
    const std::size_t batch = std::size_t(state.range(0));
    std::vector<std::byte> payload(64);
    std::vector<std::span<const std::byte>> payloads(batch, payload);
    std::vector<JobId> ids(batch);
    std::vector<Job> jobs(batch);
    std::vector<JobHandle> handles(batch);
    for (auto _ : state) {
        f.queue.enqueue_batch(f.ep, payloads, ids);
        const std::size_t got = f.queue.dequeue({&f.ep, 1}, jobs, std::chrono::nanoseconds(0));
        for (std::size_t i = 0; i < got; ++i) handles[i] = jobs[i].handle;
        f.queue.ack(std::span<const JobHandle>(handles.data(), got));
    }
    state.SetItemsProcessed(state.iterations() * std::int64_t(batch));
}
BENCHMARK(enqueue_dequeue_ack_batch)->Arg(64);

void enqueue_only(benchmark::State& state) {
    Fixture f;
    std::byte payload[64] = {};
    std::vector<Job> jobs(256);
    std::vector<JobHandle> handles(256);
    std::size_t queued = 0;
    for (auto _ : state) {
        f.queue.enqueue(f.ep, payload);
        if (++queued == 256) {
            state.PauseTiming();
            const std::size_t got = f.queue.dequeue({&f.ep, 1}, jobs, std::chrono::nanoseconds(0));
            for (std::size_t i = 0; i < got; ++i) handles[i] = jobs[i].handle;
            f.queue.ack(std::span<const JobHandle>(handles.data(), got));
            queued = 0;
            state.ResumeTiming();
        }
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(enqueue_only);

} // namespace

BENCHMARK_MAIN();
