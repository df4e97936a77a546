// currant-bench: a multi-process load generator over currant::Queue.
//
// The parent creates a fresh queue (or, with --queue, uses an existing one),
// forks --producers producer processes and --workers worker processes (each
// opens its own Queue after the fork), releases them together and watches
// per-process counters in a MAP_SHARED mapping (progress line, end of the
// run). Each child sends its figures back through a pipe when it ends:
// latency histograms, its completions in the throughput window and the time
// of its last one, and its own CPU time. CPU for the table comes from getrusage(RUSAGE_CHILDREN) around the
// run (producers + workers, not the parent).
//
// Workload
//   producers  each enqueues its share of --jobs (or enqueues until
//              --duration has passed), --batch jobs per enqueue_batch call
//              (enqueue() when --batch is 1), round-robin over the
//              entrypoints, paced to --rate / producers jobs/s when --rate
//              is set. A full arena is back-pressure: the producer waits in
//              the kernel (arena_wait) and tries again.
//   workers    dequeue() up to --batch jobs from all entrypoints, run the job
//              body for each job (read the payload header; with --work-us,
//              spin on the clock that long), then ack() the batch. With
//              --batch 1 and --prefetch N (N > 0) a worker takes one job
//              per call with dequeue_one() (each pick takes up to N ready
//              jobs, which stay recorded in the segment as the worker's)
//              and ends each with ack_deferred() (applied by the next
//              flush: every 64 jobs and before the worker sleeps): the
//              one-job-per-call path docs/architecture.md recommends.
// Latency
//   enqueue -> start       CLOCK_REALTIME when the body starts minus
//                          Job::enqueued_at_ns (set by the core at enqueue).
//   enqueue -> completion  CLOCK_REALTIME after the ack that recorded the
//                          job as successful, minus Job::enqueued_at_ns
//                          (with --prefetch: after ack_deferred returned,
//                          i.e. the end of the body, as for message_queue).
// Warm-up
//   jobs enqueued during the first --warmup-percent of the run (the first
//   share of each producer's jobs with --jobs; the first share of the
//   duration with --duration) are left out of the latency figures, and
//   throughput counts completions from the end of the warm-up to the last
//   completion.
//
// --compare message_queue runs the same workload over a Boost.Interprocess
// message_queue in the same invocation (one queue; one message per send and
// per receive, since it has no batches; the sender stamps CLOCK_REALTIME into
// the message; completion is the end of the body, since there is no ack) and
// prints the two side by side with the ratio.
#include <CLI/CLI.hpp>

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <dirent.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <immintrin.h>
#include <optional>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "copy_floor.hpp"
#include "currant/queue.hpp"
#include "pg.hpp"

namespace bip = boost::interprocess;
using namespace currant;

namespace {

// ---------------------------------------------------------------- clocks

std::int64_t realtime_ns() noexcept {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void sleep_until_realtime(std::int64_t when_ns) noexcept {
    timespec ts{time_t(when_ns / 1'000'000'000), long(when_ns % 1'000'000'000)};
    while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, nullptr) == EINTR) {}
}

// A fixed-cost job body: spins on the clock, like a job using the CPU.
void spin_for_us(std::uint32_t us) noexcept {
    if (us == 0) return;
    const std::int64_t until = realtime_ns() + std::int64_t(us) * 1000;
    while (realtime_ns() < until) _mm_pause();
}

// ---------------------------------------------------------------- options

struct Options {
    std::uint32_t producers = 1;
    std::uint32_t workers = 1;
    std::uint32_t entrypoints = 1;
    std::uint32_t batch = 1;
    std::uint32_t payload_bytes = 64;
    std::uint64_t jobs = 100'000;
    double duration_s = 0;          // > 0: run for this long instead of --jobs
    double warmup_percent = 0;
    double rate = 0;                // jobs/s over all producers; 0 = as fast as possible
    std::string durability = "memory";
    std::uint32_t work_us = 0;
    std::uint32_t prefetch = 64;    // > 0 with batch 1: dequeue_one + ack_deferred (as bench/core's single mode)
    std::string queue;              // existing queue (needed for async/sync)
    std::uint32_t slots = 65536;
    std::string compare;            // "" or "message_queue"
    double stall_seconds = 60;
    bool json = false;
    bool jobs_bounded = false;      // --jobs and --duration both given: the jobs spread over the duration
    bool floors = true;             // run the machine-floor probes beside currant
    std::string floors_dir;         // where floor_cache_line etc. are ("": next to this program's build)
    std::string db;                 // conninfo of currantd's database: COPY floor and statement counts
    std::size_t copy_rows = 200'000;
    bool histogram = false;         // --json: add the latency histograms
};

// "60s", "500ms", "2m", "1.5" (seconds).
double parse_duration(const std::string& text) {
    std::size_t used = 0;
    double value = 0;
    try {
        value = std::stod(text, &used);
    } catch (const std::exception&) {
        throw CLI::ValidationError("--duration", "not a duration: " + text);
    }
    const std::string unit = text.substr(used);
    double scale = 0;
    if (unit.empty() || unit == "s") scale = 1;
    else if (unit == "ms") scale = 1e-3;
    else if (unit == "m" || unit == "min") scale = 60;
    else throw CLI::ValidationError("--duration", "unknown unit '" + unit + "' (use ms, s or m)");
    if (!(value > 0)) throw CLI::ValidationError("--duration", "must be positive");
    return value * scale;
}

// ---------------------------------------------------------------- payload

// The first bytes of every payload. `stamp_ns` is used by the message_queue
// baseline only (currant records the enqueue time itself).
struct Header {
    std::int64_t stamp_ns;
    std::uint32_t flags;
    std::uint32_t producer;
};
constexpr std::uint32_t flag_measured = 1;
constexpr std::uint32_t flag_stop = 2;
constexpr std::uint32_t min_payload = sizeof(Header);

// ---------------------------------------------------------------- histogram

// Log-linear histogram of nanoseconds: exact below 256 ns, then 128
// sub-buckets per power of two (under 0.8% error), up to 2^48 ns.
class Histogram {
public:
    static constexpr int sub_bits = 7;
    static constexpr int sub = 1 << sub_bits;
    static constexpr int max_exponent = 47;
    static constexpr int buckets = 2 * sub + (max_exponent - sub_bits) * sub;

    Histogram() : counts_(buckets, 0) {}

    void add(std::int64_t value) noexcept {
        if (value < 0) value = 0;
        ++counts_[index(std::uint64_t(value))];
        ++count_;
        if (value > max_) max_ = value;
    }
    void merge(const Histogram& other) {
        for (int i = 0; i < buckets; ++i) counts_[i] += other.counts_[i];
        count_ += other.count_;
        max_ = std::max(max_, other.max_);
    }
    std::uint64_t count() const noexcept { return count_; }
    std::int64_t max() const noexcept { return max_; }
    // The value of bucket i (its midpoint), for exporting the distribution.
    static double bucket_value(int i) noexcept { return midpoint(i); }
    // The value at quantile q (midpoint of its bucket; the exact max at q = 1).
    double quantile(double q) const noexcept {
        if (count_ == 0) return 0;
        const std::uint64_t rank = std::max<std::uint64_t>(1, std::uint64_t(std::ceil(q * double(count_))));
        std::uint64_t seen = 0;
        for (int i = 0; i < buckets; ++i) {
            seen += counts_[i];
            if (seen >= rank) return std::min(double(max_), midpoint(i));
        }
        return double(max_);
    }
    std::vector<std::uint64_t>& raw() noexcept { return counts_; }
    const std::vector<std::uint64_t>& raw() const noexcept { return counts_; }
    void set_totals(std::uint64_t count, std::int64_t max) noexcept { count_ = count, max_ = max; }

private:
    static int index(std::uint64_t v) noexcept {
        if (v < 2 * sub) return int(v);
        int e = 63 - __builtin_clzll(v);  // >= sub_bits + 1
        if (e > max_exponent) return buckets - 1;
        return 2 * sub + (e - sub_bits - 1) * sub + int((v >> (e - sub_bits)) - sub);
    }
    static double midpoint(int i) noexcept {
        if (i < 2 * sub) return i;
        const int e = (i - 2 * sub) / sub + sub_bits + 1;
        const std::uint64_t m = std::uint64_t((i - 2 * sub) % sub + sub);
        const std::uint64_t low = m << (e - sub_bits), width = std::uint64_t(1) << (e - sub_bits);
        return double(low) + double(width - 1) / 2;
    }
    std::vector<std::uint64_t> counts_;
    std::uint64_t count_ = 0;
    std::int64_t max_ = 0;
};

// ---------------------------------------------------------------- shared state

constexpr std::size_t max_children = 4096;

struct alignas(64) Counter {
    std::atomic<std::uint64_t> value{0};
};

// The MAP_SHARED control block: barrier, stop, and one counter per child on
// its own cache line (written by that child only; the parent reads them for
// the progress line and the end of the run).
struct Control {
    std::atomic<std::uint32_t> ready{0};
    std::atomic<std::uint32_t> go{0};
    std::atomic<std::int64_t> start_ns{0};    // CLOCK_REALTIME of the release
    // CLOCK_REALTIME from which completions count for throughput (0: not
    // known yet): the end of the warm-up. Set by the parent before the
    // release, or (--jobs with a warm-up) lowered by each producer to the
    // time of its first measured enqueue, before that enqueue. Workers read
    // it relaxed at each completion: a completion racing the first store
    // is a warm-up job's and may go uncounted, which only lowers the figure.
    std::atomic<std::int64_t> window_start_ns{0};
    std::atomic<std::uint32_t> producers_done{0};
    std::atomic<std::uint32_t> abort{0};
    Counter enqueued[max_children];
    Counter completed[max_children];
};

Control* map_control() {
    void* memory = mmap(nullptr, sizeof(Control), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) throw std::runtime_error(std::string("mmap: ") + std::strerror(errno));
    return new (memory) Control();
}

// What a child sends back through its pipe when it ends.
struct ChildReport {
    std::uint32_t role = 0;                  // 0 producer, 1 worker
    std::uint32_t failed = 0;                // the child caught an error (message follows)
    std::uint64_t jobs = 0;                  // enqueued (producer) or completed (worker)
    std::int64_t first_measured_ns = 0;      // producer: CLOCK_REALTIME of its first measured enqueue
    std::int64_t cpu_ns = 0;                 // RUSAGE_SELF at the end
    std::uint64_t arena_waits = 0;           // producer: enqueues that still met a full arena or log after waiting
    Histogram to_start, to_completion;       // worker, measured jobs only
    std::uint64_t window_jobs = 0;           // worker: completions at or after Control::window_start_ns
    std::int64_t last_completion_ns = 0;     // worker: CLOCK_REALTIME of its last completion
    std::string error;
};

// Pipe framing: fixed fields, then the histograms as arrays.
class Writer {
public:
    explicit Writer(int fd) : fd_(fd) {}
    template <typename T> void put(const T& value) { bytes(&value, sizeof value); }
    template <typename T> void put_vector(const std::vector<T>& v) {
        put(std::uint64_t(v.size()));
        bytes(v.data(), v.size() * sizeof(T));
    }
    void bytes(const void* data, std::size_t size) {
        const char* p = static_cast<const char*>(data);
        while (size > 0) {
            const ssize_t n = ::write(fd_, p, size);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return;
            p += n, size -= std::size_t(n);
        }
    }
private:
    int fd_;
};

class Reader {
public:
    explicit Reader(int fd) : fd_(fd) {}
    template <typename T> bool get(T& value) { return bytes(&value, sizeof value); }
    template <typename T> bool get_vector(std::vector<T>& v) {
        std::uint64_t size = 0;
        if (!get(size) || size > (std::uint64_t(1) << 32)) return false;
        v.resize(size);
        return bytes(v.data(), size * sizeof(T));
    }
    bool bytes(void* data, std::size_t size) {
        char* p = static_cast<char*>(data);
        while (size > 0) {
            const ssize_t n = ::read(fd_, p, size);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            p += n, size -= std::size_t(n);
        }
        return true;
    }
private:
    int fd_;
};

void send_report(int fd, const ChildReport& r) {
    Writer w(fd);
    w.put(r.role), w.put(r.failed), w.put(r.jobs), w.put(r.cpu_ns), w.put(r.arena_waits);
    w.put(r.to_start.count()), w.put(r.to_start.max()), w.put_vector(r.to_start.raw());
    w.put(r.to_completion.count()), w.put(r.to_completion.max()), w.put_vector(r.to_completion.raw());
    w.put(r.window_jobs), w.put(r.last_completion_ns);
    std::vector<char> error(r.error.begin(), r.error.end());
    w.put_vector(error);
}

bool receive_report(int fd, ChildReport& r) {
    Reader in(fd);
    std::uint64_t count = 0;
    std::int64_t max = 0;
    if (!(in.get(r.role) && in.get(r.failed) && in.get(r.jobs) && in.get(r.cpu_ns) &&
          in.get(r.arena_waits)))
        return false;
    if (!(in.get(count) && in.get(max) && in.get_vector(r.to_start.raw()))) return false;
    r.to_start.set_totals(count, max);
    if (!(in.get(count) && in.get(max) && in.get_vector(r.to_completion.raw()))) return false;
    r.to_completion.set_totals(count, max);
    if (!(in.get(r.window_jobs) && in.get(r.last_completion_ns))) return false;
    std::vector<char> error;
    if (!in.get_vector(error)) return false;
    r.error.assign(error.begin(), error.end());
    return r.to_start.raw().size() == std::size_t(Histogram::buckets) &&
           r.to_completion.raw().size() == std::size_t(Histogram::buckets);
}

std::int64_t cpu_ns(int who) {
    rusage usage{};
    getrusage(who, &usage);
    return (std::int64_t(usage.ru_utime.tv_sec) + usage.ru_stime.tv_sec) * 1'000'000'000 +
           (std::int64_t(usage.ru_utime.tv_usec) + usage.ru_stime.tv_usec) * 1000;
}

// ---------------------------------------------------------------- run plan

// What every process of one run agrees on.
struct Plan {
    const Options* options = nullptr;
    Control* control = nullptr;
    std::uint32_t run_token = 0;  // in a stop job: which run it stops
    std::uint64_t share(std::uint32_t producer) const {  // --jobs split over producers
        const std::uint64_t n = options->jobs, p = options->producers;
        return n / p + (producer < n % p ? 1 : 0);
    }
    bool timed() const { return options->duration_s > 0; }
};

// Producer pacing and stop rule, shared by both systems.
class ProducerLoop {
public:
    ProducerLoop(const Plan& plan, std::uint32_t index) : plan_(plan), index_(index) {
        const Options& o = *plan.options;
        share_ = plan.share(index);
        warm_jobs_ = std::uint64_t(double(share_) * o.warmup_percent / 100.0);
        per_producer_rate_ = o.rate > 0 ? o.rate / o.producers : 0;
    }
    void begin(std::int64_t start_ns) {
        start_ns_ = start_ns;
        end_ns_ = start_ns + std::int64_t(plan_.options->duration_s * 1e9);
        warm_end_ns_ = start_ns + std::int64_t(plan_.options->duration_s * 1e9 * plan_.options->warmup_percent / 100.0);
    }
    // How many jobs to send next (0: done); waits for the pace first.
    std::uint64_t next(std::uint64_t sent, std::uint32_t batch) {
        if (plan_.control->abort.load(std::memory_order_relaxed)) return 0;
        std::uint64_t want = batch;
        if (!plan_.timed() || plan_.options->jobs_bounded) {
            if (sent >= share_) return 0;
            want = std::min<std::uint64_t>(want, share_ - sent);
        }
        if (per_producer_rate_ > 0) {
            const std::int64_t due = start_ns_ + std::int64_t(double(sent) * 1e9 / per_producer_rate_);
            if (plan_.timed() && !plan_.options->jobs_bounded && due >= end_ns_) return 0;
            if (realtime_ns() < due) sleep_until_realtime(due);
        }
        // With --jobs as well, every job is sent: the duration only paces them.
        if (plan_.timed() && !plan_.options->jobs_bounded && realtime_ns() >= end_ns_) return 0;
        return want;
    }
    // Whether the job numbered `seq` (this producer's count) is measured.
    bool measured(std::uint64_t seq, std::int64_t now) const {
        return plan_.timed() ? now >= warm_end_ns_ : seq >= warm_jobs_;
    }
private:
    const Plan& plan_;
    std::uint32_t index_;
    std::uint64_t share_ = 0, warm_jobs_ = 0;
    double per_producer_rate_ = 0;
    std::int64_t start_ns_ = 0, end_ns_ = 0, warm_end_ns_ = 0;
};

// Shared (not private) futex calls: the word lives in a MAP_SHARED mapping.
void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected) {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, expected, nullptr, nullptr, 0);
}
void futex_wake_all(std::atomic<std::uint32_t>& word) {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

// The start line: every child sleeps in the kernel until the parent releases all.
void arrive_and_wait(Control* control) {
    control->ready.fetch_add(1);
    while (control->go.load(std::memory_order_acquire) == 0) futex_wait(control->go, 0);
}

void record_completion(ChildReport& report, const Control* control, std::int64_t now, std::uint32_t n) {
    report.last_completion_ns = std::max(report.last_completion_ns, now);
    const std::int64_t window_start = control->window_start_ns.load(std::memory_order_relaxed);
    if (window_start != 0 && now >= window_start) report.window_jobs += n;
}

// Records the CLOCK_REALTIME of a producer's first measured enqueue, called
// before that enqueue; with --jobs it also opens the throughput window
// (Control::window_start_ns) at the earliest such time of all producers.
void note_first_measured(ChildReport& report, const ProducerLoop& loop, Control* control, std::uint64_t seq,
                         std::int64_t now) {
    if (report.first_measured_ns != 0 || !loop.measured(seq, now)) return;
    report.first_measured_ns = now;
    std::int64_t window_start = control->window_start_ns.load();
    while ((window_start == 0 || now < window_start) &&
           !control->window_start_ns.compare_exchange_weak(window_start, now)) {
    }
}

// ---------------------------------------------------------------- currant

// Whether a currantd process serves the queue: a process named currantd
// whose command line names it (--queue NAME, -q NAME; the default is
// "currant"). The daemon need not be registered as a participant while it
// waits for the feed, so the participant table cannot tell.
bool currantd_running(const std::string& queue) {
    DIR* proc = opendir("/proc");
    if (!proc) return false;
    bool found = false;
    while (dirent* entry = readdir(proc)) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
        const std::string dir = std::string("/proc/") + entry->d_name;
        std::ifstream comm(dir + "/comm");
        std::string name;
        if (!std::getline(comm, name) || name != "currantd") continue;
        std::ifstream cmdline(dir + "/cmdline", std::ios::binary);
        std::vector<std::string> args;
        for (std::string arg; std::getline(cmdline, arg, '\0');) args.push_back(arg);
        std::string served = "currant";
        for (std::size_t i = 1; i < args.size(); ++i) {
            if ((args[i] == "--queue" || args[i] == "-q") && i + 1 < args.size()) served = args[i + 1];
            else if (args[i].rfind("--queue=", 0) == 0) served = args[i].substr(8);
            else if (args[i].rfind("-q", 0) == 0 && args[i].size() > 2 && args[i][2] != '-') served = args[i].substr(2);
        }
        if (served == queue) found = true;
    }
    closedir(proc);
    return found;
}


std::string entrypoint_name(std::uint32_t i) { return "currant-bench-" + std::to_string(i); }

struct CurrantTarget {
    std::string queue;
    std::vector<std::string> entrypoints;
};

void currant_producer(const Plan& plan, const CurrantTarget& target, std::uint32_t index, ChildReport& report) {
    const Options& o = *plan.options;
    Queue q = Queue::open(target.queue);
    std::vector<EntrypointId> eps;
    for (const auto& name : target.entrypoints) eps.push_back(q.entrypoint(name));
    std::vector<std::vector<std::byte>> buffers(o.batch, std::vector<std::byte>(o.payload_bytes, std::byte{0x5a}));
    std::vector<std::span<const std::byte>> payloads;
    for (auto& b : buffers) payloads.emplace_back(b);
    std::vector<JobId> ids(o.batch);
    EnqueueOptions enqueue_options;
    enqueue_options.arena_wait = std::chrono::milliseconds(100);
    ProducerLoop loop(plan, index);
    arrive_and_wait(plan.control);
    loop.begin(plan.control->start_ns.load());
    std::uint64_t sent = 0, calls = 0;
    Counter& counter = plan.control->enqueued[index];
    for (;;) {
        const std::uint64_t want = loop.next(sent, o.batch);
        if (want == 0) break;
        const std::int64_t now = realtime_ns();
        for (std::uint64_t i = 0; i < want; ++i) {
            Header h{0, loop.measured(sent + i, now) ? flag_measured : 0u, index};
            std::memcpy(buffers[i].data(), &h, sizeof h);
        }
        for (std::uint64_t i = 0; i < want && report.first_measured_ns == 0; ++i) note_first_measured(report, loop, plan.control, sent + i, now);
        const EntrypointId ep = eps[(index + calls++) % eps.size()];
        std::uint64_t done = 0;
        while (done < want) {
            try {
                if (want == 1)
                    q.enqueue(ep, payloads[0], enqueue_options), done = 1;
                else
                    done += q.enqueue_batch(ep, std::span(payloads.data() + done, want - done), ids, enqueue_options);
            } catch (const Error& error) {
                if (error.code() == Errc::arena_full) {
                    ++report.arena_waits;
                    if (plan.control->abort.load()) return;
                    continue;
                }
                if (error.code() == Errc::log_full) {
                    // The mirror is behind: back-pressure, as long as a currantd still serves the queue.
                    if (!currantd_running(target.queue))
                        throw std::runtime_error(std::string(error.what()) + " (durability " + o.durability +
                                                 " needs a running currantd; none serves queue '" + target.queue + "')");
                    ++report.arena_waits;
                    if (plan.control->abort.load()) return;
                    continue;
                }
                throw;
            }
        }
        sent += want;
        counter.value.store(sent, std::memory_order_relaxed);
    }
    report.jobs = sent;
}


// What a worker does with a job it took: the run's stop job is put back for
// the next worker and ends this one; a job left by an earlier, stopped run
// of the same --queue is acked unmeasured; any other job runs its body.
enum class Taken { stop, stale, job };

Taken take(Queue& q, const Plan& plan, const Job& job, Header& header) {
    std::memcpy(&header, job.payload.data(), sizeof header);
    if (!(header.flags & flag_stop)) return Taken::job;
    if (header.producer != plan.run_token) {
        q.ack(job.handle);
        return Taken::stale;
    }
    q.retry(job.handle, std::chrono::milliseconds(0));
    return Taken::stop;
}

// --batch 1 with --prefetch: one job per call, picks and acks amortized by
// the core (dequeue_one's prefetch buffer, ack_deferred's flush).
void currant_worker_prefetching(Queue& q, const Plan& plan, std::span<const EntrypointId> eps,
                                Counter& counter, ChildReport& report) {
    const Options& o = *plan.options;
    std::uint64_t completed = 0;
    for (;;) {
        std::optional<Job> job = q.dequeue_one(eps, std::chrono::seconds(1));
        if (!job) {
            if (plan.control->abort.load()) break;
            continue;
        }
        Header h;
        const Taken taken = take(q, plan, *job, h);
        if (taken == Taken::stop) break;
        if (taken == Taken::stale) continue;
        const std::int64_t now = realtime_ns();
        if (h.flags & flag_measured) report.to_start.add(now - job->enqueued_at_ns);
        spin_for_us(o.work_us);
        q.ack_deferred(job->handle);
        const std::int64_t done = o.work_us ? realtime_ns() : now;
        if (h.flags & flag_measured) report.to_completion.add(done - job->enqueued_at_ns);
        record_completion(report, plan.control, done, 1);
        counter.value.store(++completed, std::memory_order_relaxed);
    }
    report.jobs = completed;
}

void currant_worker(const Plan& plan, const CurrantTarget& target, std::uint32_t index, ChildReport& report) {
    const Options& o = *plan.options;
    Queue q = Queue::open(target.queue);
    std::vector<EntrypointId> eps;
    for (const auto& name : target.entrypoints) eps.push_back(q.entrypoint(name));
    std::vector<Job> jobs(o.batch);
    std::vector<JobHandle> handles(o.batch);
    std::vector<std::int64_t> enqueued(o.batch);
    std::vector<bool> measured(o.batch);
    // Register with the queue before the start signal, as message_queue's
    // workers have opened theirs by then: currant registers a participant
    // lazily at its first call (registry entry, life-lock holder thread,
    // sleepers re-arming their death watches), which otherwise lands in
    // the measured run. No job of this run exists yet; one left in an
    // existing --queue by an earlier, stopped run goes back for the loop.
    {
        const std::size_t early = q.dequeue(eps, jobs, std::chrono::nanoseconds(0));
        for (std::size_t i = 0; i < early; ++i) q.retry(jobs[i].handle, std::chrono::milliseconds(0));
    }
    if (o.prefetch > 0 && o.batch == 1) q.set_prefetch(o.prefetch);
    arrive_and_wait(plan.control);
    Counter& counter = plan.control->completed[o.producers + index];
    if (o.prefetch > 0 && o.batch == 1) return currant_worker_prefetching(q, plan, eps, counter, report);
    std::uint64_t completed = 0;
    bool stop = false;
    while (!stop) {
        const std::size_t got = q.dequeue(eps, jobs, std::chrono::seconds(1));
        if (got == 0) {
            if (plan.control->abort.load()) break;
            continue;
        }
        std::size_t n = 0;
        std::int64_t now = o.work_us ? 0 : realtime_ns();
        for (std::size_t i = 0; i < got; ++i) {
            Header h;
            const Taken taken = take(q, plan, jobs[i], h);
            if (taken == Taken::stop) stop = true;
            if (taken != Taken::job) continue;
            if (o.work_us) now = realtime_ns();
            if (h.flags & flag_measured) report.to_start.add(now - jobs[i].enqueued_at_ns);
            spin_for_us(o.work_us);
            handles[n] = jobs[i].handle;
            enqueued[n] = jobs[i].enqueued_at_ns;
            measured[n] = (h.flags & flag_measured) != 0;
            ++n;
        }
        if (n == 0) continue;
        q.ack(std::span<const JobHandle>(handles.data(), n));
        const std::int64_t done = realtime_ns();
        for (std::size_t i = 0; i < n; ++i)
            if (measured[i]) report.to_completion.add(done - enqueued[i]);
        record_completion(report, plan.control, done, std::uint32_t(n));
        completed += n;
        counter.value.store(completed, std::memory_order_relaxed);
    }
    report.jobs = completed;
}

// ---------------------------------------------------------------- message_queue

void mq_producer(const Plan& plan, const std::string& name, std::uint32_t index, ChildReport& report) {
    const Options& o = *plan.options;
    bip::message_queue mq(bip::open_only, name.c_str());
    std::vector<std::byte> message(o.payload_bytes, std::byte{0x5a});
    ProducerLoop loop(plan, index);
    arrive_and_wait(plan.control);
    loop.begin(plan.control->start_ns.load());
    std::uint64_t sent = 0;
    Counter& counter = plan.control->enqueued[index];
    for (;;) {
        const std::uint64_t want = loop.next(sent, o.batch);
        if (want == 0) break;
        for (std::uint64_t i = 0; i < want; ++i) {
            const std::int64_t now = realtime_ns();
            Header h{now, loop.measured(sent + i, now) ? flag_measured : 0u, index};
            note_first_measured(report, loop, plan.control, sent + i, now);
            std::memcpy(message.data(), &h, sizeof h);
            mq.send(message.data(), message.size(), 0);
        }
        sent += want;
        counter.value.store(sent, std::memory_order_relaxed);
    }
    report.jobs = sent;
}

void mq_worker(const Plan& plan, const std::string& name, std::uint32_t index, ChildReport& report) {
    const Options& o = *plan.options;
    bip::message_queue mq(bip::open_only, name.c_str());
    std::vector<std::byte> message(o.payload_bytes);
    arrive_and_wait(plan.control);
    Counter& counter = plan.control->completed[o.producers + index];
    std::uint64_t completed = 0;
    for (;;) {
        bip::message_queue::size_type got = 0;
        unsigned priority = 0;
        mq.receive(message.data(), message.size(), got, priority);
        Header h;
        std::memcpy(&h, message.data(), sizeof h);
        if (h.flags & flag_stop) break;  // the parent sends one per worker
        const std::int64_t now = realtime_ns();
        if (h.flags & flag_measured) report.to_start.add(now - h.stamp_ns);
        spin_for_us(o.work_us);
        const std::int64_t done = o.work_us ? realtime_ns() : now;
        if (h.flags & flag_measured) report.to_completion.add(done - h.stamp_ns);
        record_completion(report, plan.control, done, 1);
        counter.value.store(++completed, std::memory_order_relaxed);
    }
    report.jobs = completed;
}

// ---------------------------------------------------------------- the parent

struct Result {
    std::string system;
    std::uint64_t enqueued = 0;              // warm-up included
    std::uint64_t jobs = 0;                  // completed, warm-up included
    std::uint64_t measured_jobs = 0;         // in the latency figures
    double seconds = 0;                      // release to last completion
    double window_seconds = 0;               // end of warm-up to last completion
    double throughput = 0;                   // completions in the window / window
    Histogram to_start, to_completion;
    double cpu_seconds = 0;                  // RUSAGE_CHILDREN over the run
    double producer_cpu_seconds = 0, worker_cpu_seconds = 0;  // each child's RUSAGE_SELF, summed
    std::uint64_t arena_waits = 0;
    double pg_queries = 0;                   // issued to PostgreSQL during the run (-1: not counted)
};

struct Child {
    pid_t pid = -1;
    int fd = -1;
    std::uint32_t role = 0, index = 0;
    bool done = false, ok = false;
    ChildReport report;
};

template <typename Body>
Child spawn(Body body, std::uint32_t role, std::uint32_t index) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        ChildReport report;
        report.role = role;
        int code = 0;
        try {
            body(report);
        } catch (const std::exception& error) {
            report.failed = 1;
            report.error = error.what();
            code = 1;
        }
        report.cpu_ns = cpu_ns(RUSAGE_SELF);
        send_report(fds[1], report);
        close(fds[1]);
        _exit(code);
    }
    close(fds[1]);
    Child child;
    child.pid = pid, child.fd = fds[0], child.role = role, child.index = index;
    return child;
}

// Reads a child's report (it writes it as it ends) and reaps it.
void collect(Child& c) {
    const bool got = receive_report(c.fd, c.report);
    close(c.fd);
    c.fd = -1;
    int status = 0;
    waitpid(c.pid, &status, 0);
    c.done = true;
    c.ok = got && !c.report.failed && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!got && c.report.error.empty())
        c.report.error = WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status)) : "no report";
}

// Waits up to timeout_ms for children to end; collects those that did.
void poll_children(std::vector<Child>& children, int timeout_ms) {
    std::vector<pollfd> fds;
    std::vector<Child*> who;
    for (auto& c : children)
        if (!c.done) fds.push_back(pollfd{c.fd, POLLIN, 0}), who.push_back(&c);
    if (fds.empty()) {
        if (timeout_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
        return;
    }
    if (poll(fds.data(), fds.size(), timeout_ms) <= 0) return;
    for (std::size_t i = 0; i < fds.size(); ++i)
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) collect(*who[i]);
}

bool g_progress = false;

// Forks the processes, runs the workload, collects the reports.
// make_producer(i) / make_worker(i) return the child bodies; stop() tells
// the workers to end once every job is done.
template <typename MakeProducer, typename MakeWorker, typename Stop>
Result run(const std::string& system, const Options& o, Control* control, MakeProducer make_producer,
           MakeWorker make_worker, Stop stop) {
    new (control) Control();
    std::vector<Child> children;
    const std::int64_t cpu_before = cpu_ns(RUSAGE_CHILDREN);
    auto fail = [&](const std::string& why) {
        control->abort.store(1);
        for (auto& c : children) if (!c.done) kill(c.pid, SIGKILL);
        for (auto& c : children) if (!c.done) collect(c);
        if (g_progress) std::fprintf(stderr, "\r\033[K");
        throw std::runtime_error(system + ": " + why);
    };
    auto describe = [](const Child& c) {
        return std::string(c.role ? "worker " : "producer ") + std::to_string(c.index) +
               (c.report.error.empty() ? std::string(" ended early") : ": " + c.report.error);
    };
    try {
        for (std::uint32_t i = 0; i < o.workers; ++i) children.push_back(spawn(make_worker(i), 1, i));
        for (std::uint32_t i = 0; i < o.producers; ++i) children.push_back(spawn(make_producer(i), 0, i));
    } catch (const std::exception& error) {
        fail(error.what());
    }
    const std::uint32_t total = o.producers + o.workers;
    while (control->ready.load() < total) {
        poll_children(children, 1);
        for (auto& c : children)
            if (c.done) fail("a process failed to start: " + describe(c));
    }
    const std::int64_t start_ns = realtime_ns();
    control->start_ns.store(start_ns);
    // The end of the warm-up, where it is known now: a share of --duration,
    // or the start without a warm-up (with --jobs the producers set it).
    if (o.duration_s > 0 || o.warmup_percent <= 0)
        control->window_start_ns.store(start_ns + std::int64_t(o.duration_s * 1e9 * o.warmup_percent / 100.0));
    control->go.store(1, std::memory_order_release);
    futex_wake_all(control->go);

    // Watch the counters until every enqueued job has completed.
    std::uint64_t last_completed = 0, shown_completed = 0;
    std::int64_t last_change = start_ns, shown_at = start_ns;
    std::uint64_t enqueued = 0, completed = 0;
    for (;;) {
        poll_children(children, 5);
        bool producers_done = true;
        enqueued = completed = 0;
        for (auto& c : children) {
            if (c.done && !c.ok) fail(describe(c));
            if (c.role == 1) {
                if (c.done) fail(describe(c));
                completed += control->completed[o.producers + c.index].value.load(std::memory_order_relaxed);
            } else {
                producers_done = producers_done && c.done;
                enqueued += c.done ? c.report.jobs : control->enqueued[c.index].value.load(std::memory_order_relaxed);
            }
        }
        const std::int64_t now = realtime_ns();
        if (g_progress && now - shown_at >= 250'000'000) {
            std::fprintf(stderr, "\r\033[K%s: %6.1f s  enqueued %12" PRIu64 "  completed %12" PRIu64 "  %12.0f jobs/s",
                         system.c_str(), double(now - start_ns) / 1e9, enqueued, completed,
                         double(completed - shown_completed) * 1e9 / double(now - shown_at));
            std::fflush(stderr);
            shown_at = now, shown_completed = completed;
        }
        if (producers_done && completed >= enqueued) break;
        if (completed != last_completed) last_completed = completed, last_change = now;
        if (double(now - last_change) / 1e9 > o.stall_seconds && !(o.duration_s > 0 && !producers_done && o.rate > 0))
            fail("no job completed for " + std::to_string(int(o.stall_seconds)) + " s (" + std::to_string(completed) +
                 " of " + std::to_string(enqueued) + " done); see --stall-seconds");
    }
    if (g_progress) std::fprintf(stderr, "\r\033[K"), std::fflush(stderr);
    try {
        stop();
    } catch (const std::exception& error) {
        fail(std::string("stopping the workers: ") + error.what());
    }
    while (std::any_of(children.begin(), children.end(), [](const Child& c) { return !c.done; }))
        poll_children(children, 100);
    for (auto& c : children)
        if (!c.ok) fail(describe(c));

    Result result;
    result.system = system;
    result.cpu_seconds = double(cpu_ns(RUSAGE_CHILDREN) - cpu_before) / 1e9;
    std::uint64_t window_jobs = 0;
    std::int64_t last_completion_ns = start_ns;
    for (const auto& c : children) {
        const ChildReport& r = c.report;
        result.to_start.merge(r.to_start);
        result.to_completion.merge(r.to_completion);
        if (r.role == 0) {
            result.enqueued += r.jobs;
            result.producer_cpu_seconds += double(r.cpu_ns) / 1e9;
            result.arena_waits += r.arena_waits;
        } else {
            result.jobs += r.jobs;
            result.worker_cpu_seconds += double(r.cpu_ns) / 1e9;
            window_jobs += r.window_jobs;
            last_completion_ns = std::max(last_completion_ns, r.last_completion_ns);
        }
    }
    if (result.jobs != result.enqueued)
        throw std::runtime_error(system + ": " + std::to_string(result.enqueued) + " jobs enqueued but " +
                                 std::to_string(result.jobs) + " completed");
    result.measured_jobs = result.to_completion.count();

    // Throughput: completions from the end of the warm-up to the last one,
    // over that window, both taken to the nanosecond (a 10,000-job run may
    // last a few milliseconds).
    result.seconds = double(last_completion_ns - start_ns) / 1e9;
    const std::int64_t window_start = control->window_start_ns.load();
    if (window_start != 0 && last_completion_ns > window_start) {
        result.window_seconds = double(last_completion_ns - window_start) / 1e9;
        result.throughput = double(window_jobs) / result.window_seconds;
    }
    return result;
}

// ---------------------------------------------------------------- the two systems

Result run_currant(const Options& o, Control* control) {
    const Durability durability = parse_durability(o.durability);
    const bool own_queue = o.queue.empty();
    CurrantTarget target;
    target.queue = own_queue ? "currant-bench-" + std::to_string(getpid()) : o.queue;
    std::optional<Queue> queue;
    if (own_queue) {
        if (durability != Durability::memory)
            throw std::runtime_error("--durability " + o.durability +
                                     " needs a running currantd, which mirrors the queue to PostgreSQL: start one "
                                     "(currantd --queue NAME --db CONNINFO, docs/daemon.md) and pass --queue NAME");
        QueueOptions qo;
        qo.name = target.queue;
        qo.slots = o.slots;
        qo.payload_bytes = o.payload_bytes;
        qo.max_entrypoints = std::max<std::uint32_t>(4, o.entrypoints);
        qo.max_participants = o.producers + o.workers + 8;
        qo.log_capacity = 16;  // memory entrypoints log nothing
        Queue::remove(qo.name);
        queue.emplace(Queue::create(qo));
    } else {
        queue.emplace(Queue::open(target.queue));
        const QueueInfo info = queue->info();
        if (durability != Durability::memory) {
            if (!info.mirrored || !currantd_running(target.queue))
                throw std::runtime_error("--durability " + o.durability + " needs a running currantd attached to queue '" +
                                         target.queue + "' (" +
                                         (info.mirrored ? "no currantd process serves it now"
                                                        : "no currantd has ever attached to it") +
                                         "): start currantd --queue " + target.queue + " --db CONNINFO");
        }
        if (info.payload_bytes < o.payload_bytes)
            throw std::runtime_error("queue '" + target.queue + "' holds payloads of up to " +
                                     std::to_string(info.payload_bytes) + " bytes; --payload-bytes is " +
                                     std::to_string(o.payload_bytes));
        if (info.max_participants < info.participants + o.producers + o.workers + 1)
            throw std::runtime_error("queue '" + target.queue + "' admits " + std::to_string(info.max_participants) +
                                     " participants; " + std::to_string(info.participants) +
                                     " are attached and the run needs " + std::to_string(o.producers + o.workers + 1));
    }
    EntrypointOptions eo;
    eo.durability = durability;
    std::vector<EntrypointId> eps;
    for (std::uint32_t i = 0; i < o.entrypoints; ++i) {
        target.entrypoints.push_back(entrypoint_name(i));
        eps.push_back(queue->declare_entrypoint(target.entrypoints.back(), eo));
    }
    if (!own_queue) {
        for (const auto& stats : queue->stats()) {
            if (stats.name.rfind("currant-bench-", 0) != 0) continue;
            if (stats.queued + stats.delayed + stats.picked != 0)
                throw std::runtime_error("entrypoint '" + stats.name + "' of queue '" + target.queue + "' holds " +
                                         std::to_string(stats.queued + stats.delayed + stats.picked) +
                                         " jobs from an earlier run; drain or cancel them first");
        }
    }
    Plan plan{&o, control, std::uint32_t(getpid())};
    std::optional<JobId> stop_job;
    auto cleanup = [&] {
        if (stop_job) queue->cancel(*stop_job);  // still queued after the last worker put it back
        if (own_queue) {
            queue->close();
            Queue::remove(target.queue);
        }
    };
    try {
        Result result = run(
            "currant", o, control,
            [&](std::uint32_t i) { return [&, i](ChildReport& r) { currant_producer(plan, target, i, r); }; },
            [&](std::uint32_t i) { return [&, i](ChildReport& r) { currant_worker(plan, target, i, r); }; },
            [&] {
                // One stop job; each worker that takes it puts it back and ends.
                std::vector<std::byte> payload(o.payload_bytes, std::byte{0});
                Header h{0, flag_stop, plan.run_token};
                std::memcpy(payload.data(), &h, sizeof h);
                EnqueueOptions stop_options;
                stop_options.max_attempts = o.workers + 8;
                stop_options.arena_wait = std::chrono::seconds(10);
                stop_job = queue->enqueue(eps[0], payload, stop_options);
            });
        cleanup();
        return result;
    } catch (...) {
        cleanup();
        throw;
    }
}

Result run_message_queue(const Options& o, Control* control) {
    const std::string name = "currant-bench-mq-" + std::to_string(getpid());
    bip::message_queue::remove(name.c_str());
    std::optional<bip::message_queue> mq;
    mq.emplace(bip::create_only, name.c_str(), std::min<std::uint32_t>(o.slots, 65536), o.payload_bytes);
    Plan plan{&o, control};
    try {
        Result result = run(
            "message_queue", o, control,
            [&](std::uint32_t i) { return [&, i](ChildReport& r) { mq_producer(plan, name, i, r); }; },
            [&](std::uint32_t i) { return [&, i](ChildReport& r) { mq_worker(plan, name, i, r); }; },
            [&] {
                std::vector<std::byte> message(o.payload_bytes, std::byte{0});
                Header h{0, flag_stop, 0};
                std::memcpy(message.data(), &h, sizeof h);
                for (std::uint32_t i = 0; i < o.workers; ++i) mq->send(message.data(), message.size(), 0);
            });
        mq.reset();
        bip::message_queue::remove(name.c_str());
        return result;
    } catch (...) {
        mq.reset();
        bip::message_queue::remove(name.c_str());
        throw;
    }
}

// ---------------------------------------------------------------- floors

// The machine's own limits, measured beside currant in the same invocation
// by the standalone probes of bench/floors (no currant code in them): one
// cache line bounced between two processes (ns per one-way hop), a bare
// shared-futex wake-up between two processes (p50 / p99), and a lock-free
// SPSC ring of 64-byte records between two processes (records/s). With
// --db also the bare PostgreSQL COPY floor (bench/daemon/copy_floor.cpp).
struct Floors {
    bool cache_line = false, futex = false, ring = false, copy = false;
    double hop_ns = 0, futex_p50_us = 0, futex_p99_us = 0, ring_records_per_second = 0;
    double copy_rows_per_second = 0;
    std::size_t copy_rows = 0;
    std::vector<std::string> notes;  // probes that could not run, and why
    std::string cache_line_json, futex_json, ring_json;
};

// This program's directory, from /proc/self/exe.
std::string own_directory() {
    std::vector<char> path(4096);
    const ssize_t n = readlink("/proc/self/exe", path.data(), path.size() - 1);
    if (n <= 0) return ".";
    std::string text(path.data(), std::size_t(n));
    const auto slash = text.rfind('/');
    return slash == std::string::npos ? "." : text.substr(0, slash);
}

// Runs argv and returns its standard output; throws with its stderr tail
// on a non-zero exit.
std::string run_capture(const std::vector<std::string>& argv) {
    int out[2], err[2];
    if (pipe(out) != 0 || pipe(err) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO), dup2(err[1], STDERR_FILENO);
        close(out[0]), close(out[1]), close(err[0]), close(err[1]);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execv(args[0], args.data());
        std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
        _exit(127);
    }
    close(out[1]), close(err[1]);
    std::string output, errors;
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open_fds = 2;
    char buffer[4096];
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR) break;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            const ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
            if (n > 0) (i == 0 ? output : errors).append(buffer, std::size_t(n));
            else if (n == 0 || errno != EINTR) close(fds[i].fd), fds[i].fd = -1, --open_fds;
        }
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (errors.size() > 400) errors = errors.substr(errors.size() - 400);
        while (!errors.empty() && errors.back() == '\n') errors.pop_back();
        throw std::runtime_error(argv[0] + " failed" + (errors.empty() ? std::string() : ": " + errors));
    }
    return output;
}

// The number after "key": in a floor's one-line JSON object.
double json_number(const std::string& json, const std::string& key) {
    const std::string needle = "\"" + key + "\":";
    const auto at = json.find(needle);
    if (at == std::string::npos) throw std::runtime_error("floor output has no \"" + key + "\": " + json);
    return std::strtod(json.c_str() + at + needle.size(), nullptr);
}

std::string first_line(std::string text) {
    const auto end = text.find('\n');
    return end == std::string::npos ? text : text.substr(0, end);
}

Floors measure_floors(const Options& o) {
    Floors f;
    const std::string dir = o.floors_dir.empty() ? own_directory() + "/../floors" : o.floors_dir;
    auto probe = [&](const std::string& name, std::vector<std::string> args, auto use) {
        const std::string exe = dir + "/" + name;
        if (access(exe.c_str(), X_OK) != 0) {
            f.notes.push_back(name + " not found in " + dir +
                              " (build bench/floors, or pass --floors-dir DIR, or --no-floors)");
            return;
        }
        args.insert(args.begin(), exe);
        args.push_back("--json");
        args.push_back("--timeout");
        args.push_back("120");
        if (g_progress) std::fprintf(stderr, "\r\033[Kfloor: %s ...", name.c_str()), std::fflush(stderr);
        try {
            use(first_line(run_capture(args)));
        } catch (const std::exception& error) {
            f.notes.push_back(name + ": " + error.what());
        }
    };
    probe("floor_cache_line", {"--round-trips", "10000"}, [&](const std::string& json) {
        f.hop_ns = json_number(json, "ns_per_hop"), f.cache_line = true, f.cache_line_json = json;
    });
    probe("floor_futex_wakeup", {"--samples", "300"}, [&](const std::string& json) {
        f.futex_p50_us = json_number(json, "p50_us"), f.futex_p99_us = json_number(json, "p99_us");
        f.futex = true, f.futex_json = json;
    });
    probe("floor_spsc_ring", {"--records", "200000"}, [&](const std::string& json) {
        f.ring_records_per_second = json_number(json, "records_per_sec"), f.ring = true, f.ring_json = json;
    });
    if (g_progress) std::fprintf(stderr, "\r\033[K"), std::fflush(stderr);
    return f;
}

// ---------------------------------------------------------------- PostgreSQL

// What currantd's database saw during the run (with --db): statements from
// pg_stat_statements when that extension is installed in the database
// (every statement of the database, ours excluded by their text), else
// transactions committed (pg_stat_database.xact_commit, minus ours).
struct DatabaseCounters {
    bool statements = false;
    double value = 0;
};

DatabaseCounters read_database_counters(pg::Connection& db) {
    DatabaseCounters c;
    c.statements = db.exec("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").rows() > 0;
    if (c.statements) {
        auto r = db.exec("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                         "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                         "AND query NOT ILIKE '%pg_stat_statements%' AND query NOT ILIKE '%pg_extension%' "
                         "AND query NOT ILIKE '%pg_stat_database%'");
        c.value = std::strtod(std::string(r.text(0, 0)).c_str(), nullptr);
    } else {
        auto r = db.exec("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()");
        c.value = std::strtod(std::string(r.text(0, 0)).c_str(), nullptr);
    }
    return c;
}

// Waits until no entrypoint of the queue has transitions left to mirror.
void wait_for_mirror(const std::string& name, double limit_seconds) {
    Queue q = Queue::open(name);
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_seconds);
    while (std::chrono::steady_clock::now() < until) {
        bool pending = false;
        for (const auto& st : q.stats()) pending = pending || st.log_pending > 0 || st.dirty_slots > 0;
        if (!pending) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

// ---------------------------------------------------------------- report

std::string grouped(double value) {
    char digits[64];
    std::snprintf(digits, sizeof digits, "%.0f", value);
    std::string text(digits), out;
    const std::size_t start = text[0] == '-' ? 1 : 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (i > start && (text.size() - i) % 3 == 0) out += ',';
        out += text[i];
    }
    return out;
}

const std::vector<double> quantiles = {0.50, 0.95, 0.99, 0.999, 1.0};
const std::vector<std::string> quantile_names = {"p50", "p95", "p99", "p99.9", "max"};

double latency_us(const Histogram& h, double q) { return q >= 1.0 ? double(h.max()) / 1e3 : h.quantile(q) / 1e3; }

double cpu_per_million(const Result& r) { return r.jobs ? r.cpu_seconds * 1e6 / double(r.jobs) : 0; }
double producer_cpu_per_million(const Result& r) { return r.jobs ? r.producer_cpu_seconds * 1e6 / double(r.jobs) : 0; }
double worker_cpu_per_million(const Result& r) { return r.jobs ? r.worker_cpu_seconds * 1e6 / double(r.jobs) : 0; }

struct Line {
    std::string label, key;
    std::vector<double> values;  // one per result
    int decimals;                // -1: grouped integer
};

std::vector<Line> lines(const std::vector<Result>& results) {
    std::vector<Line> out;
    auto add = [&](std::string label, std::string key, int decimals, auto get) {
        Line line{std::move(label), std::move(key), {}, decimals};
        for (const auto& r : results) line.values.push_back(get(r));
        out.push_back(std::move(line));
    };
    add("throughput (jobs/s)", "jobs_per_second", -1, [](const Result& r) { return r.throughput; });
    for (int which = 0; which < 2; ++which)
        for (std::size_t i = 0; i < quantiles.size(); ++i) {
            const double q = quantiles[i];
            add(std::string(which ? "enqueue -> completion " : "enqueue -> start ") + quantile_names[i] + " (us)",
                std::string(which ? "to_completion_" : "to_start_") + quantile_names[i] + "_us", 1,
                [which, q](const Result& r) { return latency_us(which ? r.to_completion : r.to_start, q); });
        }
    add("CPU s per million jobs", "cpu_seconds_per_million", 2, cpu_per_million);
    add("  of which producers", "producer_cpu_seconds_per_million", 2, producer_cpu_per_million);
    add("  of which workers", "worker_cpu_seconds_per_million", 2, worker_cpu_per_million);
    add("PostgreSQL queries issued", "pg_queries", -1,
        [](const Result& r) { return r.pg_queries < 0 ? std::nan("") : r.pg_queries; });
    add("jobs completed (warm-up included)", "jobs", -1, [](const Result& r) { return double(r.jobs); });
    add("jobs in the latency figures", "measured_jobs", -1, [](const Result& r) { return double(r.measured_jobs); });
    add("seconds, start to last completion", "seconds", 6, [](const Result& r) { return r.seconds; });
    add("seconds counted for throughput", "window_seconds", 6, [](const Result& r) { return r.window_seconds; });
    return out;
}

// currant's figures as multiples of the floors of this run (NaN where a
// floor is missing or does not apply).
std::vector<Line> floor_lines(const std::vector<Result>& results, const Floors& f) {
    std::vector<Line> out;
    const double nan = std::nan("");
    auto add = [&](std::string label, std::string key, int decimals, auto get) {
        Line line{std::move(label), std::move(key), {}, decimals};
        for (const auto& r : results) line.values.push_back(get(r));
        out.push_back(std::move(line));
    };
    add("throughput / SPSC ring records/s", "throughput_to_spsc_ring", 4, [&](const Result& r) {
        return f.ring && f.ring_records_per_second > 0 ? r.throughput / f.ring_records_per_second : nan;
    });
    add("ns per job / cache-line hop", "ns_per_job_to_cache_line_hop", 1, [&](const Result& r) {
        return f.cache_line && f.hop_ns > 0 && r.throughput > 0 ? 1e9 / r.throughput / f.hop_ns : nan;
    });
    add("enqueue -> start p50 / futex wake-up p50", "to_start_p50_to_futex_p50", 2, [&](const Result& r) {
        return f.futex && f.futex_p50_us > 0 ? latency_us(r.to_start, 0.5) / f.futex_p50_us : nan;
    });
    add("enqueue -> start p99 / futex wake-up p99", "to_start_p99_to_futex_p99", 2, [&](const Result& r) {
        return f.futex && f.futex_p99_us > 0 ? latency_us(r.to_start, 0.99) / f.futex_p99_us : nan;
    });
    if (f.copy)
        add("throughput / bare COPY rows/s", "throughput_to_copy", 3, [&](const Result& r) {
            return r.system == "currant" && f.copy_rows_per_second > 0 ? r.throughput / f.copy_rows_per_second : nan;
        });
    return out;
}

struct LoadAverage {
    double start[3] = {0, 0, 0}, end[3] = {0, 0, 0};
};

std::string format(double value, int decimals) {
    if (std::isnan(value)) return "n/a";
    if (decimals < 0) return grouped(value);
    char text[64];
    std::snprintf(text, sizeof text, "%.*f", decimals, value);
    return text;
}

std::string describe_workload(const Options& o) {
    char text[512];
    std::string amount = o.duration_s > 0 ? std::to_string(o.duration_s) + " s" : grouped(double(o.jobs)) + " jobs";
    if (o.duration_s > 0) {
        char d[32];
        std::snprintf(d, sizeof d, "%g s", o.duration_s);
        amount = o.jobs_bounded ? grouped(double(o.jobs)) + " jobs over " + d : std::string(d);
    }
    std::snprintf(text, sizeof text,
                  "%u producer%s, %u worker%s, %u entrypoint%s, batch %u, %u-byte payloads, %s, warm-up %g%%, "
                  "rate %s, durability %s, job body %u us%s",
                  o.producers, o.producers == 1 ? "" : "s", o.workers, o.workers == 1 ? "" : "s", o.entrypoints,
                  o.entrypoints == 1 ? "" : "s", o.batch, o.payload_bytes, amount.c_str(), o.warmup_percent,
                  o.rate > 0 ? (grouped(o.rate) + " jobs/s").c_str() : "as fast as possible", o.durability.c_str(),
                  o.work_us,
                  o.prefetch > 0 && o.batch == 1
                      ? (", dequeue_one prefetch " + std::to_string(o.prefetch) + " + ack_deferred").c_str()
                      : "");
    return text;
}

void print_row(const Line& line, std::size_t label_width, int column, bool ratio) {
    std::printf("%-*s", int(label_width), line.label.c_str());
    for (double v : line.values) std::printf("  %*s", column, format(v, line.decimals).c_str());
    if (ratio) {
        const double a = line.values[0], b = line.values[1];
        std::printf("  %*s", column, b > 0 && !std::isnan(a) ? format(a / b, 2).c_str() : "-");
    }
    std::printf("\n");
}

void print_table(const Options& o, const std::vector<Result>& results, const Floors& floors, const LoadAverage& load) {
    std::printf("currant-bench: %s\n", describe_workload(o).c_str());
    std::printf("load average (1, 5, 15 min): %.2f %.2f %.2f at the start, %.2f %.2f %.2f at the end, on %ld CPUs\n",
                load.start[0], load.start[1], load.start[2], load.end[0], load.end[1], load.end[2],
                sysconf(_SC_NPROCESSORS_ONLN));
    const auto table = lines(results);
    const auto ratios = floor_lines(results, floors);
    std::size_t label_width = 0;
    for (const auto& line : table) label_width = std::max(label_width, line.label.size());
    for (const auto& line : ratios) label_width = std::max(label_width, line.label.size());
    const int column = 16;
    const bool pair = results.size() == 2;
    std::printf("%-*s", int(label_width), "");
    for (const auto& r : results) std::printf("  %*s", column, r.system.c_str());
    if (pair) std::printf("  %*s", column, ("currant / " + results[1].system).c_str());
    std::printf("\n");
    for (const auto& line : table) print_row(line, label_width, column, pair);
    if (pair) {
        std::printf("(message_queue: one queue for all entrypoints, one message per send and receive whatever "
                    "--batch is, no acknowledgement: completion is the end of the job body; memory only)\n");
    }
    if (!o.floors) return;
    std::printf("\nfloors, measured in this run:");
    if (floors.cache_line) std::printf(" cache-line hop %.1f ns;", floors.hop_ns);
    if (floors.futex) std::printf(" futex wake-up p50 %.2f us, p99 %.2f us;", floors.futex_p50_us, floors.futex_p99_us);
    if (floors.ring) std::printf(" SPSC ring %s records/s (64 B);", grouped(floors.ring_records_per_second).c_str());
    if (floors.copy)
        std::printf(" bare COPY %s rows/s (%s currant_log-shaped rows);", grouped(floors.copy_rows_per_second).c_str(),
                    grouped(double(floors.copy_rows)).c_str());
    std::printf("\n");
    for (const auto& note : floors.notes) std::printf("  not measured: %s\n", note.c_str());
    if (load.start[0] > double(sysconf(_SC_NPROCESSORS_ONLN)))
        std::printf("  (load average above the CPU count: the spinning floors, cache line and ring, then measure how "
                    "long a descheduled peer takes to run again more than the hardware)\n");
    std::printf("%-*s", int(label_width), "as multiples of the floors");
    for (const auto& r : results) std::printf("  %*s", column, r.system.c_str());
    std::printf("\n");
    for (const auto& line : ratios) print_row(line, label_width, column, false);
}

void print_histogram(const Histogram& h) {
    std::printf("[");
    bool first = true;
    for (int i = 0; i < Histogram::buckets; ++i) {
        if (h.raw()[std::size_t(i)] == 0) continue;
        std::printf("%s[%.0f,%" PRIu64 "]", first ? "" : ",", Histogram::bucket_value(i), h.raw()[std::size_t(i)]);
        first = false;
    }
    std::printf("]");
}

void print_json(const Options& o, const std::vector<Result>& results, const Floors& floors, const LoadAverage& load) {
    std::printf("{\"bench\":\"currant-bench\",\"config\":{\"producers\":%u,\"workers\":%u,\"entrypoints\":%u,"
                "\"batch\":%u,\"payload_bytes\":%u,\"jobs\":%" PRIu64 ",\"duration_seconds\":%g,"
                "\"warmup_percent\":%g,\"rate\":%g,\"durability\":\"%s\",\"work_us\":%u,\"prefetch\":%u},",
                o.producers, o.workers, o.entrypoints, o.batch, o.payload_bytes,
                o.duration_s > 0 && !o.jobs_bounded ? 0 : o.jobs, o.duration_s, o.warmup_percent, o.rate,
                o.durability.c_str(), o.work_us, o.batch == 1 ? o.prefetch : 0u);
    std::printf("\"load_average\":{\"start\":[%.2f,%.2f,%.2f],\"end\":[%.2f,%.2f,%.2f]},\"cpus\":%ld,", load.start[0],
                load.start[1], load.start[2], load.end[0], load.end[1], load.end[2], sysconf(_SC_NPROCESSORS_ONLN));
    std::printf("\"results\":[");
    const auto table = lines(results);
    const auto ratios = floor_lines(results, floors);
    auto number = [](const Line& line, std::size_t i) {
        const double v = line.values[i];
        if (std::isnan(v)) return std::string("null");
        char text[64];
        std::snprintf(text, sizeof text, "%.*f", line.decimals < 0 ? 0 : std::max(3, line.decimals), v);
        return std::string(text);
    };
    for (std::size_t i = 0; i < results.size(); ++i) {
        std::printf("%s{\"system\":\"%s\"", i ? "," : "", results[i].system.c_str());
        for (const auto& line : table) std::printf(",\"%s\":%s", line.key.c_str(), number(line, i).c_str());
        if (o.floors) {
            std::printf(",\"to_floors\":{");
            for (std::size_t k = 0; k < ratios.size(); ++k)
                std::printf("%s\"%s\":%s", k ? "," : "", ratios[k].key.c_str(), number(ratios[k], i).c_str());
            std::printf("}");
        }
        if (o.histogram) {
            std::printf(",\"to_start_histogram_ns\":");
            print_histogram(results[i].to_start);
            std::printf(",\"to_completion_histogram_ns\":");
            print_histogram(results[i].to_completion);
        }
        std::printf("}");
    }
    std::printf("]");
    if (results.size() == 2) {
        std::printf(",\"ratio\":{\"of\":\"currant / %s\"", results[1].system.c_str());
        for (const auto& line : table)
            if (line.values[1] > 0 && !std::isnan(line.values[0]))
                std::printf(",\"%s\":%.4f", line.key.c_str(), line.values[0] / line.values[1]);
        std::printf("}");
    }
    if (o.floors) {
        std::printf(",\"floors\":{");
        bool first = true;
        auto item = [&](const char* name, bool have, const std::string& json) {
            if (!have) return;
            std::printf("%s\"%s\":%s", first ? "" : ",", name, json.c_str());
            first = false;
        };
        item("cache_line", floors.cache_line, floors.cache_line_json);
        item("futex_wakeup", floors.futex, floors.futex_json);
        item("spsc_ring", floors.ring, floors.ring_json);
        if (floors.copy) {
            std::printf("%s\"copy\":{\"rows\":%zu,\"rows_per_sec\":%.0f}", first ? "" : ",", floors.copy_rows,
                        floors.copy_rows_per_second);
            first = false;
        }
        std::printf("},\"floor_notes\":[");
        for (std::size_t k = 0; k < floors.notes.size(); ++k) {
            std::string note;
            for (char c : floors.notes[k]) {
                if (c == '"' || c == '\\') note += '\\';
                if (static_cast<unsigned char>(c) >= 0x20) note += c;
            }
            std::printf("%s\"%s\"", k ? "," : "", note.c_str());
        }
        std::printf("]");
    }
    std::printf("}\n");
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{"currant-bench: producer and worker processes over a currant queue; prints throughput, "
                 "enqueue-to-start and enqueue-to-completion latency and CPU per million jobs"};
    app.add_option("--producers", o.producers, "producer processes")->check(CLI::Range(1, 1024));
    app.add_option("--workers", o.workers, "worker (consumer) processes")->check(CLI::Range(1, 2048));
    app.add_option("--entrypoints", o.entrypoints, "entrypoints; producers spread batches over them, workers take from all")
        ->check(CLI::Range(1, 1024));
    app.add_option("--batch", o.batch, "jobs per enqueue_batch and per dequeue (1: enqueue and dequeue one job)")
        ->check(CLI::Range(1, 4096));
    app.add_option("--payload-bytes", o.payload_bytes, "payload size (at least 16: a header the workers read)")
        ->check(CLI::Range(min_payload, 1u << 20));
    auto* jobs = app.add_option("--jobs", o.jobs, "jobs to enqueue over all producers (default 100000)")
                     ->check(CLI::Range(std::uint64_t(1), std::uint64_t(1) << 40));
    std::string duration;
    auto* duration_option =
        app.add_option("--duration", duration, "enqueue for this long instead of --jobs (60s, 500ms, 2m)");
    (void)duration_option;
    app.add_option("--warmup-percent", o.warmup_percent,
                   "share of the jobs (or of --duration) at the start left out of the figures")
        ->check(CLI::Range(0.0, 90.0));
    app.add_option("--rate", o.rate, "target enqueue rate over all producers, jobs/s (0: as fast as possible)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--durability", o.durability, "memory, or async / sync (need a running currantd and --queue)")
        ->check(CLI::IsMember({"memory", "async", "sync"}));
    app.add_option("--work-us", o.work_us, "job body: spin this many microseconds per job (0: no-op)")
        ->check(CLI::Range(0u, 10'000'000u));
    app.add_option("--prefetch", o.prefetch,
                   "with --batch 1: workers call dequeue_one (each pick takes up to this many ready jobs, kept as "
                   "the worker's in the segment) and ack_deferred; 0: dequeue() and ack() each job (default 64, as "
                   "bench/core's one-job-per-call figure)")
        ->check(CLI::Range(0u, 1024u));
    app.add_option("--queue", o.queue, "use this existing queue (e.g. one currantd mirrors) instead of a fresh one");
    app.add_option("--slots", o.slots, "arena slots of the fresh queue (and message_queue depth, at most 65536)")
        ->check(CLI::Range(16u, 1u << 26));
    app.add_option("--compare", o.compare, "also run the same workload over this baseline and print the ratio")
        ->check(CLI::IsMember({"message_queue"}));
    app.add_option("--stall-seconds", o.stall_seconds, "give up when no job completes for this long")
        ->check(CLI::PositiveNumber);
    app.add_flag("--json", o.json, "print the results as one JSON object instead of a table");
    app.add_flag("--histogram", o.histogram, "with --json: add the latency distributions (nonzero buckets, ns)");
    bool no_floors = false;
    app.add_flag("--no-floors", no_floors, "do not run the machine-floor probes (bench/floors) beside currant");
    app.add_option("--floors-dir", o.floors_dir,
                   "directory of floor_cache_line, floor_futex_wakeup and floor_spsc_ring (default: ../floors "
                   "next to this program, as in the build tree)");
    app.add_option("--db", o.db,
                   "conninfo of the database currantd mirrors into: count its statements during the run "
                   "(pg_stat_statements if installed there, else transactions) and measure the bare COPY floor");
    app.add_option("--copy-rows", o.copy_rows, "rows for the bare COPY floor (with --db)")
        ->check(CLI::Range(std::size_t(1000), std::size_t(100'000'000)));
    CLI11_PARSE(app, argc, argv);
    try {
        if (!duration.empty()) o.duration_s = parse_duration(duration);
    } catch (const CLI::Error& error) {
        return app.exit(error);
    }
    o.floors = !no_floors;
    if (o.duration_s > 0 && jobs->count() > 0) {
        // Both: the jobs are spread evenly over the duration.
        o.jobs_bounded = true;
        if (o.rate == 0) o.rate = double(o.jobs) / o.duration_s;
    }
    if (!o.db.empty() && o.durability == "memory")
        std::fprintf(stderr, "currant-bench: note: --db with --durability memory: currant sends nothing to "
                             "PostgreSQL; the COPY floor is measured anyway\n");
    if (o.producers + o.workers > max_children) {
        std::fprintf(stderr, "currant-bench: at most %zu processes\n", max_children);
        return 2;
    }
    g_progress = isatty(STDERR_FILENO) == 1;
    signal(SIGPIPE, SIG_IGN);
    try {
        Control* control = map_control();
        LoadAverage load;
        getloadavg(load.start, 3);
        Floors floors;
        if (o.floors) floors = measure_floors(o);
        std::optional<pg::Connection> db;
        DatabaseCounters before;
        if (!o.db.empty()) {
            db.emplace(o.db);
            if (db->exec("SELECT 1 FROM pg_class WHERE relname = 'currant_log'").rows() == 0)
                throw std::runtime_error("--db: that database has no currant_log table (install the schema: "
                                         "currant db install --db CONNINFO)");
            before = read_database_counters(*db);
        }
        std::vector<Result> results;
        results.push_back(run_currant(o, control));
        if (o.durability == "memory") {
            results.back().pg_queries = 0;
        } else if (db) {
            // Let the mirror catch up and PostgreSQL flush its counters (at most once a second).
            wait_for_mirror(o.queue, 60);
            std::this_thread::sleep_for(std::chrono::milliseconds(1500));
            const DatabaseCounters after = read_database_counters(*db);
            results.back().pg_queries = after.value - before.value;
            if (!after.statements)
                std::fprintf(stderr, "currant-bench: note: pg_stat_statements is not installed in that database; "
                                     "'PostgreSQL queries issued' counts transactions committed\n");
        } else {
            results.back().pg_queries = -1;
        }
        if (o.compare == "message_queue") {
            if (o.durability != "memory")
                std::fprintf(stderr, "currant-bench: note: message_queue keeps nothing past a reboot; it is compared "
                                     "with currant at --durability %s\n", o.durability.c_str());
            results.push_back(run_message_queue(o, control));
        }
        if (db) {
            if (g_progress) std::fprintf(stderr, "\r\033[Kfloor: bare COPY ..."), std::fflush(stderr);
            db->exec("CREATE TEMP TABLE currant_bench_copy_floor (LIKE currant_log INCLUDING ALL)");
            // 65,536 rows a transaction: currantd's default --batch, as
            // bench/daemon's floor uses, so both floors are the same.
            const auto copy = bench::run_copy_floor(*db, "currant_bench_copy_floor", bench::CopyShape::log_row,
                                                    o.copy_rows, 65'536, o.payload_bytes);
            db->exec("DROP TABLE currant_bench_copy_floor");
            floors.copy = true, floors.copy_rows = copy.rows, floors.copy_rows_per_second = copy.rows_per_second();
            if (g_progress) std::fprintf(stderr, "\r\033[K"), std::fflush(stderr);
        }
        getloadavg(load.end, 3);
        if (o.json)
            print_json(o, results, floors, load);
        else
            print_table(o, results, floors, load);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "currant-bench: %s\n", error.what());
        return 1;
    }
    return 0;
}
