/* c_api suite: dedupe keys through the C ABI (currant.h, docs/dedupe.md),
 * one behaviour per case: each case returns 0 on success; CHECK prints the
 * failed condition, its line and the last error. The runner removes the
 * case's queue afterwards. */
#include "c_test_harness.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>


/* A fresh queue with one memory-durability entrypoint "work". */
static int make_queue(const char* tag, uint32_t* ep) {
    return make_small_queue("cd", tag, CURRANT_DURABILITY_MEMORY, ep);
}

static int enqueue_key(uint32_t ep, const char* key, int policy, uint64_t* id, int* skipped) {
    return currant_enqueue_keyed(g_queue, ep, "x", 1, NULL, key, strlen(key), policy, id, skipped);
}

static size_t live_jobs(void) {
    currant_entrypoint_stats stats;
    if (currant_stats(g_queue, 0, &stats) != CURRANT_OK) return (size_t)-1;
    return (size_t)(stats.queued + stats.delayed + stats.picked);
}

static int mentions(const char* text, const char* part) { return strstr(text, part) != NULL; }

/* ------------------------------------------------------------------------ */

static int test_skip_returns_the_holder(void) {
    uint32_t ep = 0;
    CHECK(make_queue("skip", &ep) == 0);
    uint64_t first = 0, second = 0;
    int skipped = -1;
    CHECK_OK(enqueue_key(ep, "order-7", CURRANT_ON_DUPLICATE_SKIP, &first, &skipped));
    CHECK(skipped == 0);
    CHECK_OK(enqueue_key(ep, "order-7", CURRANT_ON_DUPLICATE_SKIP, &second, &skipped));
    CHECK(skipped == 1);
    CHECK(second == first);
    CHECK_OK(enqueue_key(ep, "order-7", CURRANT_ON_DUPLICATE_SKIP, &second, NULL)); /* skipped_out may be NULL */
    CHECK(second == first);
    CHECK(live_jobs() == 1);
    return 0;
}

static int test_refuse_fails_with_already_exists(void) {
    uint32_t ep = 0;
    CHECK(make_queue("refuse", &ep) == 0);
    uint64_t first = 0, second = 0;
    CHECK_OK(enqueue_key(ep, "k", CURRANT_ON_DUPLICATE_REFUSE, &first, NULL));
    CHECK(enqueue_key(ep, "k", CURRANT_ON_DUPLICATE_REFUSE, &second, NULL) == CURRANT_ERR_ALREADY_EXISTS);
    CHECK(mentions(currant_last_error(), "dedupe key 'k'"));
    char holder[32];
    snprintf(holder, sizeof holder, "job %llu", (unsigned long long)first);
    CHECK(mentions(currant_last_error(), holder));
    CHECK(live_jobs() == 1);
    return 0;
}

static int test_the_key_is_free_after_the_ack(void) {
    uint32_t ep = 0;
    CHECK(make_queue("freed", &ep) == 0);
    uint64_t first = 0, second = 0;
    CHECK_OK(enqueue_key(ep, "k", CURRANT_ON_DUPLICATE_REFUSE, &first, NULL));
    currant_job job;
    size_t got = 0;
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, &job, 1, 0, &got));
    CHECK(got == 1);
    /* picked: still held */
    CHECK(enqueue_key(ep, "k", CURRANT_ON_DUPLICATE_REFUSE, &second, NULL) == CURRANT_ERR_ALREADY_EXISTS);
    CHECK_OK(currant_ack(g_queue, &job));
    int skipped = -1;
    CHECK_OK(enqueue_key(ep, "k", CURRANT_ON_DUPLICATE_REFUSE, &second, &skipped));
    CHECK(second != first && skipped == 0);
    return 0;
}

static int test_commit_keyed_uses_the_reservation_up(void) {
    uint32_t ep = 0;
    CHECK(make_queue("commit", &ep) == 0);
    uint64_t held = 0, id = 0;
    CHECK_OK(enqueue_key(ep, "k", CURRANT_ON_DUPLICATE_SKIP, &held, NULL));
    currant_reservation r;
    CHECK_OK(currant_reserve(g_queue, ep, &r));
    memcpy(r.payload, "abc", 3);
    int skipped = 0;
    CHECK_OK(currant_commit_keyed(g_queue, &r, 3, NULL, "k", 1, CURRANT_ON_DUPLICATE_SKIP, &id, &skipped));
    CHECK(id == held && skipped == 1 && r.payload == NULL);
    CHECK_OK(currant_reserve(g_queue, ep, &r));
    CHECK(currant_commit_keyed(g_queue, &r, 0, NULL, "k", 1, CURRANT_ON_DUPLICATE_REFUSE, &id, NULL) ==
          CURRANT_ERR_ALREADY_EXISTS);
    CHECK(r.payload == NULL);
    CHECK_OK(currant_reserve(g_queue, ep, &r));
    const uint64_t reserved_id = r.id;
    CHECK_OK(currant_commit_keyed(g_queue, &r, 0, NULL, "other", 5, CURRANT_ON_DUPLICATE_REFUSE, &id, &skipped));
    CHECK(id == reserved_id && skipped == 0);
    CHECK(live_jobs() == 2);
    return 0;
}

static int test_bad_keys_and_policies_are_refused(void) {
    uint32_t ep = 0;
    CHECK(make_queue("bad", &ep) == 0);
    uint64_t id = 0;
    CHECK_OK(enqueue_key(ep, "kept", CURRANT_ON_DUPLICATE_SKIP, &id, NULL));
    CHECK(currant_enqueue_keyed(g_queue, ep, "x", 1, NULL, "", 0, 0, &id, NULL) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "empty"));
    char longest[CURRANT_MAX_DEDUPE_KEY_BYTES + 1];
    memset(longest, 'k', sizeof longest);
    CHECK(currant_enqueue_keyed(g_queue, ep, "x", 1, NULL, longest, sizeof longest, 0, &id, NULL) ==
          CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "129 bytes"));
    CHECK_OK(currant_enqueue_keyed(g_queue, ep, "x", 1, NULL, longest, CURRANT_MAX_DEDUPE_KEY_BYTES, 0, &id, NULL));
    CHECK(currant_enqueue_keyed(g_queue, ep, "x", 1, NULL, "tab\there", 8, 0, &id, NULL) ==
          CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "control character"));
    CHECK(currant_enqueue_keyed(g_queue, ep, "x", 1, NULL, NULL, 3, 0, &id, NULL) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "'key'"));
    CHECK(currant_enqueue_keyed(g_queue, ep, "x", 1, NULL, "k2", 2, 2, &id, NULL) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "on_duplicate"));
    CHECK(currant_enqueue_keyed(g_queue, ep + 5, "x", 1, NULL, "k2", 2, 0, &id, NULL) == CURRANT_ERR_NOT_FOUND);
    CHECK(live_jobs() == 2); /* nothing queued was lost, nothing bad was added */
    return 0;
}

static int test_new_functions_carry_version_0_4(void) {
    static const char* const added[] = {"currant_enqueue_keyed", "currant_commit_keyed"};
    for (size_t i = 0; i < sizeof added / sizeof added[0]; ++i) {
        CHECK(dlvsym(RTLD_DEFAULT, added[i], "CURRANT_0.4") != NULL);
        CHECK(dlvsym(RTLD_DEFAULT, added[i], "CURRANT_0.3") == NULL);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */

int main(void) {
    static const struct test_case cases[] = {
        {"a held key is skipped and returns the holder's id", test_skip_returns_the_holder},
        {"refuse fails with ALREADY_EXISTS naming the key and the holder", test_refuse_fails_with_already_exists},
        {"the key is held while picked and free after the ack", test_the_key_is_free_after_the_ack},
        {"commit_keyed uses the reservation up", test_commit_keyed_uses_the_reservation_up},
        {"bad keys and policies are refused and nothing queued is lost", test_bad_keys_and_policies_are_refused},
        {"new functions carry symbol version CURRANT_0.4", test_new_functions_carry_version_0_4},
    };
    return run_test_cases("c_dedupe", cases, sizeof cases / sizeof cases[0]);
}
