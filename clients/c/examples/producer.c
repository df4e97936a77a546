/* Example producer over the C ABI.
 *
 *   currant-example-producer [--create] QUEUE ENTRYPOINT COUNT
 *
 * Enqueues COUNT jobs whose payloads are "job 0", "job 1", ... to ENTRYPOINT
 * of QUEUE (declaring the entrypoint). With --create the queue is created if
 * it does not exist yet. */
#include <currant.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int report(const char* what, int rc) {
    fprintf(stderr, "producer: %s failed (%d): %s\n", what, rc, currant_last_error());
    return 1;
}

int main(int argc, char** argv) {
    int create = 0;
    int arg = 1;
    if (arg < argc && strcmp(argv[arg], "--create") == 0) {
        create = 1;
        ++arg;
    }
    if (argc - arg != 3) {
        fprintf(stderr, "usage: %s [--create] QUEUE ENTRYPOINT COUNT\n", argv[0]);
        return 2;
    }
    const char* queue_name = argv[arg];
    const char* entrypoint_name = argv[arg + 1];
    char* end = NULL;
    unsigned long count = strtoul(argv[arg + 2], &end, 10);
    if (end == argv[arg + 2] || *end != '\0') {
        fprintf(stderr, "producer: COUNT must be a number, got '%s'\n", argv[arg + 2]);
        return 2;
    }

    currant_queue* queue = NULL;
    int rc = currant_queue_open(queue_name, &queue);
    if (rc == CURRANT_ERR_NOT_FOUND && create) {
        currant_create_options options;
        currant_create_options_init(&options);
        options.name = queue_name;
        options.slots = 1024;
        rc = currant_queue_create(&options, &queue);
        if (rc == CURRANT_ERR_ALREADY_EXISTS) rc = currant_queue_open(queue_name, &queue);
    }
    if (rc != CURRANT_OK) return report("opening the queue", rc);

    uint32_t entrypoint = 0;
    rc = currant_declare_entrypoint(queue, entrypoint_name, CURRANT_DURABILITY_MEMORY, &entrypoint);
    if (rc != CURRANT_OK) {
        currant_queue_close(queue);
        return report("declaring the entrypoint", rc);
    }

    currant_enqueue_options options;
    currant_enqueue_options_init(&options);
    options.arena_wait_ms = 5000; /* a full arena is back-pressure: wait for consumers */
    for (unsigned long n = 0; n < count; ++n) {
        char payload[32];
        int size = snprintf(payload, sizeof payload, "job %lu", n);
        uint64_t id = 0;
        rc = currant_enqueue(queue, entrypoint, payload, (size_t)size, &options, &id);
        if (rc != CURRANT_OK) {
            currant_queue_close(queue);
            return report("enqueue", rc);
        }
    }
    printf("producer: enqueued %lu jobs to %s/%s\n", count, queue_name, entrypoint_name);
    currant_queue_close(queue);
    return 0;
}
