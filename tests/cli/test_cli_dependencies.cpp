// cli suite: `currant enqueue --after`, `currant status` of waiting and of
// canceled-by-a-dependency jobs, and the waiting column of `currant stats`
// (docs/cli.md, docs/job-dependencies.md), run as the real executable
// ($CURRANT_CLI); jobs are acked through the C++ API on the same segment.
// One behaviour per test case.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "currant/queue.hpp"
#include "cli_run.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using currant::testing::ScratchQueue;
using namespace currant::cli_test;

currant::JobId enqueued_by_cli(const std::vector<std::string>& args) {
    Result r = run(args);
    INFO(r);
    REQUIRE(r.code == 0);
    return std::stoull(r.out);
}

currant::Job pick(currant::Queue& queue, currant::EntrypointId ep) {
    currant::Job job;
    REQUIRE(queue.dequeue(std::span(&ep, 1), std::span(&job, 1), 0ns) == 1);
    return job;
}

} // namespace

TEST_CASE("enqueue --after makes a waiting job that status describes and the ack releases",
          "[cli][dependencies]") {
    ScratchQueue q("cli-dep-after", small());
    const auto ep = q->declare_entrypoint("work");
    const auto a = enqueued_by_cli({"enqueue", q.name(), "work", "a"});
    const auto b = enqueued_by_cli({"enqueue", q.name(), "work", "b"});
    const auto c = enqueued_by_cli({"enqueue", q.name(), "work", "c", "--after", std::to_string(a), "--after",
                                    std::to_string(b)});
    Result r = run({"status", q.name(), std::to_string(c)});
    INFO(r);
    CHECK(contains(r.out, std::to_string(c) + " waiting work 0 waiting for 2 of " + std::to_string(a) + " " +
                              std::to_string(b)));
    Result stats = run({"stats", q.name(), "--json"});
    INFO(stats);
    CHECK(contains(stats.out, "\"waiting\": 1"));
    q->ack(pick(q.queue(), ep).handle);
    q->ack(pick(q.queue(), ep).handle);
    r = run({"status", q.name(), std::to_string(c)});
    CHECK(contains(r.out, std::to_string(c) + " queued work 0"));
}

TEST_CASE("status shows why a job was canceled by its dependency", "[cli][dependencies]") {
    ScratchQueue q("cli-dep-reason", small());
    currant::EntrypointOptions options;
    options.max_attempts = 1;
    const auto ep = q->declare_entrypoint("work", options);
    const auto a = enqueued_by_cli({"enqueue", q.name(), "work", "a"});
    const auto b = enqueued_by_cli({"enqueue", q.name(), "work", "b", "--after", std::to_string(a)});
    q->fail(pick(q.queue(), ep).handle, "boom");
    Result r = run({"status", q.name(), std::to_string(b)});
    INFO(r);
    CHECK(contains(r.out, std::to_string(b) + " canceled work 0 canceled: dependency job " + std::to_string(a) +
                              " ended exception"));
}

TEST_CASE("enqueue --after an unknown job fails naming it and enqueues nothing", "[cli][dependencies]") {
    ScratchQueue q("cli-dep-unknown", small());
    const auto ep = q->declare_entrypoint("work");
    const auto a = enqueued_by_cli({"enqueue", q.name(), "work", "a"});
    Result r = run({"enqueue", q.name(), "work", "b", "--after", std::to_string(a + 1000)});
    INFO(r);
    CHECK(r.code != 0);
    CHECK(contains(r.err, "dependency job " + std::to_string(a + 1000) + " was never issued"));
    CHECK(q->stats().at(ep).enqueued == 1);
    r = run({"enqueue", q.name(), "work", "b", "--after", "nope"});
    CHECK(r.code != 0);
}

TEST_CASE("status and wait of a job whose slot was reused print its final status", "[cli][dependencies][status]") {
    ScratchQueue q("cli-status-reused", small());
    const auto ep = q->declare_entrypoint("work");
    const currant::JobId a = q->enqueue(ep, std::as_bytes(std::span("a", 1)));
    q->ack(pick(q.queue(), ep).handle);
    for (int i = 0; i < 3 * 64; ++i) { // every slot reused, and the jobs in them ended
        q->enqueue(ep, std::as_bytes(std::span("x", 1)));
        q->ack(pick(q.queue(), ep).handle);
    }
    Result r = run({"status", q.name(), std::to_string(a)});
    INFO(r);
    CHECK(r.code == 0);
    // Its entrypoint and attempts went with the slot.
    CHECK(contains(r.out, std::to_string(a) + " successful - - (slot reused: only its status is kept)"));
    Result w = run({"wait", q.name(), std::to_string(a), "--timeout", "10"});
    INFO(w);
    CHECK(w.code == 0);
    CHECK(contains(w.out, std::to_string(a) + " successful"));
    CHECK(w.err.empty());
}
