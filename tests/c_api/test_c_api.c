/* c_api suite: the C ABI (currant.h) exercised from C, one behaviour per
 * case. A tiny runner: each case returns 0 on success; CHECK prints the
 * failed condition with its line, the last error, and fails the case. The
 * runner closes and removes the case's queue afterwards, pass or fail. */
#include "c_test_harness.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Defined in header_cpp.cpp: the same header seen by a C++ compiler. */
size_t currant_test_cpp_sizeof_job(void);
size_t currant_test_cpp_sizeof_reservation(void);
int currant_test_cpp_stale_code(void);


/* Creates a fresh queue named after the case and this process, with one
 * memory-durability entrypoint "work". */
static int make_queue(const char* tag, uint32_t payload_bytes, uint32_t* ep) {
    snprintf(g_name, sizeof g_name, "c%d-%s-%d", (int)getpid(), tag, g_counter++);
    currant_queue_remove(g_name);
    currant_create_options options;
    currant_create_options_init(&options);
    options.name = g_name;
    options.slots = 256;
    options.payload_bytes = payload_bytes;
    options.log_capacity = 256;
    options.max_participants = 16;
    if (currant_queue_create(&options, &g_queue) != CURRANT_OK) return 1;
    if (ep != NULL && currant_declare_entrypoint(g_queue, "work", CURRANT_DURABILITY_MEMORY, ep) != CURRANT_OK)
        return 1;
    return 0;
}

static int mentions(const char* text, const char* part) { return strstr(text, part) != NULL; }

/* ------------------------------------------------------------------------ */

static int test_create_open_close_remove(void) {
    uint32_t ep = 0;
    CHECK(make_queue("life", 64, &ep) == 0);

    currant_queue* second = NULL;
    CHECK_OK(currant_queue_open(g_name, &second));
    uint32_t found = 99;
    CHECK_OK(currant_entrypoint(second, "work", &found));
    CHECK(found == ep);
    currant_queue_close(second);
    currant_queue_close(NULL); /* a no-op */

    currant_create_options options;
    currant_create_options_init(&options);
    options.name = g_name;
    currant_queue* dup = NULL;
    CHECK(currant_queue_create(&options, &dup) == CURRANT_ERR_ALREADY_EXISTS);
    CHECK(dup == NULL);

    CHECK_OK(currant_queue_remove(g_name));
    /* The handle still attached sees the retirement. */
    uint64_t id = 0;
    CHECK(currant_enqueue(g_queue, ep, "x", 1, NULL, &id) == CURRANT_ERR_SEGMENT_RETIRED);
    CHECK(currant_queue_open(g_name, &second) == CURRANT_ERR_NOT_FOUND);
    CHECK(currant_queue_remove(g_name) == CURRANT_ERR_NOT_FOUND);
    return 0;
}

static int test_round_trip_with_nul_bytes(void) {
    uint32_t ep = 0;
    CHECK(make_queue("nul", 64, &ep) == 0);
    static const char payload[] = {'a', '\0', 'b', '\0', '\0', 'c'};
    uint64_t id = 0, empty_id = 0;
    CHECK_OK(currant_enqueue(g_queue, ep, payload, sizeof payload, NULL, &id));
    CHECK_OK(currant_enqueue(g_queue, ep, NULL, 0, NULL, &empty_id));

    currant_job jobs[4];
    size_t n = 0;
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, jobs, 4, 0, &n));
    CHECK(n == 2);
    CHECK(jobs[0].id == id);
    CHECK(jobs[0].entrypoint == ep);
    CHECK(jobs[0].attempts == 1);
    CHECK(jobs[0].enqueued_at_ns > 0);
    CHECK(jobs[0].payload_size == sizeof payload);
    CHECK(memcmp(jobs[0].payload, payload, sizeof payload) == 0);
    CHECK(jobs[1].id == empty_id);
    CHECK(jobs[1].payload_size == 0);
    CHECK_OK(currant_ack(g_queue, &jobs[0]));
    CHECK_OK(currant_ack(g_queue, &jobs[1]));

    /* Nothing left: a zero timeout returns at once with no job. */
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, jobs, 4, 0, &n));
    CHECK(n == 0);
    return 0;
}

static int test_reserve_commit_in_place(void) {
    uint32_t ep = 0;
    CHECK(make_queue("resv", 64, &ep) == 0);
    currant_reservation r;
    CHECK_OK(currant_reserve(g_queue, ep, &r));
    CHECK(r.payload != NULL);
    CHECK(r.capacity == 64);
    memcpy(r.payload, "written in place", 16);
    currant_enqueue_options opts;
    currant_enqueue_options_init(&opts);
    opts.priority = 3;
    uint64_t id = 0;
    CHECK_OK(currant_commit(g_queue, &r, 16, &opts, &id));
    CHECK(id == r.id);
    CHECK(r.payload == NULL);
    /* A committed reservation cannot be committed again. */
    CHECK(currant_commit(g_queue, &r, 16, NULL, &id) == CURRANT_ERR_INVALID_ARGUMENT);

    /* An abandoned reservation queues nothing. */
    currant_reservation other;
    CHECK_OK(currant_reserve(g_queue, ep, &other));
    CHECK_OK(currant_abandon(g_queue, &other));
    CHECK(other.payload == NULL);

    currant_job jobs[4];
    size_t n = 0;
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, jobs, 4, 0, &n));
    CHECK(n == 1);
    CHECK(jobs[0].id == id);
    CHECK(jobs[0].priority == 3);
    CHECK(jobs[0].payload_size == 16);
    CHECK(memcmp(jobs[0].payload, "written in place", 16) == 0);
    CHECK_OK(currant_ack(g_queue, &jobs[0]));
    return 0;
}

static int test_batch_enqueue_dequeue_ack_batch(void) {
    uint32_t ep = 0;
    CHECK(make_queue("batch", 64, &ep) == 0);
    enum { N = 40 };
    char texts[N][16];
    currant_buffer buffers[N];
    for (int i = 0; i < N; ++i) {
        int len = snprintf(texts[i], sizeof texts[i], "item %d", i);
        buffers[i].data = texts[i];
        buffers[i].size = (size_t)len;
    }
    uint64_t ids[N];
    size_t enqueued = 0;
    CHECK_OK(currant_enqueue_batch(g_queue, ep, buffers, N, NULL, ids, &enqueued));
    CHECK(enqueued == N);

    currant_job jobs[N];
    size_t got = 0;
    while (got < N) {
        size_t n = 0;
        CHECK_OK(currant_dequeue(g_queue, &ep, 1, jobs + got, 16, 0, &n));
        CHECK(n > 0 && n <= 16);
        got += n;
    }
    for (int i = 0; i < N; ++i) { /* FIFO within one priority */
        CHECK(jobs[i].id == ids[i]);
        CHECK(jobs[i].payload_size == buffers[i].size);
        CHECK(memcmp(jobs[i].payload, texts[i], buffers[i].size) == 0);
    }
    size_t acked = 0;
    CHECK_OK(currant_ack_batch(g_queue, jobs, N, &acked));
    CHECK(acked == N);
    /* Acking the same batch again acks nothing and is not an error. */
    CHECK_OK(currant_ack_batch(g_queue, jobs, N, &acked));
    CHECK(acked == 0);
    currant_entrypoint_stats stats;
    CHECK_OK(currant_stats(g_queue, ep, &stats));
    CHECK(stats.successful == N);
    CHECK(stats.queued == 0 && stats.picked == 0);
    return 0;
}

static int test_stale_handle(void) {
    uint32_t ep = 0;
    CHECK(make_queue("stale", 64, &ep) == 0);
    uint64_t id = 0;
    CHECK_OK(currant_enqueue(g_queue, ep, "once", 4, NULL, &id));
    currant_job job;
    size_t n = 0;
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, &job, 1, 0, &n));
    CHECK(n == 1);
    CHECK_OK(currant_ack(g_queue, &job));
    CHECK(currant_ack(g_queue, &job) == CURRANT_ERR_STALE_HANDLE);
    CHECK(mentions(currant_last_error(), "currant_ack"));
    CHECK(mentions(currant_last_error(), "stale_handle"));
    CHECK(mentions(currant_last_error(), g_name));
    CHECK(currant_fail(g_queue, &job) == CURRANT_ERR_STALE_HANDLE);
    CHECK(currant_retry(g_queue, &job, 0, NULL) == CURRANT_ERR_STALE_HANDLE);
    return 0;
}

static int test_oversized_payload(void) {
    uint32_t ep = 0;
    CHECK(make_queue("big", 32, &ep) == 0);
    char big[33];
    memset(big, 'x', sizeof big);
    uint64_t id = 0;
    CHECK_OK(currant_enqueue(g_queue, ep, "before", 6, NULL, &id));
    CHECK(currant_enqueue(g_queue, ep, big, sizeof big, NULL, &id) == CURRANT_ERR_PAYLOAD_TOO_LARGE);
    CHECK(mentions(currant_last_error(), "32"));
    /* A batch with one oversized payload enqueues nothing. */
    currant_buffer buffers[2] = {{"fine", 4}, {big, sizeof big}};
    uint64_t ids[2];
    size_t enqueued = 99;
    CHECK(currant_enqueue_batch(g_queue, ep, buffers, 2, NULL, ids, &enqueued) == CURRANT_ERR_PAYLOAD_TOO_LARGE);
    /* Committing more than the reservation holds is refused too. */
    currant_reservation r;
    CHECK_OK(currant_reserve(g_queue, ep, &r));
    CHECK(currant_commit(g_queue, &r, r.capacity + 1, NULL, &id) == CURRANT_ERR_PAYLOAD_TOO_LARGE);
    CHECK_OK(currant_abandon(g_queue, &r));

    /* The queue is intact: exactly the job before, and a full-size one fits. */
    CHECK_OK(currant_enqueue(g_queue, ep, big, 32, NULL, &id));
    currant_job jobs[4];
    size_t n = 0;
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, jobs, 4, 0, &n));
    CHECK(n == 2);
    CHECK(jobs[0].payload_size == 6 && memcmp(jobs[0].payload, "before", 6) == 0);
    CHECK(jobs[1].payload_size == 32 && memcmp(jobs[1].payload, big, 32) == 0);
    size_t acked = 0;
    CHECK_OK(currant_ack_batch(g_queue, jobs, n, &acked));
    CHECK(acked == 2);
    return 0;
}

static int test_unknown_entrypoint(void) {
    CHECK(make_queue("noep", 64, NULL) == 0);
    uint32_t ep = 12345;
    CHECK(currant_entrypoint(g_queue, "missing", &ep) == CURRANT_ERR_NOT_FOUND);
    CHECK(ep == 12345); /* untouched on failure */
    CHECK(mentions(currant_last_error(), "missing"));
    currant_entrypoint_stats stats;
    CHECK(currant_stats(g_queue, 7, &stats) == CURRANT_ERR_NOT_FOUND);
    return 0;
}

static int test_null_arguments(void) {
    uint32_t ep = 0;
    CHECK(make_queue("null", 64, &ep) == 0);
    currant_queue* q = NULL;
    uint64_t id = 0;
    size_t n = 0;
    currant_job job;

    CHECK(currant_queue_open(NULL, &q) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "'name'"));
    CHECK(currant_queue_open(g_name, NULL) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "'out'"));
    CHECK(currant_queue_create(NULL, &q) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "'options'"));
    currant_create_options options;
    currant_create_options_init(&options);
    CHECK(currant_queue_create(&options, &q) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "'options->name'"));
    CHECK(currant_enqueue(NULL, ep, "x", 1, NULL, &id) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "'queue'"));
    CHECK(currant_enqueue(g_queue, ep, "x", 1, NULL, NULL) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "'id_out'"));
    CHECK(currant_enqueue(g_queue, ep, NULL, 5, NULL, &id) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "'payload'"));
    CHECK(currant_dequeue(g_queue, NULL, 1, &job, 1, 0, &n) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "'eps'"));
    CHECK(currant_dequeue(g_queue, &ep, 1, &job, 1, 0, NULL) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "'count_out'"));
    CHECK(currant_ack(g_queue, NULL) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "'job'"));
    CHECK(currant_reserve(g_queue, ep, NULL) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "'out'"));
    CHECK(currant_stats(g_queue, ep, NULL) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "'out'"));
    CHECK(currant_declare_entrypoint(g_queue, NULL, CURRANT_DURABILITY_MEMORY, &ep) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "'name'"));
    CHECK(currant_declare_entrypoint(g_queue, "x", 42, &ep) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "durability"));
    CHECK(q == NULL);
    return 0;
}

static int test_bad_queue_name(void) {
    static const char* const names[] = {"", "has/slash", ".hidden", "-dash", "sp ace"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i) {
        currant_create_options options;
        currant_create_options_init(&options);
        options.name = names[i];
        currant_queue* q = NULL;
        CHECK(currant_queue_create(&options, &q) == CURRANT_ERR_INVALID_ARGUMENT);
        CHECK(mentions(currant_last_error(), "queue name"));
        CHECK(q == NULL);
        CHECK(currant_queue_open(names[i], &q) == CURRANT_ERR_INVALID_ARGUMENT);
        CHECK(currant_queue_remove(names[i]) == CURRANT_ERR_INVALID_ARGUMENT);
    }
    /* Bad sizes are refused the same way, naming the limit. */
    currant_create_options options;
    currant_create_options_init(&options);
    options.name = "c-bad-size";
    options.slots = 0;
    currant_queue* q = NULL;
    CHECK(currant_queue_create(&options, &q) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "slots"));
    return 0;
}

static int test_strerror_of_every_code(void) {
    for (int code = CURRANT_OK; code >= CURRANT_ERR_SYSTEM; --code) {
        const char* text = currant_strerror(code);
        CHECK(text != NULL && text[0] != '\0');
        CHECK(strcmp(text, "unknown_error") != 0);
        for (int other = code - 1; other >= CURRANT_ERR_SYSTEM; --other)
            CHECK(strcmp(text, currant_strerror(other)) != 0);
    }
    CHECK(strcmp(currant_strerror(CURRANT_OK), "ok") == 0);
    CHECK(strcmp(currant_strerror(CURRANT_ERR_ARENA_FULL), "arena_full") == 0);
    CHECK(strcmp(currant_strerror(CURRANT_ERR_SYSTEM), "system_error") == 0);
    CHECK(strcmp(currant_strerror(1), "unknown_error") == 0);
    CHECK(strcmp(currant_strerror(CURRANT_ERR_SYSTEM - 1), "unknown_error") == 0);
    CHECK(currant_last_error() != NULL);
    return 0;
}

static int test_status_and_stats(void) {
    uint32_t ep = 0;
    CHECK(make_queue("stat", 64, &ep) == 0);
    uint64_t ids[5];
    for (int i = 0; i < 4; ++i) CHECK_OK(currant_enqueue(g_queue, ep, "s", 1, NULL, &ids[i]));
    ids[4] = ids[3] + 1000; /* never enqueued */
    int canceled = 0;
    CHECK_OK(currant_cancel(g_queue, ids[3], &canceled));
    CHECK(canceled == 1);
    CHECK_OK(currant_cancel(g_queue, ids[3], &canceled));
    CHECK(canceled == 0);

    currant_job jobs[2];
    size_t n = 0;
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, jobs, 2, 0, &n));
    CHECK(n == 2);
    int st[5];
    CHECK_OK(currant_job_status(g_queue, ids, 5, st));
    CHECK(st[0] == CURRANT_JOB_PICKED && st[1] == CURRANT_JOB_PICKED);
    CHECK(st[2] == CURRANT_JOB_QUEUED && st[3] == CURRANT_JOB_CANCELED && st[4] == CURRANT_JOB_UNKNOWN);

    size_t extended = 0;
    CHECK_OK(currant_heartbeat(g_queue, jobs, 2, &extended));
    CHECK(extended == 2);
    CHECK_OK(currant_ack(g_queue, &jobs[0]));
    CHECK_OK(currant_fail(g_queue, &jobs[1]));
    CHECK_OK(currant_job_status(g_queue, ids, 2, st));
    CHECK(st[0] == CURRANT_JOB_SUCCESSFUL && st[1] == CURRANT_JOB_EXCEPTION);

    /* Retry with a long delay: queued again but delayed, not ready. */
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, jobs, 2, 0, &n));
    CHECK(n == 1 && jobs[0].id == ids[2]);
    int requeued = 0;
    CHECK_OK(currant_retry(g_queue, &jobs[0], 60000, &requeued));
    CHECK(requeued == 1);
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, jobs, 2, 0, &n));
    CHECK(n == 0);

    currant_entrypoint_stats s;
    CHECK_OK(currant_stats(g_queue, ep, &s));
    CHECK(s.enqueued == 4);
    CHECK(s.successful == 1 && s.failed == 1 && s.canceled == 1 && s.retried == 1);
    CHECK(s.queued == 0 && s.delayed == 1 && s.picked == 0);
    return 0;
}

/* The child's side of the multi-process case: consume `total` jobs,
 * checking each sequence number arrives exactly once; exit status 0 if so. */
static int consume_all(const char* name, int total) {
    currant_queue* q = NULL;
    if (currant_queue_open(name, &q) != CURRANT_OK) return 10;
    uint32_t ep = 0;
    if (currant_entrypoint(q, "work", &ep) != CURRANT_OK) return 11;
    unsigned char* seen = calloc((size_t)total, 1);
    if (seen == NULL) return 12;
    int consumed = 0, idle_rounds = 0;
    currant_job jobs[16];
    while (consumed < total && idle_rounds < 200) { /* gives up after ~20 s idle */
        size_t n = 0;
        if (currant_dequeue(q, &ep, 1, jobs, 16, 100000000, &n) != CURRANT_OK) return 13;
        idle_rounds = n == 0 ? idle_rounds + 1 : 0;
        for (size_t i = 0; i < n; ++i) {
            char text[32];
            if (jobs[i].payload_size >= sizeof text) return 14;
            memcpy(text, jobs[i].payload, jobs[i].payload_size);
            text[jobs[i].payload_size] = '\0';
            int seq = atoi(text);
            if (seq < 0 || seq >= total || seen[seq]) return 15; /* out of range or twice */
            seen[seq] = 1;
        }
        size_t acked = 0;
        if (n > 0 && (currant_ack_batch(q, jobs, n, &acked) != CURRANT_OK || acked != n)) return 16;
        consumed += (int)n;
    }
    free(seen);
    currant_queue_close(q);
    return consumed == total ? 0 : 17;
}

static int test_multi_process(void) {
    uint32_t ep = 0;
    CHECK(make_queue("mp", 64, &ep) == 0);
    currant_queue_close(g_queue); /* each process opens its own after fork */
    g_queue = NULL;
    enum { TOTAL = 2000 };

    fflush(NULL);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) _exit(consume_all(g_name, TOTAL));

    int produced_ok = 1;
    if (currant_queue_open(g_name, &g_queue) != CURRANT_OK) produced_ok = 0;
    currant_enqueue_options opts;
    currant_enqueue_options_init(&opts);
    opts.arena_wait_ms = 10000; /* 256 slots: wait for the consumer */
    for (int i = 0; produced_ok && i < TOTAL; ++i) {
        char text[16];
        int len = snprintf(text, sizeof text, "%d", i);
        uint64_t id = 0;
        if (currant_enqueue(g_queue, ep, text, (size_t)len, &opts, &id) != CURRANT_OK) {
            fprintf(stderr, "    enqueue %d: %s\n", i, currant_last_error());
            produced_ok = 0;
        }
    }
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(produced_ok);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "    consumer child ended with status 0x%x\n", status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    currant_entrypoint_stats s;
    CHECK_OK(currant_stats(g_queue, ep, &s));
    CHECK(s.enqueued == TOTAL && s.successful == TOTAL);
    CHECK(s.queued == 0 && s.picked == 0 && s.retried == 0);
    return 0;
}

static int enqueue_texts(uint32_t ep, int count, uint64_t* ids) {
    for (int i = 0; i < count; ++i) {
        char text[16];
        int len = snprintf(text, sizeof text, "job %d", i);
        if (currant_enqueue(g_queue, ep, text, (size_t)len, NULL, &ids[i]) != CURRANT_OK) return 1;
    }
    return 0;
}

static int test_dequeue_one_prefetches(void) {
    uint32_t ep = 0;
    CHECK(make_queue("one", 64, &ep) == 0);
    uint64_t ids[6];
    CHECK(enqueue_texts(ep, 6, ids) == 0);
    CHECK_OK(currant_set_prefetch(g_queue, 4));

    currant_job job;
    size_t n = 0;
    CHECK_OK(currant_dequeue_one(g_queue, &ep, 1, &job, 0, &n));
    CHECK(n == 1);
    CHECK(job.id == ids[0]);
    CHECK(job.payload_size == 5 && memcmp(job.payload, "job 0", 5) == 0);
    CHECK_OK(currant_ack(g_queue, &job));
    /* One call picked four: another consumer sees only the last two. */
    currant_entrypoint_stats stats;
    CHECK_OK(currant_stats(g_queue, ep, &stats));
    CHECK(stats.picked == 3 && stats.queued == 2);
    currant_queue* other = NULL;
    CHECK_OK(currant_queue_open(g_name, &other));
    currant_job others[8];
    size_t other_n = 0;
    int rc = currant_dequeue(other, &ep, 1, others, 8, 0, &other_n);
    currant_queue_close(other); /* requeues what it picked */
    CHECK_OK(rc);
    CHECK(other_n == 2 && others[0].id == ids[4] && others[1].id == ids[5]);

    /* The rest come from the buffer, in order. */
    for (int i = 1; i < 4; ++i) {
        CHECK_OK(currant_dequeue_one(g_queue, &ep, 1, &job, 0, &n));
        CHECK(n == 1 && job.id == ids[i]);
        CHECK_OK(currant_ack(g_queue, &job));
    }
    /* The other two were requeued by the close (in no promised order). */
    uint64_t seen = 0;
    for (int i = 0; i < 2; ++i) {
        CHECK_OK(currant_dequeue_one(g_queue, &ep, 1, &job, 0, &n));
        CHECK(n == 1 && (job.id == ids[4] || job.id == ids[5]) && job.id != seen && job.attempts == 2);
        seen = job.id;
        CHECK_OK(currant_ack(g_queue, &job));
    }
    n = 99;
    CHECK_OK(currant_dequeue_one(g_queue, &ep, 1, &job, 0, &n));
    CHECK(n == 0);

    CHECK(currant_set_prefetch(g_queue, 0) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_set_prefetch(g_queue, 1025) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_set_prefetch(NULL, 4) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_dequeue_one(g_queue, &ep, 0, &job, 0, &n) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_dequeue_one(g_queue, &ep, 1, NULL, 0, &n) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "job_out"));
    return 0;
}

static int test_prefetched_jobs_requeued_at_close(void) {
    uint32_t ep = 0;
    CHECK(make_queue("onecl", 64, &ep) == 0);
    uint64_t ids[3];
    CHECK(enqueue_texts(ep, 3, ids) == 0);
    currant_queue* consumer = NULL;
    CHECK_OK(currant_queue_open(g_name, &consumer));
    currant_job job;
    size_t n = 0;
    int rc = currant_dequeue_one(consumer, &ep, 1, &job, 0, &n);
    if (rc == CURRANT_OK && n == 1) rc = currant_ack(consumer, &job);
    currant_queue_close(consumer);
    CHECK_OK(rc);
    currant_entrypoint_stats stats;
    CHECK_OK(currant_stats(g_queue, ep, &stats));
    CHECK(stats.successful == 1 && stats.picked == 0 && stats.queued == 2 && stats.retried == 2);
    return 0;
}

static int test_ack_deferred_is_applied_at_flush(void) {
    uint32_t ep = 0;
    CHECK(make_queue("defer", 64, &ep) == 0);
    uint64_t ids[3];
    CHECK(enqueue_texts(ep, 3, ids) == 0);
    currant_job jobs[3];
    size_t n = 0;
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, jobs, 3, 0, &n));
    CHECK(n == 3);
    for (int i = 0; i < 3; ++i) CHECK_OK(currant_ack_deferred(g_queue, &jobs[i]));
    /* Not yet a fact: the jobs are still picked. */
    int statuses[3];
    CHECK_OK(currant_job_status(g_queue, ids, 3, statuses));
    for (int i = 0; i < 3; ++i) CHECK(statuses[i] == CURRANT_JOB_PICKED);
    size_t acked = 0;
    CHECK_OK(currant_flush(g_queue, &acked));
    CHECK(acked == 3);
    currant_entrypoint_stats stats;
    CHECK_OK(currant_stats(g_queue, ep, &stats));
    CHECK(stats.successful == 3 && stats.picked == 0);
    CHECK_OK(currant_flush(g_queue, &acked));
    CHECK(acked == 0);
    CHECK_OK(currant_flush(g_queue, NULL));
    /* A stale deferred ack is skipped at the flush, not an error. */
    CHECK_OK(currant_ack_deferred(g_queue, &jobs[0]));
    CHECK_OK(currant_flush(g_queue, &acked));
    CHECK(acked == 0);
    CHECK(currant_ack_deferred(g_queue, NULL) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_flush(NULL, &acked) == CURRANT_ERR_INVALID_ARGUMENT);
    return 0;
}

static int test_deferred_acks_applied_every_64_and_before_sleeping(void) {
    uint32_t ep = 0;
    CHECK(make_queue("defer64", 64, &ep) == 0);
    uint64_t ids[65];
    CHECK(enqueue_texts(ep, 65, ids) == 0);
    currant_job jobs[65];
    size_t n = 0;
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, jobs, 65, 0, &n));
    CHECK(n == 65);
    currant_entrypoint_stats stats;
    for (int i = 0; i < 63; ++i) CHECK_OK(currant_ack_deferred(g_queue, &jobs[i]));
    CHECK_OK(currant_stats(g_queue, ep, &stats));
    CHECK(stats.successful == 0);
    CHECK_OK(currant_ack_deferred(g_queue, &jobs[63]));
    CHECK_OK(currant_stats(g_queue, ep, &stats));
    CHECK(stats.successful == 64);
    /* A dequeue about to sleep applies the buffer first. */
    CHECK_OK(currant_ack_deferred(g_queue, &jobs[64]));
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, jobs, 1, 50000000, &n));
    CHECK(n == 0);
    CHECK_OK(currant_stats(g_queue, ep, &stats));
    CHECK(stats.successful == 65 && stats.picked == 0);
    return 0;
}

static int test_deferred_acks_applied_at_close(void) {
    uint32_t ep = 0;
    CHECK(make_queue("deferclose", 64, &ep) == 0);
    uint64_t ids[2];
    CHECK(enqueue_texts(ep, 2, ids) == 0);
    currant_queue* consumer = NULL;
    CHECK_OK(currant_queue_open(g_name, &consumer));
    currant_job jobs[2];
    size_t n = 0;
    int rc = currant_dequeue(consumer, &ep, 1, jobs, 2, 0, &n);
    for (size_t i = 0; rc == CURRANT_OK && i < n; ++i) rc = currant_ack_deferred(consumer, &jobs[i]);
    currant_queue_close(consumer);
    CHECK_OK(rc);
    CHECK(n == 2);
    currant_entrypoint_stats stats;
    CHECK_OK(currant_stats(g_queue, ep, &stats));
    CHECK(stats.successful == 2 && stats.retried == 0 && stats.queued == 0);
    return 0;
}

static int test_new_functions_carry_version_0_1(void) {
    static const char* const added[] = {"currant_dequeue_one", "currant_set_prefetch", "currant_ack_deferred",
                                        "currant_flush"};
    for (size_t i = 0; i < sizeof added / sizeof added[0]; ++i) {
        CHECK(dlvsym(RTLD_DEFAULT, added[i], "CURRANT_0.1") != NULL);
        CHECK(dlvsym(RTLD_DEFAULT, added[i], "CURRANT_0") == NULL);
    }
    CHECK(dlvsym(RTLD_DEFAULT, "currant_dequeue", "CURRANT_0") != NULL);
    CHECK(dlvsym(RTLD_DEFAULT, "currant_ack", "CURRANT_0") != NULL);
    return 0;
}

/* Schedules (docs/schedules.md): add, list, errors, one tick fired into a
 * waiting dequeue (enqueued_at_ns is the tick), remove. */
static int test_schedules(void) {
    uint32_t ep = 0;
    CHECK(make_queue("sched", 64, &ep) == 0);
    currant_schedule_options options;
    currant_schedule_options_init(&options);
    CHECK(options.missed == CURRANT_MISSED_SKIP && options.catch_up_max == 100);
    options.name = "tick";
    options.expression = "* * * * * *";
    options.entrypoint = ep;
    options.payload = "hello";
    options.payload_size = 5;
    options.priority = 2;
    options.missed = CURRANT_MISSED_CATCH_UP;

    currant_schedule_options bad = options;
    bad.expression = "* * 25 * * *";
    CHECK(currant_add_schedule(g_queue, &bad) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "hour field '25'"));
    bad = options;
    bad.entrypoint = 9;
    CHECK(currant_add_schedule(g_queue, &bad) == CURRANT_ERR_NOT_FOUND);
    bad = options;
    bad.missed = 7;
    CHECK(currant_add_schedule(g_queue, &bad) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(mentions(currant_last_error(), "options->missed"));
    bad = options;
    bad.expression = NULL;
    CHECK(currant_add_schedule(g_queue, &bad) == CURRANT_ERR_INVALID_ARGUMENT);
    CHECK(currant_add_schedule(g_queue, NULL) == CURRANT_ERR_INVALID_ARGUMENT);
    size_t count = 99;
    CHECK_OK(currant_schedules(g_queue, NULL, 0, &count));
    CHECK(count == 0);

    CHECK_OK(currant_add_schedule(g_queue, &options));
    CHECK(currant_add_schedule(g_queue, &options) == CURRANT_ERR_ALREADY_EXISTS);
    currant_schedule_info info[2];
    CHECK_OK(currant_schedules(g_queue, info, 2, &count));
    CHECK(count == 1);
    CHECK(strcmp(info[0].name, "tick") == 0);
    CHECK(strcmp(info[0].expression, "* * * * * *") == 0);
    CHECK(info[0].entrypoint == ep);
    CHECK(info[0].priority == 2);
    CHECK(info[0].missed == CURRANT_MISSED_CATCH_UP);
    CHECK(info[0].payload_size == 5);
    CHECK(info[0].next_tick_ns % 1000000000 == 0);
    const int64_t first = info[0].next_tick_ns;

    currant_job job;
    size_t n = 0;
    CHECK_OK(currant_dequeue(g_queue, &ep, 1, &job, 1, 10000000000LL, &n));
    CHECK(n == 1);
    CHECK(job.enqueued_at_ns == first);
    CHECK(job.priority == 2);
    CHECK(job.payload_size == 5 && memcmp(job.payload, "hello", 5) == 0);
    CHECK_OK(currant_ack(g_queue, &job));
    size_t fired = 0;
    CHECK_OK(currant_run_schedules(g_queue, &fired));
    CHECK_OK(currant_schedules(g_queue, info, 2, &count));
    CHECK(info[0].fired >= 1);
    CHECK(info[0].next_tick_ns > first);

    CHECK(currant_remove_schedule(g_queue, "nope") == CURRANT_ERR_NOT_FOUND);
    CHECK(mentions(currant_last_error(), "unknown schedule 'nope'"));
    CHECK_OK(currant_remove_schedule(g_queue, "tick"));
    CHECK_OK(currant_schedules(g_queue, info, 2, &count));
    CHECK(count == 0);
    static const char* const added[] = {"currant_schedule_options_init", "currant_add_schedule",
                                        "currant_remove_schedule", "currant_schedules", "currant_run_schedules"};
    for (size_t i = 0; i < sizeof added / sizeof added[0]; ++i) {
        CHECK(dlvsym(RTLD_DEFAULT, added[i], "CURRANT_0.3") != NULL);
        CHECK(dlvsym(RTLD_DEFAULT, added[i], "CURRANT_0.2") == NULL);
    }
    return 0;
}

static int test_header_same_layout_in_cpp(void) {
    CHECK(currant_test_cpp_sizeof_job() == sizeof(currant_job));
    CHECK(currant_test_cpp_sizeof_reservation() == sizeof(currant_reservation));
    CHECK(currant_test_cpp_stale_code() == CURRANT_ERR_STALE_HANDLE);
    return 0;
}

/* ------------------------------------------------------------------------ */

int main(void) {
    static const struct test_case cases[] = {
        {"create, open, close, remove", test_create_open_close_remove},
        {"round trip with NUL bytes in the payload", test_round_trip_with_nul_bytes},
        {"reserve and commit in place, visible to dequeue", test_reserve_commit_in_place},
        {"batch enqueue, dequeue, ack_batch", test_batch_enqueue_dequeue_ack_batch},
        {"acking twice gives stale_handle", test_stale_handle},
        {"oversized payload is refused, queue intact", test_oversized_payload},
        {"unknown entrypoint gives not_found", test_unknown_entrypoint},
        {"NULL arguments give invalid_argument naming them", test_null_arguments},
        {"bad queue name gives invalid_argument", test_bad_queue_name},
        {"strerror of every code", test_strerror_of_every_code},
        {"status and stats", test_status_and_stats},
        {"fork: child consumes what the parent produces, once each", test_multi_process},
        {"dequeue_one picks the prefetch count at once and hands them out in order", test_dequeue_one_prefetches},
        {"prefetched jobs not handed out are requeued at close", test_prefetched_jobs_requeued_at_close},
        {"ack_deferred is not a fact until flush", test_ack_deferred_is_applied_at_flush},
        {"deferred acks are applied every 64 and before sleeping",
         test_deferred_acks_applied_every_64_and_before_sleeping},
        {"deferred acks are applied at close", test_deferred_acks_applied_at_close},
        {"new functions carry symbol version CURRANT_0.1", test_new_functions_carry_version_0_1},
        {"schedules: add, list, errors, a tick into a waiting dequeue, remove (CURRANT_0.3)", test_schedules},
        {"header compiles as C++ with the same layout", test_header_same_layout_in_cpp},
    };
    return run_test_cases("c_api", cases, sizeof cases / sizeof cases[0]);
}
