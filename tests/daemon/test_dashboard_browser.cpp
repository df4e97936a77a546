// The dashboard end to end: currantd serves it, headless Chromium (Debian's
// `chromium`) loads it, runs its script against the live queue, and the
// rendered page shows what the segment holds. The failed-jobs cases drive
// Chromium over DevTools (devtools.hpp): they click the page's buttons and
// check the result in the segment.
#include <filesystem>
#include <regex>

#include "devtools.hpp"

using namespace currant;
using namespace currant::daemon_test;

namespace {


// The page's DOM after its script ran for a few seconds of virtual time
// (timers run, fetches complete). Chromium's own log lines share the file.
std::string rendered_page(const std::string& url) {
    const std::string directory = testing::shared_postgres().directory() + "/" + testing::unique_queue_name("chromium");
    std::filesystem::create_directories(directory);
    const std::string output = directory + "/dom.html";
    std::vector<std::string> argv = {"/usr/bin/chromium"};
    for (std::string& flag : chromium_flags(directory + "/profile")) argv.push_back(std::move(flag));
    argv.insert(argv.end(), {"--virtual-time-budget=5000", "--dump-dom", url});
    const int status = testing::run_program(argv, output);
    std::ifstream in(output);
    std::stringstream text;
    text << in.rdbuf();
    INFO(text.str());
    REQUIRE(status == 0);
    return text.str();
}


bool is_kept_dead(const Queue& queue, JobId id) {
    for (const DeadJob& job : queue.dead_jobs())
        if (job.id == id) return true;
    return false;
}

// A JavaScript expression: the queued-and-running row of job id is shown.
std::string job_shown(JobId id) {
    return "document.querySelector('#jobs tr[data-id=\"" + std::to_string(id) + "\"]') !== null";
}

// A JavaScript expression: the failed-jobs row of job id is shown.
std::string row_shown(JobId id) {
    return "document.querySelector('#dead tr[data-id=\"" + std::to_string(id) + "\"]') !== null";
}

} // namespace

TEST_CASE("in Chromium the dashboard shows each entrypoint's depth from the live queue", "[http][browser]") {
    DaemonFixture fixture("browser");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId emails = queue.declare_entrypoint("emails", async_options());
    queue.declare_entrypoint("reports", async_options());
    for (int i = 0; i < 3; ++i) queue.enqueue(emails, as_payload("mail"));
    Job job;
    REQUIRE(queue.dequeue(std::span(&emails, 1), std::span(&job, 1), 5s) == 1); // one picked, held

    const std::string page = rendered_page("http://127.0.0.1:" + std::to_string(port) + "/");
    INFO(page);
    CHECK_THAT(page, Catch::Contains("<span id=\"queue\">" + fixture.queue_name() + "</span>"));
    // entrypoint, durability, queued, delayed, picked
    CHECK_THAT(page, Catch::Contains("<tr><td>emails</td><td>async</td><td>2</td><td>0</td><td>1</td>"));
    CHECK_THAT(page, Catch::Contains("<tr><td>reports</td><td>async</td><td>0</td><td>0</td><td>0</td>"));
    // The status line (the script's own text also holds these words).
    CHECK(std::regex_search(page, std::regex("<div id=\"status\" class=\"\">[0-9]+ of 4096 slots in use")));
}

TEST_CASE("in Chromium the dashboard sends the token from its URL fragment, and shows the refusal without it",
          "[http][browser][security]") {
    DaemonFixture fixture("browser-token");
    const std::string token = "browser-token-0123456789";
    const std::uint16_t port = fixture.start_http_daemon({"--http-token-file", write_token_file(token)});
    Queue queue = fixture.open_queue();
    queue.declare_entrypoint("emails", async_options());

    const std::string base = "http://127.0.0.1:" + std::to_string(port) + "/";
    const std::string with_token = rendered_page(base + "#token=" + token);
    CHECK_THAT(with_token, Catch::Contains("<tr><td>emails</td>"));

    const std::string without = rendered_page(base);
    CHECK_THAT(without, Catch::Contains("<div id=\"status\" class=\"down\">no answer from currantd: a valid token is required"));
    CHECK_THAT(without, !Catch::Contains("<tr><td>emails</td>"));
}

TEST_CASE("in Chromium the failed-jobs table shows a dead job's error text as text, never as markup",
          "[http][browser][dead][security]") {
    DaemonFixture fixture("browser-dead-escape");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    const std::string error = "<script>document.title = 'owned'</script><b id=\"bold\">&amp; bold</b>";
    const JobId id = dead_job(queue, ep, "<img src=x onerror=alert(1)>", error);

    Chromium chromium("http://127.0.0.1:" + std::to_string(port) + "/");
    DevTools page(chromium);
    REQUIRE(page.wait_for(row_shown(id)));
    const std::string row = "#dead tr[data-id=\"" + std::to_string(id) + "\"]";
    CHECK(page.evaluate("document.querySelector('" + row + " pre').textContent") == error);
    CHECK(page.evaluate("document.querySelector('" + row + " code').textContent") == "<img src=x onerror=alert(1)>");
    // No element came from the texts, and the script did not run.
    CHECK(page.evaluate("String(document.querySelectorAll('#dead script, #dead b, #dead img').length)") == "0");
    CHECK(page.evaluate("document.title") == "currant: " + fixture.queue_name());
    CHECK(page.evaluate("document.querySelector('#dead tr.group td').textContent") == "emails: 1 failed");
}

TEST_CASE("in Chromium a click on Requeue puts the dead job back to queued in the segment", "[http][browser][dead]") {
    DaemonFixture fixture("browser-requeue");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    const JobId id = dead_job(queue, ep, "mail", "SMTP 550: mailbox unavailable");
    const JobId other = dead_job(queue, ep, "mail 2", "SMTP 421: try later");

    Chromium chromium("http://127.0.0.1:" + std::to_string(port) + "/");
    DevTools page(chromium);
    REQUIRE(page.wait_for(row_shown(id) + " && " + row_shown(other)));
    REQUIRE(status_of(queue, id) == JobStatus::exception);

    page.click("#dead button.requeue[data-id=\"" + std::to_string(id) + "\"]");
    CHECK(eventually([&] { return status_of(queue, id) == JobStatus::queued; }, 60'000ms));
    CHECK_FALSE(is_kept_dead(queue, id));
    // Only the job clicked: the other stays dead.
    CHECK(status_of(queue, other) == JobStatus::exception);
    CHECK(is_kept_dead(queue, other));
    CHECK(page.wait_for("!(" + row_shown(id) + ")"));
    CHECK(page.wait_for("document.getElementById('dead-result').textContent === 'job " + std::to_string(id) +
                        " requeued: queued'"));
}

TEST_CASE("in Chromium Purge asks first, and confirmed drops the dead job from the segment", "[http][browser][dead]") {
    DaemonFixture fixture("browser-purge");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    const JobId id = dead_job(queue, ep, "mail", "SMTP 550: mailbox unavailable");
    const JobId other = dead_job(queue, ep, "mail 2", "SMTP 421: try later");

    Chromium chromium("http://127.0.0.1:" + std::to_string(port) + "/");
    DevTools page(chromium);
    REQUIRE(page.wait_for(row_shown(id) + " && " + row_shown(other)));
    const std::uint32_t free_before = queue.info().free_slots;

    page.click("#dead button.purge[data-id=\"" + std::to_string(id) + "\"]");
    REQUIRE(page.wait_for("!document.getElementById('dead-confirm').hidden"));
    CHECK(page.evaluate("document.getElementById('dead-confirm-text').textContent") ==
          "Purge failed job " + std::to_string(id) + "? It cannot be requeued afterwards.");
    std::this_thread::sleep_for(1500ms); // nothing is purged before the answer
    CHECK(is_kept_dead(queue, id));
    page.click("#dead-confirm-yes");
    CHECK(eventually([&] { return !is_kept_dead(queue, id); }, 60'000ms));
    // Its slot freed (at once, or once currantd has mirrored the death); not requeued.
    CHECK(eventually([&] { return queue.info().free_slots == free_before + 1; }, 60'000ms));
    CHECK(status_of(queue, id) != JobStatus::queued);
    CHECK(is_kept_dead(queue, other));
    CHECK(page.wait_for("!(" + row_shown(id) + ")"));
    CHECK(page.wait_for("document.getElementById('dead-result').textContent === 'job " + std::to_string(id) + " purged'"));
}

TEST_CASE("in Chromium typing a queued job's id and clicking Cancel cancels it in the segment", "[http][browser][cancel]") {
    DaemonFixture fixture("browser-cancel");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("reports", async_options());
    const JobId id = queue.enqueue(ep, as_payload("r"));
    const JobId other = queue.enqueue(ep, as_payload("r2"));

    Chromium chromium("http://127.0.0.1:" + std::to_string(port) + "/");
    DevTools page(chromium);
    // Both tables drawn: the form below them has stopped moving.
    REQUIRE(page.wait_for("document.querySelector('#entrypoints tbody tr') !== null && "
                          "document.querySelector('#dead tbody tr') !== null"));
    page.type_into("#cancel-id", std::to_string(id));
    REQUIRE(page.evaluate("document.getElementById('cancel-id').value") == std::to_string(id));
    page.click("#cancel button[type=submit]");
    CHECK(eventually([&] { return status_of(queue, id) == JobStatus::canceled; }, 60'000ms));
    CHECK(status_of(queue, other) == JobStatus::queued);
    CHECK(page.wait_for("document.getElementById('cancel-result').textContent === 'job " + std::to_string(id) +
                        " canceled'"));
}

TEST_CASE("in Chromium a click on Requeue all puts every dead job of that entrypoint back to queued, and no other",
          "[http][browser][dead]") {
    DaemonFixture fixture("browser-requeue-all");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId emails = queue.declare_entrypoint("emails", async_options());
    const EntrypointId reports = queue.declare_entrypoint("reports", async_options());
    const JobId first = dead_job(queue, emails, "mail", "SMTP 550: mailbox unavailable");
    const JobId second = dead_job(queue, emails, "mail 2", "SMTP 421: try later");
    const JobId other = dead_job(queue, reports, "report", "disk full");

    Chromium chromium("http://127.0.0.1:" + std::to_string(port) + "/");
    DevTools page(chromium);
    REQUIRE(page.wait_for(row_shown(first) + " && " + row_shown(second) + " && " + row_shown(other)));
    CHECK(page.evaluate("document.querySelector('#dead button.requeue-all[data-entrypoint=\"emails\"]')"
                        ".closest('tr').textContent") == "emails: 2 failedRequeue allPurge all");

    page.click("#dead button.requeue-all[data-entrypoint=\"emails\"]");
    CHECK(eventually([&] { return status_of(queue, first) == JobStatus::queued; }, 60'000ms));
    CHECK(status_of(queue, second) == JobStatus::queued);
    CHECK_FALSE(is_kept_dead(queue, first));
    CHECK_FALSE(is_kept_dead(queue, second));
    // The other entrypoint's dead job stays.
    CHECK(status_of(queue, other) == JobStatus::exception);
    CHECK(is_kept_dead(queue, other));
    CHECK(page.wait_for("document.getElementById('dead-result').textContent === '2 failed jobs of emails requeued'"));
    CHECK(page.wait_for("!(" + row_shown(first) + ") && !(" + row_shown(second) + ") && " + row_shown(other)));
}

TEST_CASE("in Chromium a click on a queued job's Cancel cancels it in the segment, and no other",
          "[http][browser][cancel]") {
    DaemonFixture fixture("browser-cancel-row");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("reports", async_options());
    const JobId id = queue.enqueue(ep, as_payload("r"));
    const JobId other = queue.enqueue(ep, as_payload("r2"));

    Chromium chromium("http://127.0.0.1:" + std::to_string(port) + "/");
    DevTools page(chromium);
    const auto job_row = [](JobId job) {
        return "document.querySelector('#jobs tr[data-id=\"" + std::to_string(job) + "\"]')";
    };
    REQUIRE(page.wait_for(job_row(id) + " !== null && " + job_row(other) + " !== null"));
    CHECK(page.evaluate(job_row(id) + ".children[2].textContent") == "queued");

    page.click("#jobs button.cancel[data-id=\"" + std::to_string(id) + "\"]");
    CHECK(eventually([&] { return status_of(queue, id) == JobStatus::canceled; }, 60'000ms));
    CHECK(status_of(queue, other) == JobStatus::queued);
    CHECK(page.wait_for("document.getElementById('jobs-result').textContent === 'job " + std::to_string(id) +
                        " canceled'"));
    CHECK(page.wait_for(job_row(id) + " === null"));
}

TEST_CASE("in Chromium a click on a running job's Cancel asks its holder to stop", "[http][browser][cancel]") {
    DaemonFixture fixture("browser-cancel-running");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("reports", async_options());
    const JobId id = queue.enqueue(ep, as_payload("r"));
    Job job;
    REQUIRE(queue.dequeue(std::span(&ep, 1), std::span(&job, 1), 5s) == 1); // we hold it
    REQUIRE(job.handle.id == id);

    Chromium chromium("http://127.0.0.1:" + std::to_string(port) + "/");
    DevTools page(chromium);
    const std::string row = "document.querySelector('#jobs tr[data-id=\"" + std::to_string(id) + "\"]')";
    REQUIRE(page.wait_for(row + " !== null"));
    CHECK(page.evaluate(row + ".children[2].textContent") == "running");

    page.click("#jobs button.cancel[data-id=\"" + std::to_string(id) + "\"]");
    CHECK(eventually([&] { return queue.cancel_requested(job.handle); }, 60'000ms));
    CHECK(status_of(queue, id) == JobStatus::picked); // still ours until we stop
    CHECK(page.wait_for("document.getElementById('jobs-result').textContent === 'job " + std::to_string(id) +
                        " is running: cancel requested, its worker was told to stop'"));
    CHECK(page.wait_for(row + " !== null && " + row + ".children[2].textContent === 'running, cancel requested'"));
    queue.ack_canceled(job.handle);
    CHECK(status_of(queue, id) == JobStatus::canceled);
}

TEST_CASE("in Chromium Purge all asks first, and confirmed purges every dead job of that entrypoint and no other",
          "[http][browser][dead]") {
    DaemonFixture fixture("browser-purge-all");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId emails = queue.declare_entrypoint("emails", async_options());
    const EntrypointId reports = queue.declare_entrypoint("reports", async_options());
    const JobId first = dead_job(queue, emails, "mail", "SMTP 550: mailbox unavailable");
    const JobId second = dead_job(queue, emails, "mail 2", "SMTP 421: try later");
    const JobId other = dead_job(queue, reports, "report", "disk full");

    Chromium chromium("http://127.0.0.1:" + std::to_string(port) + "/");
    DevTools page(chromium);
    REQUIRE(page.wait_for(row_shown(first) + " && " + row_shown(second) + " && " + row_shown(other)));
    page.click("#dead button.purge-all[data-entrypoint=\"emails\"]");
    REQUIRE(page.wait_for("!document.getElementById('dead-confirm').hidden"));
    CHECK(page.evaluate("document.getElementById('dead-confirm-text').textContent") ==
          "Purge every failed job of emails? They cannot be requeued afterwards.");
    // Nothing is purged before the answer.
    std::this_thread::sleep_for(1500ms);
    CHECK(is_kept_dead(queue, first));
    CHECK(is_kept_dead(queue, second));

    page.click("#dead-confirm-yes");
    CHECK(eventually([&] { return !is_kept_dead(queue, first) && !is_kept_dead(queue, second); }, 60'000ms));
    CHECK(is_kept_dead(queue, other));
    CHECK(status_of(queue, other) == JobStatus::exception);
    CHECK(page.wait_for("document.getElementById('dead-result').textContent === '2 failed jobs of emails purged'"));
    CHECK(page.wait_for("document.getElementById('dead-confirm').hidden"));
    CHECK(page.wait_for("!(" + row_shown(first) + ") && !(" + row_shown(second) + ") && " + row_shown(other)));
}

TEST_CASE("in Chromium Purge all answered Keep them purges nothing", "[http][browser][dead]") {
    DaemonFixture fixture("browser-purge-all-kept");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    const JobId id = dead_job(queue, ep, "mail", "SMTP 550: mailbox unavailable");

    Chromium chromium("http://127.0.0.1:" + std::to_string(port) + "/");
    DevTools page(chromium);
    REQUIRE(page.wait_for(row_shown(id)));
    page.click("#dead button.purge-all[data-entrypoint=\"emails\"]");
    REQUIRE(page.wait_for("!document.getElementById('dead-confirm').hidden"));
    page.click("#dead-confirm-no");
    CHECK(page.wait_for("document.getElementById('dead-result').textContent === 'nothing purged'"));
    CHECK(page.wait_for("document.getElementById('dead-confirm').hidden"));
    std::this_thread::sleep_for(1500ms); // a refresh or two later
    CHECK(is_kept_dead(queue, id));
    CHECK(page.evaluate("String(" + row_shown(id) + ")") == "true");
}

TEST_CASE("in Chromium Next and Previous page through more than 200 dead jobs", "[http][browser][dead]") {
    DaemonFixture fixture("browser-dead-pages");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    std::vector<JobId> ids;
    for (int i = 0; i < 203; ++i) ids.push_back(dead_job(queue, ep, "m", "boom " + std::to_string(i)));

    Chromium chromium("http://127.0.0.1:" + std::to_string(port) + "/");
    DevTools page(chromium);
    // The first page: the 200 oldest deaths.
    REQUIRE(page.wait_for(row_shown(ids[0]) + " && " + row_shown(ids[199])));
    CHECK(page.evaluate("String(" + row_shown(ids[200]) + ")") == "false");
    CHECK(page.evaluate("document.getElementById('dead-count').textContent") == "(1–200 of 203)");
    CHECK(page.evaluate("String(document.getElementById('dead-prev').disabled)") == "true");
    CHECK(page.evaluate("document.querySelector('#dead tr.group td').textContent") == "emails: 200 failed on this page");

    page.click("#dead-next");
    REQUIRE(page.wait_for(row_shown(ids[200]) + " && " + row_shown(ids[202])));
    CHECK(page.evaluate("String(" + row_shown(ids[0]) + ")") == "false");
    CHECK(page.evaluate("document.getElementById('dead-count').textContent") == "(201–203 of 203)");
    CHECK(page.evaluate("document.getElementById('dead-page').textContent") == "page 2");
    CHECK(page.evaluate("String(document.getElementById('dead-next').disabled)") == "true");

    page.click("#dead-prev");
    REQUIRE(page.wait_for(row_shown(ids[0]) + " && !(" + row_shown(ids[200]) + ")"));
    CHECK(page.evaluate("document.getElementById('dead-page').textContent") == "page 1");
}

TEST_CASE("in Chromium Next pages past the first 50 queued jobs", "[http][browser][jobs]") {
    DaemonFixture fixture("browser-jobs-pages");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("emails", async_options());
    std::vector<JobId> ids;
    for (int i = 0; i < 52; ++i) {
        ids.push_back(queue.enqueue(ep, as_payload("q")));
        std::this_thread::sleep_for(1ms); // distinct enqueue times: the list is oldest first
    }

    Chromium chromium("http://127.0.0.1:" + std::to_string(port) + "/");
    DevTools page(chromium);
    REQUIRE(page.wait_for(job_shown(ids[0]) + " && " + job_shown(ids[49])));
    CHECK(page.evaluate("String(" + job_shown(ids[50]) + ")") == "false");
    CHECK(page.evaluate("document.getElementById('jobs-count').textContent") == "(1–50 of 52)");
    page.click("#jobs-next");
    REQUIRE(page.wait_for(job_shown(ids[50]) + " && " + job_shown(ids[51]) + " && !(" + job_shown(ids[0]) + ")"));
    CHECK(page.evaluate("document.getElementById('jobs-count').textContent") == "(51–52 of 52)");
}

TEST_CASE("in Chromium choosing an entrypoint lists only its queued and running jobs, with their total",
          "[http][browser][jobs]") {
    DaemonFixture fixture("browser-jobs-filter");
    const std::uint16_t port = fixture.start_http_daemon();
    Queue queue = fixture.open_queue();
    const EntrypointId emails = queue.declare_entrypoint("emails", async_options());
    const EntrypointId reports = queue.declare_entrypoint("reports", async_options());
    const JobId email = queue.enqueue(emails, as_payload("e"));
    for (int i = 0; i < 52; ++i) queue.enqueue(reports, as_payload("r"));

    Chromium chromium("http://127.0.0.1:" + std::to_string(port) + "/");
    DevTools page(chromium);
    REQUIRE(page.wait_for(job_shown(email)));
    CHECK(page.evaluate("document.getElementById('jobs-count').textContent") == "(1–50 of 53)");
    REQUIRE(page.wait_for("document.querySelector('#jobs-entrypoint option[value=\"reports\"]') !== null"));
    page.choose("#jobs-entrypoint", "reports");
    const std::string rows = "document.querySelectorAll('#jobs tbody tr[data-id]').length";
    REQUIRE(page.wait_for("!(" + job_shown(email) + ") && " + rows + " === 50"));
    CHECK(page.evaluate("document.getElementById('jobs-count').textContent") == "(1–50 of 52)");
    page.choose("#jobs-entrypoint", "emails");
    REQUIRE(page.wait_for(job_shown(email) + " && " + rows + " === 1"));
    CHECK(page.evaluate("document.getElementById('jobs-count').textContent") == "(1)");
    CHECK(page.evaluate("String(document.getElementById('jobs-pager').hidden)") == "true");
}
