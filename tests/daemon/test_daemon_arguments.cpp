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
