/* c_api suite: job results and waiting through the C ABI (currant.h,
 * docs/results.md, version node CURRANT_0.7), one behaviour per case. A
 * second handle acks from another thread while the first waits (another
 * participant, as another process would be). */
#include "c_test_harness.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A fresh queue with one memory-durability entrypoint "work" that keeps
 * results for 60 s, and a second handle for the consumer. */
static int make_queue(const char* tag, uint32_t* ep) {
    if (make_small_queue_with_second_handle("cr", tag, CURRANT_DURABILITY_MEMORY, ep) != 0) return 1;
    return currant_set_result_retention(g_queue, *ep, 60000) == CURRANT_OK ? 0 : 1;
}

static int enqueue_and_pick(uint32_t ep, uint64_t* id, currant_job* job) {
    size_t count = 0;
    if (currant_enqueue(g_queue, ep, "x", 1, NULL, id) != CURRANT_OK) return 1;
    if (currant_dequeue(g_second_handle, &ep, 1, job, 1, 0, &count) != CURRANT_OK || count != 1) return 1;
    return job->id == *id ? 0 : 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------ */

static int test_acked_result_is_read_back(void) {
    uint32_t ep = 0;
    uint64_t id = 0;
    currant_job job;
    currant_job_outcome outcome;
    char buffer[32];
    size_t size = 0;
    CHECK(make_queue("ack", &ep) == 0);
    CHECK(enqueue_and_pick(ep, &id, &job) == 0);
    CHECK_OK(currant_ack_with_result(g_second_handle, &job, "forty-two", 9));
    CHECK_OK(currant_wait(g_queue, &id, 1, 0, &outcome));
    CHECK(outcome.id == id);
    CHECK(outcome.finished == 1);
    CHECK(outcome.status == CURRANT_JOB_SUCCESSFUL);
    CHECK(outcome.has_result == 1);
    CHECK(outcome.result_size == 9);
    CHECK(outcome.finished_at_ns > 0);
    CHECK_OK(currant_job_result(g_queue, id, buffer, sizeof buffer, &size));
    CHECK(size == 9);
    CHECK(memcmp(buffer, "forty-two", 9) == 0);
    return 0;
}

static int test_result_size_is_asked_with_a_null_buffer(void) {
    uint32_t ep = 0;
    uint64_t id = 0;
    currant_job job;
    size_t size = 0;
    CHECK(make_queue("size", &ep) == 0);
    CHECK(enqueue_and_pick(ep, &id, &job) == 0);
    CHECK_OK(currant_ack_with_result(g_second_handle, &job, "abc", 3));
    CHECK_OK(currant_job_result(g_queue, id, NULL, 0, &size));
    CHECK(size == 3);
    return 0;
}

static int test_oversized_result_is_refused_and_the_job_stays_picked(void) {
    uint32_t ep = 0;
    uint64_t id = 0;
    currant_job job;
    static char big[1025];
    int status = -1;
    memset(big, 'r', sizeof big);
    CHECK(make_queue("big", &ep) == 0);
    CHECK(enqueue_and_pick(ep, &id, &job) == 0);
    CHECK(currant_ack_with_result(g_second_handle, &job, big, sizeof big) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(currant_last_error(), "1025") != NULL);
    CHECK(strstr(currant_last_error(), "1024") != NULL);
    CHECK_OK(currant_job_status(g_queue, &id, 1, &status));
    CHECK(status == CURRANT_JOB_PICKED);
    CHECK_OK(currant_ack_with_result(g_second_handle, &job, big, 1024));
    return 0;
}

static int test_job_without_result_is_not_found(void) {
    uint32_t ep = 0;
    uint64_t id = 0;
    currant_job job;
    size_t size = 0;
    CHECK(make_queue("none", &ep) == 0);
    CHECK(enqueue_and_pick(ep, &id, &job) == 0);
    CHECK_OK(currant_ack(g_second_handle, &job));
    CHECK(currant_job_result(g_queue, id, NULL, 0, &size) == CURRANT_ERR_NOT_FOUND);
    return 0;
}

static int test_bad_arguments_are_refused(void) {
    uint32_t ep = 0;
    uint64_t zero = 0;
    currant_job_outcome outcome;
    size_t size = 0;
    CHECK(make_queue("bad", &ep) == 0);
    CHECK(currant_wait(g_queue, &zero, 1, 0, &outcome) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_wait(g_queue, NULL, 1, 0, &outcome) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_wait(NULL, &zero, 1, 0, &outcome) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_job_result(g_queue, 1, NULL, 0, NULL) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_job_result(g_queue, 1, NULL, 8, &size) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_set_result_retention(g_queue, ep, -1) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_set_result_retention(g_queue, 99, 1000) == CURRANT_ERR_NOT_FOUND);
    CHECK(currant_ack_with_result(g_second_handle, NULL, "x", 1) == CURRANT_ERR_INVALID_ARGUMENT);
    return 0;
}

static int test_unknown_id_is_reported_without_waiting(void) {
    uint32_t ep = 0;
    uint64_t never = ((uint64_t)0x1234 << 48) | 7;
    currant_job_outcome outcome;
    CHECK(make_queue("unknown", &ep) == 0);
    const double start = now_s();
    CHECK_OK(currant_wait(g_queue, &never, 1, 10000000000LL, &outcome));
    CHECK(now_s() - start < 1.0);
    CHECK(outcome.status == CURRANT_JOB_UNKNOWN);
    CHECK(outcome.finished == 0);
    return 0;
}

static int test_wait_times_out_on_a_queued_job(void) {
    uint32_t ep = 0;
    uint64_t id = 0;
    currant_job_outcome outcome;
    CHECK(make_queue("timeout", &ep) == 0);
    CHECK_OK(currant_enqueue(g_queue, ep, "x", 1, NULL, &id));
    const double start = now_s();
    CHECK_OK(currant_wait(g_queue, &id, 1, 50000000LL, &outcome));
    CHECK(now_s() - start >= 0.05);
    CHECK(outcome.finished == 0);
    CHECK(outcome.status == CURRANT_JOB_QUEUED);
    return 0;
}

struct acker {
    currant_job job;
    int rc;
};

static void* ack_later(void* arg) {
    struct acker* a = arg;
    usleep(100000); /* the waiter is asleep in the kernel by now */
    a->rc = currant_ack_with_result(g_second_handle, &a->job, "late", 4);
    return NULL;
}

static int test_wait_wakes_at_the_ack_of_another_handle(void) {
    uint32_t ep = 0;
    uint64_t id = 0;
    struct acker a;
    pthread_t thread;
    currant_job_outcome outcome;
    CHECK(make_queue("wake", &ep) == 0);
    CHECK(enqueue_and_pick(ep, &id, &a.job) == 0);
    a.rc = -1;
    const double start = now_s();
    CHECK(pthread_create(&thread, NULL, ack_later, &a) == 0);
    const int rc = currant_wait(g_queue, &id, 1, 20000000000LL, &outcome);
    pthread_join(thread, NULL);
    CHECK(rc == CURRANT_OK);
    CHECK(a.rc == CURRANT_OK);
    CHECK(now_s() - start < 10.0);
    CHECK(outcome.finished == 1);
    CHECK(outcome.has_result == 1);
    CHECK(outcome.result_size == 4);
    return 0;
}

static int test_a_waiter_killed_asleep_leaves_waiting_working(void) {
    uint32_t ep = 0;
    uint64_t id = 0;
    struct acker a;
    pthread_t thread;
    currant_job_outcome outcome;
    int status = 0;
    CHECK(make_queue("killed", &ep) == 0);
    CHECK(enqueue_and_pick(ep, &id, &a.job) == 0);
    const pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        /* A fresh handle in the child (a handle never crosses fork). */
        currant_queue* mine = NULL;
        currant_job_outcome o;
        if (currant_queue_open(g_name, &mine) != CURRANT_OK) _exit(2);
        currant_wait(mine, &id, 1, 60000000000LL, &o);
        _exit(3); /* not reached: killed while waiting */
    }
    usleep(300000); /* registered and asleep in the kernel by now */
    CHECK(kill(child, SIGKILL) == 0);
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* A waiter after the death is still woken by the ack. */
    a.rc = -1;
    CHECK(pthread_create(&thread, NULL, ack_later, &a) == 0);
    const int rc = currant_wait(g_queue, &id, 1, 20000000000LL, &outcome);
    pthread_join(thread, NULL);
    CHECK(rc == CURRANT_OK);
    CHECK(a.rc == CURRANT_OK);
    CHECK(outcome.finished == 1);
    CHECK(outcome.has_result == 1);
    return 0;
}

static int test_symbols_are_in_version_node_0_7(void) {
    const char* added[] = {"currant_set_result_retention", "currant_ack_with_result", "currant_wait",
                           "currant_job_result"};
    for (size_t i = 0; i < sizeof added / sizeof added[0]; ++i) {
        CHECK(dlvsym(RTLD_DEFAULT, added[i], "CURRANT_0.7") != NULL);
        CHECK(dlvsym(RTLD_DEFAULT, added[i], "CURRANT_0.6") == NULL);
    }
    return 0;
}

/* A queue created through currant_queue_create_with (CURRANT_0.8). */
static int create_with(const char* tag, const currant_create_more_options* more, uint32_t* ep) {
    currant_create_options options;
    snprintf(g_name, sizeof g_name, "cr%d-%s-%d", (int)getpid(), tag, g_counter++);
    currant_queue_remove(g_name);
    currant_create_options_init(&options);
    options.name = g_name;
    options.slots = 64;
    options.payload_bytes = 64;
    options.log_capacity = 256;
    options.max_participants = 16;
    if (currant_queue_create_with(&options, more, &g_queue) != CURRANT_OK) return 1;
    if (currant_declare_entrypoint(g_queue, "work", CURRANT_DURABILITY_MEMORY, ep) != CURRANT_OK) return 1;
    if (currant_set_result_retention(g_queue, *ep, 60000) != CURRANT_OK) return 1;
    currant_queue_close(g_second_handle);
    g_second_handle = NULL;
    return currant_queue_open(g_name, &g_second_handle) == CURRANT_OK ? 0 : 1;
}

static int test_create_with_sets_result_bytes(void) {
    uint32_t ep = 0;
    uint64_t id = 0;
    currant_job job;
    currant_create_more_options more;
    static char big[4097];
    size_t size = 0;
    memset(big, 'r', sizeof big);
    currant_create_more_options_init(&more);
    CHECK(more.struct_size == sizeof more);
    CHECK(more.result_bytes == 1024);
    CHECK(more.group == -1);
    more.result_bytes = 4096;
    CHECK(create_with("bytes", &more, &ep) == 0);
    CHECK(enqueue_and_pick(ep, &id, &job) == 0);
    CHECK(currant_ack_with_result(g_second_handle, &job, big, 4097) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(currant_last_error(), "4096") != NULL);
    CHECK_OK(currant_ack_with_result(g_second_handle, &job, big, 4096));
    CHECK_OK(currant_job_result(g_queue, id, NULL, 0, &size));
    CHECK(size == 4096);
    return 0;
}

static int test_create_with_null_more_takes_the_defaults(void) {
    uint32_t ep = 0;
    uint64_t id = 0;
    currant_job job;
    static char big[1025];
    memset(big, 'r', sizeof big);
    CHECK(create_with("null", NULL, &ep) == 0);
    CHECK(enqueue_and_pick(ep, &id, &job) == 0);
    CHECK(currant_ack_with_result(g_second_handle, &job, big, 1025) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK_OK(currant_ack_with_result(g_second_handle, &job, big, 1024));
    return 0;
}

static int test_create_with_sets_the_group(void) {
    uint32_t ep = 0;
    currant_create_more_options more;
    char path[128];
    struct stat info;
    currant_create_more_options_init(&more);
    more.group = 4242; /* root may give the segment any group */
    CHECK(create_with("group", &more, &ep) == 0);
    snprintf(path, sizeof path, "/dev/shm/currant.%s", g_name);
    CHECK(stat(path, &info) == 0);
    CHECK(info.st_gid == 4242);
    return 0;
}

static int test_create_with_refuses_bad_more_options(void) {
    currant_create_options options;
    currant_create_more_options more;
    currant_queue* queue = NULL;
    snprintf(g_name, sizeof g_name, "cr%d-badmore-%d", (int)getpid(), g_counter++);
    currant_queue_remove(g_name);
    currant_create_options_init(&options);
    options.name = g_name;
    options.slots = 64;
    currant_create_more_options_init(&more);
    more.struct_size = 4;
    CHECK(currant_queue_create_with(&options, &more, &queue) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(currant_last_error(), "struct_size") != NULL);
    currant_create_more_options_init(&more);
    more.result_bytes = (1u << 20) + 1;
    CHECK(currant_queue_create_with(&options, &more, &queue) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(currant_last_error(), "1048577") != NULL);
    currant_create_more_options_init(&more);
    more.group = -7;
    CHECK(currant_queue_create_with(&options, &more, &queue) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(currant_last_error(), "group") != NULL);
    CHECK(queue == NULL);
    CHECK(currant_queue_open(g_name, &queue) == CURRANT_ERR_NOT_FOUND); /* nothing was created */
    return 0;
}

static int test_create_with_reads_only_the_fields_a_shorter_struct_has(void) {
    uint32_t ep = 0;
    uint64_t id = 0;
    currant_job job;
    currant_create_more_options more;
    static char big[1025];
    memset(big, 'r', sizeof big);
    currant_create_more_options_init(&more);
    more.result_bytes = 4096;
    more.group = -7; /* beyond struct_size: not read */
    more.struct_size = 8;
    CHECK(create_with("short", &more, &ep) == 0);
    CHECK(enqueue_and_pick(ep, &id, &job) == 0);
    CHECK_OK(currant_ack_with_result(g_second_handle, &job, big, 1025)); /* result_bytes was read */
    return 0;
}

static int test_create_symbols_are_in_version_node_0_8(void) {
    const char* added[] = {"currant_create_more_options_init", "currant_queue_create_with"};
    for (size_t i = 0; i < sizeof added / sizeof added[0]; ++i) {
        CHECK(dlvsym(RTLD_DEFAULT, added[i], "CURRANT_0.8") != NULL);
        CHECK(dlvsym(RTLD_DEFAULT, added[i], "CURRANT_0.7") == NULL);
    }
    return 0;
}

int main(void) {
    static const struct test_case cases[] = {
        {"an acked result is read back by wait and job_result", test_acked_result_is_read_back},
        {"a NULL buffer asks for the result's size", test_result_size_is_asked_with_a_null_buffer},
        {"an oversized result is refused naming both sizes, the job stays picked",
         test_oversized_result_is_refused_and_the_job_stays_picked},
        {"a job acked without a result has none (NOT_FOUND)", test_job_without_result_is_not_found},
        {"bad arguments are refused", test_bad_arguments_are_refused},
        {"an unknown id is reported without waiting", test_unknown_id_is_reported_without_waiting},
        {"wait times out on a queued job", test_wait_times_out_on_a_queued_job},
        {"wait wakes at the ack of another handle", test_wait_wakes_at_the_ack_of_another_handle},
        {"a waiter SIGKILLed asleep leaves waiting working", test_a_waiter_killed_asleep_leaves_waiting_working},
        {"the new symbols are in version node CURRANT_0.7", test_symbols_are_in_version_node_0_7},
        {"create_with sets result_bytes", test_create_with_sets_result_bytes},
        {"create_with and no more options takes the defaults", test_create_with_null_more_takes_the_defaults},
        {"create_with gives the segment the group asked for", test_create_with_sets_the_group},
        {"create_with refuses a bad struct_size, result_bytes or group, creating nothing",
         test_create_with_refuses_bad_more_options},
        {"create_with reads only the fields within struct_size",
         test_create_with_reads_only_the_fields_a_shorter_struct_has},
        {"the creation symbols are in version node CURRANT_0.8", test_create_symbols_are_in_version_node_0_8},
    };
    return run_test_cases("c-api-results", cases, sizeof cases / sizeof cases[0]);
}
