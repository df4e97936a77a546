// An idle daemon: no statement reaches PostgreSQL while nothing happens
// (issue 5: zero queries while idle), and yet a server that went away while
// it idled is noticed without a heartbeat query (the socket closes).
#include <thread>

#include "daemon_support.hpp"

using namespace currant;
using namespace currant::daemon_test;

namespace {

// Every other client session in the fixture's database: pid and the start
// time of its latest statement, as one comparable text.
std::string other_sessions(DaemonFixture& fixture) {
    const pg::Result rows = fixture.db().exec(
        "SELECT coalesce(string_agg(pid || ':' || state || ':' || coalesce(query_start::text, '-'), ',' ORDER BY pid), '') "
        "FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' "
        "AND pid <> pg_backend_pid()");
    return std::string(rows.text(0, 0));
}

// 1 once the relay's session rests after its start-up scan, whose last
// statement (with no cancellation to apply) reads cancel requests.
constexpr const char* relay_resting_query =
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND state = 'idle' AND query LIKE '%cancel_requested AND incarnation IS NOT NULL%'";

void run_one_job(Queue& queue, EntrypointId ep) {
    const JobId id = queue.enqueue(ep, as_payload("warm-up"));
    Job job;
    const EntrypointId eps[] = {ep};
    REQUIRE(queue.dequeue(eps, std::span(&job, 1), 10s) == 1);
    REQUIRE(job.handle.id == id);
    queue.ack(job.handle);
}

} // namespace

TEST_CASE("an idle daemon sends PostgreSQL no statement", "[idle]") {
    DaemonFixture fixture("idle-quiet");
    fixture.start_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    run_one_job(queue, ep);
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_log WHERE status = 'successful'", 1) == 1);
    // Both daemon sessions (mirror and relay) are there, idle, and done
    // starting: the relay's start-up scan ends with its cancellation query
    // (started before that, the sample would change under the wait below),
    // and nothing moved for a second.
    std::string before;
    REQUIRE(eventually([&] {
        before = other_sessions(fixture);
        const bool settled = std::count(before.begin(), before.end(), ',') >= 1 &&
                             before.find(":active:") == std::string::npos &&
                             before.find(":idle in transaction") == std::string::npos &&
                             fixture.db().exec(relay_resting_query).integer(0, 0) == 1;
        if (!settled) return false;
        std::this_thread::sleep_for(1s);
        return other_sessions(fixture) == before;
    }));
    // Longer than the 5 s heartbeat the relay used to send.
    std::this_thread::sleep_for(7s);
    INFO("before: " << before);
    CHECK(other_sessions(fixture) == before);
}

TEST_CASE("PostgreSQL restarted under an idle daemon: the relay reconnects without a heartbeat query", "[idle]") {
    DaemonFixture fixture("idle-restart");
    fixture.start_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("jobs", async_options());
    run_one_job(queue, ep);
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_log WHERE status = 'successful'", 1) == 1);

    testing::shared_postgres().restart();
    fixture.db() = pg::Connection(fixture.conninfo());
    const pg::Result row = fixture.db().exec(
        "INSERT INTO currant_jobs (host, entrypoint, payload) VALUES (0, 'jobs', '\\x6869'::bytea) RETURNING id");
    fixture.db().exec("SELECT pg_notify($1, '')", {schema::host_channel(0)});
    Job job;
    const EntrypointId eps[] = {ep};
    // Only a relay that reconnected (LISTEN, then its scan) claims the row.
    REQUIRE(queue.dequeue(eps, std::span(&job, 1), 60s) == 1);
    CHECK(job.handle.id == JobId(row.integer(0, 0)));
    queue.ack(job.handle);
}
