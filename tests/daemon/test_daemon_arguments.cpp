// currantd refuses malformed arguments with one line naming the option and
// exit status 2, before it connects anywhere or touches a queue.
#include "daemon_support.hpp"

using namespace currant;
using namespace currant::daemon_test;

namespace {

struct Refusal {
    int status;
    std::string output;
};

Refusal run_daemon(const std::vector<std::string>& arguments) {
    const std::string queue = testing::unique_queue_name("args");
    const std::string log = "/tmp/" + queue + ".log";
    DaemonProcess daemon;
    std::vector<std::string> all = {"--queue", queue, "--db", "host=/nonexistent-socket-dir"};
    all.insert(all.end(), arguments.begin(), arguments.end());
    daemon.start(all, log);
    const int status = daemon.wait_for_exit();
    Refusal refusal{status, daemon.log()};
    std::remove(log.c_str());
    CHECK_THROWS(Queue::open(queue)); // nothing was created
    return refusal;
}

} // namespace

TEST_CASE("currantd refuses numbers that are not plain decimals", "[arguments]") {
    for (const std::string bad : {"-1", "0x10", "010", "1e3", "", "99999999999"}) {
        INFO("--host-id " << bad);
        const Refusal refusal = run_daemon({"--host-id", bad});
        CHECK(refusal.status == 2);
        CHECK_THAT(refusal.output, Catch::StartsWith("currantd: --host-id"));
    }
}

TEST_CASE("currantd refuses a host id in the range reserved for SQL-inserted jobs", "[arguments]") {
    const Refusal refusal = run_daemon({"--host-id", "32767"});
    CHECK(refusal.status == 2);
    CHECK_THAT(refusal.output, Catch::Contains("must be at most 32766"));
}

TEST_CASE("currantd refuses a zero batch and an unknown option", "[arguments]") {
    CHECK(run_daemon({"--batch", "0"}).status == 2);
    const Refusal unknown = run_daemon({"--no-such-option"});
    CHECK(unknown.status == 2);
    CHECK_THAT(unknown.output, Catch::Contains("--no-such-option"));
}

TEST_CASE("currantd refuses a malformed --http address, naming it", "[arguments][http]") {
    for (const std::string bad : {"9187", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", "nosuchhost:80"}) {
        INFO("--http " << bad);
        const Refusal refusal = run_daemon({"--http", bad});
        CHECK(refusal.status == 2);
        CHECK_THAT(refusal.output, Catch::StartsWith("currantd: --http"));
    }
}

TEST_CASE("currantd refuses to serve HTTP beyond loopback without a token", "[arguments][http][security]") {
    const Refusal refusal = run_daemon({"--http", "0.0.0.0:0"});
    CHECK(refusal.status == 2);
    CHECK_THAT(refusal.output, Catch::Contains("not a loopback address: give --http-token-file"));
}

TEST_CASE("currantd refuses a missing or too short token file, and a token file without --http",
          "[arguments][http][security]") {
    const Refusal missing = run_daemon({"--http", "127.0.0.1:0", "--http-token-file", "/nonexistent/token"});
    CHECK(missing.status == 2);
    CHECK_THAT(missing.output, Catch::Contains("cannot read '/nonexistent/token'"));

    const std::string path = "/tmp/" + testing::unique_queue_name("token");
    std::ofstream(path) << "short\n";
    const Refusal short_token = run_daemon({"--http", "127.0.0.1:0", "--http-token-file", path});
    std::remove(path.c_str());
    CHECK(short_token.status == 2);
    CHECK_THAT(short_token.output, Catch::Contains("shorter than 16 characters"));
    CHECK_THAT(short_token.output, !Catch::Contains("short\n"));

    CHECK(run_daemon({"--http-token-file", "/nonexistent/token"}).status == 2);
}
