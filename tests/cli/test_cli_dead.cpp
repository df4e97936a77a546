// cli suite: `currant failed`, `requeue`, `purge` and `declare --max-dead`
// (docs/cli.md, docs/dead-jobs.md), run as the real executable ($CURRANT_CLI)
// with its output and exit status captured; the effect is checked through the
// C++ API on the same segment. One behaviour per test case.
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


// A kept dead job: enqueued, picked and failed through the C++ API.
currant::JobId make_dead(currant::Queue& queue, currant::EntrypointId ep, const std::string& error) {
    const currant::JobId id = queue.enqueue(ep, currant::as_payload("payload"));
    currant::Job job;
    REQUIRE(queue.dequeue(std::span(&ep, 1), std::span(&job, 1), 0ns) == 1);
    REQUIRE(job.handle.id == id);
    queue.fail(job.handle, error);
    return id;
}

std::size_t lines(const std::string& text) {
    std::size_t n = 0;
    for (char c : text) n += c == '\n';
    return n;
}

// Every error is one line on stderr starting "currant: ".
void check_one_error_line(const Result& r) {
    CHECK(lines(r.err) == 1);
    CHECK(r.err.rfind("currant: ", 0) == 0);
}

} // namespace

TEST_CASE("currant failed lists dead jobs with the last line of their error; --json has all of it",
          "[cli][dead]") {
    ScratchQueue q("cli-failed", small());
    const auto work = q->declare_entrypoint("work");
    const auto other = q->declare_entrypoint("other");
    Result empty = run({"failed", q.name()});
    INFO(empty);
    CHECK(empty.code == 0);
    CHECK(contains(empty.out, "no dead jobs of queue '" + q.name() + "'"));
    const auto a = make_dead(q.queue(), work, "Traceback (most recent call last):\n  File \"x.py\"\nValueError: bad \"input\"");
    const auto b = make_dead(q.queue(), other, "other failure");
    Result r = run({"failed", q.name()});
    INFO(r);
    REQUIRE(r.code == 0);
    CHECK(contains(r.out, "LAST ERROR"));
    CHECK(contains(r.out, std::to_string(a)));
    CHECK(contains(r.out, "ValueError: bad \"input\""));
    CHECK_FALSE(contains(r.out, "Traceback")); // only the last line in the table
    CHECK(contains(r.out, std::to_string(b)));
    CHECK(lines(r.out) == 3);
    Result one = run({"failed", q.name(), "--entrypoint", "other", "--json"});
    INFO(one);
    REQUIRE(one.code == 0);
    CHECK(contains(one.out, "\"id\": " + std::to_string(b)));
    CHECK(contains(one.out, "\"error\": \"other failure\""));
    CHECK_FALSE(contains(one.out, "\"id\": " + std::to_string(a) + ","));
    Result all = run({"failed", q.name(), "--json"});
    CHECK(contains(all.out, "\"error\": \"Traceback (most recent call last):\\n  File \\\"x.py\\\"\\nValueError: bad \\\"input\\\"\""));
}

TEST_CASE("currant requeue puts dead jobs back; ids that are not dead exit 1 with one line each", "[cli][dead]") {
    ScratchQueue q("cli-requeue", small());
    const auto ep = q->declare_entrypoint("work");
    const auto a = make_dead(q.queue(), ep, "a");
    const auto b = make_dead(q.queue(), ep, "b");
    const auto queued = q->enqueue(ep, currant::as_payload("queued"));
    Result r = run({"requeue", q.name(), std::to_string(a)});
    INFO(r);
    CHECK(r.code == 0);
    CHECK(r.out == std::to_string(a) + " requeued\n");
    const currant::JobId ids[] = {a, b};
    CHECK(q->status(ids).at(0).status == currant::JobStatus::queued);
    Result again = run({"requeue", q.name(), std::to_string(a), std::to_string(b)});
    INFO(again);
    CHECK(again.code == 1);
    CHECK(again.out == std::to_string(b) + " requeued\n"); // the other id still acted on
    check_one_error_line(again);
    CHECK(contains(again.err, "job " + std::to_string(a) + " not requeued: it is queued, not a dead job"));
    Result unknown = run({"requeue", q.name(), "99999"});
    CHECK(unknown.code == 1);
    check_one_error_line(unknown);
    CHECK(contains(unknown.err, "no such job in queue"));
    const currant::JobId queued_id[] = {queued};
    CHECK(q->status(queued_id).at(0).status == currant::JobStatus::queued); // untouched
}

TEST_CASE("currant requeue --all and purge --all act on every dead job, or one entrypoint's", "[cli][dead]") {
    ScratchQueue q("cli-requeue-all", small());
    const auto work = q->declare_entrypoint("work");
    const auto other = q->declare_entrypoint("other");
    make_dead(q.queue(), work, "1");
    make_dead(q.queue(), work, "2");
    const auto kept = make_dead(q.queue(), other, "3");
    Result r = run({"requeue", q.name(), "--all", "--entrypoint", "work"});
    INFO(r);
    CHECK(r.code == 0);
    CHECK(r.out == "2 dead job(s) requeued\n");
    CHECK(q->stats().at(work).queued == 2);
    CHECK(q->dead_jobs().size() == 1);
    Result stats = run({"stats", q.name(), "--json"});
    CHECK(contains(stats.out, "\"name\": \"other\", \"id\": " + std::to_string(other)));
    CHECK(contains(stats.out, "\"waiting\": 0, \"dead\": 1, "));
    CHECK(contains(stats.out, "\"waiting\": 0, \"dead\": 0, "));
    Result p = run({"purge", q.name(), std::to_string(kept)});
    INFO(p);
    CHECK(p.code == 0);
    CHECK(p.out == std::to_string(kept) + " purged\n");
    CHECK(q->dead_jobs().empty());
    make_dead(q.queue(), other, "4");
    Result all = run({"purge", q.name(), "--all"});
    CHECK(all.code == 0);
    CHECK(all.out == "1 dead job(s) purged\n");
    CHECK(q->stats().at(work).queued == 2); // queued jobs untouched
}

TEST_CASE("currant requeue of a dead job whose dedupe key is held exits 1 naming the key and the holder",
          "[cli][dead][dedupe]") {
    ScratchQueue q("cli-requeue-key", small());
    const auto ep = q->declare_entrypoint("work");
    currant::EnqueueOptions keyed;
    keyed.dedupe_key = "order-9";
    const auto dead = q->enqueue(ep, currant::as_payload("x"), keyed);
    currant::Job job;
    REQUIRE(q->dequeue(std::span(&ep, 1), std::span(&job, 1), 0ns) == 1);
    q->fail(job.handle, "boom");
    const auto holder = q->enqueue(ep, currant::as_payload("y"), keyed);
    Result r = run({"requeue", q.name(), std::to_string(dead)});
    INFO(r);
    CHECK(r.code == 1);
    check_one_error_line(r);
    CHECK(contains(r.err, "dedupe key 'order-9' is held by job " + std::to_string(holder)));
    Result all = run({"requeue", q.name(), "--all"});
    INFO(all);
    CHECK(all.code == 1);
    CHECK(all.out == "0 dead job(s) requeued\n");
    check_one_error_line(all);
    CHECK(contains(all.err, "1 dead job(s) not requeued: their dedupe key is held"));
    CHECK(q->dead_jobs().size() == 1);
}

TEST_CASE("currant failed, requeue and declare --max-dead refuse bad input with one line", "[cli][dead][errors]") {
    ScratchQueue q("cli-dead-errors", small());
    const auto ep = q->declare_entrypoint("work");
    const auto dead = make_dead(q.queue(), ep, "boom");
    struct Bad {
        std::vector<std::string> args;
        int code;
        std::string says;
    };
    for (const Bad& bad : {
             Bad{{"failed", q.name(), "--entrypoint", "nope"}, 1, "nope"},
             Bad{{"failed", "no-such-queue-here"}, 1, "no-such-queue-here"},
             Bad{{"requeue", q.name()}, 2, "give job ids or --all"},
             Bad{{"requeue", q.name(), std::to_string(dead), "--all"}, 2, "give job ids or --all"},
             Bad{{"requeue", q.name(), std::to_string(dead), "--entrypoint", "work"}, 2, "only with --all"},
             Bad{{"requeue", q.name(), "12x"}, 2, "12x"},
             Bad{{"requeue", q.name(), "--all", "--entrypoint", "nope"}, 1, "nope"},
             Bad{{"purge", q.name(), "-5"}, 2, ""},
             Bad{{"declare", q.name(), "big", "--max-dead", "65"}, 1, "max_dead 65 is more than the arena's 64 slots"},
             Bad{{"declare", q.name(), "big", "--max-dead", "ten"}, 2, "--max-dead"},
         }) {
        Result r = run(bad.args);
        INFO(r << "\nargs: " << bad.args[0] << " " << (bad.args.size() > 2 ? bad.args[2] : ""));
        CHECK(r.code == bad.code);
        check_one_error_line(r);
        CHECK(contains(r.err, bad.says));
    }
    CHECK(q->dead_jobs().size() == 1); // nothing acted on
    CHECK(q->entrypoint_names().size() == 1);
    Result ok = run({"declare", q.name(), "capped", "--max-dead", "2"});
    INFO(ok);
    CHECK(ok.code == 0);
    CHECK(contains(ok.out, "max dead 2"));
    CHECK(q->entrypoint_options(q->entrypoint("capped")).max_dead == std::optional<std::uint32_t>(2));
}
