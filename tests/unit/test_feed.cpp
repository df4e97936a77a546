// The change feed and durability: async logging and slot recycling at
// commit, a full log, and sync enqueues waiting for the mirror.
#include "unit_support.hpp"

#include <atomic>
#include <thread>

using namespace currant;
using namespace currant::unit;

namespace {

EntrypointOptions durable(Durability durability) {
    EntrypointOptions options;
    options.durability = durability;
    return options;
}

std::vector<Transition> read_all(const Queue& queue, EntrypointId ep, std::uint64_t from = 1) {
    std::vector<Transition> out(256);
    out.resize(queue.read_feed(ep, from, out));
    return out;
}

// Stands in for currantd: commits every transition it sees, from its own
// Queue object on its own thread, until stopped.
class Committer {
public:
    Committer(const std::string& name, EntrypointId ep) : thread_([this, name, ep] { run(name, ep); }) {}
    ~Committer() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    std::uint64_t committed() const { return committed_; }
    std::string error() const { return error_; }

private:
    void run(const std::string& name, EntrypointId ep) {
        try {
            Queue queue = Queue::open(name);
            std::uint64_t next = 1;
            std::vector<Transition> out(64);
            while (!stop_) {
                const std::size_t got = queue.read_feed(ep, next, out);
                if (got == 0) {
                    std::this_thread::yield();
                    continue;
                }
                next = out[got - 1].sequence + 1;
                queue.commit_feed(ep, out[got - 1].sequence);
                committed_ = out[got - 1].sequence;
            }
        } catch (const std::exception& error) {
            error_ = error.what();
        }
    }

    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> committed_{0};
    std::string error_;
    std::thread thread_;
};

} // namespace

TEST_CASE("in async durability read_feed returns the queued, picked and successful transitions in sequence",
          "[feed]") {
    ScratchQueue scratch("feed", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::async));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    auto jobs = dequeue_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 1);
    scratch->ack(jobs[0].handle);

    const auto feed = read_all(scratch.queue(), ep);
    REQUIRE(feed.size() == 3);
    const JobStatus expected[] = {JobStatus::queued, JobStatus::picked, JobStatus::successful};
    const std::uint32_t attempts[] = {0, 1, 1};
    for (std::size_t i = 0; i < 3; ++i) {
        INFO("transition " << i);
        CHECK(feed[i].sequence == i + 1);
        CHECK(feed[i].id == id);
        CHECK(feed[i].slot == jobs[0].handle.slot);
        CHECK(feed[i].status == expected[i]);
        CHECK(feed[i].attempts == attempts[i]);
        CHECK(feed[i].at_ns > 0);
        if (i > 0) {
            CHECK(feed[i].epoch > feed[i - 1].epoch);
            CHECK(feed[i].at_ns >= feed[i - 1].at_ns);
        }
    }
    CHECK(feed[1].epoch == jobs[0].handle.epoch);
    const EntrypointStats stats = stats_of(scratch.queue(), ep);
    CHECK(stats.durability == Durability::async);
    CHECK(stats.log_pending == 3);
}

TEST_CASE("retry, fail and cancel appear in the feed as queued, exception and canceled", "[feed]") {
    ScratchQueue scratch("feed-kinds", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::async));
    const JobId retried = enqueue_text(scratch.queue(), ep, "retried");
    const JobId failed = enqueue_text(scratch.queue(), ep, "failed");
    const JobId canceled = enqueue_text(scratch.queue(), ep, "canceled");
    auto jobs = dequeue_now(scratch.queue(), ep, 2);
    REQUIRE(jobs.size() == 2);
    REQUIRE(scratch->retry(jobs[0].handle, 60'000ms));
    scratch->fail(jobs[1].handle);
    REQUIRE(scratch->cancel(canceled) == currant::CancelOutcome::canceled);

    const auto feed = read_all(scratch.queue(), ep, 6); // after 3 enqueues and 2 picks
    REQUIRE(feed.size() == 3);
    CHECK(feed[0].id == retried);
    CHECK(feed[0].status == JobStatus::queued);
    CHECK(feed[0].attempts == 1);
    CHECK(feed[1].id == failed);
    CHECK(feed[1].status == JobStatus::exception);
    CHECK(feed[2].id == canceled);
    CHECK(feed[2].status == JobStatus::canceled);
}

TEST_CASE("read_feed starts at the asked sequence and fills at most the output span", "[feed]") {
    ScratchQueue scratch("feed-window", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::async));
    for (int i = 0; i < 5; ++i) enqueue_text(scratch.queue(), ep, "x");
    std::vector<Transition> two(2);
    REQUIRE(scratch->read_feed(ep, 3, two) == 2);
    CHECK(two[0].sequence == 3);
    CHECK(two[1].sequence == 4);
    CHECK(read_all(scratch.queue(), ep, 0).size() == 5); // 0 reads from the start
    CHECK(read_all(scratch.queue(), ep, 6).empty());
}

TEST_CASE("memory durability writes no transitions", "[feed]") {
    ScratchQueue scratch("feed-memory", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    enqueue_text(scratch.queue(), ep, "x");
    scratch->ack(dequeue_now(scratch.queue(), ep).at(0).handle);
    CHECK(read_all(scratch.queue(), ep).empty());
    CHECK(stats_of(scratch.queue(), ep).log_pending == 0);
}

TEST_CASE("commit_feed moves the cursor: committed records are no longer read or pending", "[feed]") {
    ScratchQueue scratch("feed-commit", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::async));
    for (int i = 0; i < 4; ++i) enqueue_text(scratch.queue(), ep, "x");
    CHECK(scratch->feed_committed(ep) == 0);
    scratch->commit_feed(ep, 3);
    CHECK(scratch->feed_committed(ep) == 3);
    CHECK(stats_of(scratch.queue(), ep).log_pending == 1);
    const auto rest = read_all(scratch.queue(), ep, 1);
    REQUIRE(rest.size() == 1);
    CHECK(rest[0].sequence == 4);
    scratch->commit_feed(ep, 2); // going back is a no-op
    CHECK(scratch->feed_committed(ep) == 3);
    CHECK_ERRC(scratch->commit_feed(ep, 5), Errc::invalid_argument);
    CHECK(scratch->feed_committed(ep) == 3);
}

TEST_CASE("in async durability a finished slot is recycled only after its final transition is committed",
          "[feed]") {
    ScratchQueue scratch("feed-recycle", small_options(2));
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::async));
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    const JobId b = enqueue_text(scratch.queue(), ep, "b");
    auto jobs = dequeue_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 2);
    REQUIRE(text(jobs[0].payload) == "a");
    scratch->ack(jobs[0].handle); // sequence 5
    scratch->ack(jobs[1].handle); // sequence 6
    CHECK(status_of(scratch.queue(), a) == JobStatus::successful);

    // Both slots hold unmirrored finished jobs: the arena is full.
    REQUIRE_ERRC(enqueue_text(scratch.queue(), ep, "c"), Errc::arena_full);
    CHECK(scratch->info().free_slots == 0);

    scratch->commit_feed(ep, 5); // a's final state is mirrored, b's is not
    CHECK(status_of(scratch.queue(), a) == JobStatus::successful);
    CHECK(status_of(scratch.queue(), b) == JobStatus::successful);
    CHECK_NOTHROW(enqueue_text(scratch.queue(), ep, "c"));
    CHECK_ERRC(enqueue_text(scratch.queue(), ep, "d"), Errc::arena_full);

    scratch->commit_feed(ep, 6);
    CHECK_NOTHROW(enqueue_text(scratch.queue(), ep, "d"));
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a commit from another Queue object recycles the slots too", "[feed]") {
    ScratchQueue scratch("feed-other", small_options(1));
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::async));
    enqueue_text(scratch.queue(), ep, "a");
    scratch->ack(dequeue_now(scratch.queue(), ep).at(0).handle);
    REQUIRE_ERRC(enqueue_text(scratch.queue(), ep, "b"), Errc::arena_full);
    Queue mirror = Queue::open(scratch.name());
    mirror.commit_feed(ep, 3);
    CHECK_NOTHROW(enqueue_text(scratch.queue(), ep, "b"));
}

TEST_CASE("a log a third full makes enqueue throw log_full after log_wait and queue nothing", "[feed][log]") {
    QueueOptions options = small_options();
    options.log_capacity = 12; // enqueues may fill 4: the rest is for picks and completions
    ScratchQueue scratch("log-full", options);
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::async));
    for (int i = 0; i < 4; ++i) enqueue_text(scratch.queue(), ep, "x");
    EnqueueOptions brief;
    brief.log_wait = 100ms;
    const auto start = std::chrono::steady_clock::now();
    try {
        enqueue_text(scratch.queue(), ep, "one too many", brief);
        FAIL("enqueue into a full log succeeded");
    } catch (const Error& error) {
        CHECK(error.code() == Errc::log_full);
        CHECK_THAT(error.what(), Catch::Contains("jobs"));
    }
    CHECK(std::chrono::steady_clock::now() - start >= 100ms);
    const EntrypointStats stats = stats_of(scratch.queue(), ep);
    CHECK(stats.enqueued == 4);
    CHECK(stats.queued == 4);
    CHECK(stats.log_pending == 4);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("with the log full, ack, fail, retry and cancel still complete without waiting", "[feed][log]") {
    QueueOptions options = small_options();
    options.log_capacity = 6; // 2 enqueues, then 4 picks fill it
    ScratchQueue scratch("log-full-others", options);
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::async));
    std::vector<JobId> ids;
    for (int i = 0; i < 2; ++i) ids.push_back(enqueue_text(scratch.queue(), ep, std::to_string(i)));
    scratch->commit_feed(ep, 2); // as if mirrored: room for two more enqueues
    for (int i = 2; i < 4; ++i) ids.push_back(enqueue_text(scratch.queue(), ep, std::to_string(i)));

    Queue consumer = Queue::open(scratch.name());
    auto jobs = dequeue_now(consumer, ep);
    REQUIRE(jobs.size() == 4);
    consumer.ack(jobs[0].handle);
    consumer.fail(jobs[1].handle);
    REQUIRE(consumer.retry(jobs[2].handle, 0ms));
    REQUIRE(scratch->cancel(ids[2]) == currant::CancelOutcome::canceled);
    consumer.ack_deferred(jobs[3].handle);
    CHECK(consumer.flush() == 1);

    CHECK(status_of(scratch.queue(), ids[0]) == JobStatus::successful);
    CHECK(status_of(scratch.queue(), ids[1]) == JobStatus::exception);
    CHECK(status_of(scratch.queue(), ids[2]) == JobStatus::canceled);
    CHECK(status_of(scratch.queue(), ids[3]) == JobStatus::successful);
    CHECK(stats_of(scratch.queue(), ep).log_pending == 6); // nothing more fitted
    CHECK(stats_of(scratch.queue(), ep).dirty_slots == 4);
}

TEST_CASE("committing the feed frees log space for enqueue", "[feed][log]") {
    QueueOptions options = small_options();
    options.log_capacity = 12; // enqueues may fill 4
    ScratchQueue scratch("log-commit", options);
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::async));
    for (int i = 0; i < 4; ++i) enqueue_text(scratch.queue(), ep, "x");
    EnqueueOptions brief;
    brief.log_wait = 0ms;
    REQUIRE_ERRC(enqueue_text(scratch.queue(), ep, "y", brief), Errc::log_full);
    scratch->commit_feed(ep, 2);
    CHECK_NOTHROW(enqueue_text(scratch.queue(), ep, "y", brief));
    CHECK_NOTHROW(enqueue_text(scratch.queue(), ep, "z", brief));
    CHECK_ERRC(enqueue_text(scratch.queue(), ep, "w", brief), Errc::log_full);
    const auto feed = read_all(scratch.queue(), ep);
    REQUIRE(feed.size() == 4);
    CHECK(feed.front().sequence == 3);
    CHECK(feed.back().sequence == 6);
}

TEST_CASE("an enqueue waiting for log space goes through when the mirror commits", "[feed][log]") {
    QueueOptions options = small_options();
    options.log_capacity = 6; // enqueues may fill 2
    ScratchQueue scratch("log-wait", options);
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::async));
    enqueue_text(scratch.queue(), ep, "a");
    enqueue_text(scratch.queue(), ep, "b");
    std::thread mirror([&] {
        Queue queue = Queue::open(scratch.name());
        std::this_thread::sleep_for(100ms); // let the enqueue below start waiting (not required)
        queue.commit_feed(ep, 2);
    });
    EnqueueOptions patient;
    patient.log_wait = 30'000ms;
    CHECK_NOTHROW(enqueue_text(scratch.queue(), ep, "c", patient));
    mirror.join();
    CHECK(stats_of(scratch.queue(), ep).queued == 3);
}

TEST_CASE("a sync enqueue with no committer times out with timed_out and the job stays queued", "[feed][sync]") {
    ScratchQueue scratch("sync-timeout", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::sync));
    EnqueueOptions options;
    options.sync_wait = 100ms;
    const auto start = std::chrono::steady_clock::now();
    try {
        enqueue_text(scratch.queue(), ep, "x", options);
        FAIL("sync enqueue returned without a commit");
    } catch (const Error& error) {
        CHECK(error.code() == Errc::timed_out);
        CHECK_THAT(error.what(), Catch::Contains("queued"));
    }
    CHECK(std::chrono::steady_clock::now() - start >= 100ms);

    const auto feed = read_all(scratch.queue(), ep);
    REQUIRE(feed.size() == 1);
    CHECK(feed[0].status == JobStatus::queued);
    CHECK(status_of(scratch.queue(), feed[0].id) == JobStatus::queued);
    const EntrypointStats stats = stats_of(scratch.queue(), ep);
    CHECK(stats.enqueued == 1);
    CHECK(stats.queued == 1);
    auto jobs = dequeue_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 1);
    CHECK(text(jobs[0].payload) == "x");
}

TEST_CASE("a sync enqueue returns once a committer has committed its transition", "[feed][sync]") {
    ScratchQueue scratch("sync-commit", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::sync));
    Committer committer(scratch.name(), ep);
    EnqueueOptions options;
    options.sync_wait = 30'000ms;
    JobId id = 0;
    CHECK_NOTHROW(id = enqueue_text(scratch.queue(), ep, "x", options));
    CHECK(scratch->feed_committed(ep) >= 1);
    CHECK_NOTHROW(enqueue_text(scratch.queue(), ep, "y", options));
    CHECK(scratch->feed_committed(ep) >= 2);
    committer.stop();
    CHECK(committer.error().empty());
    CHECK(status_of(scratch.queue(), id) == JobStatus::queued);
}

TEST_CASE("a sync reserve and commit also waits for the mirror", "[feed][sync]") {
    ScratchQueue scratch("sync-reserve", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::sync));
    Reservation reservation = scratch->reserve(ep);
    reservation.payload[0] = std::byte('r');
    EnqueueOptions options;
    options.sync_wait = 50ms;
    CHECK_ERRC(scratch->commit(reservation, 1, options), Errc::timed_out);
    CHECK(status_of(scratch.queue(), reservation.id) == JobStatus::queued);
}

namespace {

// A sync enqueue of "x" on its own Queue object and thread, waiting up to
// 30 s for its commit; done once it returned.
class SyncProducer {
public:
    SyncProducer(const std::string& name, EntrypointId ep)
        : thread_([this, name, ep] {
              try {
                  Queue queue = Queue::open(name);
                  EnqueueOptions options;
                  options.sync_wait = 30'000ms;
                  enqueue_text(queue, ep, "x", options);
                  done_ = true;
              } catch (const std::exception& error) {
                  error_ = error.what();
                  done_ = true;
              }
          }) {}
    ~SyncProducer() {
        if (thread_.joinable()) thread_.join();
    }
    bool done() const { return done_; }
    std::string error() {
        if (thread_.joinable()) thread_.join();
        return error_;
    }

private:
    std::atomic<bool> done_{false};
    std::string error_;
    std::thread thread_;
};

template <typename Predicate> bool within(std::chrono::milliseconds limit, Predicate predicate) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!predicate()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

} // namespace

TEST_CASE("a sync enqueue asking while the mirror is busy makes the mirror's next wait_for_feed return at once",
          "[feed][sync]") {
    ScratchQueue scratch("sync-ask", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::sync));
    // The mirror reads the signal, then (busy with a batch) does not wait.
    const std::uint32_t seen = scratch->feed_signal();
    SyncProducer producer(scratch.name(), ep);
    REQUIRE(within(10'000ms, [&] { return scratch->feed_signal() != seen; }));
    const auto start = std::chrono::steady_clock::now();
    CHECK(scratch->wait_for_feed(20s, std::chrono::nanoseconds(-1), std::nullopt, seen) == 1);
    CHECK(std::chrono::steady_clock::now() - start < 10s);
    // No request since: the same wait sleeps its flush interval.
    const auto again = std::chrono::steady_clock::now();
    CHECK(scratch->wait_for_feed(300ms, std::chrono::nanoseconds(-1), std::nullopt, scratch->feed_signal()) == 1);
    CHECK(std::chrono::steady_clock::now() - again >= 250ms);
    CHECK_FALSE(producer.done());
    const auto feed = read_all(scratch.queue(), ep);
    REQUIRE(feed.size() == 1);
    scratch->commit_feed(ep, feed[0].sequence);
    CHECK(within(10'000ms, [&] { return producer.done(); }));
    CHECK(producer.error().empty());
}

TEST_CASE("commit_feed without waking leaves a sync enqueue waiting until wake_feed_waiters", "[feed][sync]") {
    ScratchQueue scratch("sync-wake", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::sync));
    const std::uint32_t seen = scratch->feed_signal();
    SyncProducer producer(scratch.name(), ep);
    REQUIRE(within(10'000ms, [&] { return scratch->feed_signal() != seen; })); // asked, about to sleep
    std::this_thread::sleep_for(300ms);                                         // asleep on the commit signal
    const auto feed = read_all(scratch.queue(), ep);
    REQUIRE(feed.size() == 1);
    scratch->commit_feed(ep, feed[0].sequence, false);
    CHECK(scratch->feed_committed(ep) == feed[0].sequence);
    std::this_thread::sleep_for(300ms);
    CHECK_FALSE(producer.done());
    scratch->wake_feed_waiters(ep);
    CHECK(within(10'000ms, [&] { return producer.done(); }));
    CHECK(producer.error().empty());
}
