// Latency histograms in /metrics, counted by real producer and consumer
// processes (forked children with their own Queue objects): each finished
// job's wait (enqueue to pick) and run time (pick to ack/fail), per
// entrypoint, `memory` durability included; counts kept when the consumer
// closes or is killed (its cells are folded into the entrypoint's retired
// cells). Multi-process, so in a file of its own.
#include <csignal>
#include <unistd.h>

#include "currant/shm/clock.hpp"
#include "http_client.hpp"

using namespace currant;
using namespace currant::daemon_test;

namespace {

// One entrypoint's histogram as /metrics wrote it.
struct Scraped {
    std::vector<std::pair<std::string, double>> buckets; // le, cumulative count, in the order written
    double sum = -1, count = -1;
};

Scraped scrape(const std::string& metrics, const std::string& family, const std::string& queue,
               const std::string& entrypoint) {
    Scraped out;
    const std::string labels = "{queue=\"" + queue + "\",entrypoint=\"" + entrypoint + "\"";
    std::istringstream lines(metrics);
    const std::string bucket_prefix = family + "_bucket" + labels + ",le=\"";
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with(bucket_prefix)) {
            const std::size_t end = line.find('"', bucket_prefix.size());
            REQUIRE(end != std::string::npos);
            REQUIRE(line.compare(end, 3, "\"} ") == 0);
            out.buckets.emplace_back(line.substr(bucket_prefix.size(), end - bucket_prefix.size()),
                                     std::stod(line.substr(end + 3)));
        }
    }
    if (const auto sum = sample(metrics, family + "_sum" + labels + "}")) out.sum = std::stod(*sum);
    if (const auto count = sample(metrics, family + "_count" + labels + "}")) out.count = std::stod(*count);
    return out;
}

// The bucket bounds every histogram must list, in order, then +Inf.
const std::vector<std::string> expected_bounds = {
    "1e-06", "2.5e-06", "5e-06", "1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025",
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"};

// Checks the shape every scrape must have: all bounds, cumulative counts
// that never fall, _count equal to the +Inf bucket. Returns the count.
double check_histogram(const Scraped& h) {
    REQUIRE(h.buckets.size() == expected_bounds.size());
    for (std::size_t i = 0; i < h.buckets.size(); ++i) {
        INFO("bucket " << i);
        CHECK(h.buckets[i].first == expected_bounds[i]);
        if (i) CHECK(h.buckets[i].second >= h.buckets[i - 1].second);
    }
    CHECK(h.count == h.buckets.back().second);
    CHECK(h.sum >= 0);
    return h.count;
}

double cumulative_at(const Scraped& h, const std::string& le) {
    for (const auto& [bound, count] : h.buckets)
        if (bound == le) return count;
    FAIL("no bucket le=" << le);
    return -1;
}

EntrypointOptions memory_options() {
    EntrypointOptions options;
    options.durability = Durability::memory;
    return options;
}

// A pipe a child blocks on until the parent closes the write end.
struct Gate {
    int fds[2] = {-1, -1};
    Gate() { REQUIRE(::pipe(fds) == 0); }
    ~Gate() {
        for (int fd : fds)
            if (fd >= 0) ::close(fd);
    }
    void signal() {  // parent or child: one byte
        const char byte = 1;
        REQUIRE(::write(fds[1], &byte, 1) == 1);
    }
    void wait() {    // blocks until a byte or EOF
        char byte = 0;
        while (::read(fds[0], &byte, 1) < 0 && errno == EINTR) {
        }
    }
};

constexpr int jobs_per_entrypoint = 6;

// The producer: jobs_per_entrypoint jobs on each of "mem" and "logged".
void produce(const std::string& queue_name) {
    const pid_t producer = testing::fork_child([&] {
        Queue queue = Queue::open(queue_name);
        for (const char* name : {"mem", "logged"}) {
            const EntrypointId ep = queue.entrypoint(name);
            for (int i = 0; i < jobs_per_entrypoint; ++i) queue.enqueue(ep, as_payload("job"));
        }
    });
    REQUIRE(testing::wait_child(producer) == 0);
}

// The consumer's work, in a child: picks every job of both entrypoints,
// holds two of each for 30 ms, acks all but one, fails the last (max
// attempts 1: it dies). Then tells `done` and waits on `hold`.
pid_t start_consumer(const std::string& queue_name, Gate& done, Gate& hold) {
    return testing::fork_child([&] {
        Queue queue = Queue::open(queue_name);
        for (const char* name : {"mem", "logged"}) {
            const EntrypointId ep = queue.entrypoint(name);
            std::vector<Job> jobs(jobs_per_entrypoint);
            std::size_t got = 0;
            while (got < jobs.size()) {
                const std::size_t n = queue.dequeue(std::span(&ep, 1), std::span(jobs).subspan(got), 10s);
                if (n == 0) throw std::runtime_error("no job within 10 s");
                got += n;
            }
            for (std::size_t i = 0; i < jobs.size(); ++i) {
                if (i < 2) std::this_thread::sleep_for(30ms);
                if (i + 1 == jobs.size()) queue.fail(jobs[i].handle, "the last one fails");
                else queue.ack(jobs[i].handle);
            }
        }
        done.signal();
        hold.wait();
    });
}

void declare(Queue& queue) {
    EntrypointOptions once = memory_options();
    once.max_attempts = 1;
    queue.declare_entrypoint("mem", once);
    EntrypointOptions logged = async_options();
    logged.max_attempts = 1;
    queue.declare_entrypoint("logged", logged);
}

// What every scrape after the consumer's work must show, for both entrypoints.
void check_counted(std::uint16_t port, const std::string& queue_name) {
    const std::string metrics = http_request(port, "GET", "/metrics").body;
    INFO(metrics);
    CHECK_THAT(metrics, Catch::Contains("# TYPE currant_job_wait_seconds histogram") &&
                            Catch::Contains("# TYPE currant_job_run_seconds histogram"));
    for (const char* name : {"mem", "logged"}) {
        INFO("entrypoint " << name);
        const Scraped wait = scrape(metrics, "currant_job_wait_seconds", queue_name, name);
        const Scraped run = scrape(metrics, "currant_job_run_seconds", queue_name, name);
        // Every job picked once and finished once (5 acks, 1 fail).
        CHECK(check_histogram(wait) == jobs_per_entrypoint);
        CHECK(check_histogram(run) == jobs_per_entrypoint);
        // Two jobs were held 30 ms: above the 25 ms bound, and in the sum.
        CHECK(cumulative_at(run, "0.025") <= jobs_per_entrypoint - 2);
        CHECK(run.sum >= 0.06);
    }
}

} // namespace

TEST_CASE("metrics count each job's wait and run time from real processes, memory durability included",
          "[http][latency][multiprocess]") {
    DaemonFixture fixture("latency-live");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    declare(queue);
    produce(fixture.queue_name());
    Gate done, hold;
    const pid_t consumer = start_consumer(fixture.queue_name(), done, hold);
    done.wait();
    // The consumer is still attached: its own cells are read.
    check_counted(port, fixture.queue_name());
    hold.signal();
    CHECK(testing::wait_child(consumer) == 0);
}

TEST_CASE("latency counts survive the consumer's close", "[http][latency][multiprocess]") {
    DaemonFixture fixture("latency-closed");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    declare(queue);
    produce(fixture.queue_name());
    Gate done, hold;
    const pid_t consumer = start_consumer(fixture.queue_name(), done, hold);
    done.wait();
    hold.signal();
    REQUIRE(testing::wait_child(consumer) == 0); // closed: its cells were folded
    check_counted(port, fixture.queue_name());
}

TEST_CASE("latency counts survive the consumer's SIGKILL once it is reaped", "[http][latency][multiprocess]") {
    DaemonFixture fixture("latency-killed");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    declare(queue);
    produce(fixture.queue_name());
    Gate done, hold;
    const pid_t consumer = start_consumer(fixture.queue_name(), done, hold);
    done.wait();
    REQUIRE(::kill(consumer, SIGKILL) == 0);
    REQUIRE(testing::wait_child(consumer) == 128 + SIGKILL);
    queue.reap(); // the reaper folds its cells
    check_counted(port, fixture.queue_name());
}

TEST_CASE("a delayed job's wait counts from its execute_after, not from its enqueue", "[http][latency]") {
    DaemonFixture fixture("latency-delayed");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("later", memory_options());
    EnqueueOptions options;
    options.execute_after_ns = shm::realtime_ns() + 300'000'000;
    queue.enqueue(ep, as_payload("x"), options);
    Job job;
    // Picked as soon as it is due: the wait is short although it sat 300 ms.
    REQUIRE(queue.dequeue(std::span(&ep, 1), std::span(&job, 1), 10s) == 1);
    queue.ack(job.handle);
    const std::string metrics = http_request(port, "GET", "/metrics").body;
    const Scraped wait = scrape(metrics, "currant_job_wait_seconds", fixture.queue_name(), "later");
    REQUIRE(check_histogram(wait) == 1);
    INFO(metrics);
    CHECK(cumulative_at(wait, "0.25") == 1); // well under the 300 ms delay
}
