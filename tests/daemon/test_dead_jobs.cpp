// currantd and dead jobs (docs/dead-jobs.md): a job's last error lands in
// currant_log.traceback, a requeue is mirrored as the job queued again, and
// a dead job purged before the mirror saw its death still reaches
// PostgreSQL. Real currantd, real PostgreSQL (tests/support/postgres.cpp).
#include "daemon_support.hpp"

using namespace currant;
using namespace currant::daemon_test;

namespace {

JobHandle pick(Queue& queue, EntrypointId ep, JobId expected) {
    const EntrypointId eps[] = {ep};
    Job job;
    REQUIRE(queue.dequeue(eps, std::span(&job, 1), 5s) == 1);
    REQUIRE(job.handle.id == expected);
    return job.handle;
}

// The traceback of job id's newest currant_log row of that status (nullopt: no row, or NULL).
std::optional<std::string> traceback_of(DaemonFixture& fixture, JobId id, const std::string& status) {
    const pg::Result row = fixture.db().exec(
        "SELECT traceback FROM currant_log WHERE job_id = $1 AND status = $2::currant_status "
        "ORDER BY sequence DESC, created DESC LIMIT 1",
        {std::to_string(id), status});
    if (row.rows() == 0 || row.is_null(0, 0)) return std::nullopt;
    return std::string(row.text(0, 0));
}

std::string log_statuses(DaemonFixture& fixture, JobId id) {
    const pg::Result rows = fixture.db().exec(
        "SELECT status FROM currant_log WHERE job_id = $1 ORDER BY sequence, created", {std::to_string(id)});
    std::string out;
    for (int i = 0; i < rows.rows(); ++i) out += std::string(i ? "," : "") + std::string(rows.text(i, 0));
    return out;
}

} // namespace

TEST_CASE("a dead job's last error is its currant_log traceback; a requeue is mirrored as queued again",
          "[mirror][dead]") {
    DaemonFixture fixture("dead-traceback");
    fixture.start_daemon({"--flush-interval-ms", "1"});
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    const JobId id = queue.enqueue(ep, as_payload("the payload"));
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs", 1) == 1);

    // A retry's error travels with the requeued job; the death's is the last.
    REQUIRE(queue.retry(pick(queue, ep, id), 0ms, "first try failed"));
    const std::string error = "Traceback (most recent call last):\n\tFile \"x.py\", line 1\n"
                              "ValueError: it's a \\ backslash and a tab\there";
    queue.fail(pick(queue, ep, id), error);
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs", 0) == 0);
    REQUIRE(eventually([&] { return traceback_of(fixture, id, "exception").has_value(); }));
    CHECK(*traceback_of(fixture, id, "exception") == error);
    // Mirrored, yet still kept in the segment (the commit did not recycle it).
    const auto dead = queue.dead_jobs(ep);
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].error == error);

    // Requeued: currant_jobs has it again, queued with a fresh set of attempts.
    REQUIRE(queue.requeue(id));
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE id = " + std::to_string(id) +
                                   " AND status = 'queued' AND attempts = 0",
                               1) == 1);
    const pg::Result row =
        fixture.db().exec("SELECT payload FROM currant_jobs WHERE id = $1", {std::to_string(id)});
    CHECK(row.bytes(0, 0) == "the payload");
    CHECK(log_statuses(fixture, id).ends_with("exception,queued"));
    queue.ack(pick(queue, ep, id));
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs", 0) == 0);
    REQUIRE(eventually([&] { return log_statuses(fixture, id).ends_with("exception,queued,successful"); }));
    CHECK_FALSE(traceback_of(fixture, id, "successful").has_value());
    CHECK(queue.dead_jobs(ep).empty());
}

TEST_CASE("an error text that is not valid UTF-8 is mirrored with replacement characters, and mirroring goes on",
          "[mirror][dead]") {
    DaemonFixture fixture("dead-utf8");
    fixture.start_daemon({"--flush-interval-ms", "1"});
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    const JobId id = queue.enqueue(ep, as_payload("x"));
    queue.fail(pick(queue, ep, id), std::string_view("bad \xff byte\0 nul \xe2\x82", 18));
    REQUIRE(eventually([&] { return traceback_of(fixture, id, "exception").has_value(); }));
    CHECK(*traceback_of(fixture, id, "exception") == "bad \xEF\xBF\xBD byte\xEF\xBF\xBD nul \xEF\xBF\xBD\xEF\xBF\xBD");
    const JobId next = queue.enqueue(ep, as_payload("after"));
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE id = " + std::to_string(next), 1) == 1);
}

TEST_CASE("a dead job purged before currantd mirrored its death still reaches currant_log", "[mirror][dead]") {
    DaemonFixture fixture("dead-purged");
    DaemonProcess& first = fixture.start_daemon({"--flush-interval-ms", "1"});
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    const JobId id = queue.enqueue(ep, as_payload("x"));
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs", 1) == 1);
    REQUIRE(first.terminate() == 0);
    queue.fail(pick(queue, ep, id), "died while currantd was down");
    REQUIRE(queue.purge(id));
    CHECK(queue.dead_jobs(ep).empty());
    const JobId ids[] = {id};
    CHECK(queue.status(ids).at(0).status == JobStatus::exception); // the slot waits for the mirror
    fixture.start_daemon({"--flush-interval-ms", "1"});
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs", 0) == 0);
    REQUIRE(eventually([&] { return traceback_of(fixture, id, "exception").has_value(); }));
    CHECK(*traceback_of(fixture, id, "exception") == "died while currantd was down");
    CHECK(queue.doctor().sound);
}
