/* c_api suite: cancellation of running jobs through the C ABI (currant.h,
 * docs/cancellation.md), one behaviour per case: each case returns 0 on
 * success; CHECK prints the failed condition, its line and the last error.
 * The canceller is a second handle (another participant, as another process
 * would be); the runner removes the case's queue afterwards. */
#include "c_test_harness.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* A fresh queue with one memory-durability entrypoint "work", and a second
 * handle on it for the canceller. */
static int make_queue(const char* tag, uint32_t* ep) {
    return make_small_queue_with_second_handle("cc", tag, CURRANT_DURABILITY_MEMORY, ep);
}

static int enqueue_and_pick(uint32_t ep, uint64_t* id, currant_job* job) {
    size_t count = 0;
    if (currant_enqueue(g_queue, ep, "x", 1, NULL, id) != CURRANT_OK) return 1;
    if (currant_dequeue(g_queue, &ep, 1, job, 1, 0, &count) != CURRANT_OK || count != 1) return 1;
    return job->id == *id ? 0 : 1;
}

static int status_of(uint64_t id) {
    int status = -1;
    if (currant_job_status(g_queue, &id, 1, &status) != CURRANT_OK) return -1;
    return status;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------ */

static int test_queued_job_is_canceled_now(void) {
    uint32_t ep = 0;
    uint64_t id = 0;
    int outcome = -1;
    CHECK(make_queue("queued", &ep) == 0);
    CHECK_OK(currant_enqueue(g_queue, ep, "x", 1, NULL, &id));
    CHECK_OK(currant_cancel_job(g_second_handle, id, &outcome));
    CHECK(outcome == CURRANT_CANCEL_CANCELED);
    CHECK(status_of(id) == CURRANT_JOB_CANCELED);
    return 0;
}

static int test_picked_job_sets_the_flag(void) {
    uint32_t ep = 0;
    uint64_t id = 0;
    currant_job job;
    int outcome = -1, canceled = -1;
    CHECK(make_queue("flag", &ep) == 0);
    CHECK(enqueue_and_pick(ep, &id, &job) == 0);
    CHECK(currant_cancel_requested(g_queue, &job) == 0);
    CHECK_OK(currant_cancel_job(g_second_handle, id, &outcome));
    CHECK(outcome == CURRANT_CANCEL_REQUESTED);
    CHECK(currant_cancel_requested(g_queue, &job) == 1);
    CHECK(status_of(id) == CURRANT_JOB_PICKED);
    /* the old call folds the outcome: not canceled now */
    CHECK_OK(currant_cancel(g_second_handle, id, &canceled));
    CHECK(canceled == 0);
    CHECK_OK(currant_ack_canceled(g_queue, &job));
    CHECK(status_of(id) == CURRANT_JOB_CANCELED);
    CHECK(currant_ack_canceled(g_queue, &job) == CURRANT_ERR_STALE_HANDLE);
    return 0;
}

struct waiter {
    currant_job job;
    int rc;
    size_t index;
};

static void* wait_thread(void* arg) {
    struct waiter* w = arg;
    w->rc = currant_wait_for_cancel(g_queue, &w->job, 1, 20000000000LL, &w->index);
    return NULL;
}

static int test_wait_for_cancel_is_woken(void) {
    uint32_t ep = 0;
    uint64_t id = 0;
    int outcome = -1;
    struct waiter w;
    pthread_t thread;
    CHECK(make_queue("wake", &ep) == 0);
    CHECK(enqueue_and_pick(ep, &id, &w.job) == 0);
    w.rc = -1;
    w.index = 99;
    const double start = now_s();
    CHECK(pthread_create(&thread, NULL, wait_thread, &w) == 0);
    usleep(100000); /* asleep in the kernel by now */
    CHECK_OK(currant_cancel_job(g_second_handle, id, &outcome));
    pthread_join(thread, NULL);
    CHECK(outcome == CURRANT_CANCEL_REQUESTED);
    CHECK(w.rc == CURRANT_OK);
    CHECK(w.index == 0);
    CHECK(now_s() - start < 5.0); /* not its 20 s timeout */
    int requeued = -1;
    CHECK_OK(currant_retry(g_queue, &w.job, 0, &requeued));
    CHECK(requeued == 0);
    CHECK(status_of(id) == CURRANT_JOB_CANCELED); /* the retry did not requeue it */
    return 0;
}

static int test_wait_returns_count_when_not_held(void) {
    uint32_t ep = 0;
    uint64_t id = 0;
    currant_job job;
    size_t index = 0;
    CHECK(make_queue("notheld", &ep) == 0);
    CHECK(enqueue_and_pick(ep, &id, &job) == 0);
    CHECK_OK(currant_wait_for_cancel(g_queue, &job, 1, 50000000LL, &index));
    CHECK(index == 1); /* timed out */
    CHECK_OK(currant_ack(g_queue, &job));
    CHECK_OK(currant_wait_for_cancel(g_queue, &job, 1, -1, &index)); /* forever, but nothing held */
    CHECK(index == 1);
    return 0;
}

static int test_unknown_and_finished_are_not_cancelable(void) {
    uint32_t ep = 0;
    uint64_t id = 0;
    currant_job job;
    int outcome = -1;
    CHECK(make_queue("unknown", &ep) == 0);
    CHECK(enqueue_and_pick(ep, &id, &job) == 0);
    CHECK_OK(currant_ack(g_queue, &job));
    CHECK_OK(currant_cancel_job(g_second_handle, id, &outcome));
    CHECK(outcome == CURRANT_CANCEL_NOT_CANCELABLE);
    CHECK(status_of(id) == CURRANT_JOB_SUCCESSFUL);
    CHECK_OK(currant_cancel_job(g_second_handle, 0x0001000000000fffULL, &outcome));
    CHECK(outcome == CURRANT_CANCEL_NOT_CANCELABLE);
    return 0;
}

static int test_bad_input_is_refused(void) {
    uint32_t ep = 0;
    uint64_t id = 0, queued = 0;
    currant_job job, bad;
    int outcome = -1;
    size_t index = 0;
    CHECK(make_queue("bad", &ep) == 0);
    CHECK(enqueue_and_pick(ep, &id, &job) == 0);
    CHECK_OK(currant_enqueue(g_queue, ep, "kept", 4, NULL, &queued));
    CHECK(currant_cancel_job(g_second_handle, 0, &outcome) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(currant_last_error(), "not a job id") != NULL);
    CHECK(currant_cancel_job(g_second_handle, (uint64_t)1 << 63, &outcome) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_cancel_job(g_second_handle, id, NULL) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_cancel_job(NULL, id, &outcome) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_wait_for_cancel(g_queue, NULL, 1, 0, &index) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_wait_for_cancel(g_queue, &job, 1, 0, NULL) == CURRANT_ERR_INVALID_ARGUMENT);
    bad = job;
    bad.slot = 1000000;
    CHECK(currant_wait_for_cancel(g_queue, &bad, 1, 0, &index) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(currant_last_error(), "beyond the arena") != NULL);
    CHECK(currant_cancel_requested(NULL, &job) == 0);
    CHECK(currant_cancel_requested(g_queue, NULL) == 0);
    CHECK(currant_cancel_requested(g_queue, &bad) == 0);
    /* nothing was lost or changed */
    CHECK(status_of(id) == CURRANT_JOB_PICKED);
    CHECK(status_of(queued) == CURRANT_JOB_QUEUED);
    CHECK(currant_cancel_requested(g_queue, &job) == 0);
    return 0;
}

static int test_new_functions_carry_version_0_6(void) {
    static const char* const added[] = {"currant_cancel_job", "currant_cancel_requested", "currant_wait_for_cancel",
                                        "currant_ack_canceled"};
    for (size_t i = 0; i < sizeof added / sizeof added[0]; ++i) {
        CHECK(dlvsym(RTLD_DEFAULT, added[i], "CURRANT_0.6") != NULL);
        CHECK(dlvsym(RTLD_DEFAULT, added[i], "CURRANT_0.4") == NULL);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */

int main(void) {
    static const struct test_case cases[] = {
        {"a queued job is canceled now", test_queued_job_is_canceled_now},
        {"a picked job's cancel sets its holder's flag", test_picked_job_sets_the_flag},
        {"wait_for_cancel is woken by the cancel; a retry ends the job canceled", test_wait_for_cancel_is_woken},
        {"wait_for_cancel returns count on timeout and when nothing is held", test_wait_returns_count_when_not_held},
        {"unknown and finished ids are not cancelable", test_unknown_and_finished_are_not_cancelable},
        {"bad input is refused and nothing is lost", test_bad_input_is_refused},
        {"new functions carry symbol version CURRANT_0.6", test_new_functions_carry_version_0_6},
    };
    return run_test_cases("c-api-cancel", cases, sizeof cases / sizeof cases[0]);
}
