/* currant.h: the stable C ABI of currant, a job queue for processes on one
 * host, kept in POSIX shared memory (libcurrant.so, pkg-config "currant").
 *
 * What a caller may rely on
 * -------------------------
 * - Every function returns an int: CURRANT_OK (0) on success or a negative
 *   currant_status code. On failure currant_last_error() gives a message
 *   naming the function, the problem and (where one applies) the queue,
 *   entrypoint or limit. No C++ exception ever crosses this interface.
 * - On failure, output arguments are left untouched, except the contents of
 *   caller-supplied arrays (ids_out, jobs_out, statuses_out), which are
 *   then unspecified.
 * - Delivery is at least once; completion (ack/fail/retry) is recorded once,
 *   and only while the job is still picked under the handle you hold. A
 *   call that returns CURRANT_OK reports a fact already applied; the one
 *   exception is currant_ack_deferred, which says so in its name.
 * - Within one entrypoint: higher priority first, then FIFO by enqueue.
 *   No order is promised across entrypoints.
 * - Payload views (currant_job.payload) point into the shared segment (zero
 *   copy), read-only, and stay valid until that job is acked, failed or
 *   retried through this library, or its lease is lost, or the queue is
 *   closed. A reservation's payload is writable until commit or abandon.
 * - Error codes are stable: one negative code per currant error, in one
 *   range (CURRANT_ERR_INVALID_ARGUMENT .. CURRANT_ERR_SYSTEM).
 *
 * What a caller may not rely on
 * -----------------------------
 * - A currant_queue is not thread-safe: use one per thread (each one is a
 *   separate participant of the queue). Different threads may hold
 *   different currant_queue objects for the same queue.
 * - A currant_queue must not be used (nor closed) in a child after fork():
 *   open the queue again in the child.
 * - Payload views are not valid after ack/fail/retry: copy what you keep.
 * - Structs here are plain data: the handle words in currant_job and
 *   currant_reservation must be passed back unchanged; forging them is
 *   refused (CURRANT_ERR_STALE_HANDLE and friends), never undefined.
 * - The status of a finished job in memory durability is kept only until
 *   its slot is reused (then CURRANT_JOB_UNKNOWN).
 */
#ifndef CURRANT_H
#define CURRANT_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define CURRANT_API
#elif defined(__GNUC__)
#define CURRANT_API __attribute__((visibility("default")))
#else
#define CURRANT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ----------------------------------------------------------- */

/* Status codes, returned by every call. Only the tag `enum currant_status`
 * exists (no typedef). */
enum currant_status {
    CURRANT_OK = 0,
    CURRANT_ERR_INVALID_ARGUMENT = -1,       /* bad name, size, option, NULL pointer or handle shape */
    CURRANT_ERR_NOT_FOUND = -2,              /* no queue / entrypoint / job of that name or id */
    CURRANT_ERR_ALREADY_EXISTS = -3,         /* create of a queue that exists */
    CURRANT_ERR_FOREIGN_SEGMENT = -4,        /* the shm object is not a currant segment */
    CURRANT_ERR_VERSION_MISMATCH = -5,       /* a currant segment of another layout version */
    CURRANT_ERR_LAYOUT_MISMATCH = -6,        /* same version, different ABI facts or sizes */
    CURRANT_ERR_SEGMENT_ABANDONED = -7,      /* creator died before finishing initialisation */
    CURRANT_ERR_SEGMENT_RETIRED = -8,        /* queue was removed or recreated: reopen it */
    CURRANT_ERR_PERMISSION_DENIED = -9,      /* the OS refused access to the segment */
    CURRANT_ERR_OTHER_PID_NAMESPACE = -10,   /* segment created in another pid namespace */
    CURRANT_ERR_ARENA_FULL = -11,            /* no free slot: back-pressure */
    CURRANT_ERR_PAYLOAD_TOO_LARGE = -12,     /* payload exceeds the per-slot payload bytes */
    CURRANT_ERR_ENTRYPOINT_TABLE_FULL = -13, /* no room to declare another entrypoint */
    CURRANT_ERR_PARTICIPANT_TABLE_FULL = -14,/* too many queue handles attached at once */
    CURRANT_ERR_PRIORITY_LANES_FULL = -15,   /* too many distinct priorities queued at once */
    CURRANT_ERR_STALE_HANDLE = -16,          /* job was re-picked, finished or the slot reused */
    CURRANT_ERR_NOT_OWNER = -17,             /* the job is held by someone else */
    CURRANT_ERR_WRONG_STATE = -18,           /* the transition is not allowed from this state */
    CURRANT_ERR_LOG_FULL = -19,              /* transition log full (mirror lagging) */
    CURRANT_ERR_TIMED_OUT = -20,             /* a wait ended at its deadline */
    CURRANT_ERR_FORKED_PROCESS = -21,        /* handle used in a child after fork() */
    CURRANT_ERR_REPAIR_FAILED = -22,         /* a dead lock owner's state could not be repaired */
    CURRANT_ERR_CORRUPT_SEGMENT = -23,       /* an index or field in the segment is invalid */
    CURRANT_ERR_SYSTEM = -24                 /* unexpected OS error, out of memory, internal error */
};

/* Short stable name of a code ("arena_full"); never NULL, "unknown_error"
 * for a code not listed above. */
CURRANT_API const char* currant_strerror(int code);

/* Message of the last call that failed on this thread (empty string if none
 * failed yet). Valid until the next failing call on this thread. */
CURRANT_API const char* currant_last_error(void);

/* ---- queues ----------------------------------------------------------- */

typedef struct currant_queue currant_queue; /* opaque; one per thread */

typedef struct currant_create_options {
    const char* name;          /* 1..N of [A-Za-z0-9_.-], not starting with '.' or '-' */
    uint32_t slots;            /* jobs held at once (default 65536) */
    uint32_t payload_bytes;    /* inline payload capacity per job (default 256) */
    uint32_t max_entrypoints;  /* default 64 */
    uint32_t max_participants; /* queue handles attached at once, all processes (default 256) */
    uint32_t log_capacity;     /* transition records per entrypoint (default 65536) */
    uint16_t host_id;          /* high 16 bits of every job id (default 0) */
    unsigned mode;             /* permission bits of the segment (default 0600) */
} currant_create_options;

/* Fills *options with the defaults above and name = NULL. Does nothing on NULL. */
CURRANT_API void currant_create_options_init(currant_create_options* options);

/* Creates a new queue segment and opens it.
 * Errors: INVALID_ARGUMENT (NULL argument, bad name or size), ALREADY_EXISTS,
 * PERMISSION_DENIED, SYSTEM. */
CURRANT_API int currant_queue_create(const currant_create_options* options, currant_queue** out);

/* Creation options added after CURRANT_0.1 (which fixed the size of
 * currant_create_options). struct_size says which fields the caller knows:
 * set it with currant_create_more_options_init, and later fields added to
 * this struct keep their defaults for a caller built against this header. */
typedef struct currant_create_more_options {
    uint32_t struct_size;      /* sizeof(currant_create_more_options) */
    uint32_t result_bytes;     /* largest result a handler may return, 0..1 MiB (default 1024) */
    int32_t group;             /* owning group id of the segment, -1 for the creator's (default -1);
                                  give mode 0660 to let the group in */
} currant_create_more_options;

/* Fills *more with the defaults above and struct_size. Does nothing on NULL. */
CURRANT_API void currant_create_more_options_init(currant_create_more_options* more);

/* currant_queue_create with the options of *more as well (NULL: defaults).
 * Errors: as currant_queue_create; INVALID_ARGUMENT also for a struct_size
 * below 8 or a result_bytes above 1 MiB. */
CURRANT_API int currant_queue_create_with(const currant_create_options* options,
                                          const currant_create_more_options* more, currant_queue** out);

/* Opens an existing queue.
 * Errors: INVALID_ARGUMENT, NOT_FOUND, FOREIGN_SEGMENT, VERSION_MISMATCH,
 * LAYOUT_MISMATCH, SEGMENT_ABANDONED, PERMISSION_DENIED, OTHER_PID_NAMESPACE,
 * PARTICIPANT_TABLE_FULL, SYSTEM. */
CURRANT_API int currant_queue_open(const char* name, currant_queue** out);

/* Detaches and frees the handle; jobs picked through it and not completed
 * are requeued (attempt counted). NULL is a no-op. */
CURRANT_API void currant_queue_close(currant_queue* queue);

/* Retires and unlinks a queue; handles still attached get SEGMENT_RETIRED.
 * Errors: INVALID_ARGUMENT, NOT_FOUND (no such queue), PERMISSION_DENIED, SYSTEM. */
CURRANT_API int currant_queue_remove(const char* name);

/* ---- entrypoints ------------------------------------------------------ */

enum {
    CURRANT_DURABILITY_MEMORY = 0, /* no log; lost at reboot */
    CURRANT_DURABILITY_ASYNC = 1,  /* mirrored to PostgreSQL in batches */
    CURRANT_DURABILITY_SYNC = 2,   /* enqueue returns once mirrored */
    CURRANT_DURABILITY_DEFAULT = 3 /* new: async if currantd mirrors the queue, else memory;
                                      existing: unchanged */
};

/* Declares an entrypoint, or finds the existing one of that name. Its other
 * options take their defaults (lease 30 s, 5 attempts, retry back-off 1 s
 * doubling up to 300 s); re-declaring resets an existing entrypoint's
 * options to these. Names: 1..63 bytes, no control characters.
 * Errors: INVALID_ARGUMENT (NULL, bad name, unknown durability),
 * ENTRYPOINT_TABLE_FULL, SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_declare_entrypoint(currant_queue* queue, const char* name, int durability,
                                           uint32_t* id_out);

/* Looks up an entrypoint by name.
 * Errors: INVALID_ARGUMENT, NOT_FOUND, SEGMENT_RETIRED, SYSTEM. */
CURRANT_API int currant_entrypoint(currant_queue* queue, const char* name, uint32_t* id_out);

/* ---- producing -------------------------------------------------------- */

typedef struct currant_enqueue_options {
    int32_t priority;         /* higher runs first (default 0) */
    int64_t execute_after_ns; /* CLOCK_REALTIME ns since the epoch; 0 = now */
    uint32_t max_attempts;    /* 0 = the entrypoint's default */
    uint32_t arena_wait_ms;   /* wait this long for a free slot when full; 0 = fail at once */
} currant_enqueue_options;

/* Fills *options with the defaults (all zero). Does nothing on NULL. */
CURRANT_API void currant_enqueue_options_init(currant_enqueue_options* options);

typedef struct currant_buffer {
    const void* data;
    size_t size;
} currant_buffer;

/* Copies payload (size bytes, any content; NULL allowed when size is 0) into
 * a new job. opts may be NULL (defaults).
 * Errors: INVALID_ARGUMENT, NOT_FOUND (entrypoint), PAYLOAD_TOO_LARGE,
 * ARENA_FULL, PRIORITY_LANES_FULL, LOG_FULL, TIMED_OUT (sync durability: the
 * job stays queued, do not resubmit), SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_enqueue(currant_queue* queue, uint32_t entrypoint, const void* payload, size_t size,
                                const currant_enqueue_options* opts, uint64_t* id_out);

/* Enqueues count payloads in order. Every payload is validated first (one
 * invalid payload fails the call and nothing is enqueued). Fewer than count
 * are enqueued only when the arena or log runs out; *enqueued_out says how
 * many, and ids_out[0..*enqueued_out) holds their ids. Fails only if none
 * was enqueued (count 0 succeeds with 0).
 * Errors: as currant_enqueue. */
CURRANT_API int currant_enqueue_batch(currant_queue* queue, uint32_t entrypoint, const currant_buffer* payloads,
                                      size_t count, const currant_enqueue_options* opts, uint64_t* ids_out,
                                      size_t* enqueued_out);

/* A slot reserved for writing a payload in place. */
typedef struct currant_reservation {
    uint32_t slot;       /* handle words: pass back unchanged */
    uint32_t entrypoint;
    uint64_t epoch;
    uint64_t id;         /* the job id the commit will return */
    void* payload;       /* writable view into the segment; NULL once committed/abandoned */
    size_t capacity;     /* bytes available at payload */
} currant_reservation;

/* Reserves a free slot of the entrypoint; write up to capacity bytes at
 * out->payload, then currant_commit or currant_abandon.
 * Errors: INVALID_ARGUMENT, NOT_FOUND, ARENA_FULL, SEGMENT_RETIRED,
 * FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_reserve(currant_queue* queue, uint32_t entrypoint, currant_reservation* out);

/* Queues the reserved job with its first size bytes as payload; clears
 * reservation->payload. opts may be NULL.
 * Errors: INVALID_ARGUMENT (NULL, already committed or abandoned),
 * PAYLOAD_TOO_LARGE, STALE_HANDLE, PRIORITY_LANES_FULL, LOG_FULL, TIMED_OUT,
 * SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_commit(currant_queue* queue, currant_reservation* reservation, size_t size,
                               const currant_enqueue_options* opts, uint64_t* id_out);

/* ---- dedupe keys (docs/dedupe.md) ------------------------------------- */

/* What a keyed enqueue does while another job of the entrypoint holds its key. */
enum currant_on_duplicate {
    CURRANT_ON_DUPLICATE_SKIP = 0,   /* enqueue nothing; *id_out = the holder's id, *skipped_out = 1 */
    CURRANT_ON_DUPLICATE_REFUSE = 1  /* enqueue nothing; fail with CURRANT_ERR_ALREADY_EXISTS */
};

#define CURRANT_MAX_DEDUPE_KEY_BYTES 128

/* currant_enqueue with a dedupe key: key_size bytes at key (1..128, no
 * control characters; need not be NUL-terminated), scoped to the
 * entrypoint. While a job of the entrypoint with the same key is queued
 * (delayed included) or picked, no job is added and on_duplicate decides:
 * SKIP returns CURRANT_OK with the holder's id in *id_out and 1 in
 * *skipped_out; REFUSE fails with ALREADY_EXISTS (the message names the
 * key and the holder). The key is free again once its job ends; a retry
 * keeps it. *skipped_out (may be NULL) is 0 when a job was added.
 * Errors: as currant_enqueue; INVALID_ARGUMENT (NULL key, bad key or
 * on_duplicate), ALREADY_EXISTS (REFUSE and the key is held). */
CURRANT_API int currant_enqueue_keyed(currant_queue* queue, uint32_t entrypoint, const void* payload, size_t size,
                                      const currant_enqueue_options* opts, const char* key, size_t key_size,
                                      int on_duplicate, uint64_t* id_out, int* skipped_out);

/* currant_commit with a dedupe key, as currant_enqueue_keyed. A duplicate
 * gives the reserved slot back: the reservation is used up (payload NULL)
 * whether the call skips, refuses or adds the job.
 * Errors: as currant_commit and currant_enqueue_keyed. */
CURRANT_API int currant_commit_keyed(currant_queue* queue, currant_reservation* reservation, size_t size,
                                     const currant_enqueue_options* opts, const char* key, size_t key_size,
                                     int on_duplicate, uint64_t* id_out, int* skipped_out);

/* ---- dependencies (docs/job-dependencies.md, CURRANT_0.8) ------------- */

#define CURRANT_MAX_DEPENDENCIES 16

/* currant_enqueue of a job that runs only after the n jobs at depends_on
 * (1..CURRANT_MAX_DEPENDENCIES distinct ids, duplicates count once, any
 * entrypoint of the queue) ended successful. Until then it is
 * CURRANT_JOB_WAITING: never handed out. When the last one succeeds it is
 * queued (its priority and execute_after apply from then on). If one ends
 * exception or canceled, the job ends CURRANT_JOB_CANCELED with the reason
 * (currant_job_reason), and so do the jobs waiting for it, transitively. A
 * dependency already successful does not make it wait; one already failed
 * ends it canceled at once. Every id must exist before the job does, so no
 * cycle can be made.
 * A dependency that ended long ago counts as it ended, within the queue's
 * recent outcomes (docs/job-dependencies.md); no result retention needed.
 * Errors: as currant_enqueue; INVALID_ARGUMENT (n 0 or above the maximum,
 * NULL depends_on, id 0 or above 2^63-1), NOT_FOUND (a dependency the queue
 * cannot judge: never issued, not committed yet, purged, or ended so long
 * ago that its outcome is no longer recorded; the message says which;
 * nothing is enqueued). */
CURRANT_API int currant_enqueue_after(currant_queue* queue, uint32_t entrypoint, const void* payload, size_t size,
                                      const currant_enqueue_options* opts, const uint64_t* depends_on, size_t n,
                                      uint64_t* id_out);

/* currant_commit with dependencies, as currant_enqueue_after. A dependency
 * on the reservation's own id is INVALID_ARGUMENT. On an error the
 * reservation stays held (commit again or abandon it).
 * Errors: as currant_commit and currant_enqueue_after. */
CURRANT_API int currant_commit_after(currant_queue* queue, currant_reservation* reservation, size_t size,
                                     const currant_enqueue_options* opts, const uint64_t* depends_on, size_t n,
                                     uint64_t* id_out);

/* currant_enqueue_batch where every job of the batch runs only after the n
 * jobs at depends_on, as currant_enqueue_after (CURRANT_0.9). The jobs are
 * enqueued one at a time, in order; fewer than count only when the arena
 * runs out (as currant_enqueue_batch). A bad dependency fails the call
 * before anything is enqueued.
 * Errors: as currant_enqueue_batch and currant_enqueue_after. */
CURRANT_API int currant_enqueue_batch_after(currant_queue* queue, uint32_t entrypoint, const currant_buffer* payloads,
                                            size_t count, const currant_enqueue_options* opts,
                                            const uint64_t* depends_on, size_t n, uint64_t* ids_out,
                                            size_t* enqueued_out);

/* Why a job ended canceled because of a dependency ("canceled: dependency
 * job N ended exception"), while its slot still holds it: copies up to
 * capacity bytes (no NUL added) and the full length to *size_out.
 * Errors: INVALID_ARGUMENT (NULL size_out, NULL buffer with capacity > 0),
 * NOT_FOUND (no such reason: not canceled by a dependency, or its slot was
 * reused), SEGMENT_RETIRED, SYSTEM. */
CURRANT_API int currant_job_reason(currant_queue* queue, uint64_t id, char* buffer, size_t capacity,
                                   size_t* size_out);

/* Jobs of the entrypoint waiting for their dependencies right now.
 * Errors: INVALID_ARGUMENT, NOT_FOUND (entrypoint), SEGMENT_RETIRED, SYSTEM. */
CURRANT_API int currant_waiting_count(currant_queue* queue, uint32_t entrypoint, uint64_t* count_out);

/* Gives the reserved slot back; clears reservation->payload. Abandoning an
 * already committed or abandoned reservation does nothing.
 * Errors: INVALID_ARGUMENT (NULL). */
CURRANT_API int currant_abandon(currant_queue* queue, currant_reservation* reservation);

/* ---- consuming -------------------------------------------------------- */

typedef struct currant_job {
    uint32_t slot;           /* handle words: pass back unchanged */
    uint64_t epoch;
    uint64_t id;             /* job id */
    uint32_t entrypoint;
    int32_t priority;
    uint32_t attempts;       /* 1 on the first delivery */
    int64_t enqueued_at_ns;  /* CLOCK_REALTIME */
    const void* payload;     /* read-only view into the segment, see caveats */
    size_t payload_size;
} currant_job;

/* Picks up to max_jobs jobs from the ep_count entrypoints, waiting up to
 * timeout_ns (negative: forever; 0: do not wait) for the first. Writes
 * *count_out (0 on timeout: a timeout is not an error).
 * Errors: INVALID_ARGUMENT (NULL, ep_count or max_jobs 0), NOT_FOUND
 * (entrypoint id), SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_dequeue(currant_queue* queue, const uint32_t* eps, size_t ep_count, currant_job* jobs_out,
                                size_t max_jobs, int64_t timeout_ns, size_t* count_out);

/* Picks one job, served from this handle's prefetch buffer: when the buffer
 * is empty, one dequeue picks up to the prefetch count (currant_set_prefetch,
 * default 8) from the entrypoints under one lock, waiting up to timeout_ns
 * (negative: forever; 0: do not wait). Prefetched jobs are picked by this
 * handle (leases running from the pick, invisible to other consumers) and
 * are requeued if it closes or dies before handing them out. Writes *job_out
 * and *count_out = 1, or *count_out = 0 on timeout (not an error).
 * Errors: INVALID_ARGUMENT (NULL, ep_count 0), NOT_FOUND (entrypoint id),
 * SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_dequeue_one(currant_queue* queue, const uint32_t* eps, size_t ep_count,
                                    currant_job* job_out, int64_t timeout_ns, size_t* count_out);

/* How many jobs currant_dequeue_one picks at once: 1..1024 (default 8).
 * Errors: INVALID_ARGUMENT (NULL, 0 or more than 1024). */
CURRANT_API int currant_set_prefetch(currant_queue* queue, uint32_t jobs);

/* Completes a job successfully.
 * Errors: INVALID_ARGUMENT, STALE_HANDLE, NOT_OWNER, SEGMENT_RETIRED,
 * FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_ack(currant_queue* queue, const currant_job* job);

/* Deferred ack: records the job's success in this handle's buffer and
 * returns; it is NOT yet a fact when this returns. Buffered acks are applied
 * by currant_flush, every 64 jobs, before this handle sleeps in a dequeue,
 * 100 ms before the earliest lease deadline of a buffered job, and at close;
 * until then the job is still picked, so a crash makes it run again (at
 * least once), never lost. A job whose lease is lost before the flush is
 * skipped silently. The job's payload view is invalid once this returns.
 * Errors: INVALID_ARGUMENT (NULL), SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_ack_deferred(currant_queue* queue, const currant_job* job);

/* Applies the buffered deferred acks now; *acked_out (may be NULL) says how
 * many were applied (stale ones are skipped).
 * Errors: INVALID_ARGUMENT (NULL queue), SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_flush(currant_queue* queue, size_t* acked_out);

/* Acks count jobs; stale ones are skipped. *acked_out says how many were acked.
 * Errors: INVALID_ARGUMENT, SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_ack_batch(currant_queue* queue, const currant_job* jobs, size_t count, size_t* acked_out);

/* Ends a job as `exception` now, whatever attempts remain.
 * Errors: as currant_ack. */
CURRANT_API int currant_fail(currant_queue* queue, const currant_job* job);

/* Requeues the job after delay_ms (negative: the entrypoint's exponential
 * back-off); *requeued_out (may be NULL) is 1, or 0 when the job was past
 * its attempt limit and ended `exception` instead.
 * Errors: as currant_ack. */
CURRANT_API int currant_retry(currant_queue* queue, const currant_job* job, int64_t delay_ms, int* requeued_out);

/* Extends the leases of count jobs; *extended_out (may be NULL) says how
 * many (expired or stale ones are not).
 * Errors: INVALID_ARGUMENT, SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_heartbeat(currant_queue* queue, const currant_job* jobs, size_t count, size_t* extended_out);

/* Cancels a job: currant_cancel_job with the outcome folded into
 * *canceled_out (may be NULL): 1 if it was queued and ended `canceled` now,
 * else 0 (a picked job's holder is asked to stop all the same, see below).
 * Errors: INVALID_ARGUMENT (NULL queue, id 0 or above 2^63-1),
 * SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_cancel(currant_queue* queue, uint64_t id, int* canceled_out);

/* ---- cancellation (docs/cancellation.md; version node CURRANT_0.6) ----- */

enum {
    CURRANT_CANCEL_CANCELED = 0,       /* it was queued: it ended `canceled` now */
    CURRANT_CANCEL_REQUESTED = 1,      /* it is picked: the request is recorded in the segment and
                                          its holder woken; it never runs again and ends `canceled`
                                          unless its handler acks or fails it first */
    CURRANT_CANCEL_NOT_CANCELABLE = 2  /* finished, or unknown to the segment */
};

/* Cancels a job from any process; *outcome_out is one of CURRANT_CANCEL_*.
 * A retry, the holder's death, its close or an expired lease end a job with
 * a pending request `canceled` (never requeued). The request survives the
 * death of any process, the canceller's included, once this returned
 * CURRANT_OK with CURRANT_CANCEL_REQUESTED.
 * Errors: INVALID_ARGUMENT (NULL queue or outcome_out, id 0 or above
 * 2^63-1), SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_cancel_job(currant_queue* queue, uint64_t id, int* outcome_out);

/* Holder side: 1 once a cancel was requested for this pick of the job, else
 * 0 (also for a NULL argument or a handle naming a slot beyond the arena).
 * Not an error-code call: one load from the segment, no system call, cheap
 * enough to test in a handler's loop; safe from any thread while the queue
 * is open. */
CURRANT_API int currant_cancel_requested(const currant_queue* queue, const currant_job* job);

/* Blocks in the kernel until a cancel is requested for one of the count
 * jobs this handle still holds (*index_out is its index), timeout_ns passes
 * (negative: forever) or none of them is still picked by this handle
 * (*index_out is count then). A dequeue of this handle blocked in another
 * thread is not allowed at the same time (a handle is not thread-safe).
 * Errors: INVALID_ARGUMENT (NULL queue, index_out, or jobs with count > 0;
 * a handle naming a slot beyond the arena), SEGMENT_RETIRED,
 * FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_wait_for_cancel(currant_queue* queue, const currant_job* jobs, size_t count,
                                        int64_t timeout_ns, size_t* index_out);

/* The holder gives the job up: it ends `canceled` (with or without a
 * request). Errors: as currant_ack. */
CURRANT_API int currant_ack_canceled(currant_queue* queue, const currant_job* job);

/* ---- results and waiting (docs/results.md; version node CURRANT_0.7) --- */

/* How long jobs of the entrypoint that end successful or canceled are kept
 * with their result (0: not kept, the default); at least this long while
 * the arena has room, and recycled oldest first when it would otherwise be
 * full. Errors: INVALID_ARGUMENT (NULL queue, negative or above 365 days),
 * NOT_FOUND (entrypoint id), SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_set_result_retention(currant_queue* queue, uint32_t entrypoint, int64_t retention_ms);

/* Ends the job `successful` with a result of size bytes (result may be NULL
 * when size is 0: an empty result). A result larger than the queue's result
 * bytes (1024 unless created larger from C++) is INVALID_ARGUMENT naming
 * both sizes, and the job stays picked, untouched.
 * Errors: as currant_ack, and INVALID_ARGUMENT (NULL result with size > 0,
 * oversized result). */
CURRANT_API int currant_ack_with_result(currant_queue* queue, const currant_job* job, const void* result,
                                        size_t size);

typedef struct currant_job_outcome {
    uint64_t id;
    int status;             /* CURRANT_JOB_*: final once finished (also for a job whose slot was
                               reused, while remembered: then no result, finished_at_ns 0), else
                               queued/picked (the wait ended first) or CURRANT_JOB_UNKNOWN (not
                               known to the segment) */
    int finished;           /* 1 if status is final */
    int has_result;         /* 1 if a result is kept: read it with currant_job_result */
    size_t result_size;     /* its size in bytes (0 without one) */
    int64_t finished_at_ns; /* CLOCK_REALTIME, 0 when not known */
} currant_job_outcome;

/* Blocks in the kernel until each of the n jobs has ended (or is not in the
 * segment) or timeout_ns passes (negative: forever; 0: just look), then
 * fills out[i] for ids[i]. Returns at once
 * for jobs already finished; unknown ids are reported, not waited for.
 * Errors: INVALID_ARGUMENT (NULL queue, NULL ids or out with n > 0, an id 0
 * or above 2^63-1), SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_wait(currant_queue* queue, const uint64_t* ids, size_t n, int64_t timeout_ns,
                             currant_job_outcome* out);

/* Copies the kept result of a finished job: *size_out is its size; the
 * bytes are copied into buffer only if size <= capacity (buffer may be NULL
 * with capacity 0 to ask for the size).
 * Errors: INVALID_ARGUMENT (NULL queue or size_out, NULL buffer with
 * capacity > 0, id 0 or above 2^63-1), NOT_FOUND (the job did not end
 * successful with a result, or its result is no longer kept),
 * SEGMENT_RETIRED, SYSTEM. */
CURRANT_API int currant_job_result(currant_queue* queue, uint64_t id, void* buffer, size_t capacity,
                                   size_t* size_out);

/* ---- inspecting ------------------------------------------------------- */

enum {
    CURRANT_JOB_UNKNOWN = 0, /* never existed, or finished so long ago that neither its slot nor the
                                queue's recent outcomes remember how (a finished job whose slot was
                                reused keeps its final status for about 4 x slots further ids) */
    CURRANT_JOB_QUEUED = 1,
    CURRANT_JOB_PICKED = 2,
    CURRANT_JOB_SUCCESSFUL = 3,
    CURRANT_JOB_EXCEPTION = 4,
    CURRANT_JOB_CANCELED = 5,
    CURRANT_JOB_WAITING = 6  /* waiting for its dependencies (docs/job-dependencies.md) */
};

/* Writes the status (CURRANT_JOB_*) of each of the n ids to statuses_out.
 * Errors: INVALID_ARGUMENT, SEGMENT_RETIRED, SYSTEM. */
CURRANT_API int currant_job_status(currant_queue* queue, const uint64_t* ids, size_t n, int* statuses_out);

typedef struct currant_entrypoint_stats {
    uint64_t queued;     /* ready now */
    uint64_t delayed;    /* queued, execute_after in the future */
    uint64_t picked;
    /* totals since creation, all processes */
    uint64_t enqueued;
    uint64_t successful;
    uint64_t failed;     /* ended `exception` */
    uint64_t retried;
    uint64_t canceled;
} currant_entrypoint_stats;

/* Counters of one entrypoint.
 * Errors: INVALID_ARGUMENT, NOT_FOUND (entrypoint id), SEGMENT_RETIRED, SYSTEM. */
CURRANT_API int currant_stats(currant_queue* queue, uint32_t entrypoint, currant_entrypoint_stats* out);

/* ---- pause and limits (docs/limits.md) -------------------------------- */

/* Pause: the entrypoint hands nothing out; enqueues are still accepted and
 * jobs already picked may still be acked. currant_pause returns once no
 * pick from it is in progress; currant_resume wakes its sleeping consumers.
 * The flag lives in the segment: it outlives every process.
 * Errors: INVALID_ARGUMENT (NULL), NOT_FOUND (entrypoint id),
 * SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_pause(currant_queue* queue, uint32_t entrypoint);
CURRANT_API int currant_resume(currant_queue* queue, uint32_t entrypoint);

/* At most `limit` jobs of the entrypoint picked at once, across all
 * processes; exact (counted in the segment under the entrypoint's lock).
 * Jobs already picked count at once; prefetched jobs count.
 * Errors: INVALID_ARGUMENT (NULL, limit < 1 or > 4294967294; nothing
 * changes), NOT_FOUND (entrypoint id), SEGMENT_RETIRED, FORKED_PROCESS. */
CURRANT_API int currant_set_concurrency_limit(currant_queue* queue, uint32_t entrypoint, int64_t limit);
CURRANT_API int currant_remove_concurrency_limit(currant_queue* queue, uint32_t entrypoint);

/* At most `per_second` starts (picks) per second, up to `burst` at once: in
 * any t seconds at most burst + per_second * t starts (a token bucket in the
 * segment). Setting it refills the bucket. A consumer out of tokens sleeps
 * until the next one.
 * Errors: INVALID_ARGUMENT (NULL, per_second not in 1e-6 .. 1e9 or not a
 * number, burst < 1; nothing changes), NOT_FOUND, SEGMENT_RETIRED,
 * FORKED_PROCESS. */
CURRANT_API int currant_set_rate_limit(currant_queue* queue, uint32_t entrypoint, double per_second, int64_t burst);
CURRANT_API int currant_remove_rate_limit(currant_queue* queue, uint32_t entrypoint);

typedef struct currant_limits {
    int paused;            /* 1 while paused */
    uint32_t concurrency;  /* 0: no concurrency limit */
    uint32_t in_flight;    /* picked jobs counted against it */
    double rate;           /* starts per second; 0: no rate limit */
    uint32_t burst;        /* 0 without a rate limit */
} currant_limits;

/* The entrypoint's pause flag and limits.
 * Errors: INVALID_ARGUMENT (NULL), NOT_FOUND (entrypoint id), SEGMENT_RETIRED, SYSTEM. */
CURRANT_API int currant_get_limits(currant_queue* queue, uint32_t entrypoint, currant_limits* out);

/* ---- schedules (CURRANT_0.3; docs/schedules.md) ------------------------ */

/* A named cron schedule enqueues one job (payload, priority) on its
 * entrypoint at each tick. Each tick fires exactly once on the host: any
 * handle waiting in currant_dequeue / currant_dequeue_one (their sleep ends
 * at the next tick) or calling currant_run_schedules fires it. The job's
 * enqueued_at_ns is the tick. Expressions: 5 fields (minute hour
 * day-of-month month day-of-week) or 6 (a second field first), lists,
 * ranges, steps, JAN..DEC, SUN..SAT, @hourly-style aliases; UTC. */

enum {
    CURRANT_MISSED_SKIP = 0,    /* after a gap: fire once, for the latest tick due */
    CURRANT_MISSED_CATCH_UP = 1 /* after a gap: fire each missed tick, at most catch_up_max (the latest) */
};

typedef struct currant_schedule_options {
    const char* name;        /* 1..63 bytes, no control characters, unique in the queue */
    const char* expression;  /* at most 127 bytes */
    uint32_t entrypoint;
    const void* payload;     /* may be NULL when payload_size is 0 */
    size_t payload_size;     /* at most min(payload_bytes, 1024) */
    int32_t priority;
    int missed;              /* CURRANT_MISSED_* (default skip) */
    uint32_t catch_up_max;   /* 1..100000 (default 100) */
} currant_schedule_options;

/* Fills *options with the defaults (skip, catch_up_max 100, the rest zero
 * or NULL). Does nothing on NULL. */
CURRANT_API void currant_schedule_options_init(currant_schedule_options* options);

/* Adds a schedule; its first tick is the first one after now.
 * Errors: INVALID_ARGUMENT (NULL, bad name, bad expression -- the message
 * names the field and the problem --, unknown missed policy, catch_up_max,
 * all 64 schedules in use), NOT_FOUND (entrypoint), ALREADY_EXISTS (name),
 * PAYLOAD_TOO_LARGE, SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_add_schedule(currant_queue* queue, const currant_schedule_options* options);

/* Removes a schedule by name.
 * Errors: INVALID_ARGUMENT (NULL), NOT_FOUND (no schedule of that name),
 * SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_remove_schedule(currant_queue* queue, const char* name);

typedef struct currant_schedule_info {
    char name[64];           /* NUL-terminated */
    char expression[128];    /* NUL-terminated */
    uint32_t entrypoint;
    int32_t priority;
    int missed;              /* CURRANT_MISSED_* */
    uint32_t catch_up_max;
    size_t payload_size;     /* the payload itself is not copied */
    int64_t next_tick_ns;    /* CLOCK_REALTIME: the earliest tick not yet fired */
    int64_t last_tick_ns;    /* the tick of the last job enqueued (0: none yet) */
    uint64_t fired;          /* jobs enqueued by the schedule */
    uint64_t last_job_id;
} currant_schedule_info;

/* Writes up to capacity schedules, ordered by name, to out (NULL allowed
 * when capacity is 0) and the number of schedules to *count_out (which may
 * exceed capacity: call again with a larger array).
 * Errors: INVALID_ARGUMENT (NULL), SEGMENT_RETIRED, SYSTEM. */
CURRANT_API int currant_schedules(currant_queue* queue, currant_schedule_info* out, size_t capacity,
                                  size_t* count_out);

/* Fires the ticks due now; *enqueued_out (may be NULL) says how many jobs.
 * For processes that never dequeue.
 * Errors: INVALID_ARGUMENT (NULL), SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_run_schedules(currant_queue* queue, size_t* enqueued_out);

/* ---- dead jobs (docs/dead-jobs.md), CURRANT_0.5 ------------------------
 *
 * A job that ends `exception` (currant_fail, a retry past its attempt
 * limit, a lease expiry or a dead consumer past it) is kept with its last
 * error text, up to the entrypoint's max_dead (default 1000, at most the
 * arena's slots; the oldest is recycled first), until it is requeued or
 * purged. Caveats: error texts longer than the slot's outcome area (at
 * least 1024 bytes) are cut at a UTF-8 boundary (error_truncated says so);
 * in async/sync durability a purged job's slot is freed once currantd has
 * mirrored its death; after a reboot the dead list starts empty (the deaths
 * and their errors are in PostgreSQL's currant_log). */

/* currant_fail with the failure's text (NUL-terminated; NULL or "" = none),
 * kept with the dead job and mirrored as currant_log.traceback.
 * Errors: as currant_ack. */
CURRANT_API int currant_fail_with_error(currant_queue* queue, const currant_job* job, const char* error);

/* currant_retry with the failure's text, kept as the job's last error (and
 * with the dead job if this retry was past the attempt limit).
 * Errors: as currant_ack. */
CURRANT_API int currant_retry_with_error(currant_queue* queue, const currant_job* job, int64_t delay_ms,
                                         const char* error, int* requeued_out);

#define CURRANT_ALL_ENTRYPOINTS UINT32_MAX

typedef struct currant_dead_job {
    uint64_t id;
    uint32_t entrypoint;
    int32_t priority;
    uint32_t attempts;        /* deliveries made */
    uint32_t max_attempts;
    int64_t enqueued_at_ns;   /* CLOCK_REALTIME */
    int64_t died_at_ns;       /* CLOCK_REALTIME */
    const char* error;        /* the last error text, NUL-terminated ("" = none given) */
    size_t error_size;        /* its length in bytes */
    int error_truncated;      /* 1 if the text was cut to the outcome area */
    const void* payload;      /* a copy */
    size_t payload_size;
} currant_dead_job;

/* Writes up to capacity kept dead jobs of entrypoint (or of every
 * entrypoint: CURRANT_ALL_ENTRYPOINTS), oldest death first per entrypoint,
 * to out (NULL allowed when capacity is 0), and the number of kept dead
 * jobs to *count_out (which may exceed capacity: call again with a larger
 * array). error and payload point into copies owned by the handle, valid
 * until the next currant_dead_jobs on it or its close.
 * Errors: INVALID_ARGUMENT (NULL), NOT_FOUND (entrypoint id),
 * SEGMENT_RETIRED, SYSTEM. */
CURRANT_API int currant_dead_jobs(currant_queue* queue, uint32_t entrypoint, currant_dead_job* out, size_t capacity,
                                  size_t* count_out);

/* Puts a kept dead job back to `queued` at once, with a fresh set of
 * attempts (a handle from its last pick stays stale). *requeued_out (may be
 * NULL) is 1, or 0 if id is not a kept dead job (never existed, purged,
 * recycled, already requeued).
 * Errors: INVALID_ARGUMENT (NULL queue), ALREADY_EXISTS (its dedupe key is
 * held by another queued or picked job: it stays dead; the message names
 * the key and the holder), SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_requeue_dead(currant_queue* queue, uint64_t id, int* requeued_out);

/* Requeues every kept dead job of entrypoint (those whose dedupe key is
 * held stay dead); *requeued_out (may be NULL) says how many.
 * Errors: INVALID_ARGUMENT (NULL queue), NOT_FOUND (entrypoint id),
 * SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_requeue_all_dead(currant_queue* queue, uint32_t entrypoint, size_t* requeued_out);

/* Drops a kept dead job (its status becomes unknown once its slot is
 * freed). *purged_out (may be NULL) is 1, or 0 if id is not a kept dead job.
 * Errors: INVALID_ARGUMENT (NULL queue), SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_purge_dead(currant_queue* queue, uint64_t id, int* purged_out);

/* Drops every kept dead job of entrypoint; *purged_out (may be NULL) says how many.
 * Errors: INVALID_ARGUMENT (NULL queue), NOT_FOUND (entrypoint id),
 * SEGMENT_RETIRED, FORKED_PROCESS, SYSTEM. */
CURRANT_API int currant_purge_all_dead(currant_queue* queue, uint32_t entrypoint, size_t* purged_out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CURRANT_H */
