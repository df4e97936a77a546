/* c_api suite: job dependencies through the C ABI (currant.h,
 * docs/job-dependencies.md), one behaviour per case: each case returns 0 on
 * success; CHECK prints the failed condition, its line and the last error.
 * The runner removes the case's queue afterwards. */
#include "c_test_harness.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int make_queue(const char* tag, uint32_t* ep) {
    return make_small_queue("cdep", tag, CURRANT_DURABILITY_MEMORY, ep);
}

static int status_of(uint64_t id) {
    int status = -1;
    if (currant_job_status(g_queue, &id, 1, &status) != CURRANT_OK) return -1;
    return status;
}

/* Picks exactly one ready job; returns 0 if it is `id`. */
static int pick_exactly(uint32_t ep, uint64_t id, currant_job* job) {
    currant_job jobs[4];
    size_t got = 0;
    if (currant_dequeue(g_queue, &ep, 1, jobs, 4, 0, &got) != CURRANT_OK || got != 1) return 1;
    *job = jobs[0];
    return jobs[0].id == id ? 0 : 1;
}

static int mentions(const char* text, const char* part) { return strstr(text, part) != NULL; }

/* ------------------------------------------------------------------------ */

static int test_a_dependent_waits_until_its_dependency_is_acked(void) {
    uint32_t ep = 0;
    CHECK(make_queue("chain", &ep) == 0);
    uint64_t a = 0, b = 0;
    CHECK_OK(currant_enqueue(g_queue, ep, "a", 1, NULL, &a));
    CHECK_OK(currant_enqueue_after(g_queue, ep, "b", 1, NULL, &a, 1, &b));
    CHECK(status_of(b) == CURRANT_JOB_WAITING);
    uint64_t waiting = 0;
    CHECK_OK(currant_waiting_count(g_queue, ep, &waiting));
    CHECK(waiting == 1);
    currant_job job;
    CHECK(pick_exactly(ep, a, &job) == 0);
    CHECK_OK(currant_ack(g_queue, &job));
    CHECK(status_of(b) == CURRANT_JOB_QUEUED);
    CHECK(pick_exactly(ep, b, &job) == 0);
    CHECK_OK(currant_ack(g_queue, &job));
    return 0;
}

static int test_a_failed_dependency_cancels_with_a_reason(void) {
    uint32_t ep = 0;
    CHECK(make_queue("failed", &ep) == 0);
    uint64_t a = 0, b = 0;
    CHECK_OK(currant_enqueue(g_queue, ep, "a", 1, NULL, &a));
    CHECK_OK(currant_enqueue_after(g_queue, ep, "b", 1, NULL, &a, 1, &b));
    currant_job job;
    CHECK(pick_exactly(ep, a, &job) == 0);
    CHECK_OK(currant_fail(g_queue, &job));
    CHECK(status_of(b) == CURRANT_JOB_CANCELED);
    char reason[128];
    size_t size = 0;
    CHECK_OK(currant_job_reason(g_queue, b, reason, sizeof reason - 1, &size));
    CHECK(size < sizeof reason);
    reason[size] = '\0';
    char expected[128];
    snprintf(expected, sizeof expected, "canceled: dependency job %llu ended exception", (unsigned long long)a);
    CHECK(strcmp(reason, expected) == 0);
    CHECK(currant_job_reason(g_queue, a, reason, sizeof reason, &size) == CURRANT_ERR_NOT_FOUND);
    return 0;
}

static int test_commit_after_runs_the_reserved_job_after_its_dependency(void) {
    uint32_t ep = 0;
    CHECK(make_queue("commit", &ep) == 0);
    uint64_t a = 0, b = 0;
    CHECK_OK(currant_enqueue(g_queue, ep, "a", 1, NULL, &a));
    currant_reservation reservation;
    CHECK_OK(currant_reserve(g_queue, ep, &reservation));
    memcpy(reservation.payload, "b", 1);
    /* Its own id: refused, the reservation still held. */
    CHECK(currant_commit_after(g_queue, &reservation, 1, NULL, &reservation.id, 1, &b) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "cannot depend on itself"));
    CHECK(reservation.payload != NULL);
    CHECK_OK(currant_commit_after(g_queue, &reservation, 1, NULL, &a, 1, &b));
    CHECK(reservation.payload == NULL);
    CHECK(status_of(b) == CURRANT_JOB_WAITING);
    currant_job job;
    CHECK(pick_exactly(ep, a, &job) == 0);
    CHECK_OK(currant_ack(g_queue, &job));
    CHECK(pick_exactly(ep, b, &job) == 0);
    return 0;
}

static int test_bad_dependencies_are_refused_and_nothing_is_enqueued(void) {
    uint32_t ep = 0;
    CHECK(make_queue("bad", &ep) == 0);
    uint64_t a = 0, id = 0;
    CHECK_OK(currant_enqueue(g_queue, ep, "a", 1, NULL, &a));
    const uint64_t unknown = a + 1000;
    CHECK(currant_enqueue_after(g_queue, ep, "b", 1, NULL, &unknown, 1, &id) == CURRANT_ERR_NOT_FOUND);
    CHECK(mentions(currant_last_error(), "was never issued"));
    CHECK(currant_enqueue_after(g_queue, ep, "b", 1, NULL, NULL, 1, &id) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_enqueue_after(g_queue, ep, "b", 1, NULL, &a, 0, &id) == CURRANT_ERR_INVALID_ARGUMENT);
    uint64_t many[CURRANT_MAX_DEPENDENCIES + 1];
    for (size_t i = 0; i < CURRANT_MAX_DEPENDENCIES + 1; ++i)
        CHECK_OK(currant_enqueue(g_queue, ep, "x", 1, NULL, &many[i]));
    CHECK(currant_enqueue_after(g_queue, ep, "b", 1, NULL, many, CURRANT_MAX_DEPENDENCIES + 1, &id) ==
          CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "at most 16"));
    const uint64_t zero = 0;
    CHECK(currant_enqueue_after(g_queue, ep, "b", 1, NULL, &zero, 1, &id) == CURRANT_ERR_INVALID_ARGUMENT);
    currant_entrypoint_stats stats;
    CHECK_OK(currant_stats(g_queue, ep, &stats));
    CHECK(stats.enqueued == CURRANT_MAX_DEPENDENCIES + 2);
    return 0;
}

/* docs/job-dependencies.md, "Finished dependencies": a finished job whose
 * slot was reused keeps its final status for currant_job_status and
 * currant_wait (which returns at once). */
static int test_a_job_whose_slot_was_reused_reports_its_final_status(void) {
    uint32_t ep = 0;
    CHECK(make_queue("reused", &ep) == 0);
    uint64_t a = 0;
    currant_job job;
    CHECK_OK(currant_enqueue(g_queue, ep, "a", 1, NULL, &a));
    CHECK(pick_exactly(ep, a, &job) == 0);
    CHECK_OK(currant_ack(g_queue, &job));
    for (int i = 0; i < 3 * 64; ++i) { /* every slot reused, and the jobs in them ended */
        uint64_t other = 0;
        CHECK_OK(currant_enqueue(g_queue, ep, "x", 1, NULL, &other));
        CHECK(pick_exactly(ep, other, &job) == 0);
        CHECK_OK(currant_ack(g_queue, &job));
    }
    CHECK(status_of(a) == CURRANT_JOB_SUCCESSFUL);
    currant_job_outcome outcome;
    struct timespec before, after;
    clock_gettime(CLOCK_MONOTONIC, &before);
    CHECK_OK(currant_wait(g_queue, &a, 1, 10000000000LL, &outcome));
    clock_gettime(CLOCK_MONOTONIC, &after);
    CHECK(after.tv_sec - before.tv_sec < 2);
    CHECK(outcome.status == CURRANT_JOB_SUCCESSFUL);
    CHECK(outcome.finished == 1);
    CHECK(outcome.has_result == 0);
    return 0;
}

static int test_new_functions_carry_version_0_8(void) {
    static const char* const added[] = {"currant_enqueue_after", "currant_commit_after", "currant_job_reason",
                                        "currant_waiting_count"};
    for (size_t i = 0; i < sizeof added / sizeof added[0]; ++i) {
        CHECK(dlvsym(RTLD_DEFAULT, added[i], "CURRANT_0.8") != NULL);
        CHECK(dlvsym(RTLD_DEFAULT, added[i], "CURRANT_0.7") == NULL);
    }
    return 0;
}

static int test_every_job_of_a_batch_after_waits_for_the_dependency(void) {
    uint32_t ep = 0;
    CHECK(make_queue("batch", &ep) == 0);
    uint64_t a = 0;
    CHECK_OK(currant_enqueue(g_queue, ep, "a", 1, NULL, &a));
    const currant_buffer payloads[3] = {{"x", 1}, {"y", 1}, {"z", 1}};
    uint64_t ids[3] = {0, 0, 0};
    size_t enqueued = 0;
    CHECK_OK(currant_enqueue_batch_after(g_queue, ep, payloads, 3, NULL, &a, 1, ids, &enqueued));
    CHECK(enqueued == 3);
    for (size_t i = 0; i < 3; ++i) CHECK(status_of(ids[i]) == CURRANT_JOB_WAITING);
    uint64_t waiting = 0;
    CHECK_OK(currant_waiting_count(g_queue, ep, &waiting));
    CHECK(waiting == 3);
    currant_job job;
    CHECK(pick_exactly(ep, a, &job) == 0);
    CHECK_OK(currant_ack(g_queue, &job));
    for (size_t i = 0; i < 3; ++i) CHECK(status_of(ids[i]) == CURRANT_JOB_QUEUED);
    currant_job jobs[4];
    size_t got = 0;
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, jobs, 4, 0, &got));
    CHECK(got == 3);
    for (size_t i = 0; i < got; ++i) {
        CHECK(jobs[i].id == ids[i]); /* released in the batch's order */
        CHECK_OK(currant_ack(g_queue, &jobs[i]));
    }
    return 0;
}

static int test_a_batch_after_a_failed_dependency_ends_canceled(void) {
    uint32_t ep = 0;
    CHECK(make_queue("batchfail", &ep) == 0);
    uint64_t a = 0;
    CHECK_OK(currant_enqueue(g_queue, ep, "a", 1, NULL, &a));
    int canceled = 0;
    CHECK_OK(currant_cancel(g_queue, a, &canceled));
    CHECK(canceled == 1);
    const currant_buffer payloads[2] = {{"x", 1}, {"y", 1}};
    uint64_t ids[2] = {0, 0};
    size_t enqueued = 0;
    CHECK_OK(currant_enqueue_batch_after(g_queue, ep, payloads, 2, NULL, &a, 1, ids, &enqueued));
    CHECK(enqueued == 2);
    /* The first one's memory slot may hold the second by now (status then
     * says unknown for it): the counts and the last one's status tell. */
    CHECK(status_of(ids[1]) == CURRANT_JOB_CANCELED);
    currant_entrypoint_stats stats;
    CHECK_OK(currant_stats(g_queue, ep, &stats));
    CHECK(stats.enqueued == 3);
    CHECK(stats.canceled == 3);
    uint64_t waiting = 9;
    CHECK_OK(currant_waiting_count(g_queue, ep, &waiting));
    CHECK(waiting == 0);
    currant_job jobs[2];
    size_t got = 9;
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, jobs, 2, 0, &got));
    CHECK(got == 0);
    return 0;
}

static int test_a_batch_after_a_bad_dependency_enqueues_nothing(void) {
    uint32_t ep = 0;
    CHECK(make_queue("batchbad", &ep) == 0);
    uint64_t a = 0;
    CHECK_OK(currant_enqueue(g_queue, ep, "a", 1, NULL, &a));
    const currant_buffer payloads[2] = {{"x", 1}, {"y", 1}};
    uint64_t ids[2] = {0, 0};
    size_t enqueued = 7;
    const uint64_t unknown = a + 1000;
    CHECK(currant_enqueue_batch_after(g_queue, ep, payloads, 2, NULL, &unknown, 1, ids, &enqueued) ==
          CURRANT_ERR_NOT_FOUND);
    CHECK(mentions(currant_last_error(), "was never issued"));
    CHECK(currant_enqueue_batch_after(g_queue, ep, payloads, 2, NULL, NULL, 1, ids, &enqueued) ==
          CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_enqueue_batch_after(g_queue, ep, payloads, 2, NULL, &a, 0, ids, &enqueued) ==
          CURRANT_ERR_INVALID_ARGUMENT);
    currant_entrypoint_stats stats;
    CHECK_OK(currant_stats(g_queue, ep, &stats));
    CHECK(stats.enqueued == 1);
    return 0;
}

static int test_enqueue_batch_after_carries_version_0_9(void) {
    CHECK(dlvsym(RTLD_DEFAULT, "currant_enqueue_batch_after", "CURRANT_0.9") != NULL);
    CHECK(dlvsym(RTLD_DEFAULT, "currant_enqueue_batch_after", "CURRANT_0.8") == NULL);
    return 0;
}

/* ------------------------------------------------------------------------ */

int main(void) {
    static const struct test_case cases[] = {
        {"a dependent waits until its dependency is acked", test_a_dependent_waits_until_its_dependency_is_acked},
        {"a failed dependency cancels the dependent with a reason", test_a_failed_dependency_cancels_with_a_reason},
        {"commit_after runs the reserved job after its dependency",
         test_commit_after_runs_the_reserved_job_after_its_dependency},
        {"bad dependencies are refused and nothing is enqueued", test_bad_dependencies_are_refused_and_nothing_is_enqueued},
        {"a job whose slot was reused reports its final status to job_status and wait",
         test_a_job_whose_slot_was_reused_reports_its_final_status},
        {"new functions carry symbol version CURRANT_0.8", test_new_functions_carry_version_0_8},
        {"every job of a batch_after waits for the dependency",
         test_every_job_of_a_batch_after_waits_for_the_dependency},
        {"a batch after a failed dependency ends canceled", test_a_batch_after_a_failed_dependency_ends_canceled},
        {"a batch after a bad dependency enqueues nothing", test_a_batch_after_a_bad_dependency_enqueues_nothing},
        {"enqueue_batch_after carries symbol version CURRANT_0.9", test_enqueue_batch_after_carries_version_0_9},
    };
    return run_test_cases("c_dependencies", cases, sizeof cases / sizeof cases[0]);
}
