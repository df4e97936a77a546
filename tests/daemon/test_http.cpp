// currantd's HTTP endpoint (--http): Prometheus metrics, JSON stats, the
// dashboard page, cancel, and who may ask (Host check, token).
#include <regex>

#include "http_client.hpp"

using namespace currant;
using namespace currant::daemon_test;

TEST_CASE("metrics give each entrypoint's depth and totals in the Prometheus text format", "[http]") {
    DaemonFixture fixture("http-metrics");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    // Quotes and a backslash: label values must escape them.
    const EntrypointId ep = queue.declare_entrypoint(R"(say "hi" \o/)", async_options());
    dead_job(queue, ep, "job", "boom"); // enqueued, picked, failed: kept dead
    for (int i = 0; i < 3; ++i) queue.enqueue(ep, as_payload("job"));
    Job job;
    REQUIRE(queue.dequeue(std::span(&ep, 1), std::span(&job, 1), 5s) == 1);
    queue.ack(job.handle);

    const HttpAnswer answer = http_request(port, "GET", "/metrics");
    CHECK(answer.status == 200);
    CHECK_THAT(answer.headers, Catch::Contains("text/plain; version=0.0.4"));
    const std::string labels = "{queue=\"" + fixture.queue_name() + "\",entrypoint=\"say \\\"hi\\\" \\\\o/\"";
    CHECK(sample(answer.body, "currant_jobs" + labels + ",state=\"queued\"}") == "2");
    CHECK(sample(answer.body, "currant_jobs" + labels + ",state=\"picked\"}") == "0");
    CHECK(sample(answer.body, "currant_jobs" + labels + ",state=\"waiting\"}") == "0");
    CHECK(sample(answer.body, "currant_jobs" + labels + ",state=\"dead\"}") == "1");
    CHECK(sample(answer.body, "currant_jobs_enqueued_total" + labels + "}") == "4");
    CHECK(sample(answer.body, "currant_jobs_successful_total" + labels + "}") == "1");
    CHECK(sample(answer.body, "currant_jobs_failed_total" + labels + "}") == "1");
    CHECK(sample(answer.body, "currant_arena_slots{queue=\"" + fixture.queue_name() + "\"}") == "4096");
    // Every line is a comment or "name{labels} value".
    const std::regex sample_line(R"(^[a-z_]+\{queue="([^"\\]|\\.)*"(,[a-z_]+="([^"\\]|\\.)*")*\} [-0-9.e+]+$)");
    std::istringstream lines(answer.body);
    for (std::string line; std::getline(lines, line);) {
        INFO(line);
        CHECK((line.starts_with("# HELP ") || line.starts_with("# TYPE ") || std::regex_match(line, sample_line)));
    }
}

TEST_CASE("metrics show the mirror connected once a batch is in PostgreSQL", "[http]") {
    DaemonFixture fixture("http-mirror");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("mirrored", async_options());
    queue.enqueue(ep, as_payload("job"));
    const std::string name = "{queue=\"" + fixture.queue_name() + "\"}";
    CHECK(eventually([&] {
        const std::string metrics = http_request(port, "GET", "/metrics").body;
        return sample(metrics, "currant_mirror_connected" + name) == "1" &&
               sample(metrics, "currant_mirror_transitions_total" + name) == "1";
    }));
}

TEST_CASE("api/stats answers JSON with the entrypoints' counts", "[http]") {
    DaemonFixture fixture("http-stats");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    queue.enqueue(ep, as_payload("a"));
    queue.enqueue(ep, as_payload("b"));
    const HttpAnswer answer = http_request(port, "GET", "/api/stats");
    CHECK(answer.status == 200);
    CHECK_THAT(answer.headers, Catch::Contains("application/json"));
    CHECK_THAT(answer.body, Catch::Contains("\"queue\": \"" + fixture.queue_name() + "\""));
    CHECK_THAT(answer.body, Catch::Contains("{\"name\": \"emails\", \"durability\": \"async\", \"queued\": 2,"));
}

TEST_CASE("api/history keeps a sample a second of each entrypoint's depth and totals", "[http]") {
    DaemonFixture fixture("http-history");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("thumbnails", async_options());
    for (int i = 0; i < 4; ++i) queue.enqueue(ep, as_payload("t"));
    const std::string point = "{\"name\": \"thumbnails\", \"depth\": 4, \"enqueued\": 4, \"completed\": 0, \"failed\": 0}";
    // Two samples taken after the enqueues, a second or so apart.
    std::string history;
    CHECK(eventually([&] {
        history = http_request(port, "GET", "/api/history").body;
        const std::size_t first = history.find(point);
        return first != std::string::npos && history.find(point, first + 1) != std::string::npos;
    }));
    INFO(history);
    const std::regex times(R"("time": ([0-9.]+), "entrypoints": \[\{"name": "thumbnails", "depth": 4,)");
    std::vector<double> seen;
    for (auto it = std::sregex_iterator(history.begin(), history.end(), times); it != std::sregex_iterator(); ++it)
        seen.push_back(std::stod((*it)[1]));
    REQUIRE(seen.size() >= 2);
    CHECK(seen[1] - seen[0] > 0.5);
}

TEST_CASE("the dashboard page is served at / and loads nothing from elsewhere", "[http]") {
    DaemonFixture fixture("http-page");
    const HttpAnswer answer = http_request(fixture.start_http_daemon(), "GET", "/");
    CHECK(answer.status == 200);
    CHECK_THAT(answer.headers, Catch::Contains("text/html"));
    CHECK_THAT(answer.body, Catch::Contains("<canvas id=\"depth\""));
    CHECK_THAT(answer.body, !Catch::Contains("http://") && !Catch::Contains("https://"));
}

TEST_CASE("an unknown page is 404 and a wrong method 405, each with a JSON error", "[http]") {
    DaemonFixture fixture("http-404");
    const std::uint16_t port = fixture.start_http_daemon();
    const HttpAnswer missing = http_request(port, "GET", "/no/such/page");
    CHECK(missing.status == 404);
    CHECK_THAT(missing.body, Catch::Contains("\"error\": \"no such page: /no/such/page\""));
    const HttpAnswer wrong = http_request(port, "DELETE", "/metrics");
    CHECK(wrong.status == 405);
    CHECK_THAT(wrong.body, Catch::Contains("DELETE"));
}

TEST_CASE("without a token, a request naming another host is refused (DNS rebinding)", "[http][security]") {
    DaemonFixture fixture("http-rebind");
    const std::uint16_t port = fixture.start_http_daemon();
    CHECK(http_request(port, "GET", "/api/stats", {}, "attacker.example:80").status == 403);
    CHECK(http_request(port, "GET", "/api/stats", {}, "localhost:" + std::to_string(port)).status == 200);
}

TEST_CASE("with a token, data requests need it and the page does not", "[http][security]") {
    DaemonFixture fixture("http-token");
    const std::string token = "0123456789abcdef-secret";
    DaemonProcess& daemon = fixture.start_daemon({"--http", "127.0.0.1:0", "--http-token-file", write_token_file(token)});
    const std::uint16_t port = served_http_port(daemon);
    CHECK(http_request(port, "GET", "/metrics").status == 401);
    CHECK(http_request(port, "GET", "/metrics", {"Authorization: Bearer wrong-token-0123456"}).status == 401);
    CHECK(http_request(port, "GET", "/metrics", {"Authorization: Bearer " + token}).status == 200);
    CHECK(http_request(port, "GET", "/").status == 200);
    CHECK_THAT(daemon.log(), !Catch::Contains(token)); // never logged
}

TEST_CASE("POST api/cancel cancels a queued job, and only with the X-Currant-Request header", "[http]") {
    DaemonFixture fixture("http-cancel");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("reports", async_options());
    const JobId id = queue.enqueue(ep, as_payload("r"));
    const std::string target = "/api/cancel?id=" + std::to_string(id);

    CHECK(http_request(port, "POST", target).status == 403); // a plain form post from a web page
    const JobId ids[] = {id};
    CHECK(queue.status(ids)[0].status == JobStatus::queued);

    const HttpAnswer answer = http_request(port, "POST", target, {"X-Currant-Request: 1"});
    CHECK(answer.status == 200);
    CHECK_THAT(answer.body, Catch::Contains("\"canceled\": true, \"outcome\": \"canceled\", \"status\": \"canceled\""));
    CHECK(queue.status(ids)[0].status == JobStatus::canceled);
}

TEST_CASE("POST api/cancel of a running job answers requested and its holder sees the request", "[http][cancel]") {
    DaemonFixture fixture("http-cancel-running");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("reports", async_options());
    const JobId id = queue.enqueue(ep, as_payload("r"));
    const EntrypointId eps[] = {ep};
    Job job;
    REQUIRE(queue.dequeue(eps, std::span(&job, 1), 5s) == 1);
    const HttpAnswer answer =
        http_request(port, "POST", "/api/cancel?id=" + std::to_string(id), {"X-Currant-Request: 1"});
    CHECK(answer.status == 200);
    CHECK_THAT(answer.body, Catch::Contains("\"canceled\": false, \"outcome\": \"requested\", \"status\": \"picked\""));
    CHECK(queue.cancel_requested(job.handle));
    queue.ack_canceled(job.handle);
}

TEST_CASE("POST api/cancel with a malformed id is a 400 naming it, and cancels nothing", "[http][errors]") {
    DaemonFixture fixture("http-cancel-bad");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("reports", async_options());
    queue.enqueue(ep, as_payload("r"));
    for (const std::string bad : {"", "12abc", "-1", "+5", "18446744073709551616"}) {
        INFO("id=" << bad);
        const HttpAnswer answer = http_request(port, "POST", "/api/cancel?id=" + bad, {"X-Currant-Request: 1"});
        CHECK(answer.status == 400);
        CHECK_THAT(answer.body, Catch::Contains("is not a decimal job id"));
    }
    for (const std::string bad : {"0", "9223372036854775808"}) { // decimal, but no job id
        INFO("id=" << bad);
        const HttpAnswer answer = http_request(port, "POST", "/api/cancel?id=" + bad, {"X-Currant-Request: 1"});
        CHECK(answer.status == 400);
        CHECK_THAT(answer.body, Catch::Contains("is not a job id"));
    }
    CHECK(queue.stats()[0].queued == 1);
}

// Two dead jobs on "emails" and one on "reports", behind a daemon serving
// HTTP: what the all=1 actions act on and must leave alone.
struct DeadJobsOnTwoEntrypoints {
    DaemonFixture fixture;
    std::uint16_t port;
    Queue queue;
    JobId first, second, other;

    explicit DeadJobsOnTwoEntrypoints(const std::string& name)
        : fixture(name), port(fixture.start_http_daemon()), queue(fixture.open_queue()) {
        const EntrypointId emails = queue.declare_entrypoint("emails", async_options());
        const EntrypointId reports = queue.declare_entrypoint("reports", async_options());
        first = dead_job(queue, emails, "m1", "boom 1");
        second = dead_job(queue, emails, "m2", "boom 2");
        other = dead_job(queue, reports, "r", "boom 3");
    }
};

TEST_CASE("GET api/dead lists a job that died, with its entrypoint, attempts and error", "[http][dead]") {
    DaemonFixture fixture("http-dead-list");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId emails = queue.declare_entrypoint("emails", async_options());
    const EntrypointId reports = queue.declare_entrypoint("reports", async_options());
    const JobId id = dead_job(queue, emails, "to: a@b\n\x01", "SMTP said \"no\"\nline two");
    dead_job(queue, reports, "r", "disk full");
    queue.enqueue(emails, as_payload("alive")); // queued, not dead: not listed

    const HttpAnswer all = http_request(port, "GET", "/api/dead");
    CHECK(all.status == 200);
    CHECK_THAT(all.headers, Catch::Contains("application/json"));
    INFO(all.body);
    CHECK_THAT(all.body, Catch::Contains("{\"id\": " + std::to_string(id) + ", \"id_text\": \"" + std::to_string(id) +
                                         "\", \"entrypoint\": \"emails\", \"priority\": 0, \"attempts\": 1, "));
    CHECK_THAT(all.body, Catch::Contains("\"error\": \"SMTP said \\\"no\\\"\\nline two\", \"error_truncated\": false"));
    // Non-printable payload bytes as \xNN text, the backslash escaped again by JSON.
    CHECK_THAT(all.body, Catch::Contains("\"payload_bytes\": 9, \"payload_preview\": \"to: a@b\\\\x0a\\\\x01\""));
    CHECK_THAT(all.body, Catch::Contains("\"error\": \"disk full\""));
    CHECK_THAT(all.body, !Catch::Contains("alive"));
    CHECK(std::regex_search(all.body, std::regex(R"("died_at": 1[0-9]{9}\.[0-9]{3})")));
    CHECK_THAT(all.body, Catch::EndsWith("], \"total\": 2, \"offset\": 0, \"limit\": 100, \"more\": false}\n"));

    const HttpAnswer only_reports = http_request(port, "GET", "/api/dead?entrypoint=reports");
    CHECK_THAT(only_reports.body, Catch::Contains("disk full"));
    CHECK_THAT(only_reports.body, !Catch::Contains("SMTP"));
}

TEST_CASE("GET api/dead keeps at most limit jobs and says there were more", "[http][dead]") {
    DaemonFixture fixture("http-dead-limit");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    const JobId first = dead_job(queue, ep, "1", "first");
    dead_job(queue, ep, "2", "second");
    const HttpAnswer answer = http_request(port, "GET", "/api/dead?limit=1");
    CHECK(answer.status == 200);
    CHECK_THAT(answer.body, Catch::Contains("\"id\": " + std::to_string(first) + ","));
    CHECK_THAT(answer.body, !Catch::Contains("second"));
    CHECK_THAT(answer.body, Catch::EndsWith("], \"total\": 2, \"offset\": 0, \"limit\": 1, \"more\": true}\n"));
}

TEST_CASE("GET api/dead counts every dead job in total, of one entrypoint when asked, and not purged or requeued "
          "ones",
          "[http][dead]") {
    DeadJobsOnTwoEntrypoints setup("http-dead-total");
    const auto total_of = [&](const std::string& query) {
        const std::string body = http_request(setup.port, "GET", "/api/dead" + query).body;
        std::smatch match;
        INFO(body);
        REQUIRE(std::regex_search(body, match, std::regex(R"(\], "total": ([0-9]+), "offset")")));
        return std::stoi(match[1]);
    };
    CHECK(total_of("") == 3);
    CHECK(total_of("?entrypoint=emails") == 2);
    CHECK(total_of("?entrypoint=reports&limit=1") == 1);
    CHECK(setup.queue.requeue(setup.first));
    CHECK(total_of("?entrypoint=emails") == 1);
    CHECK(setup.queue.purge(setup.other));
    CHECK(total_of("") == 1);
}

TEST_CASE("GET api/dead refuses a bad limit and an unknown entrypoint, naming them", "[http][dead][errors]") {
    DaemonFixture fixture("http-dead-bad");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    queue.declare_entrypoint("emails", async_options());
    for (const std::string bad : {"0", "x", "1001", "-1"}) {
        INFO("limit=" << bad);
        const HttpAnswer answer = http_request(port, "GET", "/api/dead?limit=" + bad);
        CHECK(answer.status == 400);
        CHECK_THAT(answer.body, Catch::Contains("limit '" + bad + "' is not a number from 1 to 1000"));
    }
    const HttpAnswer unknown = http_request(port, "GET", "/api/dead?entrypoint=no%20such");
    CHECK(unknown.status == 404);
    CHECK_THAT(unknown.body, Catch::Contains("no such"));
    CHECK(http_request(port, "GET", "/api/dead?entrypoint=%zz").status == 400);
}

TEST_CASE("POST api/requeue puts a dead job back to queued", "[http][dead]") {
    DaemonFixture fixture("http-requeue");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    const JobId id = dead_job(queue, ep, "m", "boom");
    REQUIRE(status_of(queue, id) == JobStatus::exception);

    const HttpAnswer answer = http_request(port, "POST", "/api/requeue?id=" + std::to_string(id), action_header);
    CHECK(answer.status == 200);
    CHECK(answer.body == "{\"id\": " + std::to_string(id) + ", \"requeued\": true, \"status\": \"queued\"}\n");
    CHECK(status_of(queue, id) == JobStatus::queued);
    CHECK(queue.dead_jobs().empty());
    const EntrypointId eps[] = {ep};
    Job job;
    REQUIRE(queue.dequeue(eps, std::span(&job, 1), 5s) == 1);
    CHECK(job.handle.id == id);
}

TEST_CASE("POST api/purge removes a dead job from the dead list", "[http][dead]") {
    DaemonFixture fixture("http-purge");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    const JobId id = dead_job(queue, ep, "m", "boom");
    const JobId kept = dead_job(queue, ep, "k", "kept");
    const std::uint32_t free_before = queue.info().free_slots;

    const HttpAnswer answer = http_request(port, "POST", "/api/purge?id=" + std::to_string(id), action_header);
    CHECK(answer.status == 200);
    CHECK(answer.body == "{\"id\": " + std::to_string(id) + ", \"purged\": true}\n");
    const std::vector<DeadJob> dead = queue.dead_jobs();
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].id == kept);
    // Its slot is freed (at once, or once currantd has mirrored the death).
    CHECK(eventually([&] { return queue.info().free_slots == free_before + 1; }));
    CHECK_THAT(http_request(port, "GET", "/api/dead").body, !Catch::Contains("boom"));
    // Gone for good: neither a second purge nor a requeue finds it (its
    // freed slot reads unknown: the purge was mirrored, docs/dead-jobs.md).
    for (const std::string action : {"purge", "requeue"}) {
        const HttpAnswer again = http_request(port, "POST", "/api/" + action + "?id=" + std::to_string(id), action_header);
        CHECK(again.status == 404);
        CHECK_THAT(again.body, Catch::Contains("is not in the queue"));
    }
    CHECK(status_of(queue, id) != JobStatus::queued);
}

TEST_CASE("POST api/requeue and api/purge refuse malformed ids with 400 and change nothing", "[http][dead][errors]") {
    DaemonFixture fixture("http-dead-bad-id");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    const JobId id = dead_job(queue, ep, "m", "boom");
    for (const std::string action : {"requeue", "purge"})
        for (const std::string& bad : std::vector<std::string>{"", "12abc", "-1", "+5", "18446744073709551616", "0",
                                                               "9223372036854775808", std::to_string(id) + "%00"}) {
            INFO(action << " id=" << bad);
            const HttpAnswer answer = http_request(port, "POST", "/api/" + action + "?id=" + bad, action_header);
            CHECK(answer.status == 400);
            CHECK_THAT(answer.body, Catch::Contains("\"error\": \"id ") && Catch::Contains("job id"));
        }
    CHECK(status_of(queue, id) == JobStatus::exception);
    CHECK(queue.dead_jobs().size() == 1);
}

TEST_CASE("POST api/requeue and api/purge of a job that is not dead say what it is and change nothing",
          "[http][dead][errors]") {
    DaemonFixture fixture("http-dead-not-dead");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    const JobId queued = queue.enqueue(ep, as_payload("q"));
    const JobId unknown = queued + 1000;
    for (const std::string action : {"requeue", "purge"}) {
        INFO(action);
        const HttpAnswer live = http_request(port, "POST", "/api/" + action + "?id=" + std::to_string(queued), action_header);
        CHECK(live.status == 409);
        CHECK_THAT(live.body, Catch::Contains("job " + std::to_string(queued) + " is queued, not a dead job"));
        const HttpAnswer missing =
            http_request(port, "POST", "/api/" + action + "?id=" + std::to_string(unknown), action_header);
        CHECK(missing.status == 404);
        CHECK_THAT(missing.body, Catch::Contains("job " + std::to_string(unknown) + " is not in the queue"));
    }
    CHECK(status_of(queue, queued) == JobStatus::queued);
    CHECK(queue.stats()[0].queued == 1);
}

TEST_CASE("POST api/requeue and api/purge without the X-Currant-Request header are refused and change nothing",
          "[http][dead][security]") {
    DaemonFixture fixture("http-dead-header");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    const JobId id = dead_job(queue, ep, "m", "boom");
    for (const std::string action : {"requeue", "purge"}) {
        INFO(action);
        const HttpAnswer answer = http_request(port, "POST", "/api/" + action + "?id=" + std::to_string(id));
        CHECK(answer.status == 403);
        CHECK_THAT(answer.body, Catch::Contains("X-Currant-Request: 1 header is required"));
        // A GET (a link, an image) is not the action either.
        CHECK(http_request(port, "GET", "/api/" + action + "?id=" + std::to_string(id), action_header).status == 405);
    }
    CHECK(status_of(queue, id) == JobStatus::exception);
    CHECK(queue.dead_jobs().size() == 1);
}

TEST_CASE("with a token, api/dead, api/requeue and api/purge need it", "[http][dead][security]") {
    DaemonFixture fixture("http-dead-token");
    const std::string token = "0123456789abcdef-dead-jobs";
    const std::uint16_t port = fixture.start_http_daemon({"--http-token-file", write_token_file(token)});
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    const JobId id = dead_job(queue, ep, "m", "boom");
    const std::string target = "?id=" + std::to_string(id);

    CHECK(http_request(port, "GET", "/api/dead").status == 401);
    CHECK(http_request(port, "POST", "/api/requeue" + target, action_header).status == 401);
    CHECK(http_request(port, "POST", "/api/purge" + target, action_header).status == 401);
    CHECK(http_request(port, "POST", "/api/requeue" + target, {"X-Currant-Request: 1", "Authorization: Bearer wrong-0123456789"})
              .status == 401);
    CHECK(status_of(queue, id) == JobStatus::exception);
    CHECK(queue.dead_jobs().size() == 1);

    const std::string bearer = "Authorization: Bearer " + token;
    CHECK_THAT(http_request(port, "GET", "/api/dead", {bearer}).body, Catch::Contains("boom"));
    CHECK(http_request(port, "POST", "/api/requeue" + target, {"X-Currant-Request: 1", bearer}).status == 200);
    CHECK(status_of(queue, id) == JobStatus::queued);
}

TEST_CASE("without a token, api/requeue naming another host is refused (DNS rebinding)", "[http][dead][security]") {
    DaemonFixture fixture("http-dead-rebind");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    const JobId id = dead_job(queue, ep, "m", "boom");
    CHECK(http_request(port, "POST", "/api/requeue?id=" + std::to_string(id), action_header, "attacker.example").status == 403);
    CHECK(http_request(port, "POST", "/api/purge?id=" + std::to_string(id), action_header, "attacker.example").status == 403);
    CHECK(status_of(queue, id) == JobStatus::exception);
}

TEST_CASE("POST api/requeue of a dead job whose dedupe key another job holds is a 409 naming the key",
          "[http][dead][errors]") {
    DaemonFixture fixture("http-requeue-dedupe");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    EnqueueOptions keyed;
    keyed.dedupe_key = "invoice-17";
    const JobId dead = queue.enqueue(ep, as_payload("first"), keyed);
    const EntrypointId eps[] = {ep};
    Job job;
    REQUIRE(queue.dequeue(eps, std::span(&job, 1), 5s) == 1);
    queue.fail(job.handle, "boom");
    const JobId holder = queue.enqueue(ep, as_payload("second"), keyed); // the key was free again

    const HttpAnswer answer = http_request(port, "POST", "/api/requeue?id=" + std::to_string(dead), action_header);
    CHECK(answer.status == 409);
    CHECK_THAT(answer.body, Catch::Contains("invoice-17"));
    CHECK(status_of(queue, dead) == JobStatus::exception);
    CHECK(status_of(queue, holder) == JobStatus::queued);
    CHECK(queue.dead_jobs().size() == 1);
}

TEST_CASE("POST api/requeue with all=1 puts every dead job of that entrypoint back to queued, and no other",
          "[http][dead]") {
    DeadJobsOnTwoEntrypoints setup("http-requeue-all");
    Queue& queue = setup.queue;
    const JobId first = setup.first, second = setup.second, other = setup.other;

    const HttpAnswer answer = http_request(setup.port, "POST", "/api/requeue?all=1&entrypoint=emails", action_header);
    CHECK(answer.status == 200);
    CHECK(answer.body == "{\"entrypoint\": \"emails\", \"requeued\": 2}\n");
    CHECK(status_of(queue, first) == JobStatus::queued);
    CHECK(status_of(queue, second) == JobStatus::queued);
    CHECK(status_of(queue, other) == JobStatus::exception);
    REQUIRE(queue.dead_jobs().size() == 1);
    CHECK(queue.dead_jobs()[0].id == other);
}

// The refusals POST path?all=1 (requeue or purge every dead job of an
// entrypoint) owes bad input; the callers check that nothing changed.
void check_all_refused(std::uint16_t port, const std::string& path, JobId id) {
    HttpAnswer answer = http_request(port, "POST", path + "?all=1", action_header);
    CHECK(answer.status == 400);
    CHECK_THAT(answer.body, Catch::Contains("all=1 needs entrypoint=NAME"));
    answer = http_request(port, "POST", path + "?all=1&entrypoint=nosuch", action_header);
    CHECK(answer.status == 404);
    CHECK_THAT(answer.body, Catch::Contains("nosuch"));
    answer = http_request(port, "POST", path + "?all=1&entrypoint=emails&id=" + std::to_string(id), action_header);
    CHECK(answer.status == 400);
    CHECK_THAT(answer.body, Catch::Contains("either id or all=1"));
    answer = http_request(port, "POST", path + "?all=yes&entrypoint=emails", action_header);
    CHECK(answer.status == 400);
    CHECK_THAT(answer.body, Catch::Contains("only all=1"));
    CHECK(http_request(port, "GET", path + "?all=1&entrypoint=emails", action_header).status == 405);
    CHECK(http_request(port, "POST", path + "?all=1&entrypoint=emails").status == 403);
}

TEST_CASE("POST api/requeue with all=1 refuses a missing or unknown entrypoint, an id beside it, a GET and a "
          "missing header, and changes nothing",
          "[http][dead][errors]") {
    DaemonFixture fixture("http-requeue-all-bad");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    const JobId id = dead_job(queue, ep, "m", "boom");

    check_all_refused(port, "/api/requeue", id);
    CHECK(status_of(queue, id) == JobStatus::exception);
    CHECK(queue.dead_jobs().size() == 1);
}

TEST_CASE("with a token, api/requeue with all=1 needs it", "[http][dead][security]") {
    DaemonFixture fixture("http-requeue-all-token");
    const std::string token = "requeue-all-token-0123456789";
    const std::uint16_t port = fixture.start_http_daemon({"--http-token-file", write_token_file(token)});
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    const JobId id = dead_job(queue, ep, "m", "boom");
    const std::string target = "/api/requeue?all=1&entrypoint=emails";
    CHECK(http_request(port, "POST", target, action_header).status == 401);
    CHECK(status_of(queue, id) == JobStatus::exception);
    CHECK(http_request(port, "POST", target, {"X-Currant-Request: 1", "Authorization: Bearer " + token}).status == 200);
    CHECK(status_of(queue, id) == JobStatus::queued);
}

TEST_CASE("api/stats gives each entrypoint's wait and run p50 and p99 as bucket bounds, null before any job",
          "[http][latency]") {
    DaemonFixture fixture("http-stats-latency");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    queue.declare_entrypoint("idle", async_options());
    queue.enqueue(ep, as_payload("a"));
    Job job;
    REQUIRE(queue.dequeue(std::span(&ep, 1), std::span(&job, 1), 5s) == 1);
    std::this_thread::sleep_for(30ms); // run time above the 25 ms bound
    queue.ack(job.handle);
    const std::string body = http_request(port, "GET", "/api/stats").body;
    INFO(body);
    std::smatch match;
    REQUIRE(std::regex_search(body, match, std::regex(R"("name": "emails"[^}]*"wait_p50_seconds": ([^,]+), )"
                                                      R"("wait_p99_seconds": ([^,]+), "run_p50_seconds": ([^,]+), )"
                                                      R"("run_p99_seconds": ([^}]+)\})")));
    CHECK(match[3] == match[4]); // one job: p50 and p99 fall in its bucket
    const double run = std::stod(match[3]);
    CHECK(run >= 0.05);           // the bound above 30 ms or more
    CHECK(std::stod(match[2]) > 0);
    CHECK_THAT(body, Catch::Contains("\"name\": \"idle\"") &&
                         Catch::Contains("\"wait_p50_seconds\": null, \"wait_p99_seconds\": null, \"run_p50_seconds\": "
                                         "null, \"run_p99_seconds\": null}"));
}

TEST_CASE("GET api/jobs lists picked jobs first, then queued ones oldest first, of one entrypoint or all",
          "[http][jobs]") {
    DaemonFixture fixture("http-jobs");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId emails = queue.declare_entrypoint("emails", async_options());
    const EntrypointId reports = queue.declare_entrypoint("reports", async_options());
    const JobId picked = queue.enqueue(emails, as_payload("p"));
    Job job;
    REQUIRE(queue.dequeue(std::span(&emails, 1), std::span(&job, 1), 5s) == 1);
    REQUIRE(job.handle.id == picked);
    const JobId first = queue.enqueue(emails, as_payload("q1"));
    std::this_thread::sleep_for(2ms); // distinct enqueue times
    const JobId second = queue.enqueue(emails, as_payload("q2"));
    const JobId done = dead_job(queue, reports, "d", "boom"); // neither queued nor picked
    const JobId report = queue.enqueue(reports, as_payload("r"));

    const HttpAnswer answer = http_request(port, "GET", "/api/jobs?entrypoint=emails");
    CHECK(answer.status == 200);
    INFO(answer.body);
    const std::size_t at_picked = answer.body.find("\"id_text\": \"" + std::to_string(picked) + "\"");
    const std::size_t at_first = answer.body.find("\"id_text\": \"" + std::to_string(first) + "\"");
    const std::size_t at_second = answer.body.find("\"id_text\": \"" + std::to_string(second) + "\"");
    REQUIRE(at_picked != std::string::npos);
    REQUIRE(at_first != std::string::npos);
    REQUIRE(at_second != std::string::npos);
    CHECK(at_picked < at_first);
    CHECK(at_first < at_second);
    CHECK_THAT(answer.body, Catch::Contains("\"entrypoint\": \"emails\", \"status\": \"picked\", \"priority\": 0, "
                                            "\"attempts\": 1,"));
    CHECK_THAT(answer.body, !Catch::Contains("\"id_text\": \"" + std::to_string(report) + "\""));
    CHECK_THAT(answer.body, Catch::EndsWith("], \"total\": 3, \"offset\": 0, \"limit\": 100, \"more\": false}\n"));

    const std::string all = http_request(port, "GET", "/api/jobs?limit=3").body;
    CHECK_THAT(all, Catch::Contains("\"total\": 4, \"offset\": 0, \"limit\": 3, \"more\": true"));
    CHECK_THAT(all, Catch::Contains("\"id_text\": \"" + std::to_string(picked) + "\""));
    const std::string everything = http_request(port, "GET", "/api/jobs").body;
    CHECK_THAT(everything, Catch::Contains("\"id_text\": \"" + std::to_string(report) + "\""));
    CHECK_THAT(everything, !Catch::Contains("\"id_text\": \"" + std::to_string(done) + "\""));

    CHECK(http_request(port, "GET", "/api/jobs?limit=0").status == 400);
    CHECK(http_request(port, "GET", "/api/jobs?entrypoint=nosuch").status == 404);
    CHECK(http_request(port, "POST", "/api/jobs", action_header).status == 405);
}

TEST_CASE("GET api/dead with offset gives the page after the first offset jobs, oldest death first", "[http][dead]") {
    DaemonFixture fixture("http-dead-offset");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    std::vector<JobId> ids;
    for (int i = 0; i < 5; ++i) ids.push_back(dead_job(queue, ep, "m" + std::to_string(i), "boom " + std::to_string(i)));
    const auto has = [](const std::string& body, JobId id) {
        return body.find("\"id_text\": \"" + std::to_string(id) + "\"") != std::string::npos;
    };
    const HttpAnswer middle = http_request(port, "GET", "/api/dead?limit=2&offset=2");
    CHECK(middle.status == 200);
    INFO(middle.body);
    CHECK_FALSE(has(middle.body, ids[1]));
    CHECK(has(middle.body, ids[2]));
    CHECK(has(middle.body, ids[3]));
    CHECK_FALSE(has(middle.body, ids[4]));
    CHECK(middle.body.find("boom 2") < middle.body.find("boom 3"));
    CHECK_THAT(middle.body, Catch::EndsWith("], \"total\": 5, \"offset\": 2, \"limit\": 2, \"more\": true}\n"));
    const HttpAnswer last = http_request(port, "GET", "/api/dead?limit=2&offset=4");
    CHECK(has(last.body, ids[4]));
    CHECK_THAT(last.body, Catch::EndsWith("], \"total\": 5, \"offset\": 4, \"limit\": 2, \"more\": false}\n"));
    const HttpAnswer past = http_request(port, "GET", "/api/dead?limit=2&offset=9");
    CHECK(past.body == "{\"dead\": [], \"total\": 5, \"offset\": 9, \"limit\": 2, \"more\": false}\n");
}

TEST_CASE("GET api/jobs with offset gives the page after the first offset jobs", "[http][jobs]") {
    DaemonFixture fixture("http-jobs-offset");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    std::vector<JobId> ids;
    for (int i = 0; i < 4; ++i) {
        ids.push_back(queue.enqueue(ep, as_payload("q")));
        std::this_thread::sleep_for(2ms); // distinct enqueue times
    }
    const std::string body = http_request(port, "GET", "/api/jobs?limit=2&offset=1").body;
    INFO(body);
    CHECK(body.find("\"id_text\": \"" + std::to_string(ids[0]) + "\"") == std::string::npos);
    CHECK(body.find("\"id_text\": \"" + std::to_string(ids[1]) + "\"") != std::string::npos);
    CHECK(body.find("\"id_text\": \"" + std::to_string(ids[2]) + "\"") != std::string::npos);
    CHECK(body.find("\"id_text\": \"" + std::to_string(ids[3]) + "\"") == std::string::npos);
    CHECK_THAT(body, Catch::EndsWith("], \"total\": 4, \"offset\": 1, \"limit\": 2, \"more\": true}\n"));
}

TEST_CASE("GET api/dead and api/jobs refuse a bad offset, naming it", "[http][errors]") {
    DaemonFixture fixture("http-offset-bad");
    const std::uint16_t port = fixture.start_http_daemon();
    for (const std::string path : {"/api/dead", "/api/jobs"})
        for (const std::string bad : {"x", "-1", "1000001", "1.5"}) {
            INFO(path << "?offset=" << bad);
            const HttpAnswer answer = http_request(port, "GET", path + "?offset=" + bad);
            CHECK(answer.status == 400);
            CHECK_THAT(answer.body, Catch::Contains("offset '" + bad + "' is not a number from 0 to 1000000"));
        }
}

TEST_CASE("POST api/purge with all=1 purges every dead job of that entrypoint, and no other", "[http][dead]") {
    DeadJobsOnTwoEntrypoints setup("http-purge-all");
    Queue& queue = setup.queue;
    const JobId first = setup.first, second = setup.second, other = setup.other;

    const HttpAnswer answer = http_request(setup.port, "POST", "/api/purge?all=1&entrypoint=emails", action_header);
    CHECK(answer.status == 200);
    CHECK(answer.body == "{\"entrypoint\": \"emails\", \"purged\": 2}\n");
    REQUIRE(queue.dead_jobs().size() == 1);
    CHECK(queue.dead_jobs()[0].id == other);
    // Mirrored (docs/dead-jobs.md): the daemon frees the purged slots.
    CHECK(eventually([&] { return status_of(queue, first) == JobStatus::unknown; }));
    CHECK(eventually([&] { return status_of(queue, second) == JobStatus::unknown; }));
    CHECK(status_of(queue, other) == JobStatus::exception);
}

TEST_CASE("POST api/purge with all=1 refuses a missing or unknown entrypoint, an id beside it, a GET and a missing "
          "header, and changes nothing",
          "[http][dead][errors]") {
    DaemonFixture fixture("http-purge-all-bad");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    const JobId id = dead_job(queue, ep, "m", "boom");

    check_all_refused(port, "/api/purge", id);
    CHECK(queue.dead_jobs().size() == 1);
    CHECK(queue.dead_jobs()[0].id == id);
}

TEST_CASE("with a token, api/purge with all=1 needs it", "[http][dead][security]") {
    DaemonFixture fixture("http-purge-all-token");
    const std::string token = "purge-all-token-0123456789";
    const std::uint16_t port = fixture.start_http_daemon({"--http-token-file", write_token_file(token)});
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    dead_job(queue, ep, "m", "boom");
    const std::string target = "/api/purge?all=1&entrypoint=emails";
    CHECK(http_request(port, "POST", target, action_header).status == 401);
    CHECK(queue.dead_jobs(ep).size() == 1);
    CHECK(http_request(port, "POST", target, {"X-Currant-Request: 1", "Authorization: Bearer " + token}).status == 200);
    CHECK(queue.dead_jobs(ep).empty());
}
