// currantd mirrors the segment's jobs into PostgreSQL: content, statuses,
// sync enqueues, and the schema commands.
#include "daemon_support.hpp"

using namespace currant;
using namespace currant::daemon_test;
using currant::testing::bytes;
using currant::testing::text;

TEST_CASE("db install creates the current schema and installing again is refused", "[schema]") {
    DaemonFixture fixture("schema");
    CHECK(schema::installed_version(fixture.db()) == schema::current_version());
    CHECK_THROWS_WITH(schema::install(fixture.db()), Catch::Contains("installed already"));
    CHECK(schema::upgrade(fixture.db()) == 0);
}

TEST_CASE("queued jobs reach currant_jobs with identical content, quotes and NUL bytes included", "[mirror]") {
    DaemonFixture fixture("content");
    fixture.start_daemon();
    Queue queue = fixture.open_queue();
    const std::string entrypoint = "it's \"quoted\"; DROP TABLE currant_jobs; --";
    const EntrypointId ep = queue.declare_entrypoint(entrypoint, async_options());
    const std::string payload("a\0b\\c\td\ne'f", 12);
    EnqueueOptions options;
    options.priority = -3;
    const JobId id = queue.enqueue(ep, as_payload(payload), options);

    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs", 1) == 1);
    const pg::Result row = fixture.db().exec(
        "SELECT entrypoint, payload, priority, status, attempts, host FROM currant_jobs WHERE id = $1",
        {std::to_string(id)});
    REQUIRE(row.rows() == 1);
    CHECK(row.text(0, 0) == entrypoint);
    CHECK(row.bytes(0, 1) == payload);
    CHECK(row.integer(0, 2) == -3);
    CHECK(row.text(0, 3) == "queued");
    CHECK(row.integer(0, 4) == 0);
    CHECK(row.integer(0, 5) == 0);
}

TEST_CASE("a finished job leaves currant_jobs and its final status is in currant_log", "[mirror]") {
    DaemonFixture fixture("finished");
    fixture.start_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    const JobId done = queue.enqueue(ep, as_payload("done"));
    const JobId failed = queue.enqueue(ep, as_payload("failed"));
    const JobId waiting = queue.enqueue(ep, as_payload("waiting"));
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs", 3) == 3);

    const EntrypointId eps[] = {ep};
    Job jobs[2];
    REQUIRE(queue.dequeue(eps, jobs, 5s) == 2);
    queue.ack(jobs[0].handle);
    queue.fail(jobs[1].handle);

    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs", 1) == 1);
    CHECK(fixture.count("SELECT count(*) FROM currant_jobs WHERE id = $1 AND status = 'queued'",
                        {std::to_string(waiting)}) == 1);
    CHECK(fixture.count("SELECT count(*) FROM currant_log WHERE job_id = $1 AND status = 'successful'",
                        {std::to_string(done)}) == 1);
    CHECK(fixture.count("SELECT count(*) FROM currant_log WHERE job_id = $1 AND status = 'exception'",
                        {std::to_string(failed)}) == 1);
}

TEST_CASE("every transition is accounted for in currant_log exactly once", "[mirror]") {
    DaemonFixture fixture("accounting");
    fixture.start_daemon({"--flush-interval-ms", "1"});
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    const EntrypointId eps[] = {ep};
    for (int round = 0; round < 20; ++round) {
        for (int i = 0; i < 50; ++i) queue.enqueue(ep, as_payload("x"));
        Job jobs[50];
        std::size_t got = 0;
        while (got < 50) got += queue.dequeue(eps, std::span(jobs).subspan(got), 5s);
        for (auto& job : jobs) queue.ack(job.handle);
    }
    // 1000 jobs, three transitions each.
    REQUIRE(fixture.wait_count("SELECT COALESCE(sum(transitions), 0) FROM currant_log", 3000) == 3000);
    CHECK(fixture.count("SELECT count(*) FROM (SELECT job_id, sequence FROM currant_log GROUP BY 1, 2 "
                        "HAVING count(*) > 1) d") == 0);
    CHECK(fixture.count("SELECT count(DISTINCT job_id) FROM currant_log WHERE status = 'successful'") == 1000);
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_jobs", 0) == 0);
    CHECK(queue.stats().at(ep).log_pending == 0);
}

TEST_CASE("a sync enqueue is in PostgreSQL when the call returns", "[mirror][sync]") {
    DaemonFixture fixture("sync");
    fixture.start_daemon({"--flush-interval-ms", "1000"}); // sync must not wait for the timer
    Queue queue = fixture.open_queue();
    EntrypointOptions options;
    options.durability = Durability::sync;
    const EntrypointId ep = queue.declare_entrypoint("payments", options);
    for (int i = 0; i < 20; ++i) {
        const JobId id = queue.enqueue(ep, as_payload("pay " + std::to_string(i)));
        CHECK(fixture.count("SELECT count(*) FROM currant_jobs WHERE id = $1", {std::to_string(id)}) == 1);
    }
}

TEST_CASE("memory durability is never mirrored", "[mirror]") {
    DaemonFixture fixture("memory");
    fixture.start_daemon({"--flush-interval-ms", "1"});
    Queue queue = fixture.open_queue();
    // Explicitly memory: without a durability, an entrypoint declared after
    // the daemon has attached gets async, and the daemon may attach first.
    EntrypointOptions memory_options;
    memory_options.durability = Durability::memory;
    const EntrypointId memory = queue.declare_entrypoint("volatile", memory_options);
    const EntrypointId durable = queue.declare_entrypoint("durable", async_options());
    queue.enqueue(memory, as_payload("m"));
    queue.enqueue(durable, as_payload("d")); // mirrored after the memory one: a barrier
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs", 1) == 1);
    CHECK(fixture.count("SELECT count(*) FROM currant_jobs WHERE entrypoint = 'volatile'") == 0);
}

TEST_CASE("the daemon records the host, its entrypoints and its cursor", "[mirror]") {
    DaemonFixture fixture("records");
    fixture.start_daemon({"--host-id", "12"});
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("mail", async_options());
    queue.enqueue(ep, as_payload("x"));
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_cursors WHERE host = 12 AND sequence = 1", 1) == 1);
    CHECK(fixture.count("SELECT count(*) FROM currant_hosts WHERE host = 12 AND segment = $1 AND incarnation = $2",
                        {fixture.queue_name(), std::to_string(std::int64_t(queue.info().incarnation))}) == 1);
    CHECK(fixture.count("SELECT count(*) FROM currant_entrypoints WHERE host = 12 AND name = 'mail' AND "
                        "durability = 'async'") == 1);
}

TEST_CASE("SIGTERM flushes what is pending and stops with status 0", "[operations]") {
    DaemonFixture fixture("sigterm");
    DaemonProcess& daemon = fixture.start_daemon({"--flush-interval-ms", "60000"});
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    // Wait until the daemon is past its start (entrypoints recorded on first flush).
    queue.enqueue(ep, as_payload("first"));
    std::this_thread::sleep_for(200ms);
    for (int i = 0; i < 10; ++i) queue.enqueue(ep, as_payload("x"));
    CHECK(daemon.terminate() == 0);
    CHECK(fixture.count("SELECT count(*) FROM currant_jobs") == 11);
    CHECK_THAT(daemon.log(), Catch::Contains("stopped"));
}

TEST_CASE("an entrypoint declared without a durability is mirrored once currantd attached", "[mirror]") {
    DaemonFixture fixture("default-async");
    fixture.start_daemon();
    Queue queue = fixture.open_queue();
    REQUIRE(eventually([&] { return queue.info().mirrored; }));
    const EntrypointId ep = queue.declare_entrypoint("plain");
    CHECK(queue.entrypoint_options(ep).durability == Durability::async);
    queue.enqueue(ep, as_payload("x"));
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE entrypoint = 'plain'", 1) == 1);
}

namespace {

// Makes PostgreSQL refuse every insert into `table` (a trigger) while the
// table currant_test_refuse holds a row: refused statements, not a lost
// connection, so the daemon rolls back and retries on the same connection.
void refuse_inserts_into(pg::Connection& db, const std::string& table) {
    db.exec("CREATE TABLE currant_test_refuse (x integer)");
    db.exec("INSERT INTO currant_test_refuse VALUES (1)");
    db.exec("CREATE FUNCTION currant_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF EXISTS (SELECT 1 FROM currant_test_refuse) THEN RAISE EXCEPTION 'refused by the test'; END IF; "
            "RETURN NEW; END $$");
    db.exec("CREATE TRIGGER currant_test_refuse BEFORE INSERT ON " + table +
            " FOR EACH ROW EXECUTE FUNCTION currant_test_refuse()");
}

// A job enqueued while its batch is refused: nothing of it is committed, the
// daemon keeps retrying, and once the refusal ends the job is mirrored with
// exactly one currant_jobs row and one log row.
void check_refused_batch_retried(const std::string& table) {
    DaemonFixture fixture("refused-" + table);
    DaemonProcess& daemon = fixture.start_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    const JobId first = queue.enqueue(ep, as_payload("first"));
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE id = " + std::to_string(first), 1) == 1);

    refuse_inserts_into(fixture.db(), table);
    const JobId second = queue.enqueue(ep, as_payload("second"));
    REQUIRE(eventually([&] { return daemon.log().find("refused by the test") != std::string::npos; }));
    CHECK(fixture.count("SELECT count(*) FROM currant_jobs WHERE id = " + std::to_string(second)) == 0);
    CHECK(fixture.count("SELECT count(*) FROM currant_log WHERE job_id = " + std::to_string(second)) == 0);
    CHECK(daemon.alive());

    fixture.db().exec("DELETE FROM currant_test_refuse");
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE id = " + std::to_string(second) +
                                 " AND status = 'queued'",
                             1) == 1);
    CHECK(fixture.count("SELECT count(*) FROM currant_log WHERE job_id = " + std::to_string(second)) == 1);
    CHECK(fixture.count("SELECT COALESCE(sum(transitions), 0) FROM currant_log") == 2);
    CHECK(daemon.alive());
    // A refused statement is retried on the same connection (docs/daemon.md,
    // "Errors"): the connection was left fit for the ROLLBACK.
    CHECK(daemon.log().find("reconnecting") == std::string::npos);
}

} // namespace

TEST_CASE("a batch refused by a statement of its pipeline is rolled back and mirrored once when retried",
          "[mirror][errors]") {
    check_refused_batch_retried("currant_cursors");
}

TEST_CASE("a batch refused by one of its COPYs is rolled back and mirrored once when retried", "[mirror][errors]") {
    check_refused_batch_retried("currant_log");
}
