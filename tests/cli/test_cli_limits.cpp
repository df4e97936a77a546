// cli suite: `currant pause`, `resume` and `limit` (docs/cli.md,
// docs/limits.md), run as the real executable ($CURRANT_CLI) with its output
// and exit status captured; the effect is checked through the C++ API on the
// same segment. One behaviour per test case.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "currant/queue.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using currant::testing::ScratchQueue;

struct Result {
    int code = -1;
    std::string out, err;
};

std::ostream& operator<<(std::ostream& os, const Result& r) {
    return os << "exit " << r.code << "\n--- stdout ---\n" << r.out << "--- stderr ---\n" << r.err << "---";
}

std::string read_all(int fd) {
    std::string text;
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n > 0) text.append(buffer, std::size_t(n));
        else if (n == 0 || errno != EINTR) break;
    }
    return text;
}

// Runs `currant args...`; stdout and stderr go to unlinked temporary files.
Result run(const std::vector<std::string>& args) {
    const char* cli = std::getenv("CURRANT_CLI");
    if (cli == nullptr) throw std::runtime_error("CURRANT_CLI is not set (run through `meson test --suite cli`)");
    char out_path[] = "/tmp/currant-cli-limits-XXXXXX", err_path[] = "/tmp/currant-cli-limits-XXXXXX";
    const int out_fd = ::mkstemp(out_path), err_fd = ::mkstemp(err_path);
    ::unlink(out_path);
    ::unlink(err_path);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out_fd, 1);
        ::dup2(err_fd, 2);
        std::vector<char*> argv{const_cast<char*>(cli)};
        for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
        argv.push_back(nullptr);
        ::execv(cli, argv.data());
        ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    Result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    ::lseek(out_fd, 0, SEEK_SET);
    ::lseek(err_fd, 0, SEEK_SET);
    r.out = read_all(out_fd);
    r.err = read_all(err_fd);
    ::close(out_fd);
    ::close(err_fd);
    return r;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

currant::QueueOptions small() {
    currant::QueueOptions options;
    options.slots = 64;
    options.payload_bytes = 64;
    options.max_entrypoints = 4;
    options.max_participants = 8;
    options.log_capacity = 64;
    return options;
}

} // namespace

TEST_CASE("currant pause stops the entrypoint handing out jobs and resume starts it again", "[cli][limits]") {
    ScratchQueue q("cli-pause", small());
    const currant::EntrypointId ep = q->declare_entrypoint("work");
    q->enqueue(ep, currant::as_payload("job"));
    Result r = run({"pause", q.name(), "work"});
    INFO(r);
    REQUIRE(r.code == 0);
    CHECK(contains(r.out, "paused entrypoint 'work'"));
    CHECK(q->paused(ep));
    currant::Job job;
    const currant::EntrypointId eps[] = {ep};
    CHECK(q->dequeue(eps, std::span<currant::Job>(&job, 1), 0ns) == 0);
    r = run({"resume", q.name(), "work"});
    REQUIRE(r.code == 0);
    CHECK_FALSE(q->paused(ep));
    CHECK(q->dequeue(eps, std::span<currant::Job>(&job, 1), 0ns) == 1);
}

TEST_CASE("currant limit sets the concurrency and rate limits", "[cli][limits]") {
    ScratchQueue q("cli-limit", small());
    const currant::EntrypointId ep = q->declare_entrypoint("work");
    Result r = run({"limit", q.name(), "work", "--concurrency", "3", "--rate", "20", "--burst", "4"});
    INFO(r);
    REQUIRE(r.code == 0);
    CHECK(contains(r.out, "concurrency 3"));
    const currant::EntrypointLimits limits = q->limits(ep);
    CHECK(limits.concurrency == std::optional<std::uint32_t>(3));
    REQUIRE(limits.rate.has_value());
    CHECK(*limits.rate == Approx(20.0));
    CHECK(limits.burst == 4);
}

TEST_CASE("currant limit without options shows the limits as JSON", "[cli][limits]") {
    ScratchQueue q("cli-limit-show", small());
    const currant::EntrypointId ep = q->declare_entrypoint("work");
    q->set_concurrency_limit(ep, 5);
    q->pause(ep);
    const Result r = run({"limit", q.name(), "work", "--json"});
    INFO(r);
    REQUIRE(r.code == 0);
    CHECK(contains(r.out, "\"paused\": true"));
    CHECK(contains(r.out, "\"concurrency\": 5"));
    CHECK(contains(r.out, "\"rate\": null"));
}

TEST_CASE("currant limit none removes a limit", "[cli][limits]") {
    ScratchQueue q("cli-limit-none", small());
    const currant::EntrypointId ep = q->declare_entrypoint("work");
    q->set_concurrency_limit(ep, 5);
    q->set_rate_limit(ep, 5.0);
    const Result r = run({"limit", q.name(), "work", "--concurrency", "none", "--rate", "none"});
    INFO(r);
    REQUIRE(r.code == 0);
    CHECK_FALSE(q->limits(ep).concurrency.has_value());
    CHECK_FALSE(q->limits(ep).rate.has_value());
}

TEST_CASE("currant limit refuses zero and negative limits with the queue's message, changing nothing",
          "[cli][limits][errors]") {
    ScratchQueue q("cli-limit-bad", small());
    const currant::EntrypointId ep = q->declare_entrypoint("work");
    q->set_concurrency_limit(ep, 2);
    for (const char* value : {"0", "-1"}) {
        const Result r = run({"limit", q.name(), "work", "--concurrency", value});
        INFO(r);
        CHECK(r.code == 1);
        CHECK(contains(r.err, "entrypoint 'work'"));
        CHECK(contains(r.err, "concurrency limit must be at least 1"));
    }
    const Result rate = run({"limit", q.name(), "work", "--rate", "0"});
    INFO(rate);
    CHECK(rate.code == 1);
    CHECK(contains(rate.err, "rate limit must be a positive number"));
    CHECK(q->limits(ep).concurrency == std::optional<std::uint32_t>(2));
    CHECK_FALSE(q->limits(ep).rate.has_value());
}

TEST_CASE("currant limit refuses a value that is not a number as a usage error", "[cli][limits][errors]") {
    ScratchQueue q("cli-limit-nan", small());
    q->declare_entrypoint("work");
    const Result r = run({"limit", q.name(), "work", "--rate", "fast"});
    INFO(r);
    CHECK(r.code == 2);
    CHECK(contains(r.err, "--rate"));
}

TEST_CASE("currant pause and limit name an unknown entrypoint", "[cli][limits][errors]") {
    ScratchQueue q("cli-limit-unknown", small());
    q->declare_entrypoint("work");
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"pause", q.name(), "nope"}, {"resume", q.name(), "nope"},
          {"limit", q.name(), "nope", "--concurrency", "2"}}) {
        const Result r = run(args);
        INFO(r);
        CHECK(r.code == 1);
        CHECK(contains(r.err, "unknown entrypoint 'nope'"));
    }
}
