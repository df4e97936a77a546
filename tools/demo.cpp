// `currant demo`: producers and consumers in separate processes share one
// queue; the demo checks that every job was consumed exactly once.
//
// Layout of the run:
//   parent     creates a fresh queue with entrypoints "email", "thumbnail" and
//              "control", closes it, forks the children, waits for the
//              producers, enqueues one "stop" job per consumer on "control",
//              waits for the consumers, checks, prints, removes the queue.
//   producer   opens the queue itself and enqueues its share of the job
//              sequence numbers, chunk by chunk: every other chunk with
//              enqueue_batch, the rest one by one; the chunk decides the
//              entrypoint and the priority. A full arena is back-pressure: it
//              waits briefly and retries.
//   consumer   opens the queue itself, dequeues batches from all three
//              entrypoints, checks each payload, sets the job's bit in a
//              shared bitmap (a bit already set is a duplicate) and acks the
//              batch. On a stop job it drains email and thumbnail without
//              waiting and exits; extra stop jobs it picked are passed on.
// The bitmap, the counters and one report per child live in a MAP_SHARED
// anonymous mapping made before fork. Each report is written only by its
// child and read by the parent after that child exited.
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <iostream>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "cli.hpp"

namespace currant::cli {

namespace {

using namespace std::chrono_literals;

constexpr std::size_t kBatch = 64;                    // jobs per chunk, enqueue_batch and dequeue
constexpr std::array<std::int32_t, 3> kPriorities = {0, 1, 10};
constexpr auto kStallLimit = 30s;                     // no progress this long: the demo gives up
constexpr std::uint32_t kMaxChildren = 64;            // per role

struct DemoArgs {
    std::string name = "currant-demo";
    std::uint64_t jobs = 100'000;
    std::uint32_t producers = 2;
    std::uint32_t consumers = 2;
    std::string durability = "memory";
    bool existing = false; // use a queue that exists (e.g. created by currantd) and keep it
};

enum class Kind { email, thumbnail };

// The chunk of a sequence number decides its entrypoint, priority and
// whether it is enqueued with enqueue_batch.
std::uint64_t chunk_of(std::uint64_t seq) { return seq / kBatch; }
Kind kind_of(std::uint64_t seq) { return chunk_of(seq) % 3 == 2 ? Kind::thumbnail : Kind::email; }
std::int32_t priority_of(std::uint64_t seq) { return kPriorities[(chunk_of(seq) / 3) % kPriorities.size()]; }
bool batched(std::uint64_t seq) { return chunk_of(seq) % 2 == 0; }
std::string_view kind_name(Kind kind) { return kind == Kind::email ? "email" : "thumbnail"; }

std::string make_payload(std::uint64_t seq) {
    const std::string n = std::to_string(seq);
    return kind_of(seq) == Kind::email ? n + " email to user" + n + "@example.com"
                                       : n + " thumbnail of /photos/" + n + ".jpg";
}

// The sequence number a payload carries, if it is well formed and of the
// expected kind; otherwise nullopt.
std::optional<std::uint64_t> parse_payload(std::string_view text, std::uint64_t jobs) {
    std::uint64_t seq = 0;
    auto [next, error] = std::from_chars(text.data(), text.data() + text.size(), seq, 10);
    if (error != std::errc{} || seq >= jobs || next == text.data() + text.size() || *next != ' ') {
        return std::nullopt;
    }
    if (!text.substr(static_cast<std::size_t>(next + 1 - text.data())).starts_with(kind_name(kind_of(seq)))) {
        return std::nullopt;
    }
    return seq;
}

std::int64_t monotonic_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

enum class Role : std::uint32_t { producer, consumer };

// What one child did. Written only by that child; read by the parent after
// the child exited (waitpid orders the two).
struct Report {
    pid_t pid;
    Role role;
    std::uint64_t jobs;
    std::uint64_t email;
    std::uint64_t thumbnail;
    std::uint64_t arena_full_waits; // producer: enqueues that met a full arena and retried
    std::int64_t first_ns;          // monotonic: first job handled (0: none)
    std::int64_t last_ns;           // monotonic: last job handled
    char error[240];                // why the child failed, if it did
};

// Counters every child updates with relaxed atomics; the parent reads them
// while children run (watchdog progress) and after they exited (the check).
struct Counters {
    std::atomic<std::uint64_t> enqueued;
    std::atomic<std::uint64_t> consumed;
    std::atomic<std::uint64_t> duplicates;   // a job whose bit was already set
    std::atomic<std::uint64_t> bad_payloads; // malformed, out of range or on the wrong entrypoint
    std::atomic<std::uint64_t> unacked;      // handles that ack() refused
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared counters must be lock-free");
static_assert(std::is_trivially_copyable_v<Report>);

// The MAP_SHARED anonymous mapping: Counters, then one Report per child,
// then one bit per job. Zero-filled by the kernel.
class SharedMemory {
public:
    SharedMemory(std::uint32_t children, std::uint64_t jobs)
        : words_((jobs + 63) / 64),
          bytes_(sizeof(Counters) + children * sizeof(Report) + words_ * sizeof(std::uint64_t)) {
        base_ = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (base_ == MAP_FAILED) {
            throw_system_error("mmap", errno);
        }
        counters_ = new (base_) Counters{};
        reports_ = reinterpret_cast<Report*>(static_cast<char*>(base_) + sizeof(Counters));
        bitmap_ = reinterpret_cast<std::atomic<std::uint64_t>*>(reinterpret_cast<char*>(reports_ + children));
        for (std::uint64_t i = 0; i < words_; ++i) {
            new (&bitmap_[i]) std::atomic<std::uint64_t>(0);
        }
    }
    ~SharedMemory() { munmap(base_, bytes_); }
    SharedMemory(const SharedMemory&) = delete;
    SharedMemory& operator=(const SharedMemory&) = delete;

    Counters& counters() { return *counters_; }
    Report& report(std::uint32_t child) { return reports_[child]; }

    // Marks seq consumed; false if it already was.
    bool mark(std::uint64_t seq) {
        const std::uint64_t bit = std::uint64_t(1) << (seq % 64);
        return (bitmap_[seq / 64].fetch_or(bit, std::memory_order_relaxed) & bit) == 0;
    }
    std::uint64_t marked() const {
        std::uint64_t total = 0;
        for (std::uint64_t i = 0; i < words_; ++i) {
            total += static_cast<std::uint64_t>(std::popcount(bitmap_[i].load(std::memory_order_relaxed)));
        }
        return total;
    }

private:
    std::uint64_t words_;
    std::size_t bytes_;
    void* base_ = nullptr;
    Counters* counters_ = nullptr;
    Report* reports_ = nullptr;
    std::atomic<std::uint64_t>* bitmap_ = nullptr;
};

// Calls enqueue until it does not meet a full arena (back-pressure: the
// consumers free slots), counting the waits.
template <typename Enqueue>
auto with_backpressure(Report& report, Enqueue&& enqueue) {
    for (;;) {
        try {
            return enqueue();
        } catch (const Error& error) {
            if (error.code() != Errc::arena_full) throw;
            ++report.arena_full_waits;
            std::this_thread::sleep_for(100us);
        }
    }
}

void run_producer(const DemoArgs& args, std::uint32_t index, Report& report, Counters& counters) {
    Queue queue = Queue::open(args.name);
    const EntrypointId email = queue.entrypoint("email");
    const EntrypointId thumbnail = queue.entrypoint("thumbnail");
    const std::uint64_t begin = args.jobs * index / args.producers;
    const std::uint64_t end = args.jobs * (index + 1) / args.producers;

    std::vector<std::string> texts;
    std::vector<std::span<const std::byte>> payloads;
    std::array<JobId, kBatch> ids{};
    report.first_ns = monotonic_ns();
    for (std::uint64_t first = begin; first < end;) {
        const std::uint64_t last = std::min(end, (chunk_of(first) + 1) * kBatch); // one chunk
        const std::size_t n = static_cast<std::size_t>(last - first);
        const Kind kind = kind_of(first);
        const EntrypointId entrypoint = kind == Kind::email ? email : thumbnail;
        EnqueueOptions options;
        options.priority = priority_of(first);
        // Mirrored: ride out a mirror that falls behind (producers wait in
        // the kernel); a daemon gone for this long fails the demo.
        options.log_wait = std::chrono::seconds(30);

        if (batched(first)) {
            texts.clear();
            payloads.clear();
            for (std::uint64_t seq = first; seq < last; ++seq) texts.push_back(make_payload(seq));
            for (const auto& text : texts) payloads.push_back(as_payload(text));
            for (std::size_t done = 0; done < n;) {
                // A short batch stopped at a failure; the next call reports it.
                done += with_backpressure(report, [&] {
                    return queue.enqueue_batch(entrypoint, std::span(payloads).subspan(done),
                                               std::span(ids).subspan(done, n - done), options);
                });
            }
        } else {
            for (std::uint64_t seq = first; seq < last; ++seq) {
                const std::string text = make_payload(seq);
                with_backpressure(report, [&] { return queue.enqueue(entrypoint, as_payload(text), options); });
            }
        }
        report.jobs += n;
        (kind == Kind::email ? report.email : report.thumbnail) += n;
        counters.enqueued.fetch_add(n, std::memory_order_relaxed);
        first = last;
    }
    report.last_ns = monotonic_ns();
}

void run_consumer(const DemoArgs& args, Report& report, SharedMemory& shared) {
    Counters& counters = shared.counters();
    Queue queue = Queue::open(args.name);
    const EntrypointId email = queue.entrypoint("email");
    const EntrypointId thumbnail = queue.entrypoint("thumbnail");
    const EntrypointId control = queue.entrypoint("control");
    const std::array<EntrypointId, 3> everything = {email, thumbnail, control};
    const std::array<EntrypointId, 2> work = {email, thumbnail};

    std::array<Job, kBatch> jobs{};
    std::array<JobHandle, kBatch> handles{};
    bool stopping = false;
    for (;;) {
        // Before a stop: wait for work (a timeout just loops). After it: all
        // jobs were enqueued, so take what is left without waiting.
        const std::span<const EntrypointId> from = stopping ? std::span<const EntrypointId>(work)
                                                            : std::span<const EntrypointId>(everything);
        const std::size_t n = queue.dequeue(from, jobs, stopping ? 0ns : std::chrono::nanoseconds(1s));
        if (n == 0) {
            if (stopping) break;
            continue;
        }
        const std::int64_t picked_at = monotonic_ns();

        std::uint32_t stops = 0;
        std::uint64_t handled = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const Job& job = jobs[i];
            handles[i] = job.handle;
            if (job.entrypoint == control) {
                ++stops;
                continue;
            }
            ++handled;
            (job.entrypoint == email ? report.email : report.thumbnail) += 1;
            const auto seq = parse_payload(as_text(job.payload), args.jobs);
            const EntrypointId expected = seq && kind_of(*seq) == Kind::email ? email : thumbnail;
            if (!seq || job.entrypoint != expected) {
                counters.bad_payloads.fetch_add(1, std::memory_order_relaxed);
            } else if (!shared.mark(*seq)) {
                counters.duplicates.fetch_add(1, std::memory_order_relaxed);
            }
        }
        const std::size_t acked = queue.ack(std::span<const JobHandle>(handles.data(), n));
        if (acked < n) counters.unacked.fetch_add(n - acked, std::memory_order_relaxed);
        if (handled > 0) {
            if (report.jobs == 0) report.first_ns = picked_at;
            report.jobs += handled;
            report.last_ns = monotonic_ns();
            counters.consumed.fetch_add(handled, std::memory_order_relaxed);
        }
        if (stops > 0) {
            stopping = true;
            for (std::uint32_t extra = 1; extra < stops; ++extra) {
                queue.enqueue(control, as_payload("stop")); // another consumer's stop
            }
        }
    }
}

struct Child {
    pid_t pid = 0;
    std::uint32_t report = 0;
    bool done = false;
    int status = 0;
};

// Kills and reaps every child not yet reaped (error paths).
struct ChildGuard {
    std::vector<Child> children;
    ~ChildGuard() {
        for (auto& child : children) {
            if (!child.done) {
                kill(child.pid, SIGKILL);
                waitpid(child.pid, &child.status, 0);
                child.done = true;
            }
        }
    }
};

// Removes the demo queue when the demo ends, however it ends.
struct QueueRemover {
    // A constructor, not aggregate initialisation: clang 14 (the TSan build)
    // has no parenthesised aggregate initialisation for optional::emplace.
    explicit QueueRemover(std::string queue_name) : name(std::move(queue_name)) {}
    std::string name;
    ~QueueRemover() {
        try {
            Queue::remove(name);
        } catch (const std::exception& error) {
            std::cerr << "currant: demo: could not remove queue '" << name << "': " << error.what() << '\n';
        }
    }
};

// Waits (SIGCHLD blocked in `sigchld`) until every child in [first, last) of
// guard.children exited. If the counters do not move for kStallLimit, kills
// them and returns false.
bool wait_for(ChildGuard& guard, std::size_t first, std::size_t last, Counters& counters,
              const sigset_t& sigchld) {
    auto progress = [&] {
        return counters.enqueued.load(std::memory_order_relaxed) + counters.consumed.load(std::memory_order_relaxed);
    };
    std::uint64_t seen = progress();
    auto moved_at = std::chrono::steady_clock::now();
    for (;;) {
        bool running = false;
        for (std::size_t i = first; i < last; ++i) {
            Child& child = guard.children[i];
            if (!child.done && waitpid(child.pid, &child.status, WNOHANG) == child.pid) child.done = true;
            running = running || !child.done;
        }
        if (!running) return true;
        if (progress() != seen) {
            seen = progress();
            moved_at = std::chrono::steady_clock::now();
        } else if (std::chrono::steady_clock::now() - moved_at > kStallLimit) {
            for (std::size_t i = first; i < last; ++i) {
                Child& child = guard.children[i];
                if (!child.done) {
                    kill(child.pid, SIGKILL);
                    waitpid(child.pid, &child.status, 0);
                    child.done = true;
                }
            }
            return false;
        }
        const timespec tick{1, 0}; // wakes at a child's exit, or once a second for the watchdog
        sigtimedwait(&sigchld, nullptr, &tick);
    }
}

std::string describe_exit(int status) {
    if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
    return "status " + std::to_string(status);
}

std::string per_second(std::uint64_t jobs, std::int64_t ns) {
    return ns > 0 ? fixed(static_cast<double>(jobs) * 1e9 / static_cast<double>(ns), 0) : "-";
}

int run_demo(const DemoArgs& args) {
    if (args.jobs == 0 || args.jobs > 1'000'000'000) {
        throw CLI::ValidationError("--jobs", "must be from 1 to 1000000000");
    }
    if (args.producers == 0 || args.producers > kMaxChildren) {
        throw CLI::ValidationError("--producers", "must be from 1 to " + std::to_string(kMaxChildren));
    }
    if (args.consumers == 0 || args.consumers > kMaxChildren) {
        throw CLI::ValidationError("--consumers", "must be from 1 to " + std::to_string(kMaxChildren));
    }

    EntrypointOptions entrypoint;
    entrypoint.durability = parse_durability_option(args.durability, "--durability");
    QueueInfo info;
    std::optional<QueueRemover> remover;
    std::uint64_t baseline_enqueued = 0, baseline_successful = 0;
    if (args.existing) {
        Queue queue = Queue::open(args.name);
        queue.declare_entrypoint("email", entrypoint);
        queue.declare_entrypoint("thumbnail", entrypoint);
        queue.declare_entrypoint("control", entrypoint);
        info = queue.info();
        for (const auto& entry : queue.stats()) { // an existing queue's counters: only this run's count
            if (entry.name == "control") continue;
            baseline_enqueued += entry.enqueued;
            baseline_successful += entry.successful;
        }
    } else {
        if (Queue::remove(args.name)) {
            std::cout << "removed a stale queue named '" << args.name << "'\n";
        }
        QueueOptions options;
        options.name = args.name;
        options.slots = 65536;
        options.payload_bytes = 64;
        options.max_entrypoints = 8;
        options.log_capacity = 65536;
        Queue queue = Queue::create(options);
        queue.declare_entrypoint("email", entrypoint);
        queue.declare_entrypoint("thumbnail", entrypoint);
        queue.declare_entrypoint("control", entrypoint);
        info = queue.info();
        remover.emplace(args.name); // in place: a moved-from temporary would remove the queue now
    } // closed before fork: a Queue is never used across fork

    std::cout << "demo: queue '" << args.name << "' (" << info.slots << " slots, segment "
              << info.segment_bytes / 1024 << " KiB): " << args.jobs << " jobs, " << args.producers
              << " producer(s), " << args.consumers << " consumer(s)" << std::endl;

    const std::uint32_t children = args.producers + args.consumers;
    SharedMemory shared(children, args.jobs);
    Counters& counters = shared.counters();

    sigset_t sigchld, old_mask;
    sigemptyset(&sigchld);
    sigaddset(&sigchld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &sigchld, &old_mask);
    struct MaskRestorer {
        sigset_t mask;
        ~MaskRestorer() { sigprocmask(SIG_SETMASK, &mask, nullptr); }
    } restore_mask{old_mask};

    const pid_t parent = getpid();
    ChildGuard guard;
    const auto started = std::chrono::steady_clock::now();
    std::cout.flush();
    std::cerr.flush();
    for (std::uint32_t i = 0; i < children; ++i) {
        const bool producer = i < args.producers;
        Report& report = shared.report(i);
        report.role = producer ? Role::producer : Role::consumer;
        const pid_t pid = fork();
        if (pid < 0) {
            throw_system_error("fork", errno);
        }
        if (pid == 0) {
            // Child: dies with the parent; never returns into main().
            sigprocmask(SIG_SETMASK, &old_mask, nullptr);
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(1);
            report.pid = getpid();
            int status = 0;
            try {
                if (producer) {
                    run_producer(args, i, report, counters);
                } else {
                    run_consumer(args, report, shared);
                }
            } catch (const std::exception& error) {
                std::strncpy(report.error, error.what(), sizeof report.error - 1);
                status = 1;
            }
            _exit(status);
        }
        guard.children.push_back({pid, i});
    }

    std::vector<std::string> problems;
    if (!wait_for(guard, 0, args.producers, counters, sigchld)) {
        problems.push_back("producers made no progress for " + std::to_string(kStallLimit.count()) +
                           " s and were killed");
    }
    {
        // All jobs are in; tell each consumer to finish what is left and stop.
        Queue queue = Queue::open(args.name);
        const EntrypointId control = queue.entrypoint("control");
        for (std::uint32_t i = 0; i < args.consumers; ++i) {
            queue.enqueue(control, as_payload("stop"));
        }
    }
    if (!wait_for(guard, args.producers, children, counters, sigchld)) {
        problems.push_back("consumers made no progress for " + std::to_string(kStallLimit.count()) +
                           " s and were killed");
    }
    const std::int64_t wall_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started).count();

    // What each process did.
    std::vector<std::vector<std::string>> rows;
    std::uint64_t produced = 0;
    std::uint64_t consumed = 0;
    for (const Child& child : guard.children) {
        const Report& report = shared.report(child.report);
        const bool producer = report.role == Role::producer;
        (producer ? produced : consumed) += report.jobs;
        if (!WIFEXITED(child.status) || WEXITSTATUS(child.status) != 0) {
            const std::string why = report.error[0] != '\0' ? std::string(report.error) : describe_exit(child.status);
            problems.push_back(std::string(producer ? "producer" : "consumer") + " " + std::to_string(child.pid) +
                               " failed: " + why);
        }
        const std::int64_t busy_ns = report.last_ns - report.first_ns;
        rows.push_back({std::to_string(child.pid), producer ? "producer" : "consumer", std::to_string(report.jobs),
                        std::to_string(report.email), std::to_string(report.thumbnail),
                        report.jobs > 0 ? fixed(static_cast<double>(busy_ns) / 1e9, 3) : "-",
                        report.jobs > 0 ? per_second(report.jobs, busy_ns) : "-",
                        producer ? std::to_string(report.arena_full_waits) : "-"});
    }
    print_table(std::cout, {"pid", "role", "jobs", "email", "thumbnail", "seconds", "jobs/s", "arena full"}, rows,
                2);

    // The check: every job consumed exactly once, and the queue agrees.
    const std::uint64_t marked = shared.marked();
    const std::uint64_t duplicates = counters.duplicates.load();
    const std::uint64_t bad = counters.bad_payloads.load();
    const std::uint64_t unacked = counters.unacked.load();
    if (produced != args.jobs) {
        problems.push_back("producers enqueued " + std::to_string(produced) + " of " + std::to_string(args.jobs) +
                           " jobs");
    }
    if (marked != args.jobs) {
        problems.push_back(std::to_string(args.jobs - marked) + " of " + std::to_string(args.jobs) +
                           " jobs were never consumed");
    }
    if (consumed != marked + duplicates + bad) {
        problems.push_back("consumers counted " + std::to_string(consumed) + " jobs but checked " +
                           std::to_string(marked + duplicates + bad));
    }
    if (duplicates > 0) problems.push_back(std::to_string(duplicates) + " jobs were consumed more than once");
    if (bad > 0) problems.push_back(std::to_string(bad) + " jobs had a wrong payload or entrypoint");
    if (unacked > 0) problems.push_back(std::to_string(unacked) + " acks were refused");

    std::uint64_t stats_enqueued = 0, stats_successful = 0, stats_left = 0;
    {
        Queue queue = Queue::open(args.name);
        for (const auto& entry : queue.stats()) {
            if (entry.name == "control") continue;
            stats_enqueued += entry.enqueued;
            stats_successful += entry.successful;
            stats_left += entry.queued + entry.delayed + entry.picked;
        }
        stats_enqueued -= baseline_enqueued;
        stats_successful -= baseline_successful;
    }
    if (stats_enqueued != args.jobs || stats_successful != args.jobs || stats_left != 0) {
        problems.push_back("queue counters disagree: " + std::to_string(stats_enqueued) + " enqueued, " +
                           std::to_string(stats_successful) + " successful, " + std::to_string(stats_left) +
                           " still queued or picked");
    }

    std::cout << "total: " << produced << " enqueued, " << consumed << " consumed in "
              << fixed(static_cast<double>(wall_ns) / 1e9, 3) << " s (" << per_second(consumed, wall_ns)
              << " jobs/s end to end)\n";
    if (!problems.empty()) {
        std::cout.flush();
        for (const auto& problem : problems) {
            std::cerr << "currant: demo: " << problem << '\n';
        }
        return 1;
    }
    std::cout << "check: all " << args.jobs << " jobs consumed exactly once; queue counters agree ("
              << stats_enqueued << " enqueued, " << stats_successful << " successful, 0 left)\n";
    return 0;
}

} // namespace

void add_demo(CLI::App& app, Commands& commands) {
    auto args = std::make_shared<DemoArgs>();
    auto* sub = app.add_subcommand(
        "demo", "Run producers and consumers in separate processes on a fresh queue and check every job");
    sub->add_option("--name", args->name, "Queue name (a queue of this name is removed first)")
        ->capture_default_str();
    add_number(*sub, "--jobs", args->jobs, "Jobs to enqueue in total");
    add_number(*sub, "--producers", args->producers, "Producer processes");
    add_number(*sub, "--consumers", args->consumers, "Consumer processes");
    sub->add_option("--durability", args->durability,
                    "Durability of the demo's entrypoints: memory, async or sync (async and sync need currantd)")
        ->capture_default_str();
    sub->add_flag("--existing", args->existing,
                  "Use the queue NAME as it exists (e.g. created by currantd) instead of a fresh one, and keep it");
    commands.push_back({sub, [args] { return run_demo(*args); }});
}

} // namespace currant::cli
