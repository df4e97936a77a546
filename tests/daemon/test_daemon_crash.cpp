// currantd killed, PostgreSQL restarted, the feed filling while the daemon
// is down, the segment lost: nothing mirrored twice, nothing lost.
#include "daemon_support.hpp"

#include <atomic>
#include <mutex>
#include <random>
#include <thread>
#include <sys/wait.h>
#include <unistd.h>

#include "currant/shm/crash_point.hpp"

using namespace currant;
using namespace currant::daemon_test;

namespace {

// Transitions the segment logged, over all entrypoints, once the mirror
// has committed them all (committed and pending read at two moments would
// race with the daemon's commits).
std::uint64_t logged_transitions(Queue& queue) {
    eventually([&] {
        for (const EntrypointStats& stats : queue.stats())
            if (stats.log_pending != 0) return false;
        return true;
    }, 30'000ms);
    std::uint64_t total = 0;
    for (EntrypointId ep = 0; ep < queue.entrypoint_names().size(); ++ep) total += queue.feed_committed(ep);
    return total;
}

// Enqueues, picks and acks `jobs` jobs in rounds of `round`; enqueues wait
// up to a minute for log space (back-pressure while the daemon is down).
void run_jobs(Queue& queue, EntrypointId ep, int jobs, int round = 20) {
    const EntrypointId eps[] = {ep};
    std::vector<Job> picked(static_cast<std::size_t>(round));
    EnqueueOptions options;
    options.log_wait = 60'000ms;
    for (int done = 0; done < jobs; done += round) {
        for (int i = 0; i < round; ++i) queue.enqueue(ep, as_payload("job"), options);
        std::size_t got = 0;
        while (got < std::size_t(round)) got += queue.dequeue(eps, std::span(picked).subspan(got), 10s);
        for (const Job& job : picked) queue.ack(job.handle);
    }
}

// A queue made before any daemon runs (the daemon then registers it).
Queue create_queue(const std::string& name, std::uint32_t slots, std::uint32_t log_capacity) {
    QueueOptions options;
    options.name = name;
    options.slots = slots;
    options.log_capacity = log_capacity;
    return Queue::create(options);
}

void check_exactly_once(DaemonFixture& fixture, Queue& queue, int finished_jobs) {
    const std::int64_t expected = std::int64_t(logged_transitions(queue));
    CHECK(fixture.wait_count("SELECT COALESCE(sum(transitions), 0) FROM currant_log", expected, 30'000ms) ==
          expected);
    CHECK(fixture.count("SELECT count(*) FROM (SELECT job_id, sequence FROM currant_log WHERE sequence > 0 "
                        "GROUP BY 1, 2 HAVING count(*) > 1) d") == 0);
    CHECK(fixture.count("SELECT count(*) FROM (SELECT job_id FROM currant_log WHERE status = 'successful' "
                        "GROUP BY 1 HAVING count(*) > 1) d") == 0);
    CHECK(fixture.count("SELECT count(DISTINCT job_id) FROM currant_log WHERE status = 'successful'") ==
          finished_jobs);
}

} // namespace

TEST_CASE("a daemon killed between its PostgreSQL commit and the segment's resumes without repeating the batch",
          "[crash]") {
    DaemonFixture fixture("crash-after-commit");
    Queue queue = create_queue(fixture.queue_name(), 1024, 1024);
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    run_jobs(queue, ep, 100);
    setenv("CURRANT_CRASH_POINT", "mirror.after_database_commit", 1);
    DaemonProcess& first = fixture.start_daemon();
    unsetenv("CURRANT_CRASH_POINT");
    CHECK(first.wait_for_exit() == 128 + SIGKILL);
    CHECK(fixture.count("SELECT COALESCE(sum(transitions), 0) FROM currant_log") == 300);
    CHECK(queue.stats().at(ep).log_pending == 300); // the segment never heard of the commit

    fixture.start_daemon();
    check_exactly_once(fixture, queue, 100);
}

TEST_CASE("a daemon killed before its COMMIT leaves nothing behind and the restart mirrors the batch", "[crash]") {
    DaemonFixture fixture("crash-before-commit");
    Queue queue = create_queue(fixture.queue_name(), 1024, 1024);
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    run_jobs(queue, ep, 100);
    setenv("CURRANT_CRASH_POINT", "mirror.before_database_commit", 1);
    DaemonProcess& first = fixture.start_daemon();
    unsetenv("CURRANT_CRASH_POINT");
    CHECK(first.wait_for_exit() == 128 + SIGKILL);
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_log", 0) == 0);

    fixture.start_daemon();
    check_exactly_once(fixture, queue, 100);
}

TEST_CASE("a daemon killed between moving the segment's cursor and waking sync enqueuers: the restart wakes them",
          "[crash][sync]") {
    DaemonFixture fixture("crash-before-wake");
    Queue queue = create_queue(fixture.queue_name(), 1024, 1024);
    EntrypointOptions sync;
    sync.durability = Durability::sync;
    const EntrypointId ep = queue.declare_entrypoint("payments", sync);
    // The enqueue waits (no daemon yet) and is asleep before the daemon
    // commits its job: only a wake ends that sleep before its deadline.
    std::atomic<bool> done{false};
    std::string error;
    JobId id = 0;
    std::thread producer([&] {
        try {
            Queue mine = Queue::open(fixture.queue_name());
            EnqueueOptions options;
            options.sync_wait = 60'000ms;
            id = mine.enqueue(ep, as_payload("pay"), options);
        } catch (const std::exception& e) {
            error = e.what();
        }
        done = true;
    });
    std::this_thread::sleep_for(500ms);
    REQUIRE_FALSE(done.load());
    setenv("CURRANT_CRASH_POINT", "mirror.before_wake", 1);
    DaemonProcess& first = fixture.start_daemon();
    unsetenv("CURRANT_CRASH_POINT");
    CHECK(first.wait_for_exit() == 128 + SIGKILL);
    CHECK(queue.stats().at(ep).log_pending == 0); // committed in PostgreSQL and in the segment
    CHECK(fixture.count("SELECT count(*) FROM currant_jobs") == 1);
    std::this_thread::sleep_for(500ms);
    CHECK_FALSE(done.load()); // nobody woke it

    const auto restarted = std::chrono::steady_clock::now();
    fixture.start_daemon();
    CHECK(eventually([&] { return done.load(); }, 30'000ms));
    CHECK(std::chrono::steady_clock::now() - restarted < 30s);
    producer.join();
    CHECK(error.empty());
    CHECK(fixture.count("SELECT count(*) FROM currant_jobs WHERE id = $1", {std::to_string(id)}) == 1);
    CHECK(fixture.count("SELECT count(*) FROM currant_log") == 1);
}

TEST_CASE("a consumer killed between logging the first transition after the mirror caught up and waking it: the "
          "entrypoint's repair wakes the mirror",
          "[crash]") {
    DaemonFixture fixture("crash-log-appended");
    Queue queue = create_queue(fixture.queue_name(), 256, 1024);
    fixture.start_daemon({"--flush-interval-ms", "1"});
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    const JobId first = queue.enqueue(ep, as_payload("first"));
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_log WHERE job_id = " + std::to_string(first), 1) == 1);
    REQUIRE(eventually([&] { return queue.stats().at(ep).log_pending == 0; }));
    std::this_thread::sleep_for(300ms); // the mirror asleep with nothing pending: only a nudge wakes it

    // The child's pick is the first record after the catch-up; it dies
    // holding the entrypoint lock, before its nudge.
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        try {
            Queue mine = Queue::open(fixture.queue_name());
            shm::arm_crash_point("log.appended");
            const EntrypointId eps[] = {ep};
            Job job;
            mine.dequeue(eps, std::span(&job, 1), 5s);
        } catch (...) {
        }
        _exit(3); // not reached when the crash point fired
    }
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(WTERMSIG(status) == SIGKILL);

    // The next locker repairs the lock; its own record finds one pending
    // and does not nudge.
    const JobId second = queue.enqueue(ep, as_payload("second"));
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_log WHERE job_id = " + std::to_string(second), 1,
                             20'000ms) == 1);
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_log WHERE job_id = " + std::to_string(first) +
                                 " AND status = 'picked'",
                             1, 20'000ms) == 1);
    CHECK(queue.doctor().sound);
}

TEST_CASE("a sync enqueue made while the daemon is in the middle of a batch is committed without its flush interval",
          "[operations][sync]") {
    DaemonFixture fixture("sync-during-batch");
    Queue queue = create_queue(fixture.queue_name(), 1024, 1024);
    EntrypointOptions sync;
    sync.durability = Durability::sync;
    const EntrypointId ep = queue.declare_entrypoint("payments", sync);
    std::atomic<int> done{0};
    std::string errors;
    std::mutex errors_mutex;
    auto producer = [&](const char* text) {
        return std::thread([&, text] {
            try {
                Queue mine = Queue::open(fixture.queue_name());
                EnqueueOptions options;
                options.sync_wait = 120'000ms;
                mine.enqueue(ep, as_payload(text), options);
            } catch (const std::exception& e) {
                std::lock_guard lock(errors_mutex);
                errors += e.what();
            }
            ++done;
        });
    };
    std::thread first = producer("first"); // waits for a daemon
    std::this_thread::sleep_for(300ms);
    // The daemon's first batch holds the first job; it stops itself before
    // that batch's COMMIT. The flush interval is far beyond the test's limits.
    setenv("CURRANT_STOP_POINT", "mirror.before_database_commit", 1);
    DaemonProcess& daemon = fixture.start_daemon({"--flush-interval-ms", "600000"});
    unsetenv("CURRANT_STOP_POINT");
    REQUIRE(daemon.wait_until_stopped());
    // The second asks while the mirror is busy (not waiting): nobody is
    // woken by its request; the mirror must not sleep over it afterwards.
    const std::uint32_t before = queue.feed_signal();
    std::thread second = producer("second");
    REQUIRE(eventually([&] { return queue.feed_signal() != before; }, 10'000ms));
    std::this_thread::sleep_for(200ms);
    CHECK(done.load() == 0);
    daemon.continue_running();
    CHECK(eventually([&] { return done.load() == 2; }, 30'000ms));
    first.join();
    second.join();
    CHECK(errors.empty());
    CHECK(fixture.count("SELECT count(*) FROM currant_jobs") == 2);
}

TEST_CASE("SIGKILL of the daemon at random moments under load: every transition mirrored exactly once", "[crash]") {
    DaemonFixture fixture("crash-random");
    const std::vector<std::string> options = {"--flush-interval-ms", "1", "--batch", "200"};
    DaemonProcess* daemon = &fixture.start_daemon(options);
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    std::atomic<bool> stop{false};
    std::atomic<int> finished{0};
    std::string load_error;
    std::thread load([&] {
        try {
            Queue own = Queue::open(fixture.queue_name());
            while (!stop) {
                run_jobs(own, ep, 20);
                finished += 20;
            }
        } catch (const std::exception& error) {
            load_error = error.what();
        }
    });
    std::mt19937 random(std::random_device{}());
    for (int kill = 0; kill < 6; ++kill) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100 + random() % 400));
        daemon->kill_now();
        std::this_thread::sleep_for(std::chrono::milliseconds(random() % 200));
        daemon = &fixture.start_daemon(options);
    }
    std::this_thread::sleep_for(200ms);
    stop = true;
    load.join();
    CHECK(load_error.empty());
    CHECK(finished > 0);
    check_exactly_once(fixture, queue, finished);
}

TEST_CASE("a second daemon for the same host is refused", "[operations]") {
    DaemonFixture fixture("second-daemon");
    fixture.start_daemon();
    Queue queue = fixture.open_queue();
    queue.declare_entrypoint("jobs", async_options());
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_hosts", 1) == 1);
    DaemonProcess& second = fixture.start_daemon({"--lock-wait-seconds", "1"});
    CHECK(second.wait_for_exit() == 1);
    CHECK_THAT(second.log(), Catch::Contains("another currantd is mirroring host 0"));
}

TEST_CASE("PostgreSQL restarted mid-stream: the daemon reconnects and catches up", "[operations]") {
    DaemonFixture fixture("pg-restart");
    fixture.start_daemon({"--flush-interval-ms", "1"});
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    run_jobs(queue, ep, 100);
    REQUIRE(fixture.wait_count("SELECT COALESCE(sum(transitions), 0) FROM currant_log", 300) == 300);
    testing::shared_postgres().restart();
    fixture.db() = pg::Connection(fixture.conninfo());
    run_jobs(queue, ep, 100);
    check_exactly_once(fixture, queue, 200);
}

TEST_CASE("PostgreSQL stopped during start-up's CREATE TEMP TABLE: the daemon starts over and mirrors everything",
          "[operations]") {
    // The chaos run found this once: an immediate shutdown while a
    // restarted currantd ran its first CREATE TEMP TABLE. libpq reports the
    // dead socket without an SQLSTATE while the connection still says OK,
    // and the daemon exited instead of starting over. Here the daemon stops
    // itself (SIGSTOP) just before that statement, PostgreSQL goes down
    // under it, and only then does it go on.
    DaemonFixture fixture("pg-stop-at-start");
    Queue queue = create_queue(fixture.queue_name(), 1024, 1024);
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    run_jobs(queue, ep, 100); // 300 transitions waiting for the daemon
    setenv("CURRANT_STOP_POINT", "mirror.before_temp_tables", 1);
    DaemonProcess& daemon = fixture.start_daemon();
    unsetenv("CURRANT_STOP_POINT");
    REQUIRE(daemon.wait_until_stopped());
    CHECK(fixture.count("SELECT count(*) FROM currant_log") == 0);
    testing::shared_postgres().stop_immediately();
    daemon.continue_running();
    // It failed on the dead connection and starts over (it keeps retrying
    // the connection while PostgreSQL is down).
    const std::string lost_at_create = "start: lost PostgreSQL (PostgreSQL CREATE failed";
    REQUIRE(eventually([&] { return daemon.log().find(lost_at_create) != std::string::npos || !daemon.alive(); },
                       60'000ms));
    INFO(daemon.log());
    REQUIRE(daemon.log().find(lost_at_create) != std::string::npos);
    testing::shared_postgres().start();
    fixture.db() = pg::Connection(fixture.conninfo());
    check_exactly_once(fixture, queue, 100);
    run_jobs(queue, ep, 60); // and it goes on mirroring
    check_exactly_once(fixture, queue, 160);
    CHECK(daemon.terminate() == 0);
}

TEST_CASE("the log fills while the daemon is down: enqueue reports back-pressure and nothing is lost",
          "[operations]") {
    DaemonFixture fixture("feed-full");
    Queue queue = create_queue(fixture.queue_name(), 8192, 4096); // room for more jobs than the log holds
    DaemonProcess& first = fixture.start_daemon();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    queue.enqueue(ep, as_payload("first"));
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs", 1) == 1);
    REQUIRE(first.terminate() == 0);

    EnqueueOptions no_wait;
    no_wait.log_wait = 0ms;
    std::vector<JobId> accepted;
    bool pushed_back = false;
    for (int i = 0; i < 5000 && !pushed_back; ++i) { // enqueues may fill a third of the 4096-record log
        try {
            accepted.push_back(queue.enqueue(ep, as_payload("x"), no_wait));
        } catch (const Error& error) {
            CHECK(error.code() == Errc::log_full);
            CHECK_THAT(error.what(), Catch::Contains("is currantd running?"));
            pushed_back = true;
        }
    }
    REQUIRE(pushed_back);
    CHECK(accepted.size() == 4096 / 3); // the first job was mirrored before the stop

    fixture.start_daemon();
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_jobs", 4096 / 3 + 1) == 4096 / 3 + 1);
    // The segment's cursor moves just after the PostgreSQL commit.
    CHECK(eventually([&] { return queue.stats().at(ep).log_pending == 0; }));
    CHECK_NOTHROW(queue.enqueue(ep, as_payload("after"), no_wait));
}

TEST_CASE("segment removed and daemon restarted: queued and picked jobs are back, picked ones with their attempt",
          "[rebuild]") {
    DaemonFixture fixture("rebuild");
    DaemonProcess& first = fixture.start_daemon({"--host-id", "4"});
    JobId queued_id = 0, picked_id = 0, done_id = 0;
    {
        Queue queue = fixture.open_queue();
        const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
        EnqueueOptions high;
        high.priority = 5;
        picked_id = queue.enqueue(ep, as_payload("picked"), high);
        done_id = queue.enqueue(ep, as_payload("done"), high);
        queued_id = queue.enqueue(ep, as_payload(std::string("queued\0", 8)));
        const EntrypointId eps[] = {ep};
        Job jobs[2];
        REQUIRE(queue.dequeue(eps, jobs, 5s) == 2);
        queue.ack(jobs[1].handle);
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE status = 'picked'", 1) == 1);
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs", 2) == 2);
        first.kill_now();
        // A reboot: the segment is gone, with the pick.
    }
    Queue::remove(fixture.queue_name());

    DaemonProcess& second = fixture.start_daemon({"--host-id", "4"});
    Queue queue = fixture.open_queue();
    CHECK(eventually([&] { return !queue.sealed(); }));
    const EntrypointId ep = queue.entrypoint("jobs");
    const EntrypointId eps[] = {ep};
    Job jobs[4];
    REQUIRE(queue.dequeue(eps, jobs, 5s) == 2);
    CHECK(jobs[0].handle.id == picked_id);
    CHECK(jobs[0].attempts == 2); // its first delivery was lost with the segment
    CHECK(testing::text(jobs[0].payload) == "picked");
    CHECK(jobs[1].handle.id == queued_id);
    CHECK(jobs[1].attempts == 1);
    CHECK(testing::text(jobs[1].payload) == std::string("queued\0", 8));
    // New ids continue above the old ones.
    const JobId fresh = queue.enqueue(ep, as_payload("new"));
    CHECK(fresh > std::max({queued_id, picked_id, done_id}));
    CHECK((fresh >> 48) == 4);
    CHECK_THAT(second.log(), Catch::Contains("rebuilt queue"));
    CHECK(fixture.count("SELECT count(*) FROM currant_log WHERE job_id = $1 AND status = 'successful'",
                        {std::to_string(std::int64_t(done_id))}) == 1);
}

TEST_CASE("segment removed and daemon restarted: a job's dedupe key is restored with it", "[rebuild][dedupe]") {
    DaemonFixture fixture("rebuild-dedupe");
    DaemonProcess& first = fixture.start_daemon({"--host-id", "5"});
    JobId held = 0;
    {
        Queue queue = fixture.open_queue();
        const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
        EnqueueOptions keyed;
        keyed.dedupe_key = "survives-reboot";
        held = queue.enqueue(ep, as_payload("keyed"), keyed);
        queue.enqueue(ep, as_payload("plain"));
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE dedupe_key = 'survives-reboot'", 1) == 1);
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs", 2) == 2);
        first.kill_now();
    }
    Queue::remove(fixture.queue_name());

    fixture.start_daemon({"--host-id", "5"});
    Queue queue = fixture.open_queue();
    CHECK(eventually([&] { return !queue.sealed(); }));
    const EntrypointId ep = queue.entrypoint("jobs");
    EnqueueOptions keyed;
    keyed.dedupe_key = "survives-reboot";
    keyed.on_duplicate = OnDuplicate::refuse;
    CHECK_THROWS_MATCHES(queue.enqueue(ep, as_payload("again"), keyed), Error,
                         Catch::Predicate<Error>([](const Error& e) { return e.code() == Errc::already_exists; }));
    keyed.on_duplicate = OnDuplicate::skip;
    CHECK(queue.enqueue(ep, as_payload("again"), keyed) == held);
    CHECK(queue.stats().at(ep).queued == 2);
    // Once the restored job ends, the key is free.
    const EntrypointId eps[] = {ep};
    Job jobs[2];
    REQUIRE(queue.dequeue(eps, jobs, 5s) == 2);
    queue.ack(jobs[0].handle);
    queue.ack(jobs[1].handle);
    const JobId fresh = queue.enqueue(ep, as_payload("fresh"), keyed);
    CHECK(fresh != held);
    CHECK_FALSE(queue.last_enqueue_skipped());
}

TEST_CASE("a daemon killed in the middle of a rebuild's restores, then restarted, restores each dead job and kept "
          "result once, dead ones in order",
          "[rebuild][crash]") {
    DaemonFixture fixture("rebuild-outcomes-crash");
    DaemonProcess& first = fixture.start_daemon({"--host-id", "31", "--flush-interval-ms", "1"});
    std::vector<JobId> dead_ids, result_ids;
    {
        Queue queue = fixture.open_queue();
        EntrypointOptions options = async_options();
        options.result_retention = 3'600'000ms;
        const EntrypointId ep = queue.declare_entrypoint("jobs", options);
        for (int i = 0; i < 3; ++i) {
            dead_ids.push_back(dead_job(queue, ep, "dead " + std::to_string(i), "error " + std::to_string(i)));
            REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_dead", i + 1) == i + 1); // distinct death times
        }
        const EntrypointId eps[] = {ep};
        for (int i = 0; i < 3; ++i) {
            result_ids.push_back(queue.enqueue(ep, as_payload("x")));
            Job job;
            REQUIRE(queue.dequeue(eps, std::span(&job, 1), 5s) == 1);
            queue.ack(job.handle, as_payload("result " + std::to_string(i)));
        }
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_results WHERE status = 'successful'", 3) == 3);
        first.kill_now();
    }
    Queue::remove(fixture.queue_name()); // a reboot

    // Killed after the second restore (two of the three dead jobs).
    setenv("CURRANT_CRASH_POINT", "rebuild.outcome_restored:2", 1);
    DaemonProcess& interrupted = fixture.start_daemon({"--host-id", "31"});
    unsetenv("CURRANT_CRASH_POINT");
    CHECK(interrupted.wait_for_exit() == 128 + SIGKILL);
    {
        Queue half = Queue::open(fixture.queue_name());
        CHECK(half.sealed());
        CHECK(half.dead_jobs().size() == 2);
    }

    DaemonProcess& second = fixture.start_daemon({"--host-id", "31", "--flush-interval-ms", "1"});
    Queue queue = fixture.open_rebuilt_queue();
    CHECK_THAT(second.log(), Catch::Contains("1 dead jobs and 3 kept results restored"));
    const EntrypointId ep = queue.entrypoint("jobs");
    const auto dead = queue.dead_jobs(ep);
    REQUIRE(dead.size() == 3);
    for (int i = 0; i < 3; ++i) {
        CHECK(dead[std::size_t(i)].id == dead_ids[std::size_t(i)]);
        CHECK(dead[std::size_t(i)].error == "error " + std::to_string(i));
    }
    const auto outcomes = queue.wait(result_ids, 0ns);
    for (int i = 0; i < 3; ++i) {
        CHECK(outcomes[std::size_t(i)].status == JobStatus::successful);
        REQUIRE(outcomes[std::size_t(i)].result.has_value());
        CHECK(testing::text(*outcomes[std::size_t(i)].result) == "result " + std::to_string(i));
    }
    CHECK(queue.doctor().sound);
    // Nothing re-mirrored: still one death row per dead job.
    for (JobId id : dead_ids)
        CHECK(fixture.count("SELECT count(*) FROM currant_log WHERE job_id = $1 AND status = 'exception'",
                            {std::to_string(id)}) == 1);
}

namespace {

// A mirrored dead job, purged while currantd is down; then currantd started
// with crash_point armed, so it is SIGKILLed in the batch that holds the
// purge; then started again. The purge reaches PostgreSQL exactly once, the
// slot is freed, and a rebuild does not bring the job back.
void purge_killed_around_commit(const std::string& fixture_name, const std::string& host,
                                const std::string& crash_point, bool committed) {
    DaemonFixture fixture(fixture_name);
    DaemonProcess& first = fixture.start_daemon({"--host-id", host, "--flush-interval-ms", "1"});
    JobId purged = 0, kept = 0;
    {
        Queue queue = fixture.open_queue();
        const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
        purged = dead_job(queue, ep, "purged", "first");
        kept = dead_job(queue, ep, "kept", "second");
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_dead", 2) == 2);
        REQUIRE(first.terminate() == 0);
        REQUIRE(queue.purge(purged));

        setenv("CURRANT_CRASH_POINT", crash_point.c_str(), 1);
        DaemonProcess& killed = fixture.start_daemon({"--host-id", host, "--flush-interval-ms", "1"});
        unsetenv("CURRANT_CRASH_POINT");
        CHECK(killed.wait_for_exit() == 128 + SIGKILL);
        const std::string row = "SELECT count(*) FROM currant_dead WHERE job_id = " + std::to_string(purged);
        const std::string deleted =
            "SELECT count(*) FROM currant_log WHERE status = 'deleted' AND job_id = " + std::to_string(purged);
        CHECK(fixture.count(row) == (committed ? 0 : 1));
        CHECK(fixture.count(deleted) == (committed ? 1 : 0));
        CHECK(status_of(queue, purged) == JobStatus::exception); // the segment never heard of a commit

        DaemonProcess& restarted = fixture.start_daemon({"--host-id", host, "--flush-interval-ms", "1"});
        CHECK(eventually([&] { return status_of(queue, purged) == JobStatus::unknown; }));
        CHECK(fixture.count(row) == 0);
        CHECK(fixture.count(deleted) == 1);
        const std::int64_t expected = std::int64_t(logged_transitions(queue));
        CHECK(fixture.wait_count("SELECT COALESCE(sum(transitions), 0) FROM currant_log", expected) == expected);
        CHECK(fixture.count("SELECT count(*) FROM currant_dead") == 1);
        CHECK(queue.doctor().sound);
        restarted.kill_now();
    }
    Queue::remove(fixture.queue_name()); // a reboot

    fixture.start_daemon({"--host-id", host});
    Queue queue = fixture.open_rebuilt_queue();
    const auto dead = queue.dead_jobs(queue.entrypoint("jobs"));
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].id == kept);
}

} // namespace

TEST_CASE("a daemon killed before the COMMIT of a purge's batch deletes the currant_dead row once after restart",
          "[crash][dead]") {
    purge_killed_around_commit("crash-purge-before-commit", "32", "mirror.before_database_commit", false);
}

TEST_CASE("a daemon killed after the COMMIT of a purge's batch frees the slot after restart without a second row",
          "[crash][dead]") {
    purge_killed_around_commit("crash-purge-after-commit", "33", "mirror.after_database_commit", true);
}
