// _currant: the native half of the Python client (import currant).
//
// A thin pybind11 binding over currant::Queue. The pure-Python layer in
// currant/__init__.py converts arguments (seconds, datetimes, names) and
// carries the docstrings and type hints; this file does the work that must
// be native: buffer handling without copies, the GIL, and the payload views.
//
// Payload views: each picked job gets a PayloadView exporter (a small
// CPython type implementing the buffer protocol over the slot's payload).
// job.payload is a memoryview over that exporter. At ack/fail/retry the
// memoryview is released and the exporter is invalidated, so Python code
// cannot read the slot once it may be reused. The exporter counts the
// buffers it has handed out; if a view derived from job.payload (a slice,
// numpy array, ...) is still alive at the ack, the ack is refused with
// BufferError before anything is applied to the segment.
//
// Lifetime: exporters keep the queue's shared state alive, so the segment
// stays mapped while any view exists, even after close() (new views are
// refused once the queue is closed).
//
// Reservations use the same exporter, writable, released at commit/abandon.
//
// Signals: a dequeue that waits returns early when a signal handler ran on
// its thread (Queue::set_dequeue_returns_on_signal); we then take the GIL,
// run the Python handlers (PyErr_CheckSignals: KeyboardInterrupt on Ctrl-C)
// and wait again for the time left.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <currant/queue.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace py = pybind11;
using namespace std::chrono;

namespace {

// An error raised to Python as currant.<class>; kind selects the class.
struct PyCurrantError {
    std::string kind, code, message;
};

// Shared state of one Python Queue object.
struct Holder {
    std::optional<currant::Queue> queue;
    std::mutex mutex;  // a currant::Queue is not thread-safe; the GIL is released around calls
    std::atomic<bool> closed{false};
    std::atomic<bool> interrupted{false};  // set by interrupt(), consumed when a dequeue returns empty
    std::unordered_map<std::string, currant::EntrypointId> entrypoints;
    std::string name;

    // Takes the mutex for a quick call made with the GIL held: if another
    // thread holds it (say, waiting in dequeue), wait with the GIL released.
    std::unique_lock<std::mutex> lock() {
        std::unique_lock<std::mutex> guard(mutex, std::try_to_lock);
        if (!guard.owns_lock()) {
            py::gil_scoped_release unlocked;
            guard.lock();
        }
        return guard;
    }

    currant::Queue& get() {
        if (closed || !queue) throw PyCurrantError{"closed", "closed", "queue '" + name + "' is closed"};
        return *queue;
    }
};

// ---- the payload exporter (raw CPython type: needs bf_releasebuffer) ----

struct PayloadView {
    PyObject_HEAD
    const std::byte* data;
    Py_ssize_t size;
    Py_ssize_t exports;
    bool valid;
    bool writable;  // a reservation's payload
    std::shared_ptr<Holder>* holder;  // heap-allocated so the struct stays POD-like
};

int payload_getbuffer(PyObject* self, Py_buffer* view, int flags) {
    auto* p = reinterpret_cast<PayloadView*>(self);
    if (!p->valid || !p->holder || (*p->holder)->closed) {
        view->obj = nullptr;
        PyErr_SetString(PyExc_ValueError,
                        p->writable ? "reservation payload is no longer valid: it was committed or abandoned, "
                                      "or the queue closed"
                                    : "job payload is no longer valid: the job was acked, failed or retried, "
                                      "or the queue closed");
        return -1;
    }
    if (PyBuffer_FillInfo(view, self, const_cast<std::byte*>(p->data), p->size, p->writable ? 0 : 1, flags) < 0)
        return -1;
    ++p->exports;
    return 0;
}

void payload_releasebuffer(PyObject* self, Py_buffer*) { --reinterpret_cast<PayloadView*>(self)->exports; }

void payload_dealloc(PyObject* self) {
    auto* p = reinterpret_cast<PayloadView*>(self);
    delete p->holder;
    p->holder = nullptr;
    PyTypeObject* type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}

PyTypeObject* payload_type = nullptr;

PyTypeObject* make_payload_type() {
    static PyType_Slot slots[] = {
        {Py_bf_getbuffer, reinterpret_cast<void*>(payload_getbuffer)},
        {Py_bf_releasebuffer, reinterpret_cast<void*>(payload_releasebuffer)},
        {Py_tp_dealloc, reinterpret_cast<void*>(payload_dealloc)},
        {Py_tp_doc, const_cast<char*>("Buffer over a payload in the segment: a picked job's (read-only) or a "
                                      "reservation's (writable).")},
        {0, nullptr},
    };
    static PyType_Spec spec = {"currant._currant.PayloadView", sizeof(PayloadView), 0, Py_TPFLAGS_DEFAULT, slots};
    return reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
}

py::object new_payload_view(const std::shared_ptr<Holder>& holder, std::span<const std::byte> payload,
                            bool writable = false) {
    PyObject* obj = payload_type->tp_alloc(payload_type, 0);
    if (!obj) throw py::error_already_set();
    auto* p = reinterpret_cast<PayloadView*>(obj);
    p->data = payload.data();
    p->size = static_cast<Py_ssize_t>(payload.size());
    p->exports = 0;
    p->valid = true;
    p->writable = writable;
    p->holder = new std::shared_ptr<Holder>(holder);
    return py::reinterpret_steal<py::object>(obj);
}

// ---- Job ----

struct PyJob {
    currant::Job job;
    py::object exporter;  // PayloadView
    py::object view;      // memoryview over exporter, made on first access
    bool finished = false;

    std::uint64_t id() const { return job.handle.id; }

    py::object payload() {
        auto* p = reinterpret_cast<PayloadView*>(exporter.ptr());
        if (finished || !p->valid || (*p->holder)->closed)
            throw py::value_error("job payload is no longer valid: the job was acked, failed or retried, "
                                  "or the queue closed");
        if (view.is_none()) {
            PyObject* mv = PyMemoryView_FromObject(exporter.ptr());
            if (!mv) throw py::error_already_set();
            view = py::reinterpret_steal<py::object>(mv);
        }
        return view;
    }

    // Releases job.payload; refuses (BufferError) while derived views live.
    void release_views() {
        auto* p = reinterpret_cast<PayloadView*>(exporter.ptr());
        if (!view.is_none()) {
            view.attr("release")();  // BufferError if someone exported from it
            view = py::none();
        }
        if (p->exports > 0)
            throw py::buffer_error("a view derived from job.payload (slice, memoryview, array) is still alive; "
                                   "release it or copy with bytes() before finishing the job");
    }
    void invalidate() {
        reinterpret_cast<PayloadView*>(exporter.ptr())->valid = false;
        finished = true;
    }
};

// ---- Reservation ----

struct PyReservation {
    std::shared_ptr<Holder> holder;
    currant::Reservation reservation;
    py::object exporter;  // writable PayloadView
    py::object view;      // memoryview over exporter, made on first access
    bool open = true;

    PyReservation(std::shared_ptr<Holder> h, const currant::Reservation& r)
        : holder(std::move(h)), reservation(r), exporter(new_payload_view(holder, r.payload, true)), view(py::none()) {}
    PyReservation(PyReservation&&) = default;
    // Dropped while open: give the slot back if nobody holds a view into it
    // and the Queue is free; otherwise it stays reserved until close().
    ~PyReservation() {
        if (!open || !exporter || holder->closed || !view_released()) return;
        std::unique_lock<std::mutex> guard(holder->mutex, std::try_to_lock);
        if (!guard.owns_lock() || holder->closed || !holder->queue) return;
        holder->queue->abandon(reservation);
        invalidate();
    }

    PayloadView* exporter_object() const { return reinterpret_cast<PayloadView*>(exporter.ptr()); }

    py::object payload() {
        if (!open || holder->closed)
            throw py::value_error("reservation payload is no longer valid: it was committed or abandoned, "
                                  "or the queue closed");
        if (view.is_none()) {
            PyObject* mv = PyMemoryView_FromObject(exporter.ptr());
            if (!mv) throw py::error_already_set();
            view = py::reinterpret_steal<py::object>(mv);
        }
        return view;
    }

    bool view_released() {
        if (!view.is_none()) {
            PyObject* result = PyObject_CallMethod(view.ptr(), "release", nullptr);
            if (!result) {
                PyErr_Clear();
                return false;
            }
            Py_DECREF(result);
            view = py::none();
        }
        return exporter_object()->exports == 0;
    }

    // Releases .payload; refuses (BufferError) while derived views live,
    // since they could write into the slot after it is handed over.
    void release_views() {
        if (!view.is_none()) {
            view.attr("release")();  // BufferError if someone exported from it
            view = py::none();
        }
        if (exporter_object()->exports > 0)
            throw py::buffer_error("a view derived from reservation.payload (slice, memoryview, array) is still "
                                   "alive; release it before commit() or abandon()");
    }
    void invalidate() {
        exporter_object()->valid = false;
        open = false;
    }
    void check_open(const char* what) const {
        if (!open)
            throw PyCurrantError{"invalid_argument", "invalid_argument",
                                 std::string("cannot ") + what + ": the reservation was already committed or abandoned"};
    }
};

// ---- argument helpers ----

struct Buffer {
    Py_buffer view{};
    bool held = false;
    explicit Buffer(py::handle obj) {
        if (PyObject_GetBuffer(obj.ptr(), &view, PyBUF_SIMPLE) != 0) {
            PyErr_Clear();
            throw py::type_error(std::string("payload must be bytes or a contiguous buffer (bytes, bytearray, "
                                             "memoryview, ...), not ") +
                                 Py_TYPE(obj.ptr())->tp_name);
        }
        held = true;
    }
    Buffer(Buffer&& other) noexcept : view(other.view), held(other.held) { other.held = false; }
    Buffer(const Buffer&) = delete;
    ~Buffer() {
        if (held) PyBuffer_Release(&view);
    }
    std::span<const std::byte> span() const {
        return {static_cast<const std::byte*>(view.buf), static_cast<std::size_t>(view.len)};
    }
};

class PyQueue {
public:
    explicit PyQueue(currant::Queue queue) : holder_(std::make_shared<Holder>()) {
        holder_->name = queue.name();
        holder_->queue.emplace(std::move(queue));
    }

    static PyQueue create(const std::string& name, std::uint32_t slots, std::uint32_t payload_bytes,
                          std::uint32_t max_entrypoints, std::uint32_t max_participants, std::uint32_t log_capacity,
                          std::uint16_t host_id, unsigned mode) {
        currant::QueueOptions options;
        options.name = name;
        options.slots = slots;
        options.payload_bytes = payload_bytes;
        options.max_entrypoints = max_entrypoints;
        options.max_participants = max_participants;
        options.log_capacity = log_capacity;
        options.host_id = host_id;
        options.mode = mode;
        return PyQueue(currant::Queue::create(options));
    }

    static PyQueue open(const std::string& name) {
        try {
            return PyQueue(currant::Queue::open(name));
        } catch (const currant::Error& e) {
            if (e.code() == currant::Errc::not_found)
                throw PyCurrantError{"queue_not_found", "not_found", e.what()};
            throw;
        }
    }

    void close() {
        if (holder_->closed) return;
        py::gil_scoped_release unlocked;
        std::lock_guard guard(holder_->mutex);
        holder_->closed = true;
        if (holder_->queue) holder_->queue->close();
    }
    bool closed() const { return holder_->closed; }
    // Thread-safe without the mutex (it only touches atomics): wakes a
    // dequeue waiting in another thread on this Queue.
    void interrupt() {
        holder_->interrupted.store(true, std::memory_order_seq_cst);  // before the core's flag: see wait_for_jobs
        if (holder_->queue) holder_->queue->interrupt();
    }
    const std::string& name() const { return holder_->name; }

    currant::EntrypointId declare_entrypoint(const std::string& name, const std::string& durability,
                                             std::int64_t lease_ms, std::uint32_t max_attempts,
                                             std::int64_t retry_delay_ms, std::int64_t max_retry_delay_ms) {
        currant::EntrypointOptions options;
        try {
            options.durability = currant::parse_durability(durability);
        } catch (const std::invalid_argument&) {
            throw py::value_error("durability must be 'memory', 'async' or 'sync', not '" + durability + "'");
        }
        options.lease = milliseconds(lease_ms);
        options.max_attempts = max_attempts;
        options.retry_delay = milliseconds(retry_delay_ms);
        options.max_retry_delay = milliseconds(max_retry_delay_ms);
        auto guard = holder_->lock();
        auto id = holder_->get().declare_entrypoint(name, options);
        holder_->entrypoints[name] = id;
        return id;
    }

    currant::EntrypointId entrypoint(py::handle which) {
        if (py::isinstance<py::str>(which)) {
            auto name = which.cast<std::string>();
            auto found = holder_->entrypoints.find(name);
            if (found != holder_->entrypoints.end()) {
                holder_->get();  // closed check
                return found->second;
            }
            auto guard = holder_->lock();
            try {
                auto id = holder_->get().entrypoint(name);
                holder_->entrypoints[name] = id;
                return id;
            } catch (const currant::Error& e) {
                if (e.code() == currant::Errc::not_found)
                    throw PyCurrantError{"entrypoint_not_found", "not_found", e.what()};
                throw;
            }
        }
        if (py::isinstance<py::int_>(which) && !py::isinstance<py::bool_>(which)) {
            auto id = which.cast<long long>();
            if (id < 0 || id > 0xffffffffLL) throw py::value_error("entrypoint id out of range");
            return static_cast<currant::EntrypointId>(id);
        }
        throw py::type_error(std::string("entrypoint must be a name (str) or an id (int), not ") +
                             Py_TYPE(which.ptr())->tp_name);
    }

    std::string entrypoint_name(currant::EntrypointId id) {
        auto guard = holder_->lock();
        return holder_->get().entrypoint_name(id);
    }

    std::vector<std::string> entrypoint_names() {
        auto guard = holder_->lock();
        return holder_->get().entrypoint_names();
    }

    currant::JobId enqueue(py::handle ep, py::handle payload, std::int32_t priority, std::int64_t execute_after_ns,
                           std::uint32_t max_attempts, std::int64_t arena_wait_ms) {
        auto id = entrypoint(ep);
        Buffer buffer(payload);
        auto options = enqueue_options(priority, execute_after_ns, max_attempts, arena_wait_ms);
        py::gil_scoped_release unlocked;
        std::lock_guard guard(holder_->mutex);
        return holder_->get().enqueue(id, buffer.span(), options);
    }

    std::vector<currant::JobId> enqueue_batch(py::handle ep, py::iterable payloads, std::int32_t priority,
                                              std::int64_t execute_after_ns, std::uint32_t max_attempts,
                                              std::int64_t arena_wait_ms) {
        auto id = entrypoint(ep);
        std::vector<Buffer> buffers;
        for (auto item : payloads) buffers.emplace_back(item);
        std::vector<std::span<const std::byte>> spans;
        spans.reserve(buffers.size());
        for (auto& b : buffers) spans.push_back(b.span());
        std::vector<currant::JobId> ids(spans.size());
        if (spans.empty()) return ids;
        auto options = enqueue_options(priority, execute_after_ns, max_attempts, arena_wait_ms);
        std::size_t done = 0;
        {
            py::gil_scoped_release unlocked;
            std::lock_guard guard(holder_->mutex);
            done = holder_->get().enqueue_batch(id, spans, ids, options);
        }
        ids.resize(done);
        return ids;
    }

    py::list dequeue(py::handle entrypoints, std::size_t batch_size, std::int64_t timeout_ns) {
        if (batch_size == 0) throw py::value_error("batch_size must be at least 1");
        const std::vector<currant::EntrypointId> eps = entrypoint_list(entrypoints);
        std::vector<currant::Job> jobs(batch_size);
        std::size_t count = 0;
        wait_for_jobs(timeout_ns, [&](nanoseconds timeout) {
            count = holder_->get().dequeue(eps, jobs, timeout);
            return count > 0;
        });
        py::list out(count);
        for (std::size_t i = 0; i < count; ++i) {
            PyJob job{jobs[i], new_payload_view(holder_, jobs[i].payload), py::none(), false};
            out[i] = py::cast(std::move(job));
        }
        return out;
    }

    // One job from this Queue's prefetch buffer (set_prefetch), or None.
    py::object dequeue_one(py::handle entrypoints, std::int64_t timeout_ns) {
        const std::vector<currant::EntrypointId> eps = entrypoint_list(entrypoints);
        std::optional<currant::Job> job;
        wait_for_jobs(timeout_ns, [&](nanoseconds timeout) {
            job = holder_->get().dequeue_one(eps, timeout);
            return job.has_value();
        });
        if (!job) return py::none();
        return py::cast(PyJob{*job, new_payload_view(holder_, job->payload), py::none(), false});
    }

    void set_prefetch(std::uint32_t jobs) {
        auto guard = holder_->lock();
        holder_->get().set_prefetch(jobs);
    }

    // Buffered: not a fact when it returns. The payload is released now.
    void ack_deferred(PyJob& job) {
        job.release_views();
        job.invalidate();
        auto guard = holder_->lock();
        holder_->get().ack_deferred(job.job.handle);
    }

    std::size_t flush() {
        py::gil_scoped_release unlocked;
        std::lock_guard guard(holder_->mutex);
        return holder_->get().flush();
    }

    PyReservation reserve(py::handle ep) {
        auto id = entrypoint(ep);
        currant::Reservation reservation;
        {
            auto guard = holder_->lock();
            reservation = holder_->get().reserve(id);
        }
        return PyReservation(holder_, reservation);
    }

    // size < 0: the whole capacity.
    currant::JobId commit(PyReservation& r, std::int64_t size, std::int32_t priority, std::int64_t execute_after_ns,
                          std::uint32_t max_attempts) {
        r.check_open("commit");
        const std::size_t capacity = r.reservation.payload.size();
        if (size > std::int64_t(capacity))
            throw PyCurrantError{"payload_too_large", "payload_too_large",
                                 "queue '" + holder_->name + "': commit of " + std::to_string(size) +
                                     " bytes exceeds the reservation's " + std::to_string(capacity) + " bytes"};
        r.release_views();
        auto options = enqueue_options(priority, execute_after_ns, max_attempts, 0);
        r.exporter_object()->valid = false;  // no new view while the GIL is released
        currant::JobId id = 0;
        std::exception_ptr error;
        {
            py::gil_scoped_release unlocked;
            std::lock_guard guard(holder_->mutex);
            try {
                id = holder_->get().commit(r.reservation, size < 0 ? capacity : std::size_t(size), options);
            } catch (...) {
                error = std::current_exception();
            }
        }
        // The core clears the payload once the job is queued (also when a
        // sync commit then times out waiting for the mirror).
        if (r.reservation.payload.data() == nullptr)
            r.invalidate();
        else
            r.exporter_object()->valid = true;
        if (error) std::rethrow_exception(error);
        return id;
    }

    void abandon(PyReservation& r) {
        if (!r.open) return;
        r.release_views();
        auto guard = holder_->lock();
        r.invalidate();
        if (!holder_->closed && holder_->queue) holder_->queue->abandon(r.reservation);
    }

    void ack(PyJob& job) {
        job.release_views();
        job.invalidate();
        py::gil_scoped_release unlocked;
        std::lock_guard guard(holder_->mutex);
        holder_->get().ack(job.job.handle);
    }

    std::size_t ack_many(std::vector<PyJob*> jobs) {
        for (auto* job : jobs)
            if (!job) throw py::type_error("ack_many takes Job objects");
        for (auto* job : jobs) job->release_views();
        std::vector<currant::JobHandle> handles;
        handles.reserve(jobs.size());
        for (auto* job : jobs) {
            job->invalidate();
            handles.push_back(job->job.handle);
        }
        py::gil_scoped_release unlocked;
        std::lock_guard guard(holder_->mutex);
        return holder_->get().ack(handles);
    }

    void fail(PyJob& job) {
        job.release_views();
        job.invalidate();
        py::gil_scoped_release unlocked;
        std::lock_guard guard(holder_->mutex);
        holder_->get().fail(job.job.handle);
    }

    bool retry(PyJob& job, std::int64_t delay_ms) {
        job.release_views();
        job.invalidate();
        std::optional<milliseconds> delay;
        if (delay_ms >= 0) delay = milliseconds(delay_ms);
        py::gil_scoped_release unlocked;
        std::lock_guard guard(holder_->mutex);
        return holder_->get().retry(job.job.handle, delay);
    }

    std::size_t heartbeat(std::vector<PyJob*> jobs) {
        std::vector<currant::JobHandle> handles;
        for (auto* job : jobs) handles.push_back(job->job.handle);
        py::gil_scoped_release unlocked;
        std::lock_guard guard(holder_->mutex);
        return holder_->get().heartbeat(handles);
    }

    bool cancel(currant::JobId id) {
        auto guard = holder_->lock();
        return holder_->get().cancel(id);
    }

    std::vector<std::string> status(const std::vector<currant::JobId>& ids) {
        std::vector<currant::JobState> states;
        {
            py::gil_scoped_release unlocked;
            std::lock_guard guard(holder_->mutex);
            states = holder_->get().status(ids);
        }
        std::vector<std::string> out;
        out.reserve(states.size());
        for (auto& s : states) out.emplace_back(currant::job_status_name(s.status));
        return out;
    }

    py::dict stats() {
        std::vector<currant::EntrypointStats> all;
        {
            auto guard = holder_->lock();
            all = holder_->get().stats();
        }
        py::dict out;
        for (auto& s : all) {
            py::dict d;
            d["id"] = s.id;
            d["durability"] = std::string(currant::durability_name(s.durability));
            d["queued"] = s.queued;
            d["delayed"] = s.delayed;
            d["picked"] = s.picked;
            d["enqueued"] = s.enqueued;
            d["picks"] = s.picks;
            d["successful"] = s.successful;
            d["failed"] = s.failed;
            d["retried"] = s.retried;
            d["canceled"] = s.canceled;
            d["log_pending"] = s.log_pending;
            out[py::str(s.name)] = d;
        }
        return out;
    }

    py::dict info() {
        currant::QueueInfo i;
        {
            auto guard = holder_->lock();
            i = holder_->get().info();
        }
        py::dict d;
        d["name"] = i.name;
        d["slots"] = i.slots;
        d["payload_bytes"] = i.payload_bytes;
        d["max_entrypoints"] = i.max_entrypoints;
        d["max_participants"] = i.max_participants;
        d["log_capacity"] = i.log_capacity;
        d["host_id"] = i.host_id;
        d["segment_bytes"] = i.segment_bytes;
        d["free_slots"] = i.free_slots;
        d["participants"] = i.participants;
        d["mode"] = i.mode;
        return d;
    }

    std::size_t reap() {
        py::gil_scoped_release unlocked;
        std::lock_guard guard(holder_->mutex);
        return holder_->get().reap();
    }

private:
    std::vector<currant::EntrypointId> entrypoint_list(py::handle entrypoints) {
        std::vector<currant::EntrypointId> eps;
        if (py::isinstance<py::str>(entrypoints) || py::isinstance<py::int_>(entrypoints)) {
            eps.push_back(entrypoint(entrypoints));
        } else if (py::isinstance<py::iterable>(entrypoints)) {
            for (auto item : entrypoints) eps.push_back(entrypoint(item));
        } else {
            throw py::type_error("entrypoints must be a name, an id, or an iterable of them");
        }
        if (eps.empty()) throw py::value_error("dequeue needs at least one entrypoint");
        return eps;
    }

    // Runs pick(timeout) with the GIL released until it finds jobs, the time
    // is up, or interrupt() was called. When a signal cut the wait short,
    // runs the Python signal handlers (their exception, e.g.
    // KeyboardInterrupt, propagates) and waits again for the time left.
    template <typename Pick>
    void wait_for_jobs(std::int64_t timeout_ns, Pick&& pick) {
        const auto now_ns = [] { return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count(); };
        const std::int64_t deadline = timeout_ns <= 0 ? -1 : now_ns() + timeout_ns;
        nanoseconds timeout(timeout_ns);
        for (;;) {
            bool found = false;
            {
                py::gil_scoped_release unlocked;
                std::lock_guard guard(holder_->mutex);
                currant::Queue::set_dequeue_returns_on_signal(true);
                found = pick(timeout);
            }
            if (found || timeout_ns == 0) return;
            // interrupt() sets this flag before the core's, so a dequeue it ended sees it.
            if (holder_->interrupted.exchange(false, std::memory_order_seq_cst)) return;
            if (PyErr_CheckSignals() != 0) throw py::error_already_set();
            if (deadline >= 0) {
                const std::int64_t now = now_ns();
                if (now >= deadline) return;
                timeout = nanoseconds(deadline - now);
            }
        }
    }

    static currant::EnqueueOptions enqueue_options(std::int32_t priority, std::int64_t execute_after_ns,
                                                   std::uint32_t max_attempts, std::int64_t arena_wait_ms) {
        currant::EnqueueOptions options;
        options.priority = priority;
        options.execute_after_ns = execute_after_ns;
        options.max_attempts = max_attempts;
        options.arena_wait = milliseconds(arena_wait_ms);
        return options;
    }

    std::shared_ptr<Holder> holder_;
};

}  // namespace

PYBIND11_MODULE(_currant, m) {
    m.doc() = "Native core of the currant Python client; use the `currant` package instead.";

    payload_type = make_payload_type();
    if (!payload_type) throw py::error_already_set();
    m.add_object("PayloadView", reinterpret_cast<PyObject*>(payload_type));

    // Errors become currant.<Class> built by currant._errors.make_error(kind, code, message).
    py::register_exception_translator([](std::exception_ptr p) {
        auto raise = [](const std::string& kind, const std::string& code, const char* message) {
            py::object error = py::module_::import("currant._errors").attr("make_error")(kind, code, message);
            PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error.ptr())), error.ptr());
        };
        try {
            if (p) std::rethrow_exception(p);
        } catch (const PyCurrantError& e) {
            raise(e.kind, e.code, e.message.c_str());
        } catch (const currant::Error& e) {
            std::string code(currant::errc_name(e.code()));
            raise(code, code, e.what());
        }
    });

    py::class_<PyJob>(m, "Job", "A picked job. payload is valid until ack/fail/retry.")
        .def_property_readonly("id", &PyJob::id)
        .def_property_readonly("entrypoint", [](const PyJob& j) { return j.job.entrypoint; })
        .def_property_readonly("priority", [](const PyJob& j) { return j.job.priority; })
        .def_property_readonly("attempts", [](const PyJob& j) { return j.job.attempts; })
        .def_property_readonly("enqueued_at_ns", [](const PyJob& j) { return j.job.enqueued_at_ns; })
        .def_property_readonly("finished", [](const PyJob& j) { return j.finished; })
        .def_property_readonly("payload", &PyJob::payload)
        .def("__repr__", [](const PyJob& j) {
            return "<currant.Job id=" + std::to_string(j.job.handle.id) +
                   " entrypoint=" + std::to_string(j.job.entrypoint) +
                   " attempts=" + std::to_string(j.job.attempts) + (j.finished ? " finished>" : ">");
        });

    py::class_<PyReservation>(m, "Reservation", "A slot reserved for writing a payload in place.")
        .def_property_readonly("id", [](const PyReservation& r) { return r.reservation.id; })
        .def_property_readonly("entrypoint", [](const PyReservation& r) { return r.reservation.entrypoint; })
        .def_property_readonly("capacity", [](const PyReservation& r) { return r.reservation.payload.size(); })
        .def_property_readonly("open", [](const PyReservation& r) { return r.open; })
        .def_property_readonly("payload", &PyReservation::payload)
        .def("__repr__", [](const PyReservation& r) {
            return "<currant.Reservation id=" + std::to_string(r.reservation.id) +
                   " capacity=" + std::to_string(r.reservation.payload.size()) + (r.open ? ">" : " closed>");
        });

    py::class_<PyQueue>(m, "Queue")
        .def_static("create", &PyQueue::create)
        .def_static("open", &PyQueue::open)
        .def_static("remove", [](const std::string& name) { return currant::Queue::remove(name); })
        .def("close", &PyQueue::close)
        .def("interrupt", &PyQueue::interrupt)
        .def_property_readonly("closed", &PyQueue::closed)
        .def_property_readonly("name", &PyQueue::name)
        .def("declare_entrypoint", &PyQueue::declare_entrypoint)
        .def("entrypoint", &PyQueue::entrypoint)
        .def("entrypoint_name", &PyQueue::entrypoint_name)
        .def("entrypoint_names", &PyQueue::entrypoint_names)
        .def("enqueue", &PyQueue::enqueue)
        .def("enqueue_batch", &PyQueue::enqueue_batch)
        .def("dequeue", &PyQueue::dequeue)
        .def("dequeue_one", &PyQueue::dequeue_one)
        .def("set_prefetch", &PyQueue::set_prefetch)
        .def("ack_deferred", &PyQueue::ack_deferred)
        .def("flush", &PyQueue::flush)
        .def("reserve", &PyQueue::reserve)
        .def("commit", &PyQueue::commit)
        .def("abandon", &PyQueue::abandon)
        .def("ack", &PyQueue::ack)
        .def("ack_many", &PyQueue::ack_many)
        .def("fail", &PyQueue::fail)
        .def("retry", &PyQueue::retry)
        .def("heartbeat", &PyQueue::heartbeat)
        .def("cancel", &PyQueue::cancel)
        .def("status", &PyQueue::status)
        .def("stats", &PyQueue::stats)
        .def("info", &PyQueue::info)
        .def("reap", &PyQueue::reap);
}
