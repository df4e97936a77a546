// cli suite: `currant status` showing kept results, `currant wait` and
// `declare --result-retention` (docs/cli.md, docs/results.md), run as the
// real executable ($CURRANT_CLI); jobs are acked through the C++ API on the
// same segment. One behaviour per test case.
#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <future>
#include <sys/wait.h>
#include <unistd.h>
#include <string>
#include <thread>
#include <vector>

#include "currant/queue.hpp"
#include "cli_run.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using currant::testing::ScratchQueue;
using namespace currant::cli_test;

currant::EntrypointId kept_entrypoint(ScratchQueue& q) {
    currant::EntrypointOptions options;
    options.result_retention = 60s;
    return q->declare_entrypoint("work", options);
}

// Enqueued, picked and acked with `result` through the C++ API.
currant::JobId acked_with(currant::Queue& queue, currant::EntrypointId ep, std::string_view result) {
    const currant::JobId id = queue.enqueue(ep, currant::as_payload("payload"));
    currant::Job job;
    REQUIRE(queue.dequeue(std::span(&ep, 1), std::span(&job, 1), 0ns) == 1);
    queue.ack(job.handle, currant::as_payload(result));
    return id;
}

std::size_t lines(const std::string& text) {
    std::size_t n = 0;
    for (char c : text) n += c == '\n';
    return n;
}

} // namespace

TEST_CASE("status shows a kept result as a JSON string after the four columns", "[cli][results][status]") {
    ScratchQueue q("cli-results-status", small());
    const auto ep = kept_entrypoint(q);
    const auto id = acked_with(q.queue(), ep, "the \"answer\"");
    Result r = run({"status", q.name(), std::to_string(id)});
    INFO(r);
    REQUIRE(r.code == 0);
    CHECK(contains(r.out, std::to_string(id) + " successful work 1 \"the \\\"answer\\\"\""));
}

TEST_CASE("status shows a result that is not UTF-8 in hex", "[cli][results][status]") {
    ScratchQueue q("cli-results-hex", small());
    const auto ep = kept_entrypoint(q);
    const auto id = acked_with(q.queue(), ep, std::string_view("\xff\x00\x01", 3));
    Result r = run({"status", q.name(), std::to_string(id)});
    INFO(r);
    REQUIRE(r.code == 0);
    CHECK(contains(r.out, "0xff0001"));
}

TEST_CASE("wait prints the status and result of finished jobs and exits 0", "[cli][results][wait]") {
    ScratchQueue q("cli-results-wait", small());
    const auto ep = kept_entrypoint(q);
    const auto a = acked_with(q.queue(), ep, "one");
    const auto b = acked_with(q.queue(), ep, "two");
    Result r = run({"wait", q.name(), std::to_string(a), std::to_string(b), "--timeout", "5"});
    INFO(r);
    CHECK(r.code == 0);
    CHECK(r.err.empty());
    CHECK(lines(r.out) == 2);
    CHECK(contains(r.out, std::to_string(a) + " successful \"one\""));
    CHECK(contains(r.out, std::to_string(b) + " successful \"two\""));
}

TEST_CASE("wait blocks until a job is acked by another process", "[cli][results][wait]") {
    ScratchQueue q("cli-results-wait-block", small());
    const auto ep = kept_entrypoint(q);
    const auto id = q->enqueue(ep, currant::as_payload("x"));
    auto waited = std::async(std::launch::async, [&] {
        return run({"wait", q.name(), std::to_string(id), "--timeout", "30"});
    });
    CHECK(waited.wait_for(300ms) == std::future_status::timeout);
    currant::Job job;
    currant::EntrypointId eps[] = {ep};
    REQUIRE(q->dequeue(eps, std::span(&job, 1), 0ns) == 1);
    q->ack(job.handle, currant::as_payload("late"));
    REQUIRE(waited.wait_for(20s) == std::future_status::ready);
    Result r = waited.get();
    INFO(r);
    CHECK(r.code == 0);
    CHECK(contains(r.out, std::to_string(id) + " successful \"late\""));
}

TEST_CASE("wait exits 1 naming a job still queued at the timeout and an unknown one", "[cli][results][wait][errors]") {
    ScratchQueue q("cli-results-wait-timeout", small());
    const auto ep = kept_entrypoint(q);
    const auto id = q->enqueue(ep, currant::as_payload("x"));
    Result r = run({"wait", q.name(), std::to_string(id), "987654321", "--timeout", "0.05"});
    INFO(r);
    CHECK(r.code == 1);
    CHECK(contains(r.err, "currant: job " + std::to_string(id) + " is still queued (timed out)"));
    CHECK(contains(r.err, "currant: job 987654321: no such job"));
    CHECK(r.out.rfind(std::to_string(id) + " ", 0) == 0); // the first row, aligned columns
    CHECK(contains(r.out.substr(0, r.out.find('\n')), " queued"));
}

TEST_CASE("wait refuses bad ids and a bad timeout before waiting", "[cli][results][wait][errors]") {
    ScratchQueue q("cli-results-wait-bad", small());
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"wait", q.name(), "0"}, std::vector<std::string>{"wait", q.name(), "abc"},
          std::vector<std::string>{"wait", q.name(), "1", "--timeout", "-1"},
          std::vector<std::string>{"wait", q.name()}}) {
        Result r = run(args);
        INFO(r);
        CHECK(r.code != 0);
        CHECK(r.err.rfind("currant: ", 0) == 0);
    }
}

TEST_CASE("declare --result-retention sets the retention and reports it", "[cli][results][declare]") {
    ScratchQueue q("cli-results-declare", small());
    Result r = run({"declare", q.name(), "kept", "--result-retention", "2.5"});
    INFO(r);
    CHECK(r.code == 0);
    CHECK(contains(r.out, "result retention 2.500 s"));
    CHECK(q->entrypoint_options(q->entrypoint("kept")).result_retention == std::optional(2500ms));
    Result bad = run({"declare", q.name(), "kept", "--result-retention", "40000000"}); // over 365 days
    INFO(bad);
    CHECK(bad.code == 1);
    CHECK(contains(bad.err, "365 days"));
}

TEST_CASE("a currant wait SIGKILLed while it waits leaves the queue sound and acks still wake waiters",
          "[cli][results][wait][crash]") {
    ScratchQueue q("cli-results-wait-killed", small());
    const auto ep = kept_entrypoint(q);
    const auto id = q->enqueue(ep, currant::as_payload("x"));
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        const int null_fd = ::open("/dev/null", O_WRONLY);
        ::dup2(null_fd, 1);
        ::dup2(null_fd, 2);
        const char* cli = std::getenv("CURRANT_CLI");
        const std::string name = q.name(), job = std::to_string(id);
        ::execl(cli, cli, "wait", name.c_str(), job.c_str(), "--timeout", "60", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    // Registered (a participant with its pid), then asleep, then killed.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    bool registered = false;
    while (!registered && std::chrono::steady_clock::now() < deadline) {
        for (const currant::ParticipantInfo& p : q->participants()) registered |= p.pid == pid;
        if (!registered) std::this_thread::sleep_for(5ms);
    }
    REQUIRE(registered);
    std::this_thread::sleep_for(100ms);
    ::kill(pid, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));
    CHECK(q->doctor().sound); // reaps it: its wait is uncounted
    auto waited = std::async(std::launch::async, [&] {
        return run({"wait", q.name(), std::to_string(id), "--timeout", "30"});
    });
    CHECK(waited.wait_for(300ms) == std::future_status::timeout);
    currant::Job job;
    currant::EntrypointId eps[] = {ep};
    REQUIRE(q->dequeue(eps, std::span(&job, 1), 0ns) == 1);
    q->ack(job.handle, currant::as_payload("after the kill"));
    REQUIRE(waited.wait_for(20s) == std::future_status::ready);
    Result r = waited.get();
    INFO(r);
    CHECK(r.code == 0);
    CHECK(contains(r.out, "\"after the kill\""));
}

TEST_CASE("init --result-bytes sets the largest result the queue takes", "[cli][results][init]") {
    ScratchQueue names("cli-results-init", small()); // only for a unique name
    const std::string name = names.name() + "-init";
    Result r = run({"init", name, "--slots", "64", "--result-bytes", "4096", "--entrypoint", "work"});
    INFO(r);
    REQUIRE(r.code == 0);
    {
        currant::Queue q = currant::Queue::open(name);
        q.set_result_retention(q.entrypoint("work"), 60s);
        const currant::EntrypointId ep = q.entrypoint("work");
        const auto id = acked_with(q, ep, std::string(4096, 'r'));
        const currant::JobId ids[] = {id};
        CHECK(q.wait(ids, 0ns).at(0).result->size() == 4096);
    }
    currant::Queue::remove(name);
    Result bad = run({"init", name, "--result-bytes", "1048577"});
    INFO(bad);
    CHECK(bad.code == 1);
    CHECK(contains(bad.err, "1 MiB"));
    currant::Queue::remove(name);
}
