// Single-process micro-benchmarks of the queue operations (Google Benchmark).
// They measure the cost of each call without a second process bouncing the
// cache lines; the two-process figures come from currant_two_process.
#include <benchmark/benchmark.h>
#include <unistd.h>
#include <vector>

#include "currant/queue.hpp"

using namespace currant;

namespace {

// Each benchmark runs three times: limited:0 plain; limited:1 with a
// concurrency limit, and limited:2 with a concurrency and a rate limit, both
// set far above what the loop reaches, so that the limits' bookkeeping runs
// on every pick and ack but never binds (BENCHMARKS.md, docs/limits.md).
EntrypointOptions bench_options(std::int64_t limited) {
    EntrypointOptions options;
    if (limited >= 1) options.concurrency_limit = 1'000'000;
    if (limited >= 2) {
        options.rate_limit = 1e9;
        options.rate_burst = 1'000'000;
    }
    return options;
}

struct Fixture {
    std::string name = "micro-" + std::to_string(getpid());
    Queue queue;
    EntrypointId ep;
    explicit Fixture(std::int64_t limited = 0) : queue(make()), ep(queue.declare_entrypoint("bench", bench_options(limited))) {}
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
    Fixture f(state.range(0));
    std::byte payload[64] = {};
    Job job;
    for (auto _ : state) {
        f.queue.enqueue(f.ep, payload);
        f.queue.dequeue({&f.ep, 1}, {&job, 1}, std::chrono::nanoseconds(0));
        f.queue.ack(job.handle);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(enqueue_dequeue_ack_single)->ArgName("limited")->Arg(0)->Arg(1)->Arg(2);

// The cost of a dedupe key (docs/dedupe.md): keyed:0 is the plain loop,
// keyed:1 gives every job its own 16-byte key, so each enqueue probes and
// claims an index entry and each ack leaves a stale one for the next insert
// to delete. The key text is rewritten in place, so no allocation is timed.
void enqueue_dequeue_ack_keyed(benchmark::State& state) {
    Fixture f;
    std::byte payload[64] = {};
    EnqueueOptions options;
    if (state.range(0) != 0) options.dedupe_key.emplace("key-000000000000");
    std::uint64_t counter = 0;
    Job job;
    for (auto _ : state) {
        if (options.dedupe_key) {
            std::uint64_t n = ++counter;
            char* digits = options.dedupe_key->data() + 4;
            for (int i = 11; i >= 0; --i, n /= 10) digits[i] = char('0' + n % 10);
        }
        f.queue.enqueue(f.ep, payload, options);
        f.queue.dequeue({&f.ep, 1}, {&job, 1}, std::chrono::nanoseconds(0));
        f.queue.ack(job.handle);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(enqueue_dequeue_ack_keyed)->ArgName("keyed")->Arg(0)->Arg(1);

// The cost of dependencies (docs/job-dependencies.md), items are jobs:
// deps:0 is the plain loop; deps:1 makes each job depend on the previous
// one, already successful (no wait: a lookup and the lock-free check);
// deps:2 enqueues a pair whose second job waits for the first, so each ack
// of a first job settles and releases its partner; deps:3 is deps:2 with
// 1000 unrelated jobs waiting all along.
void enqueue_dequeue_ack_dependent(benchmark::State& state) {
    Fixture f;
    std::byte payload[64] = {};
    EnqueueOptions after;
    after.depends_on.reserve(1);
    JobId previous = 0;
    Job job;
    std::int64_t jobs = 0;
    const std::int64_t mode = state.range(0);
    if (mode == 3) {
        // deps:3 is deps:2 while 1000 other jobs wait (for a job in another
        // entrypoint that never runs): what a settle pays for jobs that the
        // finished one does not concern.
        const EntrypointId blocked = f.queue.declare_entrypoint("blocked");
        EnqueueOptions on_blocker;
        on_blocker.depends_on.assign(1, f.queue.enqueue(blocked, payload));
        for (int i = 0; i < 1000; ++i) f.queue.enqueue(blocked, payload, on_blocker);
    }
    for (auto _ : state) {
        if (mode >= 2) {
            after.depends_on.assign(1, f.queue.enqueue(f.ep, payload));
            f.queue.enqueue(f.ep, payload, after);
            for (int i = 0; i < 2; ++i) {
                f.queue.dequeue({&f.ep, 1}, {&job, 1}, std::chrono::nanoseconds(0));
                f.queue.ack(job.handle);
            }
            jobs += 2;
            continue;
        }
        if (mode == 1 && previous != 0) after.depends_on.assign(1, previous);
        previous = f.queue.enqueue(f.ep, payload, after);
        f.queue.dequeue({&f.ep, 1}, {&job, 1}, std::chrono::nanoseconds(0));
        f.queue.ack(job.handle);
        ++jobs;
    }
    state.SetItemsProcessed(jobs);
}
BENCHMARK(enqueue_dequeue_ack_dependent)->ArgName("deps")->Arg(0)->Arg(1)->Arg(2)->Arg(3);

void enqueue_dequeue_one_ack_deferred(benchmark::State& state) {
    Fixture f(state.range(0));
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
BENCHMARK(enqueue_dequeue_one_ack_deferred)->ArgName("limited")->Arg(0)->Arg(1)->Arg(2);

void enqueue_dequeue_ack_batch(benchmark::State& state) {
    Fixture f(state.range(1));
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
BENCHMARK(enqueue_dequeue_ack_batch)->ArgNames({"batch", "limited"})->Args({64, 0})->Args({64, 1})->Args({64, 2});

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
