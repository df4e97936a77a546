/* What every c_api test program shares: CHECK, the running case's queue,
 * and the runner. A case is a function returning 0 on success; CHECK prints
 * the failed condition, its line and the last error, and returns 1. The
 * runner closes and removes the queue a case left in g_queue / g_name. */
#ifndef CURRANT_C_TEST_HARNESS_H
#define CURRANT_C_TEST_HARNESS_H

#include <currant.h>

#include <stdio.h>
#include <unistd.h>

#define CHECK(cond)                                                                                  \
    do {                                                                                             \
        if (!(cond)) {                                                                               \
            fprintf(stderr, "    %s:%d: CHECK(%s) failed; last error: %s\n", __FILE__, __LINE__, #cond, \
                    currant_last_error());                                                           \
            return 1;                                                                                \
        }                                                                                            \
    } while (0)

#define CHECK_OK(call) CHECK((call) == CURRANT_OK)

/* The queue of the running case and its name (empty: none to remove). */
static char g_name[64];
static currant_queue* g_queue;
/* A second handle on the case's queue, another participant as another
 * process would be (a canceller, a consumer); closed by the runner. */
static currant_queue* g_second_handle;
static int g_counter; /* makes queue names unique within the program */

/* Creates the case's queue, named PREFIX<pid>-TAG-<n>: 64 slots of 64 bytes
 * and one entrypoint "work" of the given durability (its id in *ep).
 * Returns 0 on success. */
static inline int make_small_queue(const char* prefix, const char* tag, int durability, uint32_t* ep) {
    snprintf(g_name, sizeof g_name, "%s%d-%s-%d", prefix, (int)getpid(), tag, g_counter++);
    currant_queue_remove(g_name);
    currant_create_options options;
    currant_create_options_init(&options);
    options.name = g_name;
    options.slots = 64;
    options.payload_bytes = 64;
    options.log_capacity = 256;
    options.max_participants = 16;
    if (currant_queue_create(&options, &g_queue) != CURRANT_OK) return 1;
    if (currant_declare_entrypoint(g_queue, "work", durability, ep) != CURRANT_OK) return 1;
    return 0;
}

/* make_small_queue, then a second handle on it in g_second_handle. */
static inline int make_small_queue_with_second_handle(const char* prefix, const char* tag, int durability, uint32_t* ep) {
    if (make_small_queue(prefix, tag, durability, ep) != 0) return 1;
    currant_queue_close(g_second_handle);
    g_second_handle = NULL;
    return currant_queue_open(g_name, &g_second_handle) == CURRANT_OK ? 0 : 1;
}

struct test_case {
    const char* name;
    int (*run)(void);
};

/* Runs every case, one line each ("ok  " or "FAIL" and its name), then a
 * summary line "SUITE: N passed, N failed"; the exit status for main. */
static int run_test_cases(const char* suite, const struct test_case* cases, size_t count) {
    int passed = 0, failed = 0;
    for (size_t i = 0; i < count; ++i) {
        g_name[0] = '\0';
        g_queue = NULL;
        g_second_handle = NULL;
        const int rc = cases[i].run();
        currant_queue_close(g_second_handle);
        g_second_handle = NULL;
        currant_queue_close(g_queue);
        if (g_name[0] != '\0') currant_queue_remove(g_name);
        printf("%s %s\n", rc == 0 ? "ok  " : "FAIL", cases[i].name);
        fflush(stdout);
        if (rc == 0) ++passed;
        else ++failed;
    }
    printf("%s: %d passed, %d failed\n", suite, passed, failed);
    return failed == 0 ? 0 : 1;
}

#endif
