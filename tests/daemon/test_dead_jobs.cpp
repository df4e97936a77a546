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
    // The pick has its own row if a batch fell between it and the ack (a
    // slow machine), else it is folded into the successful row.
    REQUIRE(eventually([&] {
        const std::string statuses = log_statuses(fixture, id);
        return statuses.ends_with("exception,queued,successful") ||
               statuses.ends_with("exception,queued,picked,successful");
    }));
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

TEST_CASE("a kept dead job survives a segment rebuild with its last error, and requeued it runs", "[rebuild][dead]") {
    DaemonFixture fixture("dead-rebuild");
    DaemonProcess& first = fixture.start_daemon({"--host-id", "11", "--flush-interval-ms", "1"});
    const std::string error = "Traceback (most recent call last):\n  File \"w.py\"\nKeyError: 'x'";
    JobId id = 0;
    DeadJob before;
    {
        Queue queue = fixture.open_queue();
        const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
        id = dead_job(queue, ep, "dead payload", error);
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_dead WHERE job_id = " + std::to_string(id), 1) == 1);
        before = queue.dead_jobs(ep).at(0);
        first.kill_now();
    }
    Queue::remove(fixture.queue_name()); // a reboot

    DaemonProcess& second = fixture.start_daemon({"--host-id", "11", "--flush-interval-ms", "1"});
    Queue queue = fixture.open_rebuilt_queue();
    CHECK_THAT(second.log(), Catch::Contains("1 dead jobs and 0 kept results restored"));
    const EntrypointId ep = queue.entrypoint("jobs");
    const auto dead = queue.dead_jobs(ep);
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].id == id);
    CHECK(dead[0].error == error);
    CHECK(dead[0].attempts == before.attempts);
    CHECK(dead[0].max_attempts == before.max_attempts);
    CHECK(dead[0].died_at_ns / 1000 == before.died_at_ns / 1000); // PostgreSQL keeps microseconds
    CHECK(testing::text(dead[0].payload) == "dead payload");

    const CliRun failed = run_cli({"failed", fixture.queue_name()});
    CHECK(failed.status == 0);
    CHECK_THAT(failed.output, Catch::Contains(std::to_string(id)) && Catch::Contains("KeyError"));
    const CliRun requeued = run_cli({"requeue", fixture.queue_name(), std::to_string(id)});
    CHECK(requeued.status == 0);
    const EntrypointId eps[] = {ep};
    Job job;
    REQUIRE(queue.dequeue(eps, std::span(&job, 1), 5s) == 1);
    CHECK(job.handle.id == id);
    CHECK(job.attempts == 1);
    CHECK(testing::text(job.payload) == "dead payload");
    queue.ack(job.handle);
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_log WHERE job_id = " + std::to_string(id) +
                                   " AND status = 'successful'",
                               1) == 1);
    // The rebuild logged nothing for it: its one death, and no second one.
    CHECK(fixture.count("SELECT count(*) FROM currant_log WHERE job_id = $1 AND status = 'exception'",
                        {std::to_string(id)}) == 1);
}

TEST_CASE("a dead job requeued before the reboot does not come back dead", "[rebuild][dead]") {
    DaemonFixture fixture("dead-rebuild-requeued");
    DaemonProcess& first = fixture.start_daemon({"--host-id", "12", "--flush-interval-ms", "1"});
    JobId finished = 0, waiting = 0;
    {
        Queue queue = fixture.open_queue();
        const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
        finished = dead_job(queue, ep, "finished", "first");
        waiting = dead_job(queue, ep, "waiting", "second");
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_dead", 2) == 2);
        REQUIRE(queue.requeue(finished));
        queue.ack(pick(queue, ep, finished));
        REQUIRE(queue.requeue(waiting));
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_log WHERE job_id = " + std::to_string(finished) +
                                       " AND status = 'successful'",
                                   1) == 1);
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE id = " + std::to_string(waiting), 1) == 1);
        first.kill_now();
    }
    Queue::remove(fixture.queue_name());

    fixture.start_daemon({"--host-id", "12"});
    Queue queue = fixture.open_rebuilt_queue();
    const EntrypointId ep = queue.entrypoint("jobs");
    CHECK(queue.dead_jobs(ep).empty());
    CHECK(status_of(queue, waiting) == JobStatus::queued);
    CHECK(status_of(queue, finished) == JobStatus::unknown);
    CHECK(fixture.count("SELECT count(*) FROM currant_dead") == 0); // the rebuild dropped their rows
}

TEST_CASE("past an entrypoint's max_dead only its newest deaths come back, in order", "[rebuild][dead]") {
    DaemonFixture fixture("dead-rebuild-cap");
    DaemonProcess& first = fixture.start_daemon({"--host-id", "13", "--flush-interval-ms", "1"});
    std::vector<JobId> ids;
    {
        Queue queue = fixture.open_queue();
        EntrypointOptions options = async_options();
        options.max_dead = 2;
        const EntrypointId ep = queue.declare_entrypoint("jobs", options);
        for (int i = 0; i < 3; ++i) {
            // One at a time: each death is kept (and recorded) before the next evicts the oldest.
            ids.push_back(dead_job(queue, ep, "p" + std::to_string(i), "e" + std::to_string(i)));
            REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_dead", i + 1) == i + 1);
        }
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_entrypoints WHERE max_dead = 2", 1) == 1);
        first.kill_now();
    }
    Queue::remove(fixture.queue_name());

    fixture.start_daemon({"--host-id", "13"});
    Queue queue = fixture.open_rebuilt_queue();
    const EntrypointId ep = queue.entrypoint("jobs");
    CHECK(queue.entrypoint_options(ep).max_dead == std::optional<std::uint32_t>(2));
    const auto dead = queue.dead_jobs(ep);
    REQUIRE(dead.size() == 2);
    CHECK(dead[0].id == ids[1]);
    CHECK(dead[0].error == "e1");
    CHECK(dead[1].id == ids[2]);
    CHECK(dead[1].error == "e2");
    CHECK(fixture.count("SELECT count(*) FROM currant_dead") == 2); // the evicted death's row is gone
}

TEST_CASE("a purged dead job's currant_dead row is deleted and a rebuild does not bring it back", "[rebuild][dead]") {
    DaemonFixture fixture("dead-purge-rebuild");
    DaemonProcess& first = fixture.start_daemon({"--host-id", "14", "--flush-interval-ms", "1"});
    JobId purged = 0, kept = 0;
    {
        Queue queue = fixture.open_queue();
        const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
        purged = dead_job(queue, ep, "purged", "first");
        kept = dead_job(queue, ep, "kept", "second");
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_dead", 2) == 2);
        REQUIRE(queue.purge(purged));
        CHECK(queue.dead_jobs(ep).size() == 1);
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_dead", 1) == 1);
        CHECK(fixture.count("SELECT count(*) FROM currant_dead WHERE job_id = $1", {std::to_string(kept)}) == 1);
        // The purge is its own `deleted` row; the death's row stays.
        CHECK(log_statuses(fixture, purged) == "exception,deleted");
        // Once the mirror committed the purge, the slot is freed.
        CHECK(eventually([&] { return status_of(queue, purged) == JobStatus::unknown; }));
        CHECK(queue.doctor().sound);
        first.kill_now();
    }
    Queue::remove(fixture.queue_name()); // a reboot

    DaemonProcess& second = fixture.start_daemon({"--host-id", "14"});
    Queue queue = fixture.open_rebuilt_queue();
    CHECK_THAT(second.log(), Catch::Contains("1 dead jobs and 0 kept results restored"));
    const auto dead = queue.dead_jobs(queue.entrypoint("jobs"));
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].id == kept);
    CHECK(status_of(queue, purged) == JobStatus::unknown);
}

TEST_CASE("currant purge --all of dead jobs whose deaths were not mirrored yet leaves no currant_dead row after the "
          "mirror catches up",
          "[mirror][dead]") {
    DaemonFixture fixture("dead-purge-all-unmirrored");
    DaemonProcess& first = fixture.start_daemon({"--host-id", "15", "--flush-interval-ms", "1"});
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_entrypoints", 1) == 1);
    REQUIRE(first.terminate() == 0);
    std::vector<JobId> ids;
    for (int i = 0; i < 3; ++i) ids.push_back(dead_job(queue, ep, "p" + std::to_string(i), "e" + std::to_string(i)));
    const CliRun purge = run_cli({"purge", fixture.queue_name(), "--all"});
    REQUIRE(purge.status == 0);
    CHECK(queue.dead_jobs(ep).empty());
    fixture.start_daemon({"--host-id", "15", "--flush-interval-ms", "1"});
    for (const JobId id : ids) {
        REQUIRE(eventually([&] { return log_statuses(fixture, id) == "exception,deleted"; }));
        // The death's own text, though its slot had moved on to the purge.
        CHECK(traceback_of(fixture, id, "exception").has_value());
        CHECK(eventually([&] { return status_of(queue, id) == JobStatus::unknown; }));
    }
    CHECK(fixture.count("SELECT count(*) FROM currant_dead") == 0);
    CHECK(queue.doctor().sound);
}

TEST_CASE("a purge that finds the feed full reaches PostgreSQL through the dirty scan", "[mirror][dead]") {
    DaemonFixture fixture("dead-purge-dirty");
    QueueOptions options;
    options.name = fixture.queue_name();
    options.slots = 256;
    options.log_capacity = 48;
    Queue queue = Queue::create(options);
    DaemonProcess& first = fixture.start_daemon({"--flush-interval-ms", "1"});
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    const JobId purged = dead_job(queue, ep, "purged", "first");
    const JobId kept = dead_job(queue, ep, "kept", "second");
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_dead", 2) == 2);
    REQUIRE(first.terminate() == 0);

    // Fill the log: enqueues take a third of it, their picks and acks the rest.
    EnqueueOptions no_wait;
    no_wait.log_wait = 0ms;
    std::size_t enqueued = 0;
    for (;;) {
        try {
            queue.enqueue(ep, as_payload("filler"), no_wait);
            ++enqueued;
        } catch (const Error& error) {
            REQUIRE(error.code() == Errc::log_full);
            break;
        }
    }
    const EntrypointId eps[] = {ep};
    for (std::size_t i = 0; i < enqueued; ++i) {
        Job job;
        REQUIRE(queue.dequeue(eps, std::span(&job, 1), 5s) == 1);
        queue.ack(job.handle);
    }
    REQUIRE(queue.stats().at(ep).log_pending == 48);
    REQUIRE(queue.purge(purged));

    fixture.start_daemon({"--flush-interval-ms", "1"});
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_dead", 1) == 1);
    CHECK(fixture.count("SELECT count(*) FROM currant_dead WHERE job_id = $1", {std::to_string(kept)}) == 1);
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_log WHERE status = 'deleted' AND transitions = 0 AND "
                             "job_id = " + std::to_string(purged),
                             1) == 1);
    CHECK(eventually([&] { return status_of(queue, purged) == JobStatus::unknown; }));
    CHECK(queue.dead_jobs(ep).size() == 1);
    CHECK(queue.doctor().sound);
}

TEST_CASE("a death and its purge that both find the feed full reach PostgreSQL as an exception row, then deleted",
          "[mirror][dead]") {
    DaemonFixture fixture("dead-death-purge-dirty");
    QueueOptions options;
    options.name = fixture.queue_name();
    options.slots = 256;
    options.log_capacity = 48;
    Queue queue = Queue::create(options);
    DaemonProcess& first = fixture.start_daemon({"--flush-interval-ms", "1"});
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    EnqueueOptions last;
    last.priority = -1; // picked after every filler: the log is full by then
    const JobId doomed = queue.enqueue(ep, as_payload("doomed"), last);
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_log WHERE job_id = " + std::to_string(doomed), 1) == 1);
    REQUIRE(first.terminate() == 0);

    // Fill the log with other jobs' enqueues, picks and acks.
    EnqueueOptions no_wait;
    no_wait.log_wait = 0ms;
    std::vector<JobId> fillers;
    for (;;) {
        try {
            fillers.push_back(queue.enqueue(ep, as_payload("filler"), no_wait));
        } catch (const Error& error) {
            REQUIRE(error.code() == Errc::log_full);
            break;
        }
    }
    const EntrypointId eps[] = {ep};
    for (std::size_t i = 0; i < fillers.size(); ++i) {
        Job job;
        REQUIRE(queue.dequeue(eps, std::span(&job, 1), 5s) == 1);
        queue.ack(job.handle);
    }
    REQUIRE(queue.stats().at(ep).log_pending == 48);
    Job job;
    REQUIRE(queue.dequeue(eps, std::span(&job, 1), 5s) == 1);
    REQUIRE(job.handle.id == doomed);
    queue.fail(job.handle, "the death the log never saw"); // its pick and death go dirty
    REQUIRE(queue.purge(doomed));

    fixture.start_daemon({"--flush-interval-ms", "1"});
    const std::string of_doomed = " WHERE job_id = " + std::to_string(doomed);
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_log" + of_doomed + " AND status = 'deleted'", 1) == 1);
    CHECK(fixture.count("SELECT count(*) FROM currant_log" + of_doomed + " AND status = 'exception'") == 1);
    CHECK(traceback_of(fixture, doomed, "exception") == std::optional<std::string>("the death the log never saw"));
    // In that order, by the log's own id.
    const pg::Result order =
        fixture.db().exec("SELECT string_agg(status::text, ',' ORDER BY id) FROM currant_log" + of_doomed);
    CHECK(std::string(order.text(0, 0)) == "queued,exception,deleted");
    CHECK(eventually([&] { return status_of(queue, doomed) == JobStatus::unknown; }));
    CHECK(fixture.count("SELECT count(*) FROM currant_dead") == 0);
    CHECK(queue.doctor().sound);
}

TEST_CASE("dead jobs purged while currantd mirrors their deaths all leave currant_dead and free their slots",
          "[mirror][dead]") {
    DaemonFixture fixture("dead-purge-race");
    fixture.start_daemon({"--flush-interval-ms", "0"});
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    const std::uint32_t free_before = queue.info().free_slots;
    // Each purge lands somewhere around the mirror's batch of its death:
    // before it read the death, between its read and its commit, or after.
    std::vector<JobId> ids;
    for (int i = 0; i < 300; ++i) {
        ids.push_back(dead_job(queue, ep, "p", "e" + std::to_string(i)));
        if (i % 3 == 2) std::this_thread::sleep_for(std::chrono::microseconds(200 * (i % 7)));
        REQUIRE(queue.purge(ids.back()));
    }
    CHECK(queue.dead_jobs(ep).empty());
    CHECK(eventually([&] { return queue.info().free_slots == free_before; }, 60'000ms));
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_log WHERE status = 'deleted'", 300) == 300);
    CHECK(fixture.count("SELECT count(*) FROM currant_dead") == 0);
    CHECK(fixture.count("SELECT count(DISTINCT job_id) FROM currant_log WHERE status = 'deleted'") == 300);
    for (const JobId id : ids) CHECK(status_of(queue, id) == JobStatus::unknown);
    CHECK(queue.doctor().sound);
}
