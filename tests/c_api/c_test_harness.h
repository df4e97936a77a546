/* What every c_api test program shares: CHECK, the running case's queue,
 * and the runner. A case is a function returning 0 on success; CHECK prints
 * the failed condition, its line and the last error, and returns 1. The
 * runner closes and removes the queue a case left in g_queue / g_name. */
#ifndef CURRANT_C_TEST_HARNESS_H
#define CURRANT_C_TEST_HARNESS_H

#include <currant.h>

#include <stdio.h>

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
static int g_counter; /* makes queue names unique within the program */

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
        const int rc = cases[i].run();
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
