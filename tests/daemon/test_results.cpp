// currantd and job results (docs/results.md): a result acked in the segment
// reaches currant_results with its retention, a remote LISTENer on
// currant_finished is told of the batch and reads the result by SQL, and a
// finished job of an entrypoint that keeps nothing and gave no result
// writes no row. Real currantd, real PostgreSQL (tests/support/postgres.cpp).
#include <poll.h>

#include "daemon_support.hpp"

using namespace currant;
using namespace currant::daemon_test;

namespace {

EntrypointOptions kept_async(std::chrono::milliseconds retention) {
    EntrypointOptions options = async_options();
    options.result_retention = retention;
    return options;
}

void ack_with(Queue& queue, EntrypointId ep, JobId expected, std::string_view result) {
    const EntrypointId eps[] = {ep};
    Job job;
    REQUIRE(queue.dequeue(eps, std::span(&job, 1), 5s) == 1);
    REQUIRE(job.handle.id == expected);
    queue.ack(job.handle, as_payload(result));
}

// The next notification on connection within timeout (blocks in poll()).
std::optional<pg::Connection::Notification> next_notification(pg::Connection& connection,
                                                              std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (auto notification = connection.next_notification()) return notification;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return std::nullopt;
        pollfd fd{connection.socket(), POLLIN, 0};
        ::poll(&fd, 1, int(left.count()));
        connection.consume();
    }
}

// The payload of job id as the segment holds it (nullopt: not in the segment).
std::optional<std::string> payload_in_segment(const Queue& queue, JobId id) {
    JobSnapshot job;
    for (std::uint32_t slot = 0; slot < queue.info().slots; ++slot)
        if (queue.read_job(slot, id, job)) return testing::text(job.payload);
    return std::nullopt;
}

// A kept result of job id on host host_id, mirrored; then a reboot (the
// segment removed). before_rebuild runs on the database in between.
void kept_result_then_reboot(DaemonFixture& fixture, const std::string& host_id, const std::string& payload,
                             JobId& id, const std::string& before_rebuild = {}) {
    DaemonProcess& first = fixture.start_daemon({"--host-id", host_id, "--flush-interval-ms", "1"});
    {
        Queue queue = fixture.open_queue();
        const EntrypointId ep = queue.declare_entrypoint("jobs", kept_async(3'600'000ms));
        id = queue.enqueue(ep, as_payload(payload));
        ack_with(queue, ep, id, "the result");
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_results WHERE job_id = " + std::to_string(id), 1) == 1);
        first.kill_now();
    }
    if (!before_rebuild.empty()) fixture.db().exec(before_rebuild);
    Queue::remove(fixture.queue_name()); // a reboot
}

} // namespace

TEST_CASE("a kept result's job payload is mirrored and comes back with it after a segment rebuild",
          "[rebuild][results]") {
    DaemonFixture fixture("results-rebuild-payload");
    JobId id = 0;
    const std::string payload("in\0put \xff", 8);
    kept_result_then_reboot(fixture, "22", payload, id);
    const pg::Result row = fixture.db().exec("SELECT payload FROM currant_results WHERE job_id = $1",
                                             {std::to_string(id)});
    REQUIRE(row.rows() == 1);
    CHECK(row.bytes(0, 0) == payload);

    fixture.start_daemon({"--host-id", "22", "--flush-interval-ms", "1"});
    Queue queue = fixture.open_rebuilt_queue();
    CHECK(payload_in_segment(queue, id) == std::optional<std::string>(payload));
    const JobId ids[] = {id};
    const JobOutcome outcome = queue.wait(ids, 0ns).at(0);
    REQUIRE(outcome.result.has_value());
    CHECK(testing::text(*outcome.result) == "the result");
}

TEST_CASE("a kept result whose row has no payload (written before schema step 7) comes back without one",
          "[rebuild][results]") {
    DaemonFixture fixture("results-rebuild-no-payload");
    JobId id = 0;
    kept_result_then_reboot(fixture, "23", "lost", id, "UPDATE currant_results SET payload = NULL");
    fixture.start_daemon({"--host-id", "23", "--flush-interval-ms", "1"});
    Queue queue = fixture.open_rebuilt_queue();
    CHECK(payload_in_segment(queue, id) == std::optional<std::string>(""));
    const JobId ids[] = {id};
    const JobOutcome outcome = queue.wait(ids, 0ns).at(0);
    REQUIRE(outcome.result.has_value());
    CHECK(testing::text(*outcome.result) == "the result");
}

TEST_CASE("a result round-trips to currant_results with its retention", "[mirror][results]") {
    DaemonFixture fixture("results-roundtrip");
    fixture.start_daemon({"--flush-interval-ms", "1"});
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", kept_async(3'600'000ms));
    const JobId id = queue.enqueue(ep, as_payload("in"));
    const std::string bytes("r\0\x01\xff\\esult", 10);
    ack_with(queue, ep, id, bytes);
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_results WHERE job_id = " + std::to_string(id), 1) == 1);
    const pg::Result row = fixture.db().exec(
        "SELECT status, result, entrypoint, attempts, traceback IS NULL, "
        "round(extract(epoch from expires - finished)) FROM currant_results WHERE job_id = $1",
        {std::to_string(id)});
    CHECK(row.text(0, 0) == "successful");
    CHECK(row.bytes(0, 1) == bytes);
    CHECK(row.text(0, 2) == "jobs");
    CHECK(row.integer(0, 3) == 1);
    CHECK(row.text(0, 4) == "t");
    CHECK(row.integer(0, 5) == 3600);
    // The entrypoint's retention is recorded for a rebuild.
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_entrypoints WHERE name = 'jobs' AND "
                               "result_retention_ms = 3600000",
                               1) == 1);
    // Mirrored, yet still kept in the segment for local waiters.
    const JobId ids[] = {id};
    const JobOutcome outcome = queue.wait(ids, 0ns).at(0);
    REQUIRE(outcome.result.has_value());
    CHECK(as_text(*outcome.result) == bytes);
}

TEST_CASE("a remote LISTENer on currant_finished sees the completion and reads the result", "[mirror][results][notify]") {
    DaemonFixture fixture("results-notify");
    fixture.start_daemon({"--flush-interval-ms", "1"});
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", kept_async(60'000ms));
    const JobId id = queue.enqueue(ep, as_payload("in"));
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs", 1) == 1);
    // The remote waiter: LISTEN first, then look, then wait for NOTIFYs.
    pg::Connection waiter(fixture.conninfo());
    waiter.exec(std::string("LISTEN ") + schema::finished_channel);
    const std::string lookup = "SELECT status, result FROM currant_results WHERE job_id = $1";
    CHECK(waiter.exec(lookup, {std::to_string(id)}).rows() == 0);
    ack_with(queue, ep, id, "done remotely");
    std::optional<pg::Connection::Notification> notification;
    for (;;) {
        notification = next_notification(waiter, 20s);
        REQUIRE(notification.has_value());
        CHECK(notification->channel == schema::finished_channel);
        CHECK(notification->payload == "0"); // the host that finished jobs
        if (waiter.exec(lookup, {std::to_string(id)}).rows() == 1) break; // an earlier batch's NOTIFY: wait on
    }
    const pg::Result row = waiter.exec(lookup, {std::to_string(id)});
    CHECK(row.text(0, 0) == "successful");
    CHECK(row.bytes(0, 1) == "done remotely");
}

TEST_CASE("a failed job's row carries its error; an entrypoint without retention writes none", "[mirror][results]") {
    DaemonFixture fixture("results-kinds");
    fixture.start_daemon({"--flush-interval-ms", "1"});
    Queue queue = fixture.open_queue();
    const EntrypointId kept = queue.declare_entrypoint("kept", kept_async(60'000ms));
    const EntrypointId plain = queue.declare_entrypoint("plain", async_options());
    const JobId failed = queue.enqueue(kept, as_payload("x"));
    const JobId quiet = queue.enqueue(plain, as_payload("y"));
    const JobId with_result = queue.enqueue(plain, as_payload("z"));
    {
        const EntrypointId eps[] = {kept};
        Job job;
        REQUIRE(queue.dequeue(eps, std::span(&job, 1), 5s) == 1);
        queue.fail(job.handle, "it broke");
    }
    {
        const EntrypointId eps[] = {plain};
        Job job;
        REQUIRE(queue.dequeue(eps, std::span(&job, 1), 5s) == 1);
        REQUIRE(job.handle.id == quiet);
        queue.ack(job.handle);
    }
    ack_with(queue, plain, with_result, "not kept");
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_log WHERE status IN ('successful', 'exception')", 3) == 3);
    const pg::Result row = fixture.db().exec("SELECT status, traceback, result IS NULL FROM currant_results WHERE job_id = $1",
                                             {std::to_string(failed)});
    REQUIRE(row.rows() == 1);
    CHECK(row.text(0, 0) == "exception");
    CHECK(row.text(0, 1) == "it broke");
    CHECK(row.text(0, 2) == "t");
    CHECK(fixture.count("SELECT count(*) FROM currant_results WHERE job_id = " + std::to_string(quiet)) == 0);
    CHECK(fixture.count("SELECT count(*) FROM currant_results WHERE job_id = " + std::to_string(with_result)) == 0);
}

TEST_CASE("currant_results rows past their retention are deleted by a later batch", "[mirror][results][retention]") {
    DaemonFixture fixture("results-expiry");
    fixture.start_daemon({"--flush-interval-ms", "1"});
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", kept_async(1ms));
    const JobId old_job = queue.enqueue(ep, as_payload("old"));
    ack_with(queue, ep, old_job, "expires soon");
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_results WHERE job_id = " + std::to_string(old_job), 1) == 1);
    // Deletions run at most every 10 s, in a batch that has something to write.
    std::this_thread::sleep_for(10'500ms);
    CHECK(fixture.count("SELECT count(*) FROM currant_results WHERE job_id = " + std::to_string(old_job)) == 1);
    const JobId new_job = queue.enqueue(ep, as_payload("new"));
    ack_with(queue, ep, new_job, "fresh");
    // The enqueue and the ack may be mirrored in two batches: the first
    // deletes the old row, the second writes the new one.
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_results WHERE job_id = " + std::to_string(old_job), 0) == 0);
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_results WHERE job_id = " + std::to_string(new_job), 1) == 1);
}

TEST_CASE("an entrypoint's result retention survives a segment rebuild", "[rebuild][results]") {
    DaemonFixture fixture("results-rebuild");
    DaemonProcess& first = fixture.start_daemon({"--host-id", "9"});
    {
        Queue queue = fixture.open_queue();
        queue.declare_entrypoint("jobs", kept_async(5'000ms));
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_entrypoints WHERE host = 9 AND name = 'jobs' AND "
                                   "result_retention_ms = 5000",
                                   1) == 1);
        first.kill_now();
    }
    Queue::remove(fixture.queue_name()); // a reboot
    fixture.start_daemon({"--host-id", "9"});
    Queue queue = fixture.open_rebuilt_queue();
    CHECK(queue.entrypoint_options(queue.entrypoint("jobs")).result_retention == std::optional(5'000ms));
}

TEST_CASE("a daemon killed before or after the COMMIT of a batch with results: every result lands once",
          "[crash][results]") {
    for (const char* point : {"mirror.before_database_commit", "mirror.after_database_commit"}) {
        CAPTURE(point);
        DaemonFixture fixture("results-crash");
        QueueOptions options;
        options.name = fixture.queue_name();
        options.slots = 256;
        options.log_capacity = 256;
        Queue queue = Queue::create(options); // before any daemon: the batch below is its first
        const EntrypointId ep = queue.declare_entrypoint("jobs", kept_async(60'000ms));
        std::vector<JobId> ids;
        for (int i = 0; i < 20; ++i) {
            ids.push_back(queue.enqueue(ep, as_payload("x")));
            ack_with(queue, ep, ids.back(), "result " + std::to_string(i));
        }
        setenv("CURRANT_CRASH_POINT", point, 1);
        DaemonProcess& first = fixture.start_daemon();
        unsetenv("CURRANT_CRASH_POINT");
        CHECK(first.wait_for_exit() == 128 + SIGKILL);
        fixture.start_daemon();
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_results", 20) == 20);
        for (int i = 0; i < 20; ++i) {
            const pg::Result row =
                fixture.db().exec("SELECT result FROM currant_results WHERE job_id = $1", {std::to_string(ids[i])});
            REQUIRE(row.rows() == 1);
            CHECK(row.bytes(0, 0) == "result " + std::to_string(i));
        }
        // Kept in the segment too, after the mirror committed them.
        const auto outcomes = queue.wait(ids, 0ns);
        for (const JobOutcome& outcome : outcomes) CHECK(outcome.result.has_value());
    }
}

TEST_CASE("a kept result survives a segment rebuild: wait and currant status return it", "[rebuild][results]") {
    DaemonFixture fixture("results-rebuild-kept");
    DaemonProcess& first = fixture.start_daemon({"--host-id", "21", "--flush-interval-ms", "1"});
    JobId id = 0;
    const std::string result("\xff\0ok", 4); // not UTF-8: currant status prints it in hex
    {
        Queue queue = fixture.open_queue();
        const EntrypointId ep = queue.declare_entrypoint("jobs", kept_async(3'600'000ms));
        id = queue.enqueue(ep, as_payload("x"));
        ack_with(queue, ep, id, result);
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_results WHERE job_id = " + std::to_string(id), 1) == 1);
        first.kill_now();
    }
    Queue::remove(fixture.queue_name()); // a reboot

    DaemonProcess& second = fixture.start_daemon({"--host-id", "21", "--flush-interval-ms", "1"});
    Queue queue = fixture.open_rebuilt_queue();
    CHECK_THAT(second.log(), Catch::Contains("0 dead jobs and 1 kept results restored"));
    const JobId ids[] = {id};
    const JobOutcome outcome = queue.wait(ids, 0ns).at(0);
    CHECK(outcome.status == JobStatus::successful);
    CHECK(outcome.finished);
    REQUIRE(outcome.result.has_value());
    CHECK(testing::text(*outcome.result) == result);
    const CliRun status = run_cli({"status", fixture.queue_name(), std::to_string(id)});
    CHECK(status.status == 0);
    CHECK_THAT(status.output, Catch::Contains(std::to_string(id) + " ") && Catch::Contains("successful") &&
                                  Catch::Contains("0xff006f6b"));
    // Not mirrored again: a later batch (another job) writes no second row for it.
    const EntrypointId ep = queue.entrypoint("jobs");
    const JobId later = queue.enqueue(ep, as_payload("later"));
    ack_with(queue, ep, later, "later");
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_results WHERE job_id = " + std::to_string(later), 1) == 1);
    CHECK(fixture.count("SELECT count(*) FROM currant_log WHERE job_id = $1", {std::to_string(id)}) ==
          fixture.count("SELECT count(*) FROM currant_log WHERE job_id = $1 AND incarnation <> $2",
                        {std::to_string(id), std::to_string(std::int64_t(queue.info().incarnation))}));
}

TEST_CASE("a result whose retention passed while the host was down is not restored", "[rebuild][results]") {
    DaemonFixture fixture("results-rebuild-expired");
    DaemonProcess& first = fixture.start_daemon({"--host-id", "22", "--flush-interval-ms", "1"});
    JobId expired = 0, kept = 0;
    {
        Queue queue = fixture.open_queue();
        const EntrypointId short_ep = queue.declare_entrypoint("short", kept_async(1'000ms));
        const EntrypointId long_ep = queue.declare_entrypoint("long", kept_async(3'600'000ms));
        expired = queue.enqueue(short_ep, as_payload("x"));
        ack_with(queue, short_ep, expired, "gone");
        kept = queue.enqueue(long_ep, as_payload("y"));
        ack_with(queue, long_ep, kept, "here");
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_results", 2) == 2);
        first.kill_now();
    }
    Queue::remove(fixture.queue_name());
    std::this_thread::sleep_for(1'500ms);
    // Its row is still there (no daemon ran to delete it): the rebuild must skip it.
    REQUIRE(fixture.count("SELECT count(*) FROM currant_results WHERE expires < now() AND job_id = " +
                          std::to_string(expired)) == 1);

    fixture.start_daemon({"--host-id", "22"});
    Queue queue = fixture.open_rebuilt_queue();
    const JobId ids[] = {expired, kept};
    const auto outcomes = queue.wait(ids, 0ns);
    CHECK(outcomes[0].status == JobStatus::unknown);
    CHECK(outcomes[1].status == JobStatus::successful);
    REQUIRE(outcomes[1].result.has_value());
    CHECK(testing::text(*outcomes[1].result) == "here");
}

TEST_CASE("a queue's result_bytes survives a segment rebuild with its large results", "[rebuild][results]") {
    DaemonFixture fixture("results-rebuild-bytes");
    const std::string result(3'000, 'r');
    JobId id = 0;
    {
        QueueOptions options;
        options.name = fixture.queue_name();
        options.slots = 256;
        options.host_id = 23;
        options.result_bytes = 4'096;
        Queue queue = Queue::create(options);
        DaemonProcess& first = fixture.start_daemon({"--flush-interval-ms", "1"});
        const EntrypointId ep = queue.declare_entrypoint("jobs", kept_async(3'600'000ms));
        id = queue.enqueue(ep, as_payload("x"));
        ack_with(queue, ep, id, result);
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_results WHERE job_id = " + std::to_string(id), 1) == 1);
        CHECK(fixture.count("SELECT result_bytes FROM currant_hosts WHERE host = 23") == 4'096);
        first.kill_now();
    }
    Queue::remove(fixture.queue_name());

    fixture.start_daemon();
    Queue queue = fixture.open_rebuilt_queue();
    CHECK(queue.info().result_bytes == 4'096);
    const JobId ids[] = {id};
    const JobOutcome outcome = queue.wait(ids, 0ns).at(0);
    REQUIRE(outcome.result.has_value());
    CHECK(outcome.result->size() == 3'000);
}
