// Queue::restore_outcome, the entry point currantd's rebuild uses to put
// finished jobs back (docs/dead-jobs.md, docs/results.md): kept dead jobs
// on their dead list, kept results with their status and result, under
// their own ids, with nothing logged for the mirror; and its refusals.
#include "unit_support.hpp"

using namespace currant;
using namespace currant::unit;

namespace {

EntrypointOptions async_keeping(std::uint32_t max_dead = 10, std::chrono::milliseconds retention = 60'000ms) {
    EntrypointOptions options;
    options.durability = Durability::async;
    options.max_dead = max_dead;
    options.result_retention = retention;
    return options;
}

RestoredOutcome dead_job(JobId id, std::string_view payload, std::string_view error, std::int64_t died_at_ns) {
    RestoredOutcome job;
    job.id = id;
    job.status = JobStatus::exception;
    job.payload = as_payload(payload);
    job.priority = 3;
    job.attempts = 4;
    job.max_attempts = 4;
    job.enqueued_at_ns = died_at_ns - 1'000'000;
    job.finished_at_ns = died_at_ns;
    job.error = error;
    return job;
}

std::size_t feed_length(const Queue& queue, EntrypointId ep) {
    std::vector<Transition> out(256);
    return queue.read_feed(ep, 1, out);
}

} // namespace

TEST_CASE("a restored dead job is on its dead list with its error, attempts and time of death, nothing logged",
          "[restore]") {
    QueueOptions options = small_options();
    options.host_id = 2;
    ScratchQueue scratch("restore-dead", options);
    const EntrypointId ep = scratch->declare_entrypoint("jobs", async_keeping());
    const JobId id = (JobId(2) << 48) | 900;
    const std::int64_t died = 1'700'000'000'000'000'000;
    scratch->restore_outcome(ep, dead_job(id, "the payload", "ValueError: boom", died));

    const auto dead = scratch->dead_jobs(ep);
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].id == id);
    CHECK(dead[0].error == "ValueError: boom");
    CHECK(dead[0].attempts == 4);
    CHECK(dead[0].max_attempts == 4);
    CHECK(dead[0].priority == 3);
    CHECK(dead[0].died_at_ns == died);
    CHECK(dead[0].enqueued_at_ns == died - 1'000'000);
    CHECK(text(dead[0].payload) == "the payload");
    CHECK(status_of(scratch.queue(), id) == JobStatus::exception);
    CHECK(feed_length(scratch.queue(), ep) == 0); // already in PostgreSQL: not mirrored again
    CHECK(stats_of(scratch.queue(), ep).dirty_slots == 0);
    // Later ids of this host stay above it.
    CHECK((enqueue_text(scratch.queue(), ep, "new") & ((JobId(1) << 48) - 1)) > 900);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a restored dead job can be requeued and then runs with a fresh set of attempts", "[restore]") {
    ScratchQueue scratch("restore-dead-requeue", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", async_keeping());
    scratch->restore_outcome(ep, dead_job(41, "again", "failed", shm::realtime_ns()));
    REQUIRE(scratch->requeue(41));
    CHECK(scratch->dead_jobs(ep).empty());
    const Job job = dequeue_now(scratch.queue(), ep).at(0);
    CHECK(job.handle.id == 41);
    CHECK(job.attempts == 1);
    CHECK(text(job.payload) == "again");
    scratch->ack(job.handle);
    CHECK(status_of(scratch.queue(), 41) == JobStatus::successful);
    CHECK(feed_length(scratch.queue(), ep) == 3); // queued, picked, successful: the requeue on is mirrored
}

TEST_CASE("restored dead jobs keep their order and past max_dead the oldest is dropped", "[restore]") {
    ScratchQueue scratch("restore-dead-cap", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", async_keeping(2));
    const std::int64_t now = shm::realtime_ns();
    for (JobId id = 1; id <= 3; ++id) scratch->restore_outcome(ep, dead_job(id, "x", "e", now + std::int64_t(id)));
    const auto dead = scratch->dead_jobs(ep);
    REQUIRE(dead.size() == 2);
    CHECK(dead[0].id == 2);
    CHECK(dead[1].id == 3);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a restored dead job's dedupe key is held again by its requeue", "[restore]") {
    ScratchQueue scratch("restore-dead-key", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", async_keeping());
    RestoredOutcome job = dead_job(50, "keyed", "e", shm::realtime_ns());
    job.dedupe_key = "the-key";
    scratch->restore_outcome(ep, job);
    EnqueueOptions keyed;
    keyed.dedupe_key = "the-key";
    const JobId other = enqueue_text(scratch.queue(), ep, "other", keyed); // a dead job holds no key
    CHECK(other != 50);
    CHECK_ERRC(scratch->requeue(50), Errc::already_exists); // the key is held by the new job now
    CHECK(scratch->dead_jobs(ep).size() == 1);
}

TEST_CASE("a restored kept result is returned by wait and status under its id, nothing logged", "[restore]") {
    ScratchQueue scratch("restore-result", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", async_keeping());
    RestoredOutcome job;
    job.id = 70;
    job.status = JobStatus::successful;
    job.attempts = 1;
    const std::string result("the\0result", 10);
    job.result = as_payload(result);
    job.finished_at_ns = 1'700'000'000'000'000'000;
    job.kept_until_ns = shm::realtime_ns() + 60'000'000'000;
    scratch->restore_outcome(ep, job);

    const JobId ids[] = {70};
    const auto outcome = scratch->wait(ids, 0ns).at(0);
    CHECK(outcome.status == JobStatus::successful);
    CHECK(outcome.finished);
    REQUIRE(outcome.result.has_value());
    CHECK(text(*outcome.result) == result);
    CHECK(outcome.finished_at_ns == job.finished_at_ns);
    const JobState state = state_of(scratch.queue(), 70);
    CHECK(state.status == JobStatus::successful);
    CHECK(state.attempts == 1);
    CHECK(state.entrypoint == ep);
    CHECK(feed_length(scratch.queue(), ep) == 0);
    CHECK(scratch->reap() == 0);
    CHECK(status_of(scratch.queue(), 70) == JobStatus::successful); // within its retention: still kept
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a restored canceled job is kept without a result", "[restore]") {
    ScratchQueue scratch("restore-canceled", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", async_keeping());
    RestoredOutcome job;
    job.id = 71;
    job.status = JobStatus::canceled;
    job.kept_until_ns = shm::realtime_ns() + 60'000'000'000;
    scratch->restore_outcome(ep, job);
    const JobId ids[] = {71};
    const auto outcome = scratch->wait(ids, 0ns).at(0);
    CHECK(outcome.status == JobStatus::canceled);
    CHECK(outcome.finished);
    CHECK_FALSE(outcome.result.has_value());
}

TEST_CASE("a restored result whose retention has passed is recycled by reap", "[restore]") {
    ScratchQueue scratch("restore-result-due", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", async_keeping());
    RestoredOutcome job;
    job.id = 72;
    job.status = JobStatus::successful;
    job.kept_until_ns = shm::realtime_ns() - 1'000'000; // passed while the host was down
    scratch->restore_outcome(ep, job);
    const std::uint32_t free_before = scratch->info().free_slots;
    scratch->reap();
    CHECK(scratch->info().free_slots == free_before + 1);
}

TEST_CASE("restore_outcome refuses an unknown entrypoint", "[restore]") {
    ScratchQueue scratch("restore-bad-ep", small_options());
    scratch->declare_entrypoint("jobs", async_keeping());
    CHECK_ERRC(scratch->restore_outcome(5, dead_job(1, "x", "e", shm::realtime_ns())), Errc::not_found);
    CHECK(scratch->info().free_slots == 64);
}

TEST_CASE("restore_outcome refuses an id already in the segment and leaves that job alone", "[restore]") {
    ScratchQueue scratch("restore-bad-present", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", async_keeping());
    const JobId queued = enqueue_text(scratch.queue(), ep, "queued");
    try {
        scratch->restore_outcome(ep, dead_job(queued, "x", "e", shm::realtime_ns()));
        FAIL("no error");
    } catch (const Error& error) {
        CHECK(error.code() == Errc::already_exists);
        CHECK_THAT(error.what(), Catch::Contains(std::to_string(queued)) && Catch::Contains("already"));
    }
    scratch->restore_outcome(ep, dead_job(99, "x", "e", shm::realtime_ns()));
    CHECK_ERRC(scratch->restore_outcome(ep, dead_job(99, "x", "e", shm::realtime_ns())), Errc::already_exists);
    CHECK(scratch->dead_jobs(ep).size() == 1);
    CHECK(status_of(scratch.queue(), queued) == JobStatus::queued);
    CHECK(dequeue_now(scratch.queue(), ep).at(0).handle.id == queued);
}

TEST_CASE("restore_outcome refuses a result larger than result_bytes, naming both sizes", "[restore]") {
    QueueOptions options = small_options();
    options.result_bytes = 16;
    ScratchQueue scratch("restore-bad-result", options);
    const EntrypointId ep = scratch->declare_entrypoint("jobs", async_keeping());
    RestoredOutcome job;
    job.id = 80;
    job.status = JobStatus::successful;
    const std::string result(17, 'r');
    job.result = as_payload(result);
    try {
        scratch->restore_outcome(ep, job);
        FAIL("no error");
    } catch (const Error& error) {
        CHECK(error.code() == Errc::invalid_argument);
        CHECK_THAT(error.what(), Catch::Contains("17 bytes") && Catch::Contains("16 result bytes"));
    }
    CHECK(status_of(scratch.queue(), 80) == JobStatus::unknown);
    CHECK(scratch->info().free_slots == 64);
}

TEST_CASE("restore_outcome refuses a status that is not final, a result on a job that is not successful, id 0 "
          "and a payload larger than a slot",
          "[restore]") {
    ScratchQueue scratch("restore-bad-status", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", async_keeping());
    RestoredOutcome queued = dead_job(81, "x", "e", shm::realtime_ns());
    queued.status = JobStatus::queued;
    CHECK_ERRC(scratch->restore_outcome(ep, queued), Errc::invalid_argument);
    RestoredOutcome with_result = dead_job(82, "x", "e", shm::realtime_ns());
    const std::string result = "r";
    with_result.result = as_payload(result);
    CHECK_ERRC(scratch->restore_outcome(ep, with_result), Errc::invalid_argument);
    CHECK_ERRC(scratch->restore_outcome(ep, dead_job(0, "x", "e", shm::realtime_ns())), Errc::invalid_argument);
    const std::string big(65, 'x');
    CHECK_ERRC(scratch->restore_outcome(ep, dead_job(83, big, "e", shm::realtime_ns())), Errc::payload_too_large);
    CHECK(scratch->dead_jobs(ep).empty());
    CHECK(scratch->info().free_slots == 64);
}
