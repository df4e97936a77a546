// Job dependencies (docs/job-dependencies.md): one behaviour per test case.
#include <algorithm>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "currant/shm/segment.hpp"
#include "layout.hpp" // core/src: torn states written straight into the segment
#include "unit_support.hpp"

using namespace currant;
using namespace currant::unit;

namespace {

EnqueueOptions after(std::vector<JobId> ids) {
    EnqueueOptions options;
    options.depends_on = std::move(ids);
    return options;
}

EntrypointOptions durable(Durability durability, std::uint32_t max_attempts = 5) {
    EntrypointOptions options;
    options.durability = durability;
    options.max_attempts = max_attempts;
    return options;
}

// Picks the one ready job and checks it is `id`.
Job pick_exactly(Queue& queue, EntrypointId ep, JobId id) {
    auto jobs = dequeue_now(queue, ep, 4);
    REQUIRE(jobs.size() == 1);
    REQUIRE(jobs[0].handle.id == id);
    return jobs[0];
}

} // namespace

TEST_CASE("a job whose dependency is queued waits and is not handed out", "[dependencies]") {
    ScratchQueue scratch("dep-waits", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId first = enqueue_text(scratch.queue(), ep, "a");
    const JobId second = enqueue_text(scratch.queue(), ep, "b", after({first}));
    CHECK(status_of(scratch.queue(), second) == JobStatus::waiting);
    const JobState state = state_of(scratch.queue(), second);
    CHECK(state.depends_on == std::vector<JobId>{first});
    CHECK(state.waiting_on == 1);
    const EntrypointStats stats = stats_of(scratch.queue(), ep);
    CHECK(stats.waiting == 1);
    CHECK(stats.queued == 1);
    CHECK(stats.enqueued == 2);
    pick_exactly(scratch.queue(), ep, first); // only the dependency is ready
    CHECK(dequeue_now(scratch.queue(), ep).empty());
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a waiting job is queued when its dependency is acked", "[dependencies]") {
    ScratchQueue scratch("dep-release", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId first = enqueue_text(scratch.queue(), ep, "a");
    const JobId second = enqueue_text(scratch.queue(), ep, "b", after({first}));
    const Job job = pick_exactly(scratch.queue(), ep, first);
    scratch->ack(job.handle);
    CHECK(status_of(scratch.queue(), second) == JobStatus::queued);
    CHECK(stats_of(scratch.queue(), ep).waiting == 0);
    pick_exactly(scratch.queue(), ep, second);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a chain of three runs one job at a time in its order", "[dependencies]") {
    ScratchQueue scratch("dep-chain", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::async));
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    const JobId b = enqueue_text(scratch.queue(), ep, "b", after({a}));
    const JobId c = enqueue_text(scratch.queue(), ep, "c", after({b}));
    for (JobId id : {a, b, c}) {
        const Job job = pick_exactly(scratch.queue(), ep, id);
        CHECK(dequeue_now(scratch.queue(), ep).empty());
        scratch->ack(job.handle);
    }
    CHECK(status_of(scratch.queue(), c) == JobStatus::successful);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("fan-in: a job waits until every one of its dependencies succeeded", "[dependencies]") {
    ScratchQueue scratch("dep-fanin", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const EntrypointId other = scratch->declare_entrypoint("other");
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    const JobId b = enqueue_text(scratch.queue(), other, "b"); // another entrypoint
    const JobId joined = enqueue_text(scratch.queue(), ep, "joined", after({a, b, a}));
    CHECK(state_of(scratch.queue(), joined).depends_on.size() == 2); // duplicates count once
    scratch->ack(pick_exactly(scratch.queue(), ep, a).handle);
    CHECK(status_of(scratch.queue(), joined) == JobStatus::waiting);
    CHECK(state_of(scratch.queue(), joined).waiting_on == 1);
    CHECK(dequeue_now(scratch.queue(), ep).empty());
    scratch->ack(pick_exactly(scratch.queue(), other, b).handle);
    pick_exactly(scratch.queue(), ep, joined);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a dependency that already succeeded does not make the job wait", "[dependencies]") {
    for (Durability durability : {Durability::memory, Durability::async}) {
        ScratchQueue scratch("dep-done", small_options());
        const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(durability));
        const JobId first = enqueue_text(scratch.queue(), ep, "a");
        scratch->ack(pick_exactly(scratch.queue(), ep, first).handle);
        const JobId second = enqueue_text(scratch.queue(), ep, "b", after({first}));
        CHECK(status_of(scratch.queue(), second) == JobStatus::queued);
        pick_exactly(scratch.queue(), ep, second);
        CHECK(scratch->doctor().sound);
    }
}

TEST_CASE("a released job keeps its execute_after and its priority", "[dependencies]") {
    ScratchQueue scratch("dep-order", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId first = enqueue_text(scratch.queue(), ep, "a");
    EnqueueOptions later = after({first});
    later.execute_after_ns = realtime_in(60s);
    const JobId delayed = enqueue_text(scratch.queue(), ep, "later", later);
    EnqueueOptions urgent = after({first});
    urgent.priority = 5;
    const JobId high = enqueue_text(scratch.queue(), ep, "urgent", urgent);
    const JobId plain = enqueue_text(scratch.queue(), ep, "plain");
    auto one = dequeue_now(scratch.queue(), ep, 1); // FIFO: the oldest ready job
    REQUIRE(one.size() == 1);
    REQUIRE(one[0].handle.id == first);
    scratch->ack(one[0].handle);
    CHECK(status_of(scratch.queue(), delayed) == JobStatus::queued);
    CHECK(stats_of(scratch.queue(), ep).delayed == 1);
    auto jobs = dequeue_now(scratch.queue(), ep, 4);
    REQUIRE(jobs.size() == 2);
    CHECK(jobs[0].handle.id == high);  // priority 5 before the older plain job
    CHECK(jobs[1].handle.id == plain);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a dependency that ends exception cancels its dependents transitively, with the reason", "[dependencies]") {
    ScratchQueue scratch("dep-dead", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::async, 1));
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    const JobId b = enqueue_text(scratch.queue(), ep, "b", after({a}));
    const JobId c = enqueue_text(scratch.queue(), ep, "c", after({b}));
    scratch->fail(pick_exactly(scratch.queue(), ep, a).handle, "boom");
    CHECK(status_of(scratch.queue(), a) == JobStatus::exception);
    const JobState sb = state_of(scratch.queue(), b);
    const JobState sc = state_of(scratch.queue(), c);
    CHECK(sb.status == JobStatus::canceled);
    CHECK(sb.reason == "canceled: dependency job " + std::to_string(a) + " ended exception");
    CHECK(sc.status == JobStatus::canceled);
    CHECK(sc.reason == "canceled: dependency job " + std::to_string(b) + " ended canceled");
    CHECK(stats_of(scratch.queue(), ep).canceled == 2);
    CHECK(stats_of(scratch.queue(), ep).waiting == 0);
    CHECK(dequeue_now(scratch.queue(), ep).empty());
    CHECK(scratch->doctor().sound);
}

TEST_CASE("in memory durability a canceled dependent still reads canceled with its reason", "[dependencies]") {
    ScratchQueue scratch("dep-dead-mem", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::memory, 1));
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    const JobId b = enqueue_text(scratch.queue(), ep, "b", after({a}));
    scratch->fail(pick_exactly(scratch.queue(), ep, a).handle, "boom");
    const JobState sb = state_of(scratch.queue(), b);
    CHECK(sb.status == JobStatus::canceled);
    CHECK(sb.reason == "canceled: dependency job " + std::to_string(a) + " ended exception");
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a dependency canceled while queued cancels its dependent", "[dependencies]") {
    ScratchQueue scratch("dep-canceled", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    const JobId b = enqueue_text(scratch.queue(), ep, "b", after({a}));
    CHECK(scratch->cancel(a) == CancelOutcome::canceled);
    const JobState sb = state_of(scratch.queue(), b);
    CHECK(sb.status == JobStatus::canceled);
    CHECK(sb.reason == "canceled: dependency job " + std::to_string(a) + " ended canceled");
    CHECK(dequeue_now(scratch.queue(), ep).empty());
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a job enqueued after a dependency that already failed ends canceled at once", "[dependencies]") {
    ScratchQueue scratch("dep-failed-before", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::async, 1));
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    scratch->fail(pick_exactly(scratch.queue(), ep, a).handle, "boom");
    const JobId b = enqueue_text(scratch.queue(), ep, "b", after({a}));
    const JobState sb = state_of(scratch.queue(), b);
    CHECK(sb.status == JobStatus::canceled);
    CHECK(sb.reason == "canceled: dependency job " + std::to_string(a) + " ended exception");
    CHECK(dequeue_now(scratch.queue(), ep).empty());
    CHECK(scratch->doctor().sound);
}

TEST_CASE("cancel of a waiting job cancels it and the jobs waiting for it", "[dependencies]") {
    ScratchQueue scratch("dep-cancel-waiting", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    const JobId b = enqueue_text(scratch.queue(), ep, "b", after({a}));
    const JobId c = enqueue_text(scratch.queue(), ep, "c", after({b}));
    Queue canceller = Queue::open(scratch.name());
    CHECK(canceller.cancel(b) == CancelOutcome::canceled);
    CHECK(status_of(scratch.queue(), b) == JobStatus::canceled);
    CHECK(state_of(scratch.queue(), c).reason == "canceled: dependency job " + std::to_string(b) + " ended canceled");
    CHECK(status_of(scratch.queue(), a) == JobStatus::queued); // the dependency is untouched
    scratch->ack(pick_exactly(scratch.queue(), ep, a).handle);
    CHECK(dequeue_now(scratch.queue(), ep).empty());
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a dependency on an unknown job is refused and nothing is enqueued", "[dependencies]") {
    ScratchQueue scratch("dep-unknown", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    try {
        enqueue_text(scratch.queue(), ep, "b", after({a, a + 1000}));
        FAIL("no error");
    } catch (const Error& error) {
        CHECK(error.code() == Errc::not_found);
        CHECK(std::string(error.what()).find("dependency job " + std::to_string(a + 1000) +
                                             " was never issued") != std::string::npos);
    }
    CHECK(stats_of(scratch.queue(), ep).enqueued == 1);
    CHECK(stats_of(scratch.queue(), ep).waiting == 0);
    scratch->ack(pick_exactly(scratch.queue(), ep, a).handle); // its count was given back
    CHECK(scratch->doctor().sound);
}

namespace {

// Enqueues, picks and acks `count` plain jobs one at a time, so every slot
// is reused again and again.
void churn(Queue& queue, EntrypointId ep, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
        const JobId id = enqueue_text(queue, ep, "churn");
        queue.ack(pick_exactly(queue, ep, id).handle);
    }
}

// Fills every free slot with a plain job, then acks them all: every free
// slot is reused and its new job ended, so the slots forgot their jobs
// before (a free list hands the same few slots out again to churn).
void reuse_every_slot(Queue& queue, EntrypointId ep) {
    const std::uint32_t free = queue.info().free_slots;
    for (std::uint32_t i = 0; i < free; ++i) enqueue_text(queue, ep, "fill");
    for (std::vector<Job> jobs = dequeue_now(queue, ep, 64); !jobs.empty(); jobs = dequeue_now(queue, ep, 64))
        for (const Job& job : jobs) queue.ack(job.handle);
    REQUIRE(queue.info().free_slots == free);
}

EntrypointOptions forgetful(std::uint32_t max_attempts = 5) {
    EntrypointOptions options = durable(Durability::memory, max_attempts);
    options.max_dead = 0; // a dead job frees its slot at once too
    return options;
}

// 64 slots: the recent outcomes' capacity, and how many ids after a job
// surely do not take its entry (layout.hpp).
const std::uint32_t outcome_capacity = detail::ended_capacity_for(64);
const std::size_t outcome_span = detail::ended_kept_span(outcome_capacity);

} // namespace

TEST_CASE("a successful dependency whose slot forgot it still releases a later dependent", "[dependencies]") {
    ScratchQueue scratch("dep-forgotten-ok", small_options(64));
    const EntrypointId ep = scratch->declare_entrypoint("jobs", forgetful());
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    scratch->ack(pick_exactly(scratch.queue(), ep, a).handle);
    churn(scratch.queue(), ep, 3 * 64); // a's slot was reused and its next job ended: it forgot a
    REQUIRE(state_of(scratch.queue(), a).slot_reused); // no slot holds a any more
    const JobId b = enqueue_text(scratch.queue(), ep, "b", after({a}));
    CHECK(status_of(scratch.queue(), b) == JobStatus::queued);
    pick_exactly(scratch.queue(), ep, b);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a dead dependency whose slot forgot it cancels a later dependent with the reason", "[dependencies]") {
    ScratchQueue scratch("dep-forgotten-dead", small_options(64));
    const EntrypointId ep = scratch->declare_entrypoint("jobs", forgetful(1));
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    scratch->fail(pick_exactly(scratch.queue(), ep, a).handle, "boom");
    churn(scratch.queue(), ep, 3 * 64);
    REQUIRE(state_of(scratch.queue(), a).slot_reused); // no slot holds a any more
    const JobId b = enqueue_text(scratch.queue(), ep, "b", after({a}));
    const JobState sb = state_of(scratch.queue(), b);
    CHECK(sb.status == JobStatus::canceled);
    CHECK(sb.reason == "canceled: dependency job " + std::to_string(a) + " ended exception");
    CHECK(dequeue_now(scratch.queue(), ep).empty());
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a canceled dependency whose slot forgot it cancels a later dependent with the reason", "[dependencies]") {
    ScratchQueue scratch("dep-forgotten-canceled", small_options(64));
    const EntrypointId ep = scratch->declare_entrypoint("jobs", forgetful());
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    REQUIRE(scratch->cancel(a) == CancelOutcome::canceled);
    churn(scratch.queue(), ep, 3 * 64);
    REQUIRE(state_of(scratch.queue(), a).slot_reused); // no slot holds a any more
    const JobId b = enqueue_text(scratch.queue(), ep, "b", after({a}));
    const JobState sb = state_of(scratch.queue(), b);
    CHECK(sb.status == JobStatus::canceled);
    CHECK(sb.reason == "canceled: dependency job " + std::to_string(a) + " ended canceled");
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a dependency that ended more ids ago than the recent outcomes hold is refused as no longer known",
          "[dependencies]") {
    ScratchQueue scratch("dep-forgotten-overflow", small_options(64));
    const EntrypointId ep = scratch->declare_entrypoint("jobs", forgetful());
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    scratch->ack(pick_exactly(scratch.queue(), ep, a).handle);
    // The first younger id with a's entry takes it once it ended and its
    // slot moved on (ids of one Queue are consecutive here).
    const std::uint64_t counter = a & detail::ended_counter_mask;
    std::uint64_t taker = counter + 1;
    while (detail::ended_index(taker, outcome_capacity) != detail::ended_index(counter, outcome_capacity)) ++taker;
    CHECK(taker - counter > outcome_span);
    churn(scratch.queue(), ep, std::size_t(taker - counter) + 2 * 64);
    try {
        enqueue_text(scratch.queue(), ep, "b", after({a}));
        FAIL("no error");
    } catch (const Error& error) {
        CHECK(error.code() == Errc::not_found);
        CHECK(std::string(error.what()).find("dependency job " + std::to_string(a) + " ended too long ago") !=
              std::string::npos);
    }
    CHECK(stats_of(scratch.queue(), ep).waiting == 0);
    CHECK(dequeue_now(scratch.queue(), ep).empty()); // nothing was enqueued
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a dependency just inside the recent outcomes' capacity is still known", "[dependencies]") {
    ScratchQueue scratch("dep-forgotten-edge", small_options(64));
    const EntrypointId ep = scratch->declare_entrypoint("jobs", forgetful());
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    scratch->ack(pick_exactly(scratch.queue(), ep, a).handle);
    churn(scratch.queue(), ep, outcome_span); // none of ids a+1 .. a+span shares a's entry
    REQUIRE(state_of(scratch.queue(), a).slot_reused); // no slot holds a any more
    const JobId b = enqueue_text(scratch.queue(), ep, "b", after({a}));
    CHECK(status_of(scratch.queue(), b) == JobStatus::queued);
    CHECK(scratch->doctor().sound);
}

// Status of a job whose slot was reused (docs/job-dependencies.md,
// "Finished dependencies"): answered from the recent outcomes.

TEST_CASE("status of a successful job whose slot was reused says successful", "[dependencies][status]") {
    ScratchQueue scratch("status-reused-ok", small_options(64));
    const EntrypointId ep = scratch->declare_entrypoint("jobs", forgetful());
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    scratch->ack(pick_exactly(scratch.queue(), ep, a).handle);
    reuse_every_slot(scratch.queue(), ep);
    const JobState state = state_of(scratch.queue(), a);
    CHECK(state.status == JobStatus::successful);
    CHECK(state.slot_reused);
    CHECK(state.attempts == 0); // not known any more
    CHECK(state.depends_on.empty());
}

TEST_CASE("status of a dead job whose slot was reused says exception", "[dependencies][status]") {
    ScratchQueue scratch("status-reused-dead", small_options(64));
    const EntrypointId ep = scratch->declare_entrypoint("jobs", forgetful(1));
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    scratch->fail(pick_exactly(scratch.queue(), ep, a).handle, "boom");
    reuse_every_slot(scratch.queue(), ep);
    const JobState state = state_of(scratch.queue(), a);
    CHECK(state.status == JobStatus::exception);
    CHECK(state.slot_reused);
}

TEST_CASE("status of a canceled job whose slot was reused says canceled", "[dependencies][status]") {
    ScratchQueue scratch("status-reused-canceled", small_options(64));
    const EntrypointId ep = scratch->declare_entrypoint("jobs", forgetful());
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    REQUIRE(scratch->cancel(a) == CancelOutcome::canceled);
    reuse_every_slot(scratch.queue(), ep);
    const JobState state = state_of(scratch.queue(), a);
    CHECK(state.status == JobStatus::canceled);
    CHECK(state.slot_reused);
    CHECK(state.reason.empty()); // the reason lived in the slot
}

TEST_CASE("status of a job canceled by its dependency and whose slot was reused says canceled",
          "[dependencies][status]") {
    ScratchQueue scratch("status-reused-dep-canceled", small_options(64));
    const EntrypointId ep = scratch->declare_entrypoint("jobs", forgetful(1));
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    const JobId b = enqueue_text(scratch.queue(), ep, "b", after({a}));
    scratch->fail(pick_exactly(scratch.queue(), ep, a).handle, "boom");
    REQUIRE(status_of(scratch.queue(), b) == JobStatus::canceled);
    reuse_every_slot(scratch.queue(), ep);
    const std::vector<JobId> ids{a, b};
    const std::vector<JobState> states = scratch->status(ids);
    CHECK(states[0].status == JobStatus::exception);
    CHECK(states[1].status == JobStatus::canceled);
    CHECK(states[1].slot_reused);
}

TEST_CASE("status of a job that ended more ids ago than the recent outcomes hold is unknown",
          "[dependencies][status]") {
    ScratchQueue scratch("status-reused-overflow", small_options(64));
    const EntrypointId ep = scratch->declare_entrypoint("jobs", forgetful(1));
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    scratch->fail(pick_exactly(scratch.queue(), ep, a).handle, "boom");
    const std::uint64_t counter = a & detail::ended_counter_mask;
    std::uint64_t taker = counter + 1;
    while (detail::ended_index(taker, outcome_capacity) != detail::ended_index(counter, outcome_capacity)) ++taker;
    churn(scratch.queue(), ep, std::size_t(taker - counter) + 2 * 64); // a younger successful job took a's entry
    const JobState state = state_of(scratch.queue(), a);
    CHECK(state.status == JobStatus::unknown); // not the younger job's successful
    CHECK_FALSE(state.slot_reused);
}

TEST_CASE("status of a purged dead job stays unknown after its slot was reused", "[dependencies][status]") {
    ScratchQueue scratch("status-reused-purged", small_options(64));
    EntrypointOptions options = durable(Durability::memory, 1);
    options.max_dead = 8;
    const EntrypointId ep = scratch->declare_entrypoint("jobs", options);
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    scratch->fail(pick_exactly(scratch.queue(), ep, a).handle, "boom");
    REQUIRE(scratch->purge(a));
    reuse_every_slot(scratch.queue(), ep);
    const JobState state = state_of(scratch.queue(), a);
    CHECK(state.status == JobStatus::unknown); // purged: how it ended is not known
    CHECK_FALSE(state.slot_reused);
}

// Fills every free slot with a plain job and leaves them queued: every job
// that ended in a free slot now has a newer job in it that has not ended.
void hold_every_slot(Queue& queue, EntrypointId ep) {
    const std::uint32_t free = queue.info().free_slots;
    for (std::uint32_t i = 0; i < free; ++i) enqueue_text(queue, ep, "holder");
    REQUIRE(queue.info().free_slots == 0);
}

TEST_CASE("status of a finished job whose slot a newer job holds, not ended yet, says how it ended",
          "[dependencies][status]") {
    ScratchQueue scratch("status-held", small_options(64));
    const EntrypointId ep = scratch->declare_entrypoint("jobs", forgetful(1));
    const JobId ok = enqueue_text(scratch.queue(), ep, "ok");
    scratch->ack(pick_exactly(scratch.queue(), ep, ok).handle);
    const JobId dead = enqueue_text(scratch.queue(), ep, "dead");
    scratch->fail(pick_exactly(scratch.queue(), ep, dead).handle, "boom");
    const JobId canceled = enqueue_text(scratch.queue(), ep, "canceled");
    REQUIRE(scratch->cancel(canceled) == CancelOutcome::canceled);
    hold_every_slot(scratch.queue(), ep);
    const std::vector<JobId> ids{ok, dead, canceled};
    const std::vector<JobState> states = scratch->status(ids);
    CHECK(states[0].status == JobStatus::successful);
    CHECK(states[1].status == JobStatus::exception);
    CHECK(states[2].status == JobStatus::canceled);
    for (const JobState& state : states) {
        CHECK(state.slot_reused);
        CHECK(state.attempts == 0); // the slot's fields are the newer job's: not reported
    }
}

TEST_CASE("wait for a finished job whose slot a newer job holds returns at once with its final status",
          "[dependencies][wait]") {
    ScratchQueue scratch("wait-held", small_options(64));
    const EntrypointId ep = scratch->declare_entrypoint("jobs", forgetful(1));
    const JobId ok = enqueue_text(scratch.queue(), ep, "ok");
    scratch->ack(pick_exactly(scratch.queue(), ep, ok).handle);
    hold_every_slot(scratch.queue(), ep);
    const std::vector<JobId> ids{ok};
    const auto start = std::chrono::steady_clock::now();
    const std::vector<JobOutcome> outcomes = scratch->wait(ids, std::chrono::seconds(10));
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
    REQUIRE(outcomes.size() == 1);
    CHECK(outcomes[0].status == JobStatus::successful);
    CHECK(outcomes[0].finished);
}

TEST_CASE("wait for a job whose slot was reused returns at once with its final status", "[dependencies][wait]") {
    ScratchQueue scratch("wait-reused", small_options(64));
    const EntrypointId ep = scratch->declare_entrypoint("jobs", forgetful(1));
    const JobId ok = enqueue_text(scratch.queue(), ep, "ok");
    scratch->ack(pick_exactly(scratch.queue(), ep, ok).handle);
    const JobId dead = enqueue_text(scratch.queue(), ep, "dead");
    scratch->fail(pick_exactly(scratch.queue(), ep, dead).handle, "boom");
    reuse_every_slot(scratch.queue(), ep);
    const std::vector<JobId> ids{ok, dead};
    const auto start = std::chrono::steady_clock::now();
    const std::vector<JobOutcome> outcomes = scratch->wait(ids, std::chrono::seconds(10));
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
    REQUIRE(outcomes.size() == 2);
    CHECK(outcomes[0].status == JobStatus::successful);
    CHECK(outcomes[0].finished);
    CHECK_FALSE(outcomes[0].result.has_value()); // gone with the slot
    CHECK(outcomes[1].status == JobStatus::exception);
    CHECK(outcomes[1].finished);
    CHECK(outcomes[1].error.empty());
}

TEST_CASE("jobs released by one completion run in the order they were enqueued", "[dependencies]") {
    ScratchQueue scratch("dep-release-order", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    std::vector<JobId> waiting;
    for (int i = 0; i < 5; ++i) waiting.push_back(enqueue_text(scratch.queue(), ep, "w", after({a})));
    scratch->ack(pick_exactly(scratch.queue(), ep, a).handle);
    const auto jobs = dequeue_now(scratch.queue(), ep, 8);
    std::vector<JobId> order;
    for (const Job& job : jobs) order.push_back(job.handle.id);
    CHECK(order == waiting); // the waiting list is newest first: the release sorts them back
    CHECK(scratch->doctor().sound);
}

TEST_CASE("jobs released by one completion run in the order they were enqueued in async durability too",
          "[dependencies]") {
    // async takes the entrypoint lock to start waiting (a log record);
    // memory (the case above) does not: both release in the wait order.
    ScratchQueue scratch("dep-release-order-async", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::async));
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    std::vector<JobId> waiting;
    for (int i = 0; i < 5; ++i) waiting.push_back(enqueue_text(scratch.queue(), ep, "w", after({a})));
    scratch->ack(pick_exactly(scratch.queue(), ep, a).handle);
    const auto jobs = dequeue_now(scratch.queue(), ep, 8);
    std::vector<JobId> order;
    for (const Job& job : jobs) order.push_back(job.handle.id);
    CHECK(order == waiting);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("jobs released by one completion keep their order when the wait order wraps around", "[dependencies]") {
    ScratchQueue scratch("dep-release-order-wrap", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const int fd = ::shm_open(shm::object_name_for(scratch.name()).c_str(), O_RDWR, 0);
    REQUIRE(fd >= 0);
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    void* base = ::mmap(nullptr, std::size_t(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    REQUIRE(base != MAP_FAILED);
    auto* bytes = static_cast<std::byte*>(base);
    const auto& header = *reinterpret_cast<const shm::SegmentHeader*>(bytes);
    const detail::CoreGeometry geometry = detail::compute_core_geometry(header.parameters);
    auto& control =
        *reinterpret_cast<detail::DependencyControl*>(bytes + header.core_offset + geometry.dependency_control_offset);
    control.next_wait_order = 0xFFFFFFFEu; // the third waiting job gets 0
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    std::vector<JobId> waiting;
    for (int i = 0; i < 5; ++i) waiting.push_back(enqueue_text(scratch.queue(), ep, "w", after({a})));
    CHECK(control.next_wait_order == 3);
    scratch->ack(pick_exactly(scratch.queue(), ep, a).handle);
    const auto jobs = dequeue_now(scratch.queue(), ep, 8);
    std::vector<JobId> order;
    for (const Job& job : jobs) order.push_back(job.handle.id);
    CHECK(order == waiting);
    CHECK(scratch->doctor().sound);
    ::munmap(base, std::size_t(st.st_size));
}

TEST_CASE("too many dependencies, id 0 and a dedupe key with dependencies are refused", "[dependencies]") {
    ScratchQueue scratch("dep-bad", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    std::vector<JobId> many;
    for (std::size_t i = 0; i <= max_job_dependencies; ++i) many.push_back(enqueue_text(scratch.queue(), ep, "x"));
    CHECK_ERRC(enqueue_text(scratch.queue(), ep, "b", after(many)), Errc::invalid_argument);
    many.pop_back();
    CHECK(status_of(scratch.queue(), enqueue_text(scratch.queue(), ep, "b", after(many))) == JobStatus::waiting);
    CHECK_ERRC(enqueue_text(scratch.queue(), ep, "b", after({0})), Errc::invalid_argument);
    EnqueueOptions keyed = after({many[0]});
    keyed.dedupe_key = "k";
    CHECK_ERRC(enqueue_text(scratch.queue(), ep, "b", keyed), Errc::invalid_argument);
    CHECK(stats_of(scratch.queue(), ep).enqueued == max_job_dependencies + 2);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a reservation cannot be committed depending on itself", "[dependencies]") {
    ScratchQueue scratch("dep-self", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    Reservation reservation = scratch->reserve(ep);
    CHECK_ERRC(scratch->commit(reservation, 0, after({reservation.id})), Errc::invalid_argument);
    const JobId id = scratch->commit(reservation, 0, after({a}));
    CHECK(status_of(scratch.queue(), id) == JobStatus::waiting);
    scratch->ack(pick_exactly(scratch.queue(), ep, a).handle);
    pick_exactly(scratch.queue(), ep, id);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("every job of a batch waits for the batch's dependencies", "[dependencies]") {
    ScratchQueue scratch("dep-batch", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    const std::vector<std::byte> payload = bytes("x");
    std::vector<std::span<const std::byte>> payloads(5, std::span<const std::byte>(payload));
    std::vector<JobId> ids(5);
    CHECK(scratch->enqueue_batch(ep, payloads, ids, after({a})) == 5);
    CHECK(stats_of(scratch.queue(), ep).waiting == 5);
    scratch->ack(pick_exactly(scratch.queue(), ep, a).handle);
    auto jobs = dequeue_now(scratch.queue(), ep, 8);
    CHECK(jobs.size() == 5);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("the feed records waiting and then queued for a released job", "[dependencies]") {
    ScratchQueue scratch("dep-feed", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs", durable(Durability::async));
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    const JobId b = enqueue_text(scratch.queue(), ep, "b", after({a}));
    scratch->ack(pick_exactly(scratch.queue(), ep, a).handle);
    std::vector<Transition> feed(16);
    feed.resize(scratch->read_feed(ep, 1, feed));
    std::vector<JobStatus> of_b;
    for (const Transition& t : feed)
        if (t.id == b) of_b.push_back(t.status);
    CHECK(of_b == std::vector<JobStatus>{JobStatus::waiting, JobStatus::queued});
}

TEST_CASE("doctor reports a dependents count below the jobs waiting on it", "[dependencies][doctor]") {
    ScratchQueue scratch("dep-torn-count", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    enqueue_text(scratch.queue(), ep, "b", after({a}));
    const Job job = pick_exactly(scratch.queue(), ep, a);
    const int fd = ::shm_open(shm::object_name_for(scratch.name()).c_str(), O_RDWR, 0);
    REQUIRE(fd >= 0);
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    void* base = ::mmap(nullptr, std::size_t(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    REQUIRE(base != MAP_FAILED);
    auto* bytes = static_cast<std::byte*>(base);
    const auto& header = *reinterpret_cast<const shm::SegmentHeader*>(bytes);
    auto& record = *reinterpret_cast<detail::JobRecord*>(bytes + header.arena_offset +
                                                         std::uint64_t(job.handle.slot) * header.slot_bytes + 8);
    CHECK(record.dependents.load() == 1);
    CHECK(scratch->doctor().sound);
    // A count below the truth: the ack would not settle, b would wait forever (D2).
    record.dependents.store(0);
    const DoctorReport torn = scratch->doctor();
    CHECK_FALSE(torn.sound);
    REQUIRE(torn.problems.size() == 1);
    CHECK(torn.problems[0].find("has 0 dependents counted but 1 waiting on it") != std::string::npos);
    record.dependents.store(1);
    CHECK(scratch->doctor().sound);
    ::munmap(base, std::size_t(st.st_size));
}

namespace {
// The segment of a scratch queue mapped writable, for torn states.
struct MappedSegment {
    void* base = MAP_FAILED;
    std::size_t size = 0;
    explicit MappedSegment(const std::string& name) {
        const int fd = ::shm_open(shm::object_name_for(name).c_str(), O_RDWR, 0);
        REQUIRE(fd >= 0);
        struct stat st {};
        REQUIRE(::fstat(fd, &st) == 0);
        size = std::size_t(st.st_size);
        base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ::close(fd);
        REQUIRE(base != MAP_FAILED);
    }
    ~MappedSegment() { ::munmap(base, size); }
    detail::DependencyRow& row(std::uint32_t slot) const {
        auto* bytes = static_cast<std::byte*>(base);
        const auto& header = *reinterpret_cast<const shm::SegmentHeader*>(bytes);
        const detail::CoreGeometry geometry = detail::compute_core_geometry(header.parameters);
        return reinterpret_cast<detail::DependencyRow*>(bytes + header.core_offset +
                                                        geometry.dependency_rows_offset)[slot];
    }
};
} // namespace

TEST_CASE("doctor reports a waiting job missing from its dependency's dependents list", "[dependencies][doctor]") {
    ScratchQueue scratch("dep-torn-list", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    const JobId b = enqueue_text(scratch.queue(), ep, "b", after({a}));
    const Job job = pick_exactly(scratch.queue(), ep, a);
    MappedSegment segment(scratch.name());
    detail::DependencyRow& of_a = segment.row(job.handle.slot);
    REQUIRE(of_a.first_dependent != 0);
    CHECK(scratch->doctor().sound);
    const std::uint32_t saved = of_a.first_dependent;
    of_a.first_dependent = 0; // b's edge falls off a's list
    const DoctorReport torn = scratch->doctor();
    CHECK_FALSE(torn.sound);
    REQUIRE(torn.problems.size() == 1);
    CHECK(torn.problems[0].find("waits on job " + std::to_string(a) + " but is not on its dependents list") !=
          std::string::npos);
    of_a.first_dependent = saved;
    CHECK(scratch->doctor().sound);
    scratch->ack(job.handle);
    pick_exactly(scratch.queue(), ep, b);
}

TEST_CASE("a waiting job missing from its dependency's dependents list is still released by the ack",
          "[dependencies]") {
    // A finisher's settle looks at its slot's dependents list; one that
    // finds nothing it can resolve there while jobs wait on it (here: the
    // list lost b's edge) walks every waiting job, as before the lists.
    ScratchQueue scratch("dep-lost-list", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    const JobId b = enqueue_text(scratch.queue(), ep, "b", after({a}));
    const Job job = pick_exactly(scratch.queue(), ep, a);
    MappedSegment segment(scratch.name());
    segment.row(job.handle.slot).first_dependent = 0;
    scratch->ack(job.handle);
    CHECK(state_of(scratch.queue(), b).status == JobStatus::queued);
    pick_exactly(scratch.queue(), ep, b);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a dependents list linking out of range is rebuilt and its jobs are still released", "[dependencies]") {
    ScratchQueue scratch("dep-corrupt-list", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    const JobId b = enqueue_text(scratch.queue(), ep, "b", after({a}));
    const JobId c = enqueue_text(scratch.queue(), ep, "c", after({a}));
    const Job job = pick_exactly(scratch.queue(), ep, a);
    MappedSegment segment(scratch.name());
    segment.row(job.handle.slot).first_dependent = 0xFFFFFFF0u; // beyond the arena
    scratch->ack(job.handle);
    auto jobs = dequeue_now(scratch.queue(), ep, 4);
    std::vector<JobId> order;
    for (const Job& j : jobs) order.push_back(j.handle.id);
    CHECK(order == std::vector<JobId>{b, c});
    CHECK(scratch->doctor().sound);
}

TEST_CASE("doctor reports a recent outcome entry that does not belong where it sits", "[dependencies][doctor]") {
    ScratchQueue scratch("dep-torn-outcome", small_options(64));
    const EntrypointId ep = scratch->declare_entrypoint("jobs", forgetful());
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    scratch->ack(pick_exactly(scratch.queue(), ep, a).handle);
    churn(scratch.queue(), ep, 3 * 64); // a moves into the recent outcomes
    const int fd = ::shm_open(shm::object_name_for(scratch.name()).c_str(), O_RDWR, 0);
    REQUIRE(fd >= 0);
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    void* base = ::mmap(nullptr, std::size_t(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    REQUIRE(base != MAP_FAILED);
    auto* bytes = static_cast<std::byte*>(base);
    const auto& header = *reinterpret_cast<const shm::SegmentHeader*>(bytes);
    const detail::CoreGeometry geometry = detail::compute_core_geometry(header.parameters);
    auto* entries = reinterpret_cast<std::atomic<std::uint64_t>*>(bytes + header.core_offset + geometry.ended_offset);
    const std::uint64_t counter = a & detail::ended_counter_mask;
    std::atomic<std::uint64_t>& entry = entries[detail::ended_index(counter, geometry.ended_capacity)];
    REQUIRE(entry.load() == detail::ended_entry(counter, 1)); // a, successful
    CHECK(scratch->doctor().sound);
    // An entry in the wrong place would answer for another job.
    const std::uint64_t saved = entry.load();
    entry.store(detail::ended_entry(counter + 1, 1)); // counter + 1 has the next entry
    const DoctorReport torn = scratch->doctor();
    CHECK_FALSE(torn.sound);
    REQUIRE(torn.problems.size() == 1);
    CHECK(torn.problems[0].find("does not belong there") != std::string::npos);
    entry.store(saved);
    CHECK(scratch->doctor().sound);
    ::munmap(base, std::size_t(st.st_size));
}
