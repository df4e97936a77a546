// Dead jobs kept with their last error, requeue and purge (docs/dead-jobs.md),
// in one process; tests/crash/test_outcomes_crash.cpp kills processes inside
// each of these critical sections.
#include "unit_support.hpp"

#include <thread>

using namespace currant;
using namespace currant::unit;

namespace {

EntrypointOptions dead_options(std::optional<std::uint32_t> max_dead, Durability durability = Durability::memory,
                               std::uint32_t max_attempts = 5) {
    EntrypointOptions options;
    options.durability = durability;
    options.max_dead = max_dead;
    options.max_attempts = max_attempts;
    options.retry_delay = 0ms;
    return options;
}

JobHandle pick_one(Queue& queue, EntrypointId ep) {
    const auto jobs = dequeue_now(queue, ep, 1);
    REQUIRE(jobs.size() == 1);
    return jobs[0].handle;
}

} // namespace

TEST_CASE("a failed job is kept with its error, payload and attempts", "[outcomes][dead]") {
    for (Durability durability : {Durability::memory, Durability::async}) {
        CAPTURE(durability_name(durability));
        ScratchQueue scratch("dead-kept", small_options());
        const EntrypointId ep = scratch->declare_entrypoint("work", dead_options(std::nullopt, durability));
        const JobId id = enqueue_text(scratch.queue(), ep, "the payload");
        const std::int64_t before = shm::realtime_ns();
        scratch->fail(pick_one(scratch.queue(), ep), "ValueError: bad input\n  at line 3");
        CHECK(status_of(scratch.queue(), id) == JobStatus::exception);
        const auto dead = scratch->dead_jobs();
        REQUIRE(dead.size() == 1);
        CHECK(dead[0].id == id);
        CHECK(dead[0].entrypoint == ep);
        CHECK(dead[0].entrypoint_name == "work");
        CHECK(dead[0].attempts == 1);
        CHECK(dead[0].error == "ValueError: bad input\n  at line 3");
        CHECK_FALSE(dead[0].error_truncated);
        CHECK(as_text(dead[0].payload) == "the payload");
        CHECK(dead[0].died_at_ns >= before);
        CHECK(stats_of(scratch.queue(), ep).failed == 1);
    }
}

TEST_CASE("a new entrypoint keeps 1000 dead jobs by default, or the arena's size if smaller", "[outcomes][dead]") {
    ScratchQueue big("dead-default", small_options(2048));
    CHECK(big->entrypoint_options(big->declare_entrypoint("a")).max_dead == std::optional<std::uint32_t>(1000));
    ScratchQueue small("dead-default-small", small_options(64));
    CHECK(small->entrypoint_options(small->declare_entrypoint("a")).max_dead == std::optional<std::uint32_t>(64));
    // Redeclaring without max_dead keeps the entrypoint's own.
    small->declare_entrypoint("b", dead_options(7));
    CHECK(small->entrypoint_options(small->declare_entrypoint("b")).max_dead == std::optional<std::uint32_t>(7));
}

TEST_CASE("a job past its attempt limit by retry is kept with the last retry's error", "[outcomes][dead]") {
    ScratchQueue scratch("dead-retry", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", dead_options(std::nullopt, Durability::memory, 2));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    CHECK(scratch->retry(pick_one(scratch.queue(), ep), 0ms, "first failure"));
    CHECK_FALSE(scratch->retry(pick_one(scratch.queue(), ep), 0ms, "second failure"));
    const auto dead = scratch->dead_jobs(ep);
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].id == id);
    CHECK(dead[0].attempts == 2);
    CHECK(dead[0].error == "second failure");
}

TEST_CASE("a job whose lease expires past its attempt limit is kept with the reason", "[outcomes][dead]") {
    ScratchQueue scratch("dead-lease", small_options());
    EntrypointOptions options = dead_options(std::nullopt, Durability::memory, 1);
    options.lease = 1ms;
    const EntrypointId ep = scratch->declare_entrypoint("work", options);
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    pick_one(scratch.queue(), ep);
    // Reaped once the lease has run out (the clock decides when; the test
    // only asserts what happens then).
    for (int i = 0; i < 5000 && status_of(scratch.queue(), id) != JobStatus::exception; ++i) {
        std::this_thread::sleep_for(2ms);
        scratch->reap();
    }
    REQUIRE(status_of(scratch.queue(), id) == JobStatus::exception);
    const auto dead = scratch->dead_jobs(ep);
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].error.find("lease of 1 ms expired") != std::string::npos);
}

TEST_CASE("an error text longer than the outcome area is cut at a UTF-8 boundary and marked", "[outcomes][dead]") {
    QueueOptions queue_options = small_options();
    queue_options.result_bytes = 0; // the area is then 1024 bytes, the floor for error texts
    ScratchQueue scratch("dead-long-error", queue_options);
    const EntrypointId ep = scratch->declare_entrypoint("work", dead_options(std::nullopt));
    // 1023 ASCII bytes then a 3-byte character straddling the 1024 limit.
    std::string error(1023, 'e');
    error += "\xe2\x82\xac and more";
    enqueue_text(scratch.queue(), ep, "x");
    scratch->fail(pick_one(scratch.queue(), ep), error);
    const auto dead = scratch->dead_jobs(ep);
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].error == std::string(1023, 'e'));
    CHECK(dead[0].error_truncated);
}

TEST_CASE("past max_dead the oldest dead jobs are recycled first", "[outcomes][dead]") {
    for (Durability durability : {Durability::memory, Durability::async}) {
        CAPTURE(durability_name(durability));
        ScratchQueue scratch("dead-cap", small_options());
        const EntrypointId ep = scratch->declare_entrypoint("work", dead_options(3, durability));
        std::vector<JobId> ids;
        for (int i = 0; i < 5; ++i) {
            ids.push_back(enqueue_text(scratch.queue(), ep, "job " + std::to_string(i)));
            scratch->fail(pick_one(scratch.queue(), ep), "error " + std::to_string(i));
        }
        const auto dead = scratch->dead_jobs(ep);
        REQUIRE(dead.size() == 3);
        CHECK(dead[0].id == ids[2]);
        CHECK(dead[1].id == ids[3]);
        CHECK(dead[2].id == ids[4]);
        CHECK(dead[2].error == "error 4");
        // Memory durability frees the evicted slots now; async once mirrored
        // (nothing mirrors here), so only the kept count is asserted there.
        if (durability == Durability::memory) CHECK(scratch->info().free_slots == 64 - 3);
        REQUIRE(scratch->doctor().sound);
    }
}

TEST_CASE("max_dead 0 keeps no dead job; more than the arena is refused", "[outcomes][dead]") {
    ScratchQueue scratch("dead-none", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", dead_options(0));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    scratch->fail(pick_one(scratch.queue(), ep), "gone");
    CHECK(scratch->dead_jobs(ep).empty());
    CHECK(scratch->info().free_slots == 64);
    CHECK(status_of(scratch.queue(), id) == JobStatus::exception); // until the slot is reused
    try {
        scratch->declare_entrypoint("huge", dead_options(65));
        FAIL("max_dead above the arena was accepted");
    } catch (const Error& error) {
        CHECK(error.code() == Errc::invalid_argument);
        CHECK(std::string(error.what()).find("max_dead 65 is more than the arena's 64 slots") != std::string::npos);
        CHECK(std::string(error.what()).find("'huge'") != std::string::npos);
    }
}

TEST_CASE("requeue puts a dead job back with attempts reset; its old handle is refused", "[outcomes][dead]") {
    for (Durability durability : {Durability::memory, Durability::async}) {
        CAPTURE(durability_name(durability));
        ScratchQueue scratch("dead-requeue", small_options());
        const EntrypointId ep = scratch->declare_entrypoint("work", dead_options(std::nullopt, durability));
        const JobId id = enqueue_text(scratch.queue(), ep, "again");
        const JobHandle old = pick_one(scratch.queue(), ep);
        scratch->fail(old, "boom");
        REQUIRE(scratch->requeue(id));
        CHECK_FALSE(scratch->requeue(id)); // no longer dead
        CHECK(scratch->dead_jobs(ep).empty());
        CHECK(status_of(scratch.queue(), id) == JobStatus::queued);
        CHECK(state_of(scratch.queue(), id).attempts == 0);
        CHECK_ERRC(scratch->ack(old), Errc::stale_handle);
        const auto jobs = dequeue_now(scratch.queue(), ep, 1);
        REQUIRE(jobs.size() == 1);
        CHECK(jobs[0].handle.id == id);
        CHECK(jobs[0].attempts == 1);
        CHECK(jobs[0].handle.epoch != old.epoch);
        CHECK(as_text(jobs[0].payload) == "again");
        scratch->ack(jobs[0].handle);
        REQUIRE(scratch->doctor().sound);
    }
}

TEST_CASE("requeue_dead and purge_dead act on every dead job of one entrypoint", "[outcomes][dead]") {
    ScratchQueue scratch("dead-all", small_options());
    const EntrypointId a = scratch->declare_entrypoint("a", dead_options(std::nullopt));
    const EntrypointId b = scratch->declare_entrypoint("b", dead_options(std::nullopt));
    for (int i = 0; i < 3; ++i) {
        enqueue_text(scratch.queue(), a, "a");
        scratch->fail(pick_one(scratch.queue(), a));
        enqueue_text(scratch.queue(), b, "b");
        scratch->fail(pick_one(scratch.queue(), b));
    }
    CHECK(scratch->dead_jobs().size() == 6);
    CHECK(scratch->dead_jobs(std::nullopt, 4).size() == 4);
    CHECK(scratch->requeue_dead(a) == 3);
    CHECK(dequeue_now(scratch.queue(), a).size() == 3);
    CHECK(scratch->dead_jobs(a).empty());
    const auto b_dead = scratch->dead_jobs(b);
    REQUIRE(b_dead.size() == 3);
    CHECK(scratch->purge(b_dead[0].id));
    CHECK_FALSE(scratch->purge(b_dead[0].id));
    CHECK(status_of(scratch.queue(), b_dead[0].id) == JobStatus::unknown);
    CHECK(scratch->purge_dead(b) == 2);
    CHECK(scratch->dead_jobs().empty());
    CHECK_ERRC(scratch->dead_jobs(EntrypointId(7)), Errc::not_found);
    CHECK_ERRC(scratch->requeue_dead(EntrypointId(7)), Errc::not_found);
    REQUIRE(scratch->doctor().sound);
}

TEST_CASE("stats count each entrypoint's kept dead jobs, and no longer once requeued, purged or not kept",
          "[outcomes][dead]") {
    for (Durability durability : {Durability::memory, Durability::async}) {
        CAPTURE(durability_name(durability));
        ScratchQueue scratch("dead-stats", small_options());
        const EntrypointId a = scratch->declare_entrypoint("a", dead_options(std::nullopt, durability));
        const EntrypointId unkept = scratch->declare_entrypoint("unkept", dead_options(0, durability));
        std::vector<JobId> ids;
        for (int i = 0; i < 3; ++i) {
            ids.push_back(enqueue_text(scratch.queue(), a, "a"));
            scratch->fail(pick_one(scratch.queue(), a));
        }
        enqueue_text(scratch.queue(), unkept, "u");
        scratch->fail(pick_one(scratch.queue(), unkept));
        CHECK(stats_of(scratch.queue(), a).dead == 3);
        CHECK(stats_of(scratch.queue(), unkept).dead == 0);
        CHECK(stats_of(scratch.queue(), unkept).failed == 1);
        REQUIRE(scratch->requeue(ids[0]));
        CHECK(stats_of(scratch.queue(), a).dead == 2);
        CHECK(stats_of(scratch.queue(), a).queued == 1);
        REQUIRE(scratch->purge(ids[1])); // async: the slot waits for the mirror, the job is no longer dead
        CHECK(stats_of(scratch.queue(), a).dead == 1);
    }
}

TEST_CASE("requeue and purge refuse ids that are not kept dead jobs", "[outcomes][dead]") {
    ScratchQueue scratch("dead-refuse", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", dead_options(std::nullopt));
    const JobId queued = enqueue_text(scratch.queue(), ep, "q");
    CHECK_FALSE(scratch->requeue(queued));
    CHECK_FALSE(scratch->purge(queued));
    CHECK_FALSE(scratch->requeue(JobId(123456789)));
    CHECK(status_of(scratch.queue(), queued) == JobStatus::queued); // untouched
}

TEST_CASE("the mirror's snapshot carries the last error of a dead or retried job", "[outcomes][dead]") {
    ScratchQueue scratch("dead-snapshot", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", dead_options(std::nullopt, Durability::async));
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    const JobHandle first = pick_one(scratch.queue(), ep);
    REQUIRE(scratch->retry(first, 0ms, "retry reason"));
    JobSnapshot snapshot;
    REQUIRE(scratch->read_job(first.slot, id, snapshot));
    CHECK(snapshot.status == JobStatus::queued);
    CHECK(snapshot.error == "retry reason");
    scratch->fail(pick_one(scratch.queue(), ep), "final reason");
    REQUIRE(scratch->read_job(first.slot, id, snapshot));
    CHECK(snapshot.status == JobStatus::exception);
    CHECK(snapshot.error == "final reason");
    // Committing the feed does not recycle a kept dead job.
    std::vector<Transition> feed(16);
    const std::size_t n = scratch->read_feed(ep, 1, feed);
    REQUIRE(n > 0);
    scratch->commit_feed(ep, feed[n - 1].sequence);
    CHECK(status_of(scratch.queue(), id) == JobStatus::exception);
    CHECK(scratch->dead_jobs(ep).size() == 1);
    REQUIRE(scratch->doctor().sound);
}

TEST_CASE("result_bytes above 1 MiB is refused at creation", "[outcomes]") {
    QueueOptions options = small_options();
    options.name = testing::unique_queue_name("outcome-big");
    options.result_bytes = (1u << 20) + 1;
    try {
        Queue::create(options);
        FAIL("accepted");
    } catch (const Error& error) {
        CHECK(error.code() == Errc::invalid_argument);
        CHECK(std::string(error.what()).find("result bytes 1048577 is more than 1 MiB") != std::string::npos);
    }
}

TEST_CASE("a requeued dead job holds its dedupe key again, unless another job took it", "[outcomes][dead][dedupe]") {
    ScratchQueue scratch("dead-dedupe", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", dead_options(std::nullopt));
    EnqueueOptions keyed;
    keyed.dedupe_key = "order-9";
    const JobId first = enqueue_text(scratch.queue(), ep, "first", keyed);
    scratch->fail(pick_one(scratch.queue(), ep), "boom");
    // Dead: the key is free, so a new job takes it.
    const JobId second = enqueue_text(scratch.queue(), ep, "second", keyed);
    CHECK(second != first);
    CHECK_FALSE(scratch->last_enqueue_skipped());
    try {
        scratch->requeue(first);
        FAIL("requeued a dead job whose key another queued job holds");
    } catch (const Error& error) {
        CHECK(error.code() == Errc::already_exists);
        const std::string what = error.what();
        CHECK(what.find("dead job " + std::to_string(first) + " was not requeued") != std::string::npos);
        CHECK(what.find("'order-9' is held by job " + std::to_string(second)) != std::string::npos);
    }
    CHECK(status_of(scratch.queue(), first) == JobStatus::exception); // still dead, still listed
    REQUIRE(scratch->dead_jobs(ep).size() == 1);
    CHECK(scratch->requeue_dead(ep) == 0); // skipped, not lost
    CHECK(scratch->dead_jobs(ep).size() == 1);
    REQUIRE(scratch->doctor().sound);
    // Once the holder is gone the dead job comes back and holds the key.
    scratch->ack(pick_one(scratch.queue(), ep));
    REQUIRE(scratch->requeue(first));
    CHECK(enqueue_text(scratch.queue(), ep, "third", keyed) == first);
    CHECK(scratch->last_enqueue_skipped());
    REQUIRE(scratch->doctor().sound);
}

TEST_CASE("an async dead job evicted or purged before it is mirrored waits for the mirror", "[outcomes][dead]") {
    ScratchQueue scratch("dead-unmirrored", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", dead_options(1, Durability::async));
    auto commit_all = [&] {
        std::vector<Transition> feed(64);
        const std::size_t n = scratch->read_feed(ep, 1, feed);
        if (n) scratch->commit_feed(ep, feed[n - 1].sequence);
    };
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    scratch->fail(pick_one(scratch.queue(), ep), "a failed");
    const JobId b = enqueue_text(scratch.queue(), ep, "b");
    scratch->fail(pick_one(scratch.queue(), ep), "b failed");
    // a was evicted (max_dead 1) before its death was mirrored: off the
    // list, but its slot stays until the mirror has it.
    const auto dead = scratch->dead_jobs(ep);
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].id == b);
    CHECK(status_of(scratch.queue(), a) == JobStatus::exception);
    CHECK(scratch->info().free_slots == 62);
    REQUIRE(scratch->doctor().sound);
    commit_all(); // a recycled; b kept (and now marked mirrored)
    CHECK(scratch->info().free_slots == 63);
    CHECK(scratch->dead_jobs(ep).size() == 1);
    // b's death is mirrored: evicting it frees its slot at once.
    const JobId c = enqueue_text(scratch.queue(), ep, "c");
    scratch->fail(pick_one(scratch.queue(), ep), "c failed");
    CHECK(scratch->info().free_slots == 63);
    CHECK(status_of(scratch.queue(), b) == JobStatus::exception); // evicted: its last state, until reused
    // Purging c before the mirror has it: off the list now, freed by the mirror.
    CHECK(scratch->purge(c));
    CHECK(scratch->dead_jobs(ep).empty());
    CHECK(scratch->info().free_slots == 63);
    REQUIRE(scratch->doctor().sound);
    commit_all();
    CHECK(scratch->info().free_slots == 64);
    REQUIRE(scratch->doctor().sound);
}

TEST_CASE("a purge of an async dead job is one flagged feed record, and its commit frees the slot",
          "[outcomes][dead]") {
    ScratchQueue scratch("dead-purge-feed", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", dead_options(std::nullopt, Durability::async));
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    scratch->fail(pick_one(scratch.queue(), ep), "a failed");
    const JobId b = enqueue_text(scratch.queue(), ep, "b");
    scratch->fail(pick_one(scratch.queue(), ep), "b failed");
    std::vector<Transition> feed(64);
    const std::size_t deaths = scratch->read_feed(ep, 1, feed);
    REQUIRE(deaths >= 2);
    scratch->commit_feed(ep, feed[deaths - 1].sequence);
    // Both deaths mirrored (kept_mirrored): a purge is still logged, and the
    // slot waits for the mirror's commit of it.
    REQUIRE(scratch->purge(a));
    CHECK(scratch->info().free_slots == 62);
    CHECK(status_of(scratch.queue(), a) == JobStatus::exception);
    const std::size_t n = scratch->read_feed(ep, scratch->feed_committed(ep) + 1, feed);
    REQUIRE(n == 1);
    CHECK(feed[0].id == a);
    CHECK(feed[0].purged);
    CHECK(feed[0].status == JobStatus::exception);
    CHECK_FALSE(scratch->purge(a)); // no longer kept
    CHECK_FALSE(scratch->requeue(a));
    REQUIRE(scratch->doctor().sound);
    scratch->commit_feed(ep, feed[0].sequence);
    CHECK(scratch->info().free_slots == 63);
    CHECK(status_of(scratch.queue(), a) == JobStatus::unknown);
    const auto dead = scratch->dead_jobs(ep);
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].id == b);
    REQUIRE(scratch->doctor().sound);
}

TEST_CASE("a purge of a memory dead job frees its slot at once and logs nothing", "[outcomes][dead]") {
    ScratchQueue scratch("dead-purge-memory", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("work", dead_options(std::nullopt, Durability::memory));
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    scratch->fail(pick_one(scratch.queue(), ep), "a failed");
    REQUIRE(scratch->purge(a));
    CHECK(scratch->info().free_slots == 64);
    CHECK(status_of(scratch.queue(), a) == JobStatus::unknown);
    std::vector<Transition> feed(8);
    CHECK(scratch->read_feed(ep, 1, feed) == 0);
}
