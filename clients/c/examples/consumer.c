/* Example consumer over the C ABI.
 *
 *   currant-example-consumer QUEUE ENTRYPOINT [IDLE_MS [EXPECT]]
 *
 * Dequeues jobs of ENTRYPOINT in batches, prints and acks them, and exits
 * once nothing arrived for IDLE_MS milliseconds (default 1000). With EXPECT,
 * exits with status 1 unless exactly EXPECT jobs were consumed. */
#include <currant.h>

#include <stdio.h>
#include <stdlib.h>

#define BATCH 32

static int report(const char* what, int rc) {
    fprintf(stderr, "consumer: %s failed (%d): %s\n", what, rc, currant_last_error());
    return 1;
}

int main(int argc, char** argv) {
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: %s QUEUE ENTRYPOINT [IDLE_MS [EXPECT]]\n", argv[0]);
        return 2;
    }
    const long idle_ms = argc > 3 ? atol(argv[3]) : 1000;
    const long expect = argc > 4 ? atol(argv[4]) : -1;

    currant_queue* queue = NULL;
    int rc = currant_queue_open(argv[1], &queue);
    if (rc != CURRANT_OK) return report("opening the queue", rc);

    uint32_t entrypoint = 0;
    rc = currant_entrypoint(queue, argv[2], &entrypoint);
    if (rc != CURRANT_OK) {
        currant_queue_close(queue);
        return report("looking up the entrypoint", rc);
    }

    currant_job jobs[BATCH];
    long consumed = 0;
    for (;;) {
        size_t count = 0;
        rc = currant_dequeue(queue, &entrypoint, 1, jobs, BATCH, (int64_t)idle_ms * 1000000, &count);
        if (rc != CURRANT_OK) {
            currant_queue_close(queue);
            return report("dequeue", rc);
        }
        if (count == 0) break; /* idle for IDLE_MS: done */
        for (size_t i = 0; i < count; ++i)
            printf("job %llu (attempt %u): %.*s\n", (unsigned long long)jobs[i].id, jobs[i].attempts,
                   (int)jobs[i].payload_size, (const char*)jobs[i].payload);
        size_t acked = 0;
        rc = currant_ack_batch(queue, jobs, count, &acked);
        if (rc != CURRANT_OK) {
            currant_queue_close(queue);
            return report("ack", rc);
        }
        if (acked != count) fprintf(stderr, "consumer: only %zu of %zu jobs acked (leases lost)\n", acked, count);
        consumed += (long)acked;
    }
    printf("consumer: consumed %ld jobs, idle for %ld ms\n", consumed, idle_ms);
    currant_queue_close(queue);
    if (expect >= 0 && consumed != expect) {
        fprintf(stderr, "consumer: expected %ld jobs\n", expect);
        return 1;
    }
    return 0;
}
