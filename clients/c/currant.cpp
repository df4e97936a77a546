// The C ABI (currant.h) over currant::Queue. Every exported function runs its
// body through guarded(), which turns any exception into a status code and a
// per-thread message; nothing C++ crosses the boundary.
#include "currant.h"

#include <currant/queue.hpp>

#include <algorithm>
#include <cstring>
#include <functional>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

struct currant_queue {
    explicit currant_queue(currant::Queue&& q) : queue(std::move(q)) {}
    currant::Queue queue;
    // Scratch buffers reused across calls so batches do not allocate each time.
    std::vector<currant::Job> jobs;
    std::vector<currant::JobHandle> handles;
    std::vector<std::span<const std::byte>> spans;
    // currant_dead_jobs: the copies its error and payload pointers name,
    // valid until its next call on this handle.
    std::vector<currant::DeadJob> dead;
};

namespace {

thread_local std::string last_error;

constexpr int code_of(currant::Errc e) noexcept { return -static_cast<int>(e); }

static_assert(code_of(currant::Errc::invalid_argument) == CURRANT_ERR_INVALID_ARGUMENT);
static_assert(code_of(currant::Errc::arena_full) == CURRANT_ERR_ARENA_FULL);
static_assert(code_of(currant::Errc::stale_handle) == CURRANT_ERR_STALE_HANDLE);
static_assert(code_of(currant::Errc::system_error) == CURRANT_ERR_SYSTEM);
static_assert(static_cast<int>(currant::JobStatus::canceled) == CURRANT_JOB_CANCELED);
static_assert(static_cast<int>(currant::JobStatus::waiting) == CURRANT_JOB_WAITING);
static_assert(static_cast<int>(currant::JobStatus::exception) == CURRANT_JOB_EXCEPTION);
static_assert(static_cast<int>(currant::Durability::sync) == CURRANT_DURABILITY_SYNC);

// Thrown for a NULL or otherwise unusable argument found by this layer.
struct BadArgument {
    std::string message;
};

int fail_with(const char* function, int code, const char* message) noexcept {
    try {
        last_error = function;
        last_error += ": ";
        last_error += message;
        last_error += " [";
        last_error += currant_strerror(code);
        last_error += "]";
    } catch (...) {
        // Out of memory while formatting: keep what fits, the code still tells.
    }
    return code;
}

template <typename F>
int guarded(const char* function, F&& body) noexcept {
    try {
        body();
        return CURRANT_OK;
    } catch (const BadArgument& e) {
        return fail_with(function, CURRANT_ERR_INVALID_ARGUMENT, e.message.c_str());
    } catch (const currant::Error& e) {
        return fail_with(function, code_of(e.code()), e.what());
    } catch (const std::bad_alloc&) {
        return fail_with(function, CURRANT_ERR_SYSTEM, "out of memory");
    } catch (const std::exception& e) {
        std::string message;
        try {
            message = std::string("internal error: ") + e.what();
        } catch (...) {
        }
        return fail_with(function, CURRANT_ERR_SYSTEM, message.c_str());
    } catch (...) {
        return fail_with(function, CURRANT_ERR_SYSTEM, "internal error: unknown exception");
    }
}

void require(const void* pointer, const char* argument) {
    if (pointer == nullptr) throw BadArgument{std::string("argument '") + argument + "' is NULL"};
}

currant::QueueOptions queue_options_of(const currant_create_options* options) {
    require(options, "options");
    require(options->name, "options->name");
    currant::QueueOptions o;
    o.name = options->name;
    o.slots = options->slots;
    o.payload_bytes = options->payload_bytes;
    o.max_entrypoints = options->max_entrypoints;
    o.max_participants = options->max_participants;
    o.log_capacity = options->log_capacity;
    o.host_id = options->host_id;
    o.mode = options->mode;
    return o;
}

// A field the caller's struct_size covers (a caller built against an older
// header passes a shorter struct: later fields keep their defaults).
template <typename Field>
bool caller_knows(const currant_create_more_options* more, const Field currant_create_more_options::*field) {
    const auto end = reinterpret_cast<const char*>(&(more->*field)) + sizeof(Field);
    return std::size_t(end - reinterpret_cast<const char*>(more)) <= more->struct_size;
}

currant::EnqueueOptions to_options(const currant_enqueue_options* opts) {
    currant::EnqueueOptions o;
    if (opts != nullptr) {
        o.priority = opts->priority;
        o.execute_after_ns = opts->execute_after_ns;
        o.max_attempts = opts->max_attempts;
        o.arena_wait = std::chrono::milliseconds(opts->arena_wait_ms);
    }
    return o;
}

currant::JobHandle to_handle(const currant_job& job) noexcept {
    return currant::JobHandle{job.slot, job.epoch, job.id};
}

std::span<const std::byte> payload_span(const void* data, std::size_t size, const char* argument) {
    if (data == nullptr && size != 0)
        throw BadArgument{std::string("argument '") + argument + "' is NULL with a non-zero size"};
    return {static_cast<const std::byte*>(data), size};
}

void copy_job(const currant::Job& j, currant_job& c) noexcept {
    c.slot = j.handle.slot;
    c.epoch = j.handle.epoch;
    c.id = j.handle.id;
    c.entrypoint = j.entrypoint;
    c.priority = j.priority;
    c.attempts = j.attempts;
    c.enqueued_at_ns = j.enqueued_at_ns;
    c.payload = j.payload.data();
    c.payload_size = j.payload.size();
}

const std::vector<currant::JobHandle>& handles_of(currant_queue* queue, const currant_job* jobs,
                                                  std::size_t count) {
    queue->handles.clear();
    queue->handles.reserve(count);
    for (std::size_t i = 0; i < count; ++i) queue->handles.push_back(to_handle(jobs[i]));
    return queue->handles;
}

} // namespace

extern "C" {

const char* currant_strerror(int code) {
    if (code > 0 || code < CURRANT_ERR_SYSTEM) return "unknown_error";
    // errc_name returns literals, so the view is NUL-terminated.
    return currant::errc_name(static_cast<currant::Errc>(-code)).data();
}

const char* currant_last_error(void) { return last_error.c_str(); }

void currant_create_options_init(currant_create_options* options) {
    if (options == nullptr) return;
    const currant::QueueOptions defaults;
    options->name = nullptr;
    options->slots = defaults.slots;
    options->payload_bytes = defaults.payload_bytes;
    options->max_entrypoints = defaults.max_entrypoints;
    options->max_participants = defaults.max_participants;
    options->log_capacity = defaults.log_capacity;
    options->host_id = defaults.host_id;
    options->mode = defaults.mode;
}

void currant_enqueue_options_init(currant_enqueue_options* options) {
    if (options == nullptr) return;
    *options = currant_enqueue_options{};
}

void currant_create_more_options_init(currant_create_more_options* more) {
    if (more == nullptr) return;
    const currant::QueueOptions defaults;
    more->struct_size = sizeof(currant_create_more_options);
    more->result_bytes = defaults.result_bytes;
    more->group = -1;
}


int currant_queue_create(const currant_create_options* options, currant_queue** out) {
    return guarded("currant_queue_create", [&] {
        currant::QueueOptions o = queue_options_of(options);
        require(out, "out");
        *out = new currant_queue(currant::Queue::create(o));
    });
}

int currant_queue_create_with(const currant_create_options* options, const currant_create_more_options* more,
                              currant_queue** out) {
    return guarded("currant_queue_create_with", [&] {
        currant::QueueOptions o = queue_options_of(options);
        require(out, "out");
        if (more != nullptr) {
            if (more->struct_size < 8)
                throw BadArgument{"more->struct_size is " + std::to_string(more->struct_size) +
                                  "; set it with currant_create_more_options_init"};
            if (caller_knows(more, &currant_create_more_options::result_bytes)) o.result_bytes = more->result_bytes;
            if (caller_knows(more, &currant_create_more_options::group) && more->group != -1) {
                if (more->group < 0)
                    throw BadArgument{"more->group is " + std::to_string(more->group) + "; give a group id or -1"};
                o.group = gid_t(more->group);
            }
        }
        *out = new currant_queue(currant::Queue::create(o));
    });
}

int currant_queue_open(const char* name, currant_queue** out) {
    return guarded("currant_queue_open", [&] {
        require(name, "name");
        require(out, "out");
        *out = new currant_queue(currant::Queue::open(name));
    });
}

void currant_queue_close(currant_queue* queue) {
    if (queue == nullptr) return;
    // close() may throw (for example on a retired segment); the handle is
    // freed either way and the destructor does not retry the close.
    (void)guarded("currant_queue_close", [&] { queue->queue.close(); });
    delete queue;
}

int currant_queue_remove(const char* name) {
    return guarded("currant_queue_remove", [&] {
        require(name, "name");
        if (!currant::Queue::remove(name))
            throw currant::Error(currant::Errc::not_found, std::string("queue '") + name + "' does not exist");
    });
}

int currant_declare_entrypoint(currant_queue* queue, const char* name, int durability, uint32_t* id_out) {
    return guarded("currant_declare_entrypoint", [&] {
        require(queue, "queue");
        require(name, "name");
        require(id_out, "id_out");
        if (durability < CURRANT_DURABILITY_MEMORY || durability > CURRANT_DURABILITY_DEFAULT)
            throw BadArgument{"durability " + std::to_string(durability) +
                              " is not CURRANT_DURABILITY_MEMORY, _ASYNC, _SYNC or _DEFAULT"};
        currant::EntrypointOptions o;
        if (durability != CURRANT_DURABILITY_DEFAULT) o.durability = static_cast<currant::Durability>(durability);
        *id_out = queue->queue.declare_entrypoint(name, o);
    });
}

int currant_entrypoint(currant_queue* queue, const char* name, uint32_t* id_out) {
    return guarded("currant_entrypoint", [&] {
        require(queue, "queue");
        require(name, "name");
        require(id_out, "id_out");
        *id_out = queue->queue.entrypoint(name);
    });
}

int currant_enqueue(currant_queue* queue, uint32_t entrypoint, const void* payload, size_t size,
                    const currant_enqueue_options* opts, uint64_t* id_out) {
    return guarded("currant_enqueue", [&] {
        require(queue, "queue");
        require(id_out, "id_out");
        *id_out = queue->queue.enqueue(entrypoint, payload_span(payload, size, "payload"), to_options(opts));
    });
}

namespace {
// currant_enqueue_batch and currant_enqueue_batch_after: the payloads are
// checked first, then options_of() builds the options (so a bad payload is
// reported before bad dependencies), then the batch is enqueued.
void enqueue_batch_with(currant_queue* queue, uint32_t entrypoint, const currant_buffer* payloads, size_t count,
                        const std::function<currant::EnqueueOptions()>& options_of, uint64_t* ids_out,
                        size_t* enqueued_out) {
    require(queue, "queue");
    require(enqueued_out, "enqueued_out");
    if (count == 0) {
        *enqueued_out = 0;
        return;
    }
    require(payloads, "payloads");
    require(ids_out, "ids_out");
    queue->spans.clear();
    queue->spans.reserve(count);
    for (std::size_t i = 0; i < count; ++i)
        queue->spans.push_back(payload_span(payloads[i].data, payloads[i].size, "payloads[i].data"));
    const currant::EnqueueOptions options = options_of();
    *enqueued_out =
        queue->queue.enqueue_batch(entrypoint, queue->spans, std::span<currant::JobId>(ids_out, count), options);
}
} // namespace

int currant_enqueue_batch(currant_queue* queue, uint32_t entrypoint, const currant_buffer* payloads, size_t count,
                          const currant_enqueue_options* opts, uint64_t* ids_out, size_t* enqueued_out) {
    return guarded("currant_enqueue_batch", [&] {
        enqueue_batch_with(queue, entrypoint, payloads, count, [&] { return to_options(opts); }, ids_out,
                           enqueued_out);
    });
}

int currant_reserve(currant_queue* queue, uint32_t entrypoint, currant_reservation* out) {
    return guarded("currant_reserve", [&] {
        require(queue, "queue");
        require(out, "out");
        const currant::Reservation r = queue->queue.reserve(entrypoint);
        out->slot = r.slot;
        out->entrypoint = r.entrypoint;
        out->epoch = r.epoch;
        out->id = r.id;
        out->payload = r.payload.data();
        out->capacity = r.payload.size();
    });
}

namespace {
currant::Reservation to_reservation(const currant_reservation& r) {
    currant::Reservation res;
    res.slot = r.slot;
    res.epoch = r.epoch;
    res.entrypoint = r.entrypoint;
    res.id = r.id;
    res.payload = std::span<std::byte>(static_cast<std::byte*>(r.payload), r.capacity);
    return res;
}
} // namespace

namespace {
// currant_commit and currant_commit_after: checks the reservation, then
// commits it with the options options_of() builds (after the checks, so a
// used reservation is reported before bad options); a failure leaves the
// reservation held.
void commit_reservation(currant_queue* queue, currant_reservation* reservation, size_t size,
                        const std::function<currant::EnqueueOptions()>& options_of, uint64_t* id_out) {
    require(queue, "queue");
    require(reservation, "reservation");
    require(id_out, "id_out");
    if (reservation->payload == nullptr) throw BadArgument{"reservation was already committed or abandoned"};
    if (size > reservation->capacity)
        throw currant::Error(currant::Errc::payload_too_large,
                             "payload of " + std::to_string(size) + " bytes exceeds the reservation's " +
                                 std::to_string(reservation->capacity) + " bytes");
    const currant::EnqueueOptions options = options_of();
    currant::Reservation r = to_reservation(*reservation);
    const currant::JobId id = queue->queue.commit(r, size, options);
    reservation->payload = nullptr;
    reservation->capacity = 0;
    *id_out = id;
}
} // namespace

int currant_commit(currant_queue* queue, currant_reservation* reservation, size_t size,
                   const currant_enqueue_options* opts, uint64_t* id_out) {
    return guarded("currant_commit", [&] {
        commit_reservation(queue, reservation, size, [&] { return to_options(opts); }, id_out);
    });
}

namespace {
currant::EnqueueOptions dependent_options(const currant_enqueue_options* opts, const uint64_t* depends_on, size_t n) {
    require(depends_on, "depends_on");
    if (n == 0) throw BadArgument{"no dependencies given (n is 0): use currant_enqueue"};
    if (n > 1024) throw BadArgument{std::to_string(n) + " dependencies given; a job may have at most " +
                                    std::to_string(CURRANT_MAX_DEPENDENCIES)};
    currant::EnqueueOptions o = to_options(opts);
    o.depends_on.assign(depends_on, depends_on + n);
    return o;
}
} // namespace

int currant_enqueue_after(currant_queue* queue, uint32_t entrypoint, const void* payload, size_t size,
                          const currant_enqueue_options* opts, const uint64_t* depends_on, size_t n, uint64_t* id_out) {
    return guarded("currant_enqueue_after", [&] {
        require(queue, "queue");
        require(id_out, "id_out");
        *id_out = queue->queue.enqueue(entrypoint, payload_span(payload, size, "payload"),
                                       dependent_options(opts, depends_on, n));
    });
}

int currant_commit_after(currant_queue* queue, currant_reservation* reservation, size_t size,
                         const currant_enqueue_options* opts, const uint64_t* depends_on, size_t n, uint64_t* id_out) {
    return guarded("currant_commit_after", [&] {
        commit_reservation(queue, reservation, size, [&] { return dependent_options(opts, depends_on, n); }, id_out);
    });
}

int currant_enqueue_batch_after(currant_queue* queue, uint32_t entrypoint, const currant_buffer* payloads,
                                size_t count, const currant_enqueue_options* opts, const uint64_t* depends_on,
                                size_t n, uint64_t* ids_out, size_t* enqueued_out) {
    return guarded("currant_enqueue_batch_after", [&] {
        enqueue_batch_with(queue, entrypoint, payloads, count,
                           [&] { return dependent_options(opts, depends_on, n); }, ids_out, enqueued_out);
    });
}

int currant_job_reason(currant_queue* queue, uint64_t id, char* buffer, size_t capacity, size_t* size_out) {
    return guarded("currant_job_reason", [&] {
        require(queue, "queue");
        require(size_out, "size_out");
        if (buffer == nullptr && capacity > 0) throw BadArgument{"argument 'buffer' is NULL with a non-zero capacity"};
        const currant::JobId ids[] = {id};
        const currant::JobState state = queue->queue.status(ids).at(0);
        if (state.reason.empty())
            throw currant::Error(currant::Errc::not_found,
                                 "job " + std::to_string(id) + " has no cancel reason (not canceled by a dependency, "
                                 "or its slot was reused)");
        if (capacity > 0) std::memcpy(buffer, state.reason.data(), std::min(capacity, state.reason.size()));
        *size_out = state.reason.size();
    });
}

int currant_waiting_count(currant_queue* queue, uint32_t entrypoint, uint64_t* count_out) {
    return guarded("currant_waiting_count", [&] {
        require(queue, "queue");
        require(count_out, "count_out");
        for (const currant::EntrypointStats& s : queue->queue.stats())
            if (s.id == entrypoint) {
                *count_out = s.waiting;
                return;
            }
        throw currant::Error(currant::Errc::not_found, "no entrypoint " + std::to_string(entrypoint));
    });
}

namespace {
currant::EnqueueOptions keyed_options(const currant_enqueue_options* opts, const char* key, size_t key_size,
                                      int on_duplicate) {
    require(key, "key");
    if (on_duplicate != CURRANT_ON_DUPLICATE_SKIP && on_duplicate != CURRANT_ON_DUPLICATE_REFUSE)
        throw BadArgument{"on_duplicate is " + std::to_string(on_duplicate) +
                          "; expected CURRANT_ON_DUPLICATE_SKIP or CURRANT_ON_DUPLICATE_REFUSE"};
    currant::EnqueueOptions o = to_options(opts);
    o.dedupe_key.emplace(key, key_size); // the core checks length and characters
    o.on_duplicate = on_duplicate == CURRANT_ON_DUPLICATE_REFUSE ? currant::OnDuplicate::refuse
                                                                 : currant::OnDuplicate::skip;
    return o;
}
} // namespace

int currant_enqueue_keyed(currant_queue* queue, uint32_t entrypoint, const void* payload, size_t size,
                          const currant_enqueue_options* opts, const char* key, size_t key_size, int on_duplicate,
                          uint64_t* id_out, int* skipped_out) {
    return guarded("currant_enqueue_keyed", [&] {
        require(queue, "queue");
        require(id_out, "id_out");
        if (skipped_out) *skipped_out = 0;
        const currant::EnqueueOptions options = keyed_options(opts, key, key_size, on_duplicate);
        *id_out = queue->queue.enqueue(entrypoint, payload_span(payload, size, "payload"), options);
        if (skipped_out) *skipped_out = queue->queue.last_enqueue_skipped() ? 1 : 0;
    });
}

int currant_commit_keyed(currant_queue* queue, currant_reservation* reservation, size_t size,
                         const currant_enqueue_options* opts, const char* key, size_t key_size, int on_duplicate,
                         uint64_t* id_out, int* skipped_out) {
    return guarded("currant_commit_keyed", [&] {
        require(queue, "queue");
        require(reservation, "reservation");
        require(id_out, "id_out");
        if (skipped_out) *skipped_out = 0;
        if (reservation->payload == nullptr)
            throw BadArgument{"reservation was already committed or abandoned"};
        if (size > reservation->capacity)
            throw currant::Error(currant::Errc::payload_too_large,
                                 "payload of " + std::to_string(size) + " bytes exceeds the reservation's " +
                                     std::to_string(reservation->capacity) + " bytes");
        const currant::EnqueueOptions options = keyed_options(opts, key, key_size, on_duplicate);
        currant::Reservation r = to_reservation(*reservation);
        currant::JobId id = 0;
        try {
            id = queue->queue.commit(r, size, options);
        } catch (...) {
            if (r.payload.data() == nullptr) { // used up (a refused duplicate)
                reservation->payload = nullptr;
                reservation->capacity = 0;
            }
            throw;
        }
        reservation->payload = nullptr;
        reservation->capacity = 0;
        *id_out = id;
        if (skipped_out) *skipped_out = queue->queue.last_enqueue_skipped() ? 1 : 0;
    });
}

int currant_abandon(currant_queue* queue, currant_reservation* reservation) {
    return guarded("currant_abandon", [&] {
        require(queue, "queue");
        require(reservation, "reservation");
        if (reservation->payload == nullptr) return;
        currant::Reservation r = to_reservation(*reservation);
        queue->queue.abandon(r);
        reservation->payload = nullptr;
        reservation->capacity = 0;
    });
}

int currant_dequeue(currant_queue* queue, const uint32_t* eps, size_t ep_count, currant_job* jobs_out,
                    size_t max_jobs, int64_t timeout_ns, size_t* count_out) {
    return guarded("currant_dequeue", [&] {
        require(queue, "queue");
        require(eps, "eps");
        require(jobs_out, "jobs_out");
        require(count_out, "count_out");
        if (ep_count == 0) throw BadArgument{"ep_count is 0: name at least one entrypoint"};
        if (max_jobs == 0) throw BadArgument{"max_jobs is 0: room for at least one job is needed"};
        queue->jobs.resize(max_jobs);
        const std::size_t n = queue->queue.dequeue(std::span<const currant::EntrypointId>(eps, ep_count),
                                                   std::span<currant::Job>(queue->jobs.data(), max_jobs),
                                                   std::chrono::nanoseconds(timeout_ns));
        for (std::size_t i = 0; i < n; ++i) copy_job(queue->jobs[i], jobs_out[i]);
        *count_out = n;
    });
}

int currant_dequeue_one(currant_queue* queue, const uint32_t* eps, size_t ep_count, currant_job* job_out,
                        int64_t timeout_ns, size_t* count_out) {
    return guarded("currant_dequeue_one", [&] {
        require(queue, "queue");
        require(eps, "eps");
        require(job_out, "job_out");
        require(count_out, "count_out");
        if (ep_count == 0) throw BadArgument{"ep_count is 0: name at least one entrypoint"};
        const std::optional<currant::Job> job = queue->queue.dequeue_one(
            std::span<const currant::EntrypointId>(eps, ep_count), std::chrono::nanoseconds(timeout_ns));
        if (job) copy_job(*job, *job_out);
        *count_out = job ? 1 : 0;
    });
}

int currant_set_prefetch(currant_queue* queue, uint32_t jobs) {
    return guarded("currant_set_prefetch", [&] {
        require(queue, "queue");
        queue->queue.set_prefetch(jobs);
    });
}

int currant_ack(currant_queue* queue, const currant_job* job) {
    return guarded("currant_ack", [&] {
        require(queue, "queue");
        require(job, "job");
        queue->queue.ack(to_handle(*job));
    });
}

int currant_ack_batch(currant_queue* queue, const currant_job* jobs, size_t count, size_t* acked_out) {
    return guarded("currant_ack_batch", [&] {
        require(queue, "queue");
        require(acked_out, "acked_out");
        if (count == 0) {
            *acked_out = 0;
            return;
        }
        require(jobs, "jobs");
        *acked_out = queue->queue.ack(std::span<const currant::JobHandle>(handles_of(queue, jobs, count)));
    });
}

int currant_ack_deferred(currant_queue* queue, const currant_job* job) {
    return guarded("currant_ack_deferred", [&] {
        require(queue, "queue");
        require(job, "job");
        queue->queue.ack_deferred(to_handle(*job));
    });
}

int currant_flush(currant_queue* queue, size_t* acked_out) {
    return guarded("currant_flush", [&] {
        require(queue, "queue");
        const std::size_t acked = queue->queue.flush();
        if (acked_out != nullptr) *acked_out = acked;
    });
}

int currant_fail(currant_queue* queue, const currant_job* job) {
    return guarded("currant_fail", [&] {
        require(queue, "queue");
        require(job, "job");
        queue->queue.fail(to_handle(*job));
    });
}

int currant_retry(currant_queue* queue, const currant_job* job, int64_t delay_ms, int* requeued_out) {
    return guarded("currant_retry", [&] {
        require(queue, "queue");
        require(job, "job");
        std::optional<std::chrono::milliseconds> delay;
        if (delay_ms >= 0) delay = std::chrono::milliseconds(delay_ms);
        const bool requeued = queue->queue.retry(to_handle(*job), delay);
        if (requeued_out != nullptr) *requeued_out = requeued ? 1 : 0;
    });
}

int currant_heartbeat(currant_queue* queue, const currant_job* jobs, size_t count, size_t* extended_out) {
    return guarded("currant_heartbeat", [&] {
        require(queue, "queue");
        std::size_t n = 0;
        if (count != 0) {
            require(jobs, "jobs");
            n = queue->queue.heartbeat(handles_of(queue, jobs, count));
        }
        if (extended_out != nullptr) *extended_out = n;
    });
}

int currant_cancel(currant_queue* queue, uint64_t id, int* canceled_out) {
    return guarded("currant_cancel", [&] {
        require(queue, "queue");
        const bool canceled = queue->queue.cancel(id) == currant::CancelOutcome::canceled;
        if (canceled_out != nullptr) *canceled_out = canceled ? 1 : 0;
    });
}

static_assert(static_cast<int>(currant::CancelOutcome::canceled) == CURRANT_CANCEL_CANCELED);
static_assert(static_cast<int>(currant::CancelOutcome::requested) == CURRANT_CANCEL_REQUESTED);
static_assert(static_cast<int>(currant::CancelOutcome::not_cancelable) == CURRANT_CANCEL_NOT_CANCELABLE);

int currant_cancel_job(currant_queue* queue, uint64_t id, int* outcome_out) {
    return guarded("currant_cancel_job", [&] {
        require(queue, "queue");
        require(outcome_out, "outcome_out");
        *outcome_out = static_cast<int>(queue->queue.cancel(id));
    });
}

int currant_cancel_requested(const currant_queue* queue, const currant_job* job) {
    if (queue == nullptr || job == nullptr) return 0;
    return queue->queue.cancel_requested(to_handle(*job)) ? 1 : 0;
}

int currant_wait_for_cancel(currant_queue* queue, const currant_job* jobs, size_t count, int64_t timeout_ns,
                            size_t* index_out) {
    return guarded("currant_wait_for_cancel", [&] {
        require(queue, "queue");
        require(index_out, "index_out");
        if (count != 0) require(jobs, "jobs");
        const auto found = queue->queue.wait_for_cancel(handles_of(queue, jobs, count), std::chrono::nanoseconds(timeout_ns));
        *index_out = found.value_or(count);
    });
}

int currant_ack_canceled(currant_queue* queue, const currant_job* job) {
    return guarded("currant_ack_canceled", [&] {
        require(queue, "queue");
        require(job, "job");
        queue->queue.ack_canceled(to_handle(*job));
    });
}

int currant_set_result_retention(currant_queue* queue, uint32_t entrypoint, int64_t retention_ms) {
    return guarded("currant_set_result_retention", [&] {
        require(queue, "queue");
        queue->queue.set_result_retention(entrypoint, std::chrono::milliseconds(retention_ms));
    });
}

int currant_ack_with_result(currant_queue* queue, const currant_job* job, const void* result, size_t size) {
    return guarded("currant_ack_with_result", [&] {
        require(queue, "queue");
        require(job, "job");
        queue->queue.ack(to_handle(*job), payload_span(result, size, "result"));
    });
}

int currant_wait(currant_queue* queue, const uint64_t* ids, size_t n, int64_t timeout_ns, currant_job_outcome* out) {
    return guarded("currant_wait", [&] {
        require(queue, "queue");
        if (n == 0) return;
        require(ids, "ids");
        require(out, "out");
        const std::vector<currant::JobOutcome> outcomes =
            queue->queue.wait(std::span<const currant::JobId>(ids, n), std::chrono::nanoseconds(timeout_ns));
        for (std::size_t i = 0; i < n && i < outcomes.size(); ++i) {
            const currant::JobOutcome& o = outcomes[i];
            out[i].id = o.id;
            out[i].status = static_cast<int>(o.status);
            out[i].finished = o.finished ? 1 : 0;
            out[i].has_result = o.result ? 1 : 0;
            out[i].result_size = o.result ? o.result->size() : 0;
            out[i].finished_at_ns = o.finished_at_ns;
        }
    });
}

int currant_job_result(currant_queue* queue, uint64_t id, void* buffer, size_t capacity, size_t* size_out) {
    return guarded("currant_job_result", [&] {
        require(queue, "queue");
        require(size_out, "size_out");
        if (capacity != 0) require(buffer, "buffer");
        const currant::JobId ids[] = {id};
        const currant::JobOutcome outcome = queue->queue.wait(ids, std::chrono::nanoseconds(0)).at(0);
        if (!outcome.result)
            throw currant::Error(currant::Errc::not_found,
                                 "queue '" + queue->queue.name() + "': job " + std::to_string(id) + " has no kept result (it is " +
                                     std::string(currant::job_status_name(outcome.status)) +
                                     (outcome.status == currant::JobStatus::successful ? ", without a result or no longer kept)" : ")"));
        if (outcome.result->size() <= capacity && !outcome.result->empty())
            std::memcpy(buffer, outcome.result->data(), outcome.result->size());
        *size_out = outcome.result->size();
    });
}

int currant_job_status(currant_queue* queue, const uint64_t* ids, size_t n, int* statuses_out) {
    return guarded("currant_job_status", [&] {
        require(queue, "queue");
        if (n == 0) return;
        require(ids, "ids");
        require(statuses_out, "statuses_out");
        const std::vector<currant::JobState> states =
            queue->queue.status(std::span<const currant::JobId>(ids, n));
        for (std::size_t i = 0; i < n; ++i)
            statuses_out[i] = i < states.size() ? static_cast<int>(states[i].status) : CURRANT_JOB_UNKNOWN;
    });
}

int currant_stats(currant_queue* queue, uint32_t entrypoint, currant_entrypoint_stats* out) {
    return guarded("currant_stats", [&] {
        require(queue, "queue");
        require(out, "out");
        for (const currant::EntrypointStats& s : queue->queue.stats()) {
            if (s.id != entrypoint) continue;
            out->queued = s.queued;
            out->delayed = s.delayed;
            out->picked = s.picked;
            out->enqueued = s.enqueued;
            out->successful = s.successful;
            out->failed = s.failed;
            out->retried = s.retried;
            out->canceled = s.canceled;
            return;
        }
        throw currant::Error(currant::Errc::not_found, "queue '" + queue->queue.name() + "': no entrypoint with id " +
                                                           std::to_string(entrypoint));
    });
}

int currant_pause(currant_queue* queue, uint32_t entrypoint) {
    return guarded("currant_pause", [&] {
        require(queue, "queue");
        queue->queue.pause(entrypoint);
    });
}

int currant_resume(currant_queue* queue, uint32_t entrypoint) {
    return guarded("currant_resume", [&] {
        require(queue, "queue");
        queue->queue.resume(entrypoint);
    });
}

int currant_set_concurrency_limit(currant_queue* queue, uint32_t entrypoint, int64_t limit) {
    return guarded("currant_set_concurrency_limit", [&] {
        require(queue, "queue");
        queue->queue.set_concurrency_limit(entrypoint, limit);
    });
}

int currant_remove_concurrency_limit(currant_queue* queue, uint32_t entrypoint) {
    return guarded("currant_remove_concurrency_limit", [&] {
        require(queue, "queue");
        queue->queue.set_concurrency_limit(entrypoint, std::nullopt);
    });
}

int currant_set_rate_limit(currant_queue* queue, uint32_t entrypoint, double per_second, int64_t burst) {
    return guarded("currant_set_rate_limit", [&] {
        require(queue, "queue");
        queue->queue.set_rate_limit(entrypoint, per_second, burst);
    });
}

int currant_remove_rate_limit(currant_queue* queue, uint32_t entrypoint) {
    return guarded("currant_remove_rate_limit", [&] {
        require(queue, "queue");
        queue->queue.set_rate_limit(entrypoint, std::nullopt);
    });
}

int currant_get_limits(currant_queue* queue, uint32_t entrypoint, currant_limits* out) {
    return guarded("currant_get_limits", [&] {
        require(queue, "queue");
        require(out, "out");
        const currant::EntrypointLimits limits = queue->queue.limits(entrypoint);
        out->paused = limits.paused ? 1 : 0;
        out->concurrency = limits.concurrency.value_or(0);
        out->in_flight = limits.in_flight;
        out->rate = limits.rate.value_or(0.0);
        out->burst = limits.burst;
    });
}

void currant_schedule_options_init(currant_schedule_options* options) {
    if (options == nullptr) return;
    *options = currant_schedule_options{};
    options->missed = CURRANT_MISSED_SKIP;
    options->catch_up_max = 100;
}

int currant_add_schedule(currant_queue* queue, const currant_schedule_options* options) {
    return guarded("currant_add_schedule", [&] {
        require(queue, "queue");
        require(options, "options");
        require(options->name, "options->name");
        require(options->expression, "options->expression");
        if (options->missed != CURRANT_MISSED_SKIP && options->missed != CURRANT_MISSED_CATCH_UP)
            throw BadArgument{"options->missed is " + std::to_string(options->missed) +
                              "; expected CURRANT_MISSED_SKIP or CURRANT_MISSED_CATCH_UP"};
        currant::ScheduleOptions o;
        o.name = options->name;
        o.expression = options->expression;
        o.entrypoint = options->entrypoint;
        const auto payload = payload_span(options->payload, options->payload_size, "options->payload");
        o.payload.assign(payload.begin(), payload.end());
        o.priority = options->priority;
        o.missed = options->missed == CURRANT_MISSED_CATCH_UP ? currant::MissedTicks::catch_up
                                                               : currant::MissedTicks::skip;
        o.catch_up_max = options->catch_up_max;
        queue->queue.add_schedule(o);
    });
}

int currant_remove_schedule(currant_queue* queue, const char* name) {
    return guarded("currant_remove_schedule", [&] {
        require(queue, "queue");
        require(name, "name");
        queue->queue.remove_schedule(name);
    });
}

int currant_schedules(currant_queue* queue, currant_schedule_info* out, size_t capacity, size_t* count_out) {
    return guarded("currant_schedules", [&] {
        require(queue, "queue");
        require(count_out, "count_out");
        if (capacity != 0) require(out, "out");
        const std::vector<currant::ScheduleInfo> all = queue->queue.schedules();
        for (std::size_t i = 0; i < all.size() && i < capacity; ++i) {
            const currant::ScheduleInfo& s = all[i];
            currant_schedule_info& c = out[i];
            c = currant_schedule_info{};
            std::memcpy(c.name, s.name.data(), std::min(s.name.size(), sizeof c.name - 1));
            std::memcpy(c.expression, s.expression.data(), std::min(s.expression.size(), sizeof c.expression - 1));
            c.entrypoint = s.entrypoint;
            c.priority = s.priority;
            c.missed = s.missed == currant::MissedTicks::catch_up ? CURRANT_MISSED_CATCH_UP : CURRANT_MISSED_SKIP;
            c.catch_up_max = s.catch_up_max;
            c.payload_size = s.payload.size();
            c.next_tick_ns = s.next_tick_ns;
            c.last_tick_ns = s.last_tick_ns;
            c.fired = s.fired;
            c.last_job_id = s.last_job_id;
        }
        *count_out = all.size();
    });
}

int currant_run_schedules(currant_queue* queue, size_t* enqueued_out) {
    return guarded("currant_run_schedules", [&] {
        require(queue, "queue");
        const std::size_t fired = queue->queue.run_schedules();
        if (enqueued_out != nullptr) *enqueued_out = fired;
    });
}

} // extern "C"

int currant_fail_with_error(currant_queue* queue, const currant_job* job, const char* error) {
    return guarded("currant_fail_with_error", [&] {
        require(queue, "queue");
        require(job, "job");
        queue->queue.fail(to_handle(*job), error != nullptr ? std::string_view(error) : std::string_view());
    });
}

int currant_retry_with_error(currant_queue* queue, const currant_job* job, int64_t delay_ms, const char* error,
                             int* requeued_out) {
    return guarded("currant_retry_with_error", [&] {
        require(queue, "queue");
        require(job, "job");
        std::optional<std::chrono::milliseconds> delay;
        if (delay_ms >= 0) delay = std::chrono::milliseconds(delay_ms);
        const bool requeued = queue->queue.retry(to_handle(*job), delay,
                                                 error != nullptr ? std::string_view(error) : std::string_view());
        if (requeued_out != nullptr) *requeued_out = requeued ? 1 : 0;
    });
}

int currant_dead_jobs(currant_queue* queue, uint32_t entrypoint, currant_dead_job* out, size_t capacity,
                      size_t* count_out) {
    return guarded("currant_dead_jobs", [&] {
        require(queue, "queue");
        require(count_out, "count_out");
        if (capacity != 0) require(out, "out");
        std::optional<currant::EntrypointId> only;
        if (entrypoint != CURRANT_ALL_ENTRYPOINTS) only = entrypoint;
        std::vector<currant::DeadJob> dead = queue->queue.dead_jobs(only);
        queue->dead = std::move(dead); // the previous call's pointers end here, as documented
        for (std::size_t i = 0; i < queue->dead.size() && i < capacity; ++i) {
            const currant::DeadJob& d = queue->dead[i];
            currant_dead_job& c = out[i];
            c = currant_dead_job{};
            c.id = d.id;
            c.entrypoint = d.entrypoint;
            c.priority = d.priority;
            c.attempts = d.attempts;
            c.max_attempts = d.max_attempts;
            c.enqueued_at_ns = d.enqueued_at_ns;
            c.died_at_ns = d.died_at_ns;
            c.error = d.error.c_str();
            c.error_size = d.error.size();
            c.error_truncated = d.error_truncated ? 1 : 0;
            c.payload = d.payload.data();
            c.payload_size = d.payload.size();
        }
        *count_out = queue->dead.size();
    });
}

int currant_requeue_dead(currant_queue* queue, uint64_t id, int* requeued_out) {
    return guarded("currant_requeue_dead", [&] {
        require(queue, "queue");
        const bool requeued = queue->queue.requeue(id);
        if (requeued_out != nullptr) *requeued_out = requeued ? 1 : 0;
    });
}

int currant_requeue_all_dead(currant_queue* queue, uint32_t entrypoint, size_t* requeued_out) {
    return guarded("currant_requeue_all_dead", [&] {
        require(queue, "queue");
        const std::size_t n = queue->queue.requeue_dead(entrypoint);
        if (requeued_out != nullptr) *requeued_out = n;
    });
}

int currant_purge_dead(currant_queue* queue, uint64_t id, int* purged_out) {
    return guarded("currant_purge_dead", [&] {
        require(queue, "queue");
        const bool purged = queue->queue.purge(id);
        if (purged_out != nullptr) *purged_out = purged ? 1 : 0;
    });
}

int currant_purge_all_dead(currant_queue* queue, uint32_t entrypoint, size_t* purged_out) {
    return guarded("currant_purge_all_dead", [&] {
        require(queue, "queue");
        const std::size_t n = queue->queue.purge_dead(entrypoint);
        if (purged_out != nullptr) *purged_out = n;
    });
}
