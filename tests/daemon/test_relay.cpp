// The NOTIFY relay: jobs and cancellations put into PostgreSQL for this
// host by plain SQL reach the segment; several hosts share one database.
#include <future>

#include "daemon_support.hpp"

using namespace currant;
using namespace currant::daemon_test;

namespace {

// What a remote producer runs (docs/daemon.md).
JobId insert_remote(pg::Connection& db, int host, const std::string& entrypoint, const std::string& payload) {
    const pg::Result row = db.exec(
        "INSERT INTO currant_jobs (host, entrypoint, payload) VALUES ($1, $2, $3::bytea) RETURNING id",
        {std::to_string(host), entrypoint, pg::hex_bytes(payload.data(), payload.size())});
    db.exec("SELECT pg_notify($1, '')", {schema::host_channel(std::uint32_t(host))});
    return JobId(row.integer(0, 0));
}

} // namespace

TEST_CASE("a row inserted by SQL and NOTIFYed wakes a consumer blocked on the segment", "[relay]") {
    DaemonFixture fixture("remote");
    fixture.start_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());

    std::optional<Job> got;
    std::thread consumer([&] {
        Queue own = Queue::open(fixture.queue_name());
        const EntrypointId eps[] = {ep};
        Job job;
        if (own.dequeue(eps, std::span(&job, 1), 30s) == 1) {
            got = job;
            got->payload = {}; // the view dies with `own`; the test keeps the id
            own.ack(job.handle);
        }
    });
    std::this_thread::sleep_for(100ms); // the consumer is asleep in the kernel
    const JobId id = insert_remote(fixture.db(), 0, "emails", std::string("hello\0remote", 12));
    consumer.join();
    REQUIRE(got);
    CHECK(got->handle.id == id);
    CHECK(got->attempts == 1);
    // Its completion is mirrored back like any local job's.
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_log WHERE job_id = " + std::to_string(id) +
                                 " AND status = 'successful'",
                             1) == 1);
    CHECK(fixture.count("SELECT count(*) FROM currant_jobs") == 0);
}

TEST_CASE("a remote job keeps its payload, priority and id in the segment", "[relay]") {
    DaemonFixture fixture("remote-content");
    fixture.start_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    const std::string payload("\x01\x00\xff", 3);
    const pg::Result row = fixture.db().exec(
        "INSERT INTO currant_jobs (host, entrypoint, payload, priority) VALUES (0, 'jobs', $1::bytea, 9) RETURNING id",
        {pg::hex_bytes(payload.data(), payload.size())});
    const JobId id = JobId(row.integer(0, 0));
    CHECK((id >> 48) == schema::remote_host);
    fixture.db().exec("NOTIFY " + schema::host_channel(0));
    const EntrypointId eps[] = {ep};
    Job job;
    REQUIRE(queue.dequeue(eps, std::span(&job, 1), 20s) == 1);
    CHECK(job.handle.id == id);
    CHECK(job.priority == 9);
    CHECK(testing::text(job.payload) == payload);
    // The claim commits just after the job enters the segment.
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE incarnation IS NOT NULL AND id = " +
                                 std::to_string(std::int64_t(id)),
                             1) == 1);
}

TEST_CASE("rows inserted while the daemon was down are claimed when it starts", "[relay]") {
    DaemonFixture fixture("remote-missed");
    DaemonProcess& first = fixture.start_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    queue.enqueue(ep, as_payload("local")); // makes the daemon record the entrypoint
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_entrypoints", 1) == 1);
    REQUIRE(first.terminate() == 0);
    for (int i = 0; i < 3; ++i) insert_remote(fixture.db(), 0, "jobs", "missed"); // nobody listens
    fixture.start_daemon();
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE incarnation IS NULL", 0) == 0);
    CHECK(queue.stats().at(ep).queued == 4);
}

TEST_CASE("a remote job for an undeclared entrypoint ends exception with the reason", "[relay]") {
    DaemonFixture fixture("remote-unknown");
    fixture.start_daemon();
    fixture.open_queue();
    const JobId id = insert_remote(fixture.db(), 0, "nobody-serves-this", "x");
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_log WHERE status = 'exception'", 1) == 1);
    const pg::Result row = fixture.db().exec("SELECT job_id, traceback FROM currant_log WHERE status = 'exception'");
    CHECK(JobId(row.integer(0, 0)) == id);
    CHECK_THAT(std::string(row.text(0, 1)), Catch::Contains("nobody-serves-this"));
    CHECK(fixture.count("SELECT count(*) FROM currant_jobs") == 0);
}

TEST_CASE("a cancellation requested by SQL cancels the queued job in the segment", "[relay][cancel]") {
    DaemonFixture fixture("remote-cancel");
    fixture.start_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    EnqueueOptions later;
    later.execute_after_ns = (std::chrono::system_clock::now() + 1h).time_since_epoch() / 1ns;
    const JobId id = queue.enqueue(ep, as_payload("to cancel"), later);
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs", 1) == 1);

    fixture.db().exec("UPDATE currant_jobs SET cancel_requested = true WHERE id = $1", {std::to_string(id)});
    fixture.db().exec("NOTIFY " + schema::host_channel(0));
    const JobId ids[] = {id};
    CHECK(eventually([&] { return queue.status(ids)[0].status == JobStatus::canceled; }));
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_log WHERE status = 'canceled'", 1) == 1);
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_jobs", 0) == 0);
}

TEST_CASE("a cancellation that arrives while the daemon is down is applied when it starts", "[relay][cancel]") {
    DaemonFixture fixture("remote-cancel-missed");
    DaemonProcess& first = fixture.start_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    EnqueueOptions later;
    later.execute_after_ns = (std::chrono::system_clock::now() + 1h).time_since_epoch() / 1ns;
    const JobId id = queue.enqueue(ep, as_payload("to cancel"), later);
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs", 1) == 1);
    first.kill_now();
    fixture.db().exec("UPDATE currant_jobs SET cancel_requested = true WHERE id = $1", {std::to_string(id)});
    fixture.db().exec("NOTIFY " + schema::host_channel(0)); // lost: nobody listens
    fixture.start_daemon();
    const JobId ids[] = {id};
    CHECK(eventually([&] { return queue.status(ids)[0].status == JobStatus::canceled; }));
}

// A job picked by `holder`, mirrored to PostgreSQL as picked.
Job pick_mirrored(DaemonFixture& fixture, Queue& holder, EntrypointId ep, JobId id) {
    const EntrypointId eps[] = {ep};
    Job job;
    REQUIRE(holder.dequeue(eps, std::span(&job, 1), 5s) == 1);
    REQUIRE(job.handle.id == id);
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE id = " + std::to_string(id) +
                                   " AND status = 'picked'",
                               1) == 1);
    return job;
}

// The holder's side of a remote cancel: wait in the kernel, then give it up.
std::future<std::optional<std::size_t>> wait_for_cancel_async(Queue& holder, const Job& job) {
    return std::async(std::launch::async, [&holder, handle = job.handle] {
        const JobHandle handles[] = {handle};
        const std::optional<std::size_t> seen = holder.wait_for_cancel(handles, 60s);
        if (seen) holder.ack_canceled(handle);
        return seen;
    });
}

void check_ended_canceled(DaemonFixture& fixture, Queue& queue, JobId id) {
    const JobId ids[] = {id};
    CHECK(queue.status(ids)[0].status == JobStatus::canceled);
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_log WHERE job_id = " + std::to_string(id) +
                                 " AND status = 'canceled'",
                             1) == 1);
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE id = " + std::to_string(id), 0) == 0);
}

TEST_CASE("a cancellation requested by SQL for a picked job wakes its holder and the job ends canceled",
          "[relay][cancel]") {
    DaemonFixture fixture("remote-cancel-picked");
    fixture.start_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    const JobId id = queue.enqueue(ep, as_payload("running"));
    const Job job = pick_mirrored(fixture, queue, ep, id);
    auto waited = wait_for_cancel_async(queue, job);

    fixture.db().exec("UPDATE currant_jobs SET cancel_requested = true WHERE id = $1", {std::to_string(id)});
    fixture.db().exec("NOTIFY " + schema::host_channel(0));
    REQUIRE(waited.wait_for(30s) == std::future_status::ready);
    CHECK(waited.get() == std::optional<std::size_t>(0));
    check_ended_canceled(fixture, queue, id);
}

TEST_CASE("a cancellation whose NOTIFY was lost with the relay's connection is re-read after the reconnect",
          "[relay][cancel]") {
    DaemonFixture fixture("remote-cancel-reconnect");
    fixture.start_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    const JobId id = queue.enqueue(ep, as_payload("running"));
    const Job job = pick_mirrored(fixture, queue, ep, id);
    auto waited = wait_for_cancel_async(queue, job);

    // The relay connects on its own thread after the mirror: wait for it, or
    // a relay still connecting could scan before the COMMIT below, escape
    // the termination and never scan again (a fast mirror makes the steps
    // above take a few ms, less than a connection's set-up here).
    REQUIRE(fixture.wait_count("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                               "backend_type = 'client backend' AND pid <> pg_backend_pid()",
                               2) == 2);
    // The request commits together with the end of every daemon connection,
    // and without a NOTIFY: only the scan after the reconnect can find it.
    pg::Connection& db = fixture.db();
    db.exec("BEGIN");
    db.exec("UPDATE currant_jobs SET cancel_requested = true WHERE id = $1", {std::to_string(id)});
    // CASE, not AND: PostgreSQL may evaluate AND's operands in any order.
    const pg::Result ended = db.exec("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND "
                                     "CASE WHEN pid = pg_backend_pid() THEN false "
                                     "ELSE pg_terminate_backend(pid, 10000) END");
    db.exec("COMMIT");
    CHECK(ended.integer(0, 0) >= 2); // the mirror's and the relay's connections
    REQUIRE(waited.wait_for(30s) == std::future_status::ready);
    CHECK(waited.get() == std::optional<std::size_t>(0));
    check_ended_canceled(fixture, queue, id);
}

TEST_CASE("a cancellation of a picked job written while the daemon is down is applied after its restart",
          "[relay][cancel]") {
    DaemonFixture fixture("remote-cancel-picked-down");
    DaemonProcess& first = fixture.start_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    const JobId id = queue.enqueue(ep, as_payload("running"));
    const Job job = pick_mirrored(fixture, queue, ep, id);
    auto waited = wait_for_cancel_async(queue, job);
    first.kill_now();
    fixture.db().exec("UPDATE currant_jobs SET cancel_requested = true WHERE id = $1", {std::to_string(id)});
    fixture.db().exec("NOTIFY " + schema::host_channel(0)); // lost: nobody listens
    REQUIRE(waited.wait_for(300ms) == std::future_status::timeout); // nothing reached the segment
    CHECK_FALSE(queue.cancel_requested(job.handle));
    fixture.start_daemon();
    REQUIRE(waited.wait_for(30s) == std::future_status::ready);
    CHECK(waited.get() == std::optional<std::size_t>(0));
    check_ended_canceled(fixture, queue, id);
}

TEST_CASE("two hosts share one database and each claims only its own jobs", "[relay][hosts]") {
    DaemonFixture a("host-a");
    const std::string queue_b = testing::unique_queue_name("host-b");
    Queue::remove(queue_b);
    a.start_daemon({"--host-id", "1"});
    DaemonProcess b;
    b.start({"--queue", queue_b, "--db", a.conninfo(), "--host-id", "2", "--slots", "1024", "--log-capacity", "1024"},
            testing::shared_postgres().directory() + "/" + queue_b + ".log");
    Queue queue_a = a.open_queue();
    std::optional<Queue> opened_b;
    REQUIRE(eventually([&] {
        try {
            opened_b = Queue::open(queue_b);
            return true;
        } catch (const Error&) {
            return false;
        }
    }));
    const EntrypointId ep_a = queue_a.declare_entrypoint("work", async_options());
    const EntrypointId ep_b = opened_b->declare_entrypoint("work", async_options());

    // Inserted "on A's side" (any connection), addressed to B.
    const JobId for_b = insert_remote(a.db(), 2, "work", "for b");
    const JobId for_a = insert_remote(a.db(), 1, "work", "for a");
    const EntrypointId eps_b[] = {ep_b};
    Job job;
    REQUIRE(opened_b->dequeue(eps_b, std::span(&job, 1), 20s) == 1);
    CHECK(job.handle.id == for_b);
    const EntrypointId eps_a[] = {ep_a};
    REQUIRE(queue_a.dequeue(eps_a, std::span(&job, 1), 20s) == 1);
    CHECK(job.handle.id == for_a);

    // B down: only B's jobs wait.
    CHECK(b.terminate() == 0);
    const JobId later_b = insert_remote(a.db(), 2, "work", "waits");
    const JobId later_a = insert_remote(a.db(), 1, "work", "runs");
    REQUIRE(queue_a.dequeue(eps_a, std::span(&job, 1), 20s) == 1);
    CHECK(job.handle.id == later_a);
    CHECK(a.count("SELECT count(*) FROM currant_jobs WHERE id = $1 AND incarnation IS NULL",
                  {std::to_string(std::int64_t(later_b))}) == 1);
    opened_b.reset();
    Queue::remove(queue_b);
}

// ---------------------------------------------------------------- dedupe keys (docs/dedupe.md)

namespace {

JobId insert_remote_keyed(pg::Connection& db, const std::string& entrypoint, const std::string& key,
                          const std::string& on_duplicate) {
    const pg::Result row = db.exec(
        "INSERT INTO currant_jobs (host, entrypoint, payload, dedupe_key, on_duplicate) VALUES (0, $1, 'remote', $2, "
        "$3) RETURNING id",
        {entrypoint, key, on_duplicate});
    db.exec("SELECT pg_notify($1, '')", {schema::host_channel(0)});
    return JobId(row.integer(0, 0));
}

} // namespace

TEST_CASE("a remote job whose dedupe key is held on the host ends skipped or refused, the reason in currant_log",
          "[relay][dedupe]") {
    DaemonFixture fixture("remote-dedupe");
    fixture.start_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    EnqueueOptions keyed;
    keyed.dedupe_key = "order-9";
    const JobId local = queue.enqueue(ep, as_payload("local"), keyed);
    // The mirror writes the key into the local job's row.
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE dedupe_key = 'order-9' AND id = " +
                                   std::to_string(std::int64_t(local)),
                               1) == 1);
    const JobId skipped = insert_remote_keyed(fixture.db(), "jobs", "order-9", "skip");
    const JobId refused = insert_remote_keyed(fixture.db(), "jobs", "order-9", "refuse");
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_log WHERE job_id IN (" +
                                   std::to_string(std::int64_t(skipped)) + ", " +
                                   std::to_string(std::int64_t(refused)) + ")",
                               2) == 2);
    const pg::Result skip_row = fixture.db().exec("SELECT status, traceback FROM currant_log WHERE job_id = $1",
                                                  {std::to_string(std::int64_t(skipped))});
    CHECK(skip_row.text(0, 0) == "canceled");
    CHECK_THAT(std::string(skip_row.text(0, 1)),
               Catch::Contains("skipped: dedupe key 'order-9' is held by job " + std::to_string(local)));
    const pg::Result refuse_row = fixture.db().exec("SELECT status, traceback FROM currant_log WHERE job_id = $1",
                                                    {std::to_string(std::int64_t(refused))});
    CHECK(refuse_row.text(0, 0) == "exception");
    CHECK_THAT(std::string(refuse_row.text(0, 1)), Catch::Contains("refused:"));
    CHECK_THAT(std::string(refuse_row.text(0, 1)), Catch::Contains("is held by job " + std::to_string(local)));
    CHECK(fixture.count("SELECT count(*) FROM currant_jobs WHERE id <> " + std::to_string(std::int64_t(local))) == 0);
    CHECK(queue.stats().at(ep).queued == 1);
}

TEST_CASE("a remote job with a free dedupe key is claimed and then holds the key on the host", "[relay][dedupe]") {
    DaemonFixture fixture("remote-dedupe-claim");
    fixture.start_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    const JobId remote = insert_remote_keyed(fixture.db(), "jobs", "from-sql", "refuse");
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE incarnation IS NOT NULL AND id = " +
                                   std::to_string(std::int64_t(remote)),
                               1) == 1);
    EnqueueOptions keyed;
    keyed.dedupe_key = "from-sql";
    CHECK(queue.enqueue(ep, as_payload("local"), keyed) == remote);
    CHECK(queue.last_enqueue_skipped());
    CHECK(queue.stats().at(ep).queued == 1);
}
