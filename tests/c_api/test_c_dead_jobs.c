/* c_api suite: dead jobs through the C ABI (currant.h, docs/dead-jobs.md),
 * one behaviour per case: each case returns 0 on success; CHECK prints the
 * failed condition, its line and the last error. The runner removes the
 * case's queue afterwards. */
#include "c_test_harness.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>


/* A fresh queue with one entrypoint "work" of the given durability. */
static int make_queue(const char* tag, int durability, uint32_t* ep) {
    return make_small_queue("cdj", tag, durability, ep);
}

/* Enqueues `payload`, picks it and returns the job in *job. */
static int enqueue_and_pick(uint32_t ep, const char* payload, currant_job* job) {
    uint64_t id = 0;
    size_t got = 0;
    if (currant_enqueue(g_queue, ep, payload, strlen(payload), NULL, &id) != CURRANT_OK) return 1;
    if (currant_dequeue(g_queue, &ep, 1, job, 1, 0, &got) != CURRANT_OK || got != 1) return 1;
    return job->id == id ? 0 : 1;
}

static int mentions(const char* text, const char* part) { return strstr(text, part) != NULL; }

/* ------------------------------------------------------------------------ */

static int test_fail_keeps_the_error(void) {
    uint32_t ep = 0;
    CHECK(make_queue("fail", CURRANT_DURABILITY_MEMORY, &ep) == 0);
    currant_job job;
    CHECK(enqueue_and_pick(ep, "the payload", &job) == 0);
    const uint64_t id = job.id;
    CHECK_OK(currant_fail_with_error(g_queue, &job, "ValueError: bad input\n  at line 3"));
    int status = 0;
    CHECK_OK(currant_job_status(g_queue, &id, 1, &status));
    CHECK(status == CURRANT_JOB_EXCEPTION);
    currant_dead_job dead[4];
    size_t count = 0;
    CHECK_OK(currant_dead_jobs(g_queue, ep, dead, 4, &count));
    CHECK(count == 1);
    CHECK(dead[0].id == id);
    CHECK(dead[0].entrypoint == ep);
    CHECK(dead[0].attempts == 1);
    CHECK(strcmp(dead[0].error, "ValueError: bad input\n  at line 3") == 0);
    CHECK(dead[0].error_size == strlen(dead[0].error));
    CHECK(dead[0].error_truncated == 0);
    CHECK(dead[0].payload_size == 11 && memcmp(dead[0].payload, "the payload", 11) == 0);
    CHECK(dead[0].died_at_ns >= dead[0].enqueued_at_ns);
    /* The plain currant_fail keeps the job too, with no error text. */
    CHECK(enqueue_and_pick(ep, "second", &job) == 0);
    CHECK_OK(currant_fail(g_queue, &job));
    CHECK_OK(currant_dead_jobs(g_queue, CURRANT_ALL_ENTRYPOINTS, dead, 4, &count));
    CHECK(count == 2);
    CHECK(dead[1].id == job.id && dead[1].error_size == 0 && strcmp(dead[1].error, "") == 0);
    /* capacity 0 with out NULL only counts. */
    CHECK_OK(currant_dead_jobs(g_queue, ep, NULL, 0, &count));
    CHECK(count == 2);
    return 0;
}

static int test_retry_past_the_limit_keeps_the_last_error(void) {
    uint32_t ep = 0;
    CHECK(make_queue("retry", CURRANT_DURABILITY_ASYNC, &ep) == 0);
    currant_enqueue_options options;
    currant_enqueue_options_init(&options);
    options.max_attempts = 2;
    uint64_t id = 0;
    CHECK_OK(currant_enqueue(g_queue, ep, "x", 1, &options, &id));
    currant_job job;
    size_t got = 0;
    int requeued = -1;
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, &job, 1, 0, &got));
    CHECK(got == 1);
    CHECK_OK(currant_retry_with_error(g_queue, &job, 0, "first", &requeued));
    CHECK(requeued == 1);
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, &job, 1, 0, &got));
    CHECK(got == 1);
    CHECK_OK(currant_retry_with_error(g_queue, &job, 0, "second", &requeued));
    CHECK(requeued == 0);
    currant_dead_job dead[2];
    size_t count = 0;
    CHECK_OK(currant_dead_jobs(g_queue, ep, dead, 2, &count));
    CHECK(count == 1);
    CHECK(dead[0].id == id && dead[0].attempts == 2 && strcmp(dead[0].error, "second") == 0);
    return 0;
}

static int test_requeue_and_purge(void) {
    uint32_t ep = 0;
    CHECK(make_queue("requeue", CURRANT_DURABILITY_MEMORY, &ep) == 0);
    uint64_t ids[3];
    currant_job job;
    for (int i = 0; i < 3; ++i) {
        CHECK(enqueue_and_pick(ep, "job", &job) == 0);
        ids[i] = job.id;
        CHECK_OK(currant_fail_with_error(g_queue, &job, "boom"));
    }
    const currant_job old = job;
    int done = -1;
    CHECK_OK(currant_requeue_dead(g_queue, ids[2], &done));
    CHECK(done == 1);
    CHECK_OK(currant_requeue_dead(g_queue, ids[2], &done)); /* no longer dead */
    CHECK(done == 0);
    CHECK(currant_ack(g_queue, &old) == CURRANT_ERR_STALE_HANDLE); /* its last pick's handle */
    size_t got = 0;
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, &job, 1, 0, &got));
    CHECK(got == 1 && job.id == ids[2] && job.attempts == 1);
    CHECK_OK(currant_ack(g_queue, &job));
    CHECK_OK(currant_purge_dead(g_queue, ids[0], &done));
    CHECK(done == 1);
    CHECK_OK(currant_purge_dead(g_queue, ids[0], &done));
    CHECK(done == 0);
    int status = -1;
    CHECK_OK(currant_job_status(g_queue, &ids[0], 1, &status));
    CHECK(status == CURRANT_JOB_UNKNOWN);
    size_t n = 0;
    CHECK_OK(currant_requeue_all_dead(g_queue, ep, &n));
    CHECK(n == 1);
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, &job, 1, 0, &got));
    CHECK(got == 1 && job.id == ids[1]);
    CHECK_OK(currant_fail(g_queue, &job));
    CHECK_OK(currant_purge_all_dead(g_queue, ep, &n));
    CHECK(n == 1);
    CHECK_OK(currant_dead_jobs(g_queue, ep, NULL, 0, &n));
    CHECK(n == 0);
    return 0;
}

static int test_requeue_refuses_a_held_dedupe_key(void) {
    uint32_t ep = 0;
    CHECK(make_queue("keyed", CURRANT_DURABILITY_MEMORY, &ep) == 0);
    uint64_t dead_id = 0, holder = 0;
    int skipped = 0;
    CHECK_OK(currant_enqueue_keyed(g_queue, ep, "x", 1, NULL, "k", 1, CURRANT_ON_DUPLICATE_SKIP, &dead_id, &skipped));
    currant_job job;
    size_t got = 0;
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, &job, 1, 0, &got));
    CHECK_OK(currant_fail_with_error(g_queue, &job, "boom"));
    CHECK_OK(currant_enqueue_keyed(g_queue, ep, "y", 1, NULL, "k", 1, CURRANT_ON_DUPLICATE_SKIP, &holder, &skipped));
    CHECK(skipped == 0 && holder != dead_id);
    int done = -1;
    CHECK(currant_requeue_dead(g_queue, dead_id, &done) == CURRANT_ERR_ALREADY_EXISTS);
    CHECK(done == -1); /* untouched on failure */
    CHECK(mentions(currant_last_error(), "dedupe key 'k' is held by job"));
    CHECK(mentions(currant_last_error(), "it stays dead"));
    size_t count = 0;
    CHECK_OK(currant_dead_jobs(g_queue, ep, NULL, 0, &count));
    CHECK(count == 1);
    return 0;
}

static int test_bad_arguments_are_refused(void) {
    uint32_t ep = 0;
    CHECK(make_queue("bad", CURRANT_DURABILITY_MEMORY, &ep) == 0);
    uint64_t id = 0;
    CHECK_OK(currant_enqueue(g_queue, ep, "keep me", 7, NULL, &id));
    currant_dead_job dead[1];
    size_t count = 0;
    CHECK(currant_dead_jobs(NULL, ep, dead, 1, &count) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_dead_jobs(g_queue, ep, dead, 1, NULL) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "count_out"));
    CHECK(currant_dead_jobs(g_queue, ep, NULL, 1, &count) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_dead_jobs(g_queue, 42, dead, 1, &count) == CURRANT_ERR_NOT_FOUND);
    CHECK(currant_requeue_all_dead(g_queue, 42, NULL) == CURRANT_ERR_NOT_FOUND);
    CHECK(currant_purge_all_dead(g_queue, 42, NULL) == CURRANT_ERR_NOT_FOUND);
    CHECK(currant_requeue_dead(NULL, id, NULL) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_fail_with_error(g_queue, NULL, "x") == CURRANT_ERR_INVALID_ARGUMENT);
    int done = -1;
    CHECK_OK(currant_requeue_dead(g_queue, id, &done)); /* queued, not dead: nothing happens */
    CHECK(done == 0);
    CHECK_OK(currant_purge_dead(g_queue, id, &done));
    CHECK(done == 0);
    /* The queued job is still there. */
    currant_job job;
    size_t got = 0;
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, &job, 1, 0, &got));
    CHECK(got == 1 && job.id == id);
    CHECK_OK(currant_ack(g_queue, &job));
    return 0;
}

static int test_new_functions_carry_version_0_5(void) {
    static const char* const added[] = {"currant_fail_with_error", "currant_retry_with_error", "currant_dead_jobs",
                                        "currant_requeue_dead",    "currant_requeue_all_dead", "currant_purge_dead",
                                        "currant_purge_all_dead"};
    for (size_t i = 0; i < sizeof added / sizeof added[0]; ++i) {
        CHECK(dlvsym(RTLD_DEFAULT, added[i], "CURRANT_0.5") != NULL);
        CHECK(dlvsym(RTLD_DEFAULT, added[i], "CURRANT_0.4") == NULL);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */

int main(void) {
    static const struct test_case cases[] = {
        {"fail with an error keeps the job with its text", test_fail_keeps_the_error},
        {"a retry past the attempt limit keeps the last error", test_retry_past_the_limit_keeps_the_last_error},
        {"requeue and purge, one job or all", test_requeue_and_purge},
        {"requeue refuses a dead job whose dedupe key is held", test_requeue_refuses_a_held_dedupe_key},
        {"bad arguments are refused and nothing queued is lost", test_bad_arguments_are_refused},
        {"new functions carry symbol version CURRANT_0.5", test_new_functions_carry_version_0_5},
    };
    return run_test_cases("c_dead_jobs", cases, sizeof cases / sizeof cases[0]);
}
