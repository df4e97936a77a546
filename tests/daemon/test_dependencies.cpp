// currantd and job dependencies (docs/job-dependencies.md): a waiting job
// is mirrored as `waiting` with its dependencies and then as `queued`; the
// reason a dependency canceled a job reaches currant_log; a rebuilt segment
// restores waiting jobs waiting again. Real currantd, real PostgreSQL
// (tests/support/postgres.cpp).
#include "daemon_support.hpp"

using namespace currant;
using namespace currant::daemon_test;

namespace {

EnqueueOptions after(JobId id) {
    EnqueueOptions options;
    options.depends_on = {id};
    return options;
}

Job pick(Queue& queue, EntrypointId ep, JobId expected) {
    const EntrypointId eps[] = {ep};
    Job job;
    REQUIRE(queue.dequeue(eps, std::span(&job, 1), 5s) == 1);
    REQUIRE(job.handle.id == expected);
    return job;
}

std::string text(JobId id) { return std::to_string(std::int64_t(id)); }

} // namespace

TEST_CASE("a waiting job is mirrored as waiting with its dependencies, then as queued", "[mirror][dependencies]") {
    DaemonFixture fixture("dependencies-mirror");
    fixture.start_daemon({"--flush-interval-ms", "1"});
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    const JobId a = queue.enqueue(ep, as_payload("a"));
    const JobId b = queue.enqueue(ep, as_payload("b"), after(a));
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE id = " + text(b) +
                                 " AND status = 'waiting' AND depends_on = '{" + text(a) + "}'",
                             1) == 1);
    CHECK(fixture.count("SELECT count(*) FROM currant_log WHERE job_id = " + text(b) + " AND status = 'waiting'") == 1);
    queue.ack(pick(queue, ep, a).handle);
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE id = " + text(b) + " AND status = 'queued'", 1) ==
          1);
}

TEST_CASE("the reason a dependency canceled a job is its traceback in currant_log", "[mirror][dependencies]") {
    DaemonFixture fixture("dependencies-reason");
    fixture.start_daemon({"--flush-interval-ms", "1"});
    Queue queue = fixture.open_queue();
    EntrypointOptions options = async_options();
    options.max_attempts = 1;
    const EntrypointId ep = queue.declare_entrypoint("jobs", options);
    const JobId a = queue.enqueue(ep, as_payload("a"));
    const JobId b = queue.enqueue(ep, as_payload("b"), after(a));
    queue.fail(pick(queue, ep, a).handle, "boom");
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_log WHERE job_id = " + text(b) +
                                 " AND status = 'canceled' AND traceback = 'canceled: dependency job " + text(a) +
                                 " ended exception'",
                             1) == 1);
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE id = " + text(b), 0) == 0);
}

TEST_CASE("a rebuilt segment restores a waiting job waiting for its dependency", "[rebuild][dependencies]") {
    DaemonFixture fixture("dependencies-rebuild");
    DaemonProcess& first = fixture.start_daemon({"--host-id", "9", "--flush-interval-ms", "1"});
    JobId a = 0, b = 0, c = 0;
    {
        Queue queue = fixture.open_queue();
        const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
        a = queue.enqueue(ep, as_payload("a"));
        b = queue.enqueue(ep, as_payload("b"), after(a));
        c = queue.enqueue(ep, as_payload("c"), after(b)); // waits for a waiting job
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE status = 'waiting'", 2) == 2);
        first.kill_now();
    }
    Queue::remove(fixture.queue_name()); // a reboot
    fixture.start_daemon({"--host-id", "9", "--flush-interval-ms", "1"});
    Queue queue = fixture.open_rebuilt_queue();
    const JobId ids[] = {a, b, c};
    const std::vector<JobState> states = queue.status(ids);
    CHECK(states[0].status == JobStatus::queued);
    CHECK(states[1].status == JobStatus::waiting);
    CHECK(states[1].depends_on == std::vector<JobId>{a});
    CHECK(states[2].status == JobStatus::waiting);
    const EntrypointId ep = queue.entrypoint("jobs");
    queue.ack(pick(queue, ep, a).handle);
    queue.ack(pick(queue, ep, b).handle);
    queue.ack(pick(queue, ep, c).handle);
    CHECK(queue.doctor().sound);
}
