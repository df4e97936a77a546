// currant between two processes: one producer process, one consumer process.
//
//   single   enqueue() one job per call; the consumer takes jobs one at a time
//            (dequeue_one from a prefetch of picked jobs) and acks with
//            ack_deferred (applied every 64 jobs and before it sleeps).
//            --dependencies: each job depends on the one enqueued 64 before.
//   batch    enqueue_batch() of --batch jobs; dequeue() of --batch and ack()
//            of the whole batch.
//   drain    the consumer-behind regime, in isolation: the producer process
//            fills the arena (--jobs, at most 15/16 of --slots) and exits;
//            then the consumer process drains that backlog one job per call
//            (dequeue_one + ack_deferred, like single). Reports the drain rate:
//            what a pick costs when the jobs it pops were written long ago by
//            another CPU (docs/architecture.md, "Lane rings").
//   wakeup   the consumer is asleep in dequeue(); the producer waits until the
//            consumer is marked sleeping, stamps CLOCK_MONOTONIC into the
//            payload and enqueues one job; the consumer records now - stamp.
//   idle     the consumer blocks in dequeue() with no work for --idle-seconds;
//            reports the CPU time it used.
//   cancel   a cancel reaching the holder of a picked job (docs/cancellation.md),
//            three ways: asleep in wait_for_cancel(), asleep in dequeue(), and
//            running (a handler polling cancel_requested()). The canceller
//            process waits until the holder is asleep in the kernel (state S)
//            or spinning, stamps CLOCK_MONOTONIC and calls cancel(id) (which
//            finds the id by scanning the arena: --slots, default 1024 here);
//            the holder records now - stamp when it learns of the request.
//   wait     Queue::wait returning after the last job's ack (docs/results.md),
//            two ways: the waiter asleep in the kernel (the acker waits until
//            it is in state S), and the ack made as soon as the waiter called
//            wait() (caught while it spins, or just after it fell asleep).
//            The waiter process enqueues a job, the acker process picks it;
//            the acker stamps CLOCK_MONOTONIC and acks with an 8-byte result;
//            the waiter records now - stamp when wait() returns with it. The
//            entrypoint keeps results 60 s (arena --slots, default 1024).
//
// Prints one line per run, or JSON with --json. Each run uses a fresh queue.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <immintrin.h>
#include <vector>

#include "currant/queue.hpp"
#include "currant/shm/clock.hpp"

using namespace currant;

namespace {

struct Shared {
    std::atomic<int> consumer_ready{0};
    std::atomic<int> go{0};
    std::atomic<std::int64_t> consumer_done_ns{0};
    std::atomic<std::int64_t> start_ns{0};
    std::atomic<std::uint64_t> consumed{0};
    std::atomic<int> sample_index{0};
    std::atomic<std::int64_t> idle_cpu_ns{0};
    // cancel mode
    std::atomic<std::uint64_t> cancel_id{0};
    std::atomic<int> picked_index{0};
    std::atomic<std::int64_t> cancel_stamp{0};
    std::atomic<int> holder_pid{0};
    std::atomic<int> waker_cpu{-1}; // cancel and wait modes: the CPU the cancel or ack ran on
    std::int64_t samples[100000];
    bool same_cpu[100000];
};

Shared* map_shared() {
    void* memory = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) throw std::runtime_error("mmap failed");
    return new (memory) Shared();
}

std::int64_t cpu_ns_self() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return (std::int64_t(usage.ru_utime.tv_sec) + usage.ru_stime.tv_sec) * 1'000'000'000 +
           (std::int64_t(usage.ru_utime.tv_usec) + usage.ru_stime.tv_usec) * 1000;
}

int pin_cpu = -1; // --pin: producer on CPU 0, consumer on CPU 1

void pin_to(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

template <typename Body>
pid_t spawn(Body body, int cpu = -1) {
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
        pin_to(cpu);
        int code = 0;
        try {
            body();
        } catch (const std::exception& error) {
            std::fprintf(stderr, "child: %s\n", error.what());
            code = 1;
        }
        _exit(code);
    }
    return pid;
}

bool wait_ok(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

struct Options {
    std::string mode = "single";
    std::uint64_t jobs = 2'000'000;
    std::uint32_t batch = 64;
    std::uint32_t payload = 64;
    std::uint32_t slots = 65536;
    std::uint32_t prefetch = 64;
    std::uint32_t samples = 2000;
    double idle_seconds = 2.0;
    int runs = 1;
    bool json = false;
};

char process_state(pid_t pid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", int(pid));
    FILE* file = std::fopen(path, "r");
    if (!file) return 0;
    char buffer[512] = {};
    const std::size_t got = std::fread(buffer, 1, sizeof buffer - 1, file);
    std::fclose(file);
    const char* close_paren = std::strrchr(buffer, ')');
    return (got && close_paren && close_paren[1] == ' ') ? close_paren[2] : 0;
}

std::string queue_name() { return "bench-" + std::to_string(getpid()); }

// --concurrency-limit: the bench entrypoint's concurrency limit (0: none), to
// measure what an exact limit that never binds costs (BENCHMARKS.md, issue 8).
std::int64_t concurrency_limit = 0;
// --dedupe-keys: every job of the single mode carries its own 16-byte
// dedupe key, to measure what keys cost (docs/dedupe.md, BENCHMARKS.md).
bool dedupe_keys = false;
// --dependencies: every job of the single mode after the 64th depends on the
// job the producer enqueued 64 before it (docs/job-dependencies.md,
// BENCHMARKS.md "Job dependencies (issue 8)"): a dependency the consumer
// process already acked costs the lock-free check, one it has not yet makes
// the job wait until the consumer's ack settles it.
bool dependencies = false;
constexpr std::size_t dependency_distance = 64;

// A fresh queue with one entrypoint "bench" for one run.
Queue fresh_queue(const std::string& name, std::uint32_t slots, std::uint32_t payload_bytes) {
    Queue::remove(name);
    QueueOptions queue_options;
    queue_options.name = name;
    queue_options.slots = slots;
    queue_options.payload_bytes = payload_bytes;
    queue_options.max_entrypoints = 4;
    queue_options.max_participants = 8;
    queue_options.log_capacity = 16;
    Queue queue = Queue::create(queue_options);
    EntrypointOptions entrypoint_options;
    if (concurrency_limit > 0) entrypoint_options.concurrency_limit = concurrency_limit;
    queue.declare_entrypoint("bench", entrypoint_options);
    return queue;
}

double run_throughput(const Options& options, bool batched) {
    const std::string name = queue_name();
    Queue queue = fresh_queue(name, options.slots, options.payload);
    Shared* shared = map_shared();

    pid_t consumer = spawn([&] {
        Queue q = Queue::open(name);
        const EntrypointId ep = q.entrypoint("bench");
        q.set_prefetch(options.prefetch);
        std::vector<Job> jobs(options.batch);
        std::vector<JobHandle> handles(options.batch);
        std::uint64_t count = 0;
        shared->consumer_ready.store(1);
        while (count < options.jobs) {
            if (batched) {
                const std::size_t got = q.dequeue({&ep, 1}, jobs, std::chrono::seconds(10));
                if (got == 0) throw std::runtime_error("consumer timed out");
                for (std::size_t i = 0; i < got; ++i) handles[i] = jobs[i].handle;
                q.ack(std::span<const JobHandle>(handles.data(), got));
                count += got;
            } else {
                auto job = q.dequeue_one({&ep, 1}, std::chrono::seconds(10));
                if (!job) throw std::runtime_error("consumer timed out");
                q.ack_deferred(job->handle);
                ++count;
            }
        }
        q.flush();
        shared->consumer_done_ns.store(shm::monotonic_ns());
        shared->consumed.store(count);
    }, pin_cpu < 0 ? -1 : 1);
    pid_t producer = spawn([&] {
        Queue q = Queue::open(name);
        const EntrypointId ep = q.entrypoint("bench");
        std::vector<std::byte> payload(options.payload, std::byte{7});
        std::vector<std::span<const std::byte>> payloads(options.batch, std::span<const std::byte>(payload));
        std::vector<JobId> ids(options.batch);
        EnqueueOptions keyed;
        if (dedupe_keys) keyed.dedupe_key.emplace("key-000000000000");
        EnqueueOptions after;
        after.depends_on.reserve(1);
        std::vector<JobId> recent(dependency_distance, 0); // the last ids, a ring
        while (shared->consumer_ready.load() == 0) std::this_thread::yield();
        shared->start_ns.store(shm::monotonic_ns());
        std::uint64_t sent = 0;
        while (sent < options.jobs) {
            try {
                if (batched) {
                    const std::size_t want = std::min<std::uint64_t>(options.batch, options.jobs - sent);
                    sent += q.enqueue_batch(ep, std::span(payloads.data(), want), ids);
                } else if (dedupe_keys) {
                    // The key's digits are rewritten in place: no allocation per job.
                    std::uint64_t n = sent;
                    char* digits = keyed.dedupe_key->data() + 4;
                    for (int i = 11; i >= 0; --i, n /= 10) digits[i] = char('0' + n % 10);
                    q.enqueue(ep, payload, keyed);
                    ++sent;
                } else if (dependencies) {
                    JobId& slot = recent[sent % dependency_distance];
                    if (slot != 0) after.depends_on.assign(1, slot);
                    slot = q.enqueue(ep, payload, after);
                    ++sent;
                } else {
                    q.enqueue(ep, payload);
                    ++sent;
                }
            } catch (const Error& error) {
                if (error.code() != Errc::arena_full) throw;
                std::this_thread::yield(); // back-pressure: the consumer is behind
            }
        }
    }, pin_cpu < 0 ? -1 : 0);
    const bool ok = wait_ok(producer) & wait_ok(consumer);
    queue.close();
    Queue::remove(name);
    if (!ok || shared->consumed.load() != options.jobs) throw std::runtime_error("a benchmark process failed");
    const double seconds = double(shared->consumer_done_ns.load() - shared->start_ns.load()) / 1e9;
    munmap(shared, sizeof(Shared));
    return double(options.jobs) / seconds;
}

double run_drain(const Options& options) {
    const std::string name = queue_name();
    Queue queue = fresh_queue(name, options.slots, options.payload);
    Shared* shared = map_shared();
    const std::uint64_t jobs = std::min<std::uint64_t>(options.jobs, options.slots - options.slots / 16);
    pid_t producer = spawn([&] {
        Queue q = Queue::open(name);
        const EntrypointId ep = q.entrypoint("bench");
        std::vector<std::byte> payload(options.payload, std::byte{7});
        for (std::uint64_t sent = 0; sent < jobs; ++sent) q.enqueue(ep, payload);
    }, pin_cpu < 0 ? -1 : 0);
    bool ok = wait_ok(producer);
    pid_t consumer = spawn([&] {
        Queue q = Queue::open(name);
        const EntrypointId ep = q.entrypoint("bench");
        q.set_prefetch(options.prefetch);
        std::uint64_t count = 0;
        shared->start_ns.store(shm::monotonic_ns());
        while (count < jobs) {
            auto job = q.dequeue_one({&ep, 1}, std::chrono::seconds(10));
            if (!job) throw std::runtime_error("consumer timed out");
            q.ack_deferred(job->handle);
            ++count;
        }
        q.flush();
        shared->consumer_done_ns.store(shm::monotonic_ns());
        shared->consumed.store(count);
    }, pin_cpu < 0 ? -1 : 1);
    ok = wait_ok(consumer) && ok;
    queue.close();
    Queue::remove(name);
    if (!ok || shared->consumed.load() != jobs) throw std::runtime_error("a benchmark process failed");
    const double seconds = double(shared->consumer_done_ns.load() - shared->start_ns.load()) / 1e9;
    munmap(shared, sizeof(Shared));
    return double(jobs) / seconds;
}

struct Latency {
    double p50_us, p90_us, p99_us, max_us;
    std::size_t samples;
    // Split by where the woken process ran: on the waker's CPU (it had to
    // preempt the waker, which goes on spinning) or on the other one.
    std::size_t same_cpu;
    double same_cpu_p50_us, same_cpu_p99_us, other_cpu_p50_us, other_cpu_p99_us;
};

Latency latency_of(const Shared* shared, std::uint32_t samples) {
    std::vector<std::int64_t> values(shared->samples, shared->samples + samples), same, other;
    for (std::uint32_t i = 0; i < samples; ++i) (shared->same_cpu[i] ? same : other).push_back(shared->samples[i]);
    std::sort(values.begin(), values.end());
    std::sort(same.begin(), same.end());
    std::sort(other.begin(), other.end());
    auto at = [](const std::vector<std::int64_t>& v, double q) {
        return v.empty() ? 0.0 : double(v[std::min<std::size_t>(v.size() - 1, std::size_t(q * v.size()))]) / 1000.0;
    };
    return Latency{at(values, 0.50), at(values, 0.90), at(values, 0.99), at(values, 1.0), values.size(),
                   same.size(), at(same, 0.50), at(same, 0.99), at(other, 0.50), at(other, 0.99)};
}

std::string cpu_split_text(const Latency& latency) {
    char text[200];
    std::snprintf(text, sizeof text, "woken on the waker's CPU %zu times: p50 %.2f us, p99 %.2f us; on the other CPU: "
                  "p50 %.2f us, p99 %.2f us", latency.same_cpu, latency.same_cpu_p50_us, latency.same_cpu_p99_us,
                  latency.other_cpu_p50_us, latency.other_cpu_p99_us);
    return text;
}

Latency run_wakeup(const Options& options) {
    const std::string name = queue_name();
    Queue queue = fresh_queue(name, 1024, 64);
    Shared* shared = map_shared();
    const std::uint32_t samples = std::min<std::uint32_t>(options.samples, 100000);

    pid_t consumer = spawn([&] {
        Queue q = Queue::open(name);
        const EntrypointId ep = q.entrypoint("bench");
        Job job;
        for (std::uint32_t i = 0; i < samples; ++i) {
            if (q.dequeue({&ep, 1}, {&job, 1}, std::chrono::seconds(10)) != 1)
                throw std::runtime_error("consumer timed out");
            const std::int64_t now = shm::monotonic_ns();
            std::int64_t stamp;
            std::int32_t producer_cpu;
            std::memcpy(&stamp, job.payload.data(), sizeof stamp);
            std::memcpy(&producer_cpu, job.payload.data() + sizeof stamp, sizeof producer_cpu);
            shared->samples[i] = now - stamp;
            shared->same_cpu[i] = sched_getcpu() == producer_cpu;
            shared->sample_index.store(int(i + 1), std::memory_order_release);
            q.ack(job.handle);
        }
    });
    pid_t producer = spawn([&] {
        Queue q = Queue::open(name);
        const EntrypointId ep = q.entrypoint("bench");
        std::byte payload[64] = {};
        for (std::uint32_t i = 0; i < samples; ++i) {
            // Wait until the consumer is asleep in the kernel (its wake word
            // is set after its spin), then give it a moment to be descheduled.
            // Same protocol as floor_futex_wakeup: the waiter must be asleep
            // in the kernel (state S in /proc) before each wake.
            for (;;) {
                pid_t sleeper = 0;
                for (const auto& participant : q.participants())
                    if (participant.pid != getpid() && participant.sleeping) sleeper = participant.pid;
                std::this_thread::sleep_for(std::chrono::microseconds(200));
                if (sleeper != 0 && process_state(sleeper) == 'S') break;
            }
            const std::int64_t stamp = shm::monotonic_ns();
            const std::int32_t cpu = sched_getcpu();
            std::memcpy(payload, &stamp, sizeof stamp);
            std::memcpy(payload + sizeof stamp, &cpu, sizeof cpu);
            q.enqueue(ep, payload);
            // Like the floor's waker: stay runnable until the consumer has
            // recorded the sample, so both measure the same scheduling case.
            while (shared->sample_index.load(std::memory_order_acquire) <= int(i)) _mm_pause();
        }
    });
    const bool ok = wait_ok(producer) & wait_ok(consumer);
    queue.close();
    Queue::remove(name);
    if (!ok) throw std::runtime_error("a benchmark process failed");
    const Latency latency = latency_of(shared, samples);
    munmap(shared, sizeof(Shared));
    return latency;
}

// How the holder of the picked job waits for its cancel.
enum class CancelHolder { wait_for_cancel, dequeue, polling };
const char* cancel_holder_name(CancelHolder holder) {
    switch (holder) {
    case CancelHolder::wait_for_cancel: return "asleep in wait_for_cancel";
    case CancelHolder::dequeue: return "asleep in dequeue";
    case CancelHolder::polling: break;
    }
    return "running, polling cancel_requested";
}

Latency run_cancel(const Options& options, CancelHolder how) {
    const std::string name = queue_name();
    const std::uint32_t slots = options.slots == 65536 ? 1024 : options.slots; // 1024 unless --slots says otherwise
    Queue queue = fresh_queue(name, slots, 64);
    Shared* shared = map_shared();
    const std::uint32_t samples = std::min<std::uint32_t>(options.samples, 100000);

    pid_t holder = spawn([&] {
        Queue q = Queue::open(name);
        const EntrypointId ep = q.entrypoint("bench");
        shared->holder_pid.store(getpid());
        Job job;
        for (std::uint32_t i = 0; i < samples; ++i) {
            // A dequeue may return empty once for a cancel it reports (the
            // previous sample's, when the holder learned of it by polling).
            if (q.dequeue({&ep, 1}, {&job, 1}, std::chrono::seconds(10)) != 1 &&
                q.dequeue({&ep, 1}, {&job, 1}, std::chrono::seconds(10)) != 1)
                throw std::runtime_error("holder: no job");
            shared->cancel_id.store(job.handle.id, std::memory_order_relaxed);
            shared->picked_index.store(int(i + 1), std::memory_order_release);
            if (how == CancelHolder::wait_for_cancel) {
                if (q.wait_for_cancel({&job.handle, 1}, std::chrono::seconds(10)) != std::optional<std::size_t>(0))
                    throw std::runtime_error("holder: wait_for_cancel was not woken by the cancel");
            } else if (how == CancelHolder::dequeue) {
                Job none;
                if (q.dequeue({&ep, 1}, {&none, 1}, std::chrono::seconds(10)) != 0 || !q.cancel_requested(job.handle))
                    throw std::runtime_error("holder: dequeue did not return for the cancel");
            } else {
                const std::int64_t give_up = shm::monotonic_ns() + 10'000'000'000;
                while (!q.cancel_requested(job.handle))
                    if (shm::monotonic_ns() > give_up) throw std::runtime_error("holder: the flag never came");
            }
            const std::int64_t now = shm::monotonic_ns();
            shared->samples[i] = now - shared->cancel_stamp.load(std::memory_order_acquire);
            shared->same_cpu[i] = sched_getcpu() == shared->waker_cpu.load(std::memory_order_relaxed);
            shared->sample_index.store(int(i + 1), std::memory_order_release);
            q.ack_canceled(job.handle);
        }
    });
    pid_t canceller = spawn([&] {
        Queue q = Queue::open(name);
        const EntrypointId ep = q.entrypoint("bench");
        std::byte payload[8] = {};
        for (std::uint32_t i = 0; i < samples; ++i) {
            q.enqueue(ep, payload);
            while (shared->picked_index.load(std::memory_order_acquire) <= int(i))
                std::this_thread::sleep_for(std::chrono::microseconds(20));
            // Asleep in the kernel (or, polling, spinning) before each cancel,
            // the same protocol as the wakeup mode.
            for (;;) {
                std::this_thread::sleep_for(std::chrono::microseconds(200));
                if (how == CancelHolder::polling || process_state(shared->holder_pid.load()) == 'S') break;
            }
            shared->waker_cpu.store(sched_getcpu(), std::memory_order_relaxed);
            shared->cancel_stamp.store(shm::monotonic_ns(), std::memory_order_release);
            if (q.cancel(shared->cancel_id.load(std::memory_order_relaxed)) != CancelOutcome::requested)
                throw std::runtime_error("canceller: the job was not picked");
            while (shared->sample_index.load(std::memory_order_acquire) <= int(i)) _mm_pause();
        }
    });
    const bool ok = wait_ok(canceller) & wait_ok(holder);
    queue.close();
    Queue::remove(name);
    if (!ok) throw std::runtime_error("a benchmark process failed");
    const Latency latency = latency_of(shared, samples);
    munmap(shared, sizeof(Shared));
    return latency;
}

// How the waiter is waiting when the job is acked.
enum class Waiter { asleep, calling };
const char* waiter_name(Waiter waiter) {
    return waiter == Waiter::asleep ? "asleep in wait" : "acked as wait is called";
}

Latency run_wait(const Options& options, Waiter how) {
    const std::string name = queue_name();
    const std::uint32_t slots = options.slots == 65536 ? 1024 : options.slots;
    Queue queue = fresh_queue(name, slots, 64);
    EntrypointOptions kept;
    kept.result_retention = std::chrono::seconds(60);
    queue.declare_entrypoint("bench", kept);
    Shared* shared = map_shared();
    const std::uint32_t samples = std::min<std::uint32_t>(options.samples, 100000);

    pid_t waiter = spawn([&] {
        Queue q = Queue::open(name);
        const EntrypointId ep = q.entrypoint("bench");
        shared->holder_pid.store(getpid());
        std::byte payload[8] = {};
        for (std::uint32_t i = 0; i < samples; ++i) {
            const JobId id = q.enqueue(ep, payload);
            shared->cancel_id.store(id, std::memory_order_relaxed);
            shared->picked_index.store(int(i + 1), std::memory_order_release); // the acker may go
            const auto outcome = q.wait({&id, 1}, std::chrono::seconds(10));
            const std::int64_t now = shm::monotonic_ns();
            if (!outcome[0].finished || !outcome[0].result || outcome[0].result->size() != 8)
                throw std::runtime_error("waiter: wait did not return the result");
            shared->samples[i] = now - shared->cancel_stamp.load(std::memory_order_acquire);
            shared->same_cpu[i] = sched_getcpu() == shared->waker_cpu.load(std::memory_order_relaxed);
            shared->sample_index.store(int(i + 1), std::memory_order_release);
        }
    });
    pid_t acker = spawn([&] {
        Queue q = Queue::open(name);
        const EntrypointId ep = q.entrypoint("bench");
        const std::byte result[8] = {};
        Job job;
        for (std::uint32_t i = 0; i < samples; ++i) {
            while (shared->picked_index.load(std::memory_order_acquire) <= int(i)) _mm_pause();
            if (q.dequeue({&ep, 1}, {&job, 1}, std::chrono::seconds(10)) != 1)
                throw std::runtime_error("acker: no job");
            if (how == Waiter::asleep)
                for (;;) {
                    std::this_thread::sleep_for(std::chrono::microseconds(200));
                    if (process_state(shared->holder_pid.load()) == 'S') break;
                }
            shared->waker_cpu.store(sched_getcpu(), std::memory_order_relaxed);
            shared->cancel_stamp.store(shm::monotonic_ns(), std::memory_order_release);
            q.ack(job.handle, result);
            while (shared->sample_index.load(std::memory_order_acquire) <= int(i)) _mm_pause();
        }
    });
    const bool ok = wait_ok(acker) & wait_ok(waiter);
    queue.close();
    Queue::remove(name);
    if (!ok) throw std::runtime_error("a benchmark process failed");
    const Latency latency = latency_of(shared, samples);
    munmap(shared, sizeof(Shared));
    return latency;
}

double run_idle(const Options& options) {
    const std::string name = queue_name();
    Queue queue = fresh_queue(name, 1024, 256);
    Shared* shared = map_shared();
    pid_t consumer = spawn([&] {
        Queue q = Queue::open(name);
        const EntrypointId ep = q.entrypoint("bench");
        Job job;
        const std::int64_t before = cpu_ns_self();
        q.dequeue({&ep, 1}, {&job, 1}, std::chrono::nanoseconds(std::int64_t(options.idle_seconds * 1e9)));
        shared->idle_cpu_ns.store(cpu_ns_self() - before);
    });
    const bool ok = wait_ok(consumer);
    queue.close();
    Queue::remove(name);
    if (!ok) throw std::runtime_error("idle consumer failed");
    const double cpu_seconds = double(shared->idle_cpu_ns.load()) / 1e9;
    munmap(shared, sizeof(Shared));
    return cpu_seconds;
}

} // namespace

int main(int argc, char** argv) {
    Options options;
    CLI::App app{"currant two-process benchmark (one producer process, one consumer process)"};
    app.add_option("--mode", options.mode, "single | batch | drain | wakeup | idle | cancel | wait")
        ->check(CLI::IsMember({"single", "batch", "drain", "wakeup", "idle", "cancel", "wait"}));
    app.add_option("--jobs", options.jobs, "jobs per run (single, batch)");
    app.add_option("--batch", options.batch, "batch size (batch mode)")->check(CLI::Range(1, 4096));
    app.add_option("--payload", options.payload, "payload bytes")->check(CLI::Range(8, 1 << 20));
    app.add_option("--slots", options.slots, "arena slots");
    app.add_option("--prefetch", options.prefetch, "consumer prefetch (single mode)")->check(CLI::Range(1, 1024));
    app.add_option("--samples", options.samples, "wake-ups, cancels or waits to measure (wakeup, cancel, wait)");
    app.add_option("--idle-seconds", options.idle_seconds, "idle wait (idle mode)");
    app.add_option("--runs", options.runs, "repetitions")->check(CLI::Range(1, 100));
    app.add_flag("--json", options.json, "print JSON");
    app.add_option("--concurrency-limit", concurrency_limit, "concurrency limit of the bench entrypoint (0: none)")
        ->check(CLI::Range(std::int64_t(0), std::int64_t(4'000'000'000)));
    app.add_flag("--dedupe-keys", dedupe_keys, "single mode: give every job its own dedupe key");
    app.add_flag("--dependencies", dependencies,
                 "single mode: every job depends on the one enqueued 64 before it");
    bool pin = false;
    app.add_flag("--pin", pin, "pin the producer to CPU 0 and the consumer to CPU 1 (single, batch, drain)");
    CLI11_PARSE(app, argc, argv);
    if (pin) pin_cpu = 0;
    try {
        for (int run = 0; run < options.runs; ++run) {
            if (options.mode == "single" || options.mode == "batch") {
                const bool batched = options.mode == "batch";
                const double rate = run_throughput(options, batched);
                if (options.json)
                    std::printf("{\"bench\":\"currant_two_process\",\"mode\":\"%s\",\"batch\":%u,\"payload\":%u,"
                                "\"jobs\":%llu,\"pinned\":%s,\"dependencies\":%s,\"jobs_per_second\":%.0f}\n",
                                options.mode.c_str(), batched ? options.batch : 1, options.payload,
                                (unsigned long long)options.jobs, pin ? "true" : "false",
                                dependencies && !batched ? "true" : "false", rate);
                else
                    std::printf("currant two-process %s%s%s%s: %llu jobs of %u bytes: %.0f jobs/s (enqueue + dequeue + ack)\n",
                                options.mode.c_str(), batched ? (" " + std::to_string(options.batch)).c_str() : "",
                                pin ? " pinned" : "", dependencies && !batched ? " dependencies" : "", (unsigned long long)options.jobs, options.payload, rate);
            } else if (options.mode == "drain") {
                const double rate = run_drain(options);
                if (options.json)
                    std::printf("{\"bench\":\"currant_two_process\",\"mode\":\"drain\",\"payload\":%u,"
                                "\"slots\":%u,\"pinned\":%s,\"jobs_per_second\":%.0f}\n",
                                options.payload, options.slots, pin ? "true" : "false", rate);
                else
                    std::printf("currant two-process drain%s: a backlog of %llu jobs of %u bytes: %.0f jobs/s "
                                "(dequeue_one + ack_deferred)\n",
                                pin ? " pinned" : "",
                                (unsigned long long)std::min<std::uint64_t>(options.jobs, options.slots - options.slots / 16),
                                options.payload, rate);
            } else if (options.mode == "wakeup") {
                const Latency latency = run_wakeup(options);
                if (options.json)
                    std::printf("{\"bench\":\"currant_wakeup\",\"samples\":%zu,\"p50_us\":%.2f,\"p90_us\":%.2f,"
                                "\"p99_us\":%.2f,\"max_us\":%.2f,\"same_cpu_wakes\":%zu,\"same_cpu_p50_us\":%.2f,"
                                "\"same_cpu_p99_us\":%.2f,\"other_cpu_p50_us\":%.2f,\"other_cpu_p99_us\":%.2f}\n",
                                latency.samples, latency.p50_us, latency.p90_us, latency.p99_us, latency.max_us,
                                latency.same_cpu, latency.same_cpu_p50_us, latency.same_cpu_p99_us,
                                latency.other_cpu_p50_us, latency.other_cpu_p99_us);
                else
                    std::printf("currant wake-up of a sleeping consumer: %zu samples: p50 %.2f us, p90 %.2f us, "
                                "p99 %.2f us, max %.2f us (%s)\n",
                                latency.samples, latency.p50_us, latency.p90_us, latency.p99_us, latency.max_us,
                                cpu_split_text(latency).c_str());
            } else if (options.mode == "cancel") {
                for (CancelHolder how : {CancelHolder::wait_for_cancel, CancelHolder::dequeue, CancelHolder::polling}) {
                    const Latency latency = run_cancel(options, how);
                    if (options.json)
                        std::printf("{\"bench\":\"currant_cancel\",\"holder\":\"%s\",\"samples\":%zu,\"p50_us\":%.2f,"
                                    "\"p90_us\":%.2f,\"p99_us\":%.2f,\"max_us\":%.2f,\"same_cpu_wakes\":%zu,"
                                    "\"same_cpu_p99_us\":%.2f,\"other_cpu_p99_us\":%.2f}\n",
                                    cancel_holder_name(how), latency.samples, latency.p50_us, latency.p90_us,
                                    latency.p99_us, latency.max_us, latency.same_cpu, latency.same_cpu_p99_us,
                                    latency.other_cpu_p99_us);
                    else
                        std::printf("currant cancel reaching a holder %s: %zu samples: p50 %.2f us, p90 %.2f us, "
                                    "p99 %.2f us, max %.2f us (cancel() call to the holder knowing; %s)\n",
                                    cancel_holder_name(how), latency.samples, latency.p50_us, latency.p90_us,
                                    latency.p99_us, latency.max_us, cpu_split_text(latency).c_str());
                    std::fflush(stdout);
                }
            } else if (options.mode == "wait") {
                for (Waiter how : {Waiter::asleep, Waiter::calling}) {
                    const Latency latency = run_wait(options, how);
                    if (options.json)
                        std::printf("{\"bench\":\"currant_wait\",\"waiter\":\"%s\",\"samples\":%zu,\"p50_us\":%.2f,"
                                    "\"p90_us\":%.2f,\"p99_us\":%.2f,\"max_us\":%.2f,\"same_cpu_wakes\":%zu,"
                                    "\"same_cpu_p99_us\":%.2f,\"other_cpu_p99_us\":%.2f}\n",
                                    waiter_name(how), latency.samples, latency.p50_us, latency.p90_us,
                                    latency.p99_us, latency.max_us, latency.same_cpu, latency.same_cpu_p99_us,
                                    latency.other_cpu_p99_us);
                    else
                        std::printf("currant wait returning after the ack, %s: %zu samples: p50 %.2f us, "
                                    "p90 %.2f us, p99 %.2f us, max %.2f us (ack() call to wait() returning; %s)\n",
                                    waiter_name(how), latency.samples, latency.p50_us, latency.p90_us,
                                    latency.p99_us, latency.max_us, cpu_split_text(latency).c_str());
                    std::fflush(stdout);
                }
            } else {
                const double cpu = run_idle(options);
                if (options.json)
                    std::printf("{\"bench\":\"currant_idle\",\"seconds\":%.1f,\"cpu_seconds\":%.6f}\n",
                                options.idle_seconds, cpu);
                else
                    std::printf("currant idle consumer: %.1f s blocked in dequeue used %.6f s of CPU\n",
                                options.idle_seconds, cpu);
            }
            std::fflush(stdout);
        }
    } catch (const std::exception& error) {
        std::fprintf(stderr, "currant-two-process: %s\n", error.what());
        return 1;
    }
    return 0;
}
