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
#include "cli_run.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using currant::testing::ScratchQueue;

using namespace currant::cli_test;

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
