// The dashboard end to end: currantd serves it, headless Chromium (Debian's
// `chromium`) loads it, runs its script against the live queue, and the
// rendered page shows what the segment holds.
#include <filesystem>
#include <regex>

#include "daemon_support.hpp"

using namespace currant;
using namespace currant::daemon_test;

namespace {


// The page's DOM after its script ran for a few seconds of virtual time
// (timers run, fetches complete). Chromium's own log lines share the file.
std::string rendered_page(const std::string& url) {
    const std::string directory = testing::shared_postgres().directory() + "/" + testing::unique_queue_name("chromium");
    std::filesystem::create_directories(directory);
    const std::string output = directory + "/dom.html";
    const int status = testing::run_program({"/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                                             "--no-first-run", "--user-data-dir=" + directory + "/profile",
                                             "--virtual-time-budget=5000", "--dump-dom", url},
                                            output);
    std::ifstream in(output);
    std::stringstream text;
    text << in.rdbuf();
    INFO(text.str());
    REQUIRE(status == 0);
    return text.str();
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
