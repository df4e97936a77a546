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
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <currant/queue.hpp>

#include <atomic>
#include <chrono>
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
    std::shared_ptr<Holder>* holder;  // heap-allocated so the struct stays POD-like
};

int payload_getbuffer(PyObject* self, Py_buffer* view, int flags) {
    auto* p = reinterpret_cast<PayloadView*>(self);
    if (!p->valid || !p->holder || (*p->holder)->closed) {
        view->obj = nullptr;
        PyErr_SetString(PyExc_ValueError,
                        "job payload is no longer valid: the job was acked, failed or retried, or the queue closed");
        return -1;
    }
    if (PyBuffer_FillInfo(view, self, const_cast<std::byte*>(p->data), p->size, 1, flags) < 0) return -1;
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
        {Py_tp_doc, const_cast<char*>("Read-only buffer over a picked job's payload in the segment.")},
        {0, nullptr},
    };
    static PyType_Spec spec = {"currant._currant.PayloadView", sizeof(PayloadView), 0, Py_TPFLAGS_DEFAULT, slots};
    return reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
}

py::object new_payload_view(const std::shared_ptr<Holder>& holder, std::span<const std::byte> payload) {
    PyObject* obj = payload_type->tp_alloc(payload_type, 0);
    if (!obj) throw py::error_already_set();
    auto* p = reinterpret_cast<PayloadView*>(obj);
    p->data = payload.data();
    p->size = static_cast<Py_ssize_t>(payload.size());
    p->exports = 0;
    p->valid = true;
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
        std::vector<currant::EntrypointId> eps;
        if (py::isinstance<py::str>(entrypoints) || py::isinstance<py::int_>(entrypoints)) {
            eps.push_back(entrypoint(entrypoints));
        } else if (py::isinstance<py::iterable>(entrypoints)) {
            for (auto item : entrypoints) eps.push_back(entrypoint(item));
        } else {
            throw py::type_error("entrypoints must be a name, an id, or an iterable of them");
        }
        if (eps.empty()) throw py::value_error("dequeue needs at least one entrypoint");
        std::vector<currant::Job> jobs(batch_size);
        std::size_t count = 0;
        {
            py::gil_scoped_release unlocked;
            std::lock_guard guard(holder_->mutex);
            count = holder_->get().dequeue(eps, jobs, nanoseconds(timeout_ns));
        }
        py::list out(count);
        for (std::size_t i = 0; i < count; ++i) {
            PyJob job{jobs[i], new_payload_view(holder_, jobs[i].payload), py::none(), false};
            out[i] = py::cast(std::move(job));
        }
        return out;
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
