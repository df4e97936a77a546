// _currant: the native half of the Python client (import currant).
//
// A binding over currant::Queue. The pure-Python layer in
// currant/__init__.py converts arguments (seconds, datetimes, names) and
// carries the docstrings and type hints; this file does the work that must
// be native: buffer handling without copies, the GIL, and the payload views.
//
// Two halves: the single-job hot path (FastQueue: enqueue, dequeue,
// dequeue_one, ack, ack_deferred; and Job) is written on the raw CPython
// API with METH_FASTCALL, because pybind11's dispatch and instance
// bookkeeping cost about twice the whole raw call (clients/python/README.md,
// bench/python/binding_overhead.py); everything else is pybind11 (Queue,
// Reservation). Both halves share one Holder per queue.
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

#include <algorithm>
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

// ---- Job and FastQueue (raw CPython types: the hot path) ----

struct FastQueue {
    PyObject_HEAD
    std::shared_ptr<Holder> holder;  // placement-constructed; destroyed in fast_dealloc
};
PyTypeObject* fast_type = nullptr;

std::shared_ptr<Holder>& shared_holder_of(PyObject* fast) { return reinterpret_cast<FastQueue*>(fast)->holder; }
Holder& holder_of(PyObject* fast) { return *shared_holder_of(fast); }

struct JobObject {
    PyObject_HEAD
    currant::Job job;
    PyObject* queue;     // the FastQueue it came from: keeps the mapping alive
    PyObject* exporter;  // PayloadView, made with the first view
    PyObject* view;      // job.payload: memoryview over exporter
    bool finished;
};
PyTypeObject* job_type = nullptr;

JobObject* as_job(PyObject* obj) {
    if (Py_TYPE(obj) != job_type)
        throw py::type_error(std::string("expected a currant.Job, not ") + Py_TYPE(obj)->tp_name);
    return reinterpret_cast<JobObject*>(obj);
}

PyObject* new_job(PyObject* fast, const currant::Job& job) {
    auto* j = reinterpret_cast<JobObject*>(job_type->tp_alloc(job_type, 0));
    if (!j) throw py::error_already_set();
    new (&j->job) currant::Job(job);
    Py_INCREF(fast);
    j->queue = fast;
    return reinterpret_cast<PyObject*>(j);
}

// Releases job.payload; refuses (BufferError) while derived views live.
void release_job_views(JobObject* j) {
    if (j->view) {
        PyObject* released = PyObject_CallMethod(j->view, "release", nullptr);  // BufferError if exported from
        if (!released) throw py::error_already_set();
        Py_DECREF(released);
        Py_CLEAR(j->view);
    }
    if (j->exporter && reinterpret_cast<PayloadView*>(j->exporter)->exports > 0)
        throw py::buffer_error("a view derived from job.payload (slice, memoryview, array) is still alive; "
                               "release it or copy with bytes() before finishing the job");
}

void mark_finished(JobObject* j) {
    if (j->exporter) reinterpret_cast<PayloadView*>(j->exporter)->valid = false;
    j->finished = true;
}

void job_dealloc(PyObject* obj) {
    auto* j = reinterpret_cast<JobObject*>(obj);
    Py_XDECREF(j->view);
    Py_XDECREF(j->exporter);
    Py_XDECREF(j->queue);
    PyTypeObject* type = Py_TYPE(obj);
    type->tp_free(obj);
    Py_DECREF(type);
}

// ---- Reservation ----
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

// ---- shared by both halves ----

// Sets currant.<Class> built by currant._errors.make_error(kind, code, message).
void set_python_error(const std::string& kind, const std::string& code, const char* message) {
    static PyObject* make_error = nullptr;
    if (!make_error) {
        PyObject* errors = PyImport_ImportModule("currant._errors");
        if (!errors) return;
        make_error = PyObject_GetAttrString(errors, "make_error");
        Py_DECREF(errors);
        if (!make_error) return;
    }
    PyObject* error = PyObject_CallFunction(make_error, "sss", kind.c_str(), code.c_str(), message);
    if (!error) return;
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error)), error);
    Py_DECREF(error);
}

// In a catch (...) of a raw CPython function: sets the Python error.
void set_error_from_current_exception() {
    try {
        throw;
    } catch (const PyCurrantError& e) {
        set_python_error(e.kind, e.code, e.message.c_str());
    } catch (const currant::Error& e) {
        const std::string code(currant::errc_name(e.code()));
        set_python_error(code, code, e.what());
    } catch (py::error_already_set& e) {
        e.restore();
    } catch (const py::builtin_exception& e) {
        e.set_error();
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
    } catch (const std::exception& e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
    }
}

// Releases the GIL for a scope; an exception leaving the scope retakes it.
class ReleasedGil {
public:
    ReleasedGil() : state_(PyEval_SaveThread()) {}
    ~ReleasedGil() { PyEval_RestoreThread(state_); }
    ReleasedGil(const ReleasedGil&) = delete;
    ReleasedGil& operator=(const ReleasedGil&) = delete;

private:
    PyThreadState* state_;
};

currant::EntrypointId resolve_entrypoint(Holder& h, PyObject* which) {
    if (PyUnicode_Check(which)) {
        Py_ssize_t size = 0;
        const char* utf8 = PyUnicode_AsUTF8AndSize(which, &size);
        if (!utf8) throw py::error_already_set();
        std::string name(utf8, static_cast<std::size_t>(size));
        auto found = h.entrypoints.find(name);
        if (found != h.entrypoints.end()) {
            h.get();  // closed check
            return found->second;
        }
        auto guard = h.lock();
        try {
            auto id = h.get().entrypoint(name);
            h.entrypoints[name] = id;
            return id;
        } catch (const currant::Error& e) {
            if (e.code() == currant::Errc::not_found)
                throw PyCurrantError{"entrypoint_not_found", "not_found", e.what()};
            throw;
        }
    }
    if (PyLong_Check(which) && !PyBool_Check(which)) {
        const long long id = PyLong_AsLongLong(which);
        if (id == -1 && PyErr_Occurred()) PyErr_Clear();
        if (id < 0 || id > 0xffffffffLL) throw py::value_error("entrypoint id out of range");
        return static_cast<currant::EntrypointId>(id);
    }
    throw py::type_error(std::string("entrypoint must be a name (str) or an id (int), not ") +
                         Py_TYPE(which)->tp_name);
}

// One entrypoint (no allocation) or several.
struct EntrypointSet {
    currant::EntrypointId single = 0;
    std::vector<currant::EntrypointId> several;
    std::span<const currant::EntrypointId> ids() const {
        return several.empty() ? std::span<const currant::EntrypointId>(&single, 1)
                               : std::span<const currant::EntrypointId>(several);
    }
};

EntrypointSet entrypoint_set(Holder& h, PyObject* entrypoints) {
    EntrypointSet set;
    if (PyUnicode_Check(entrypoints) || PyLong_Check(entrypoints)) {
        set.single = resolve_entrypoint(h, entrypoints);
        return set;
    }
    PyObject* iterator = PyObject_GetIter(entrypoints);
    if (!iterator) {
        PyErr_Clear();
        throw py::type_error("entrypoints must be a name, an id, or an iterable of them");
    }
    py::object owner = py::reinterpret_steal<py::object>(iterator);
    while (PyObject* item = PyIter_Next(iterator)) {
        py::object held = py::reinterpret_steal<py::object>(item);
        set.several.push_back(resolve_entrypoint(h, item));
    }
    if (PyErr_Occurred()) throw py::error_already_set();
    if (set.several.empty()) throw py::value_error("dequeue needs at least one entrypoint");
    if (set.several.size() == 1) {
        set.single = set.several[0];
        set.several.clear();
    }
    return set;
}

// Runs pick(timeout) with the GIL released until it finds jobs, the time is
// up, or interrupt() was called. When a signal cut the wait short, runs the
// Python signal handlers (their exception, e.g. KeyboardInterrupt,
// propagates) and waits again for the time left.
template <typename Pick>
void wait_for_jobs(Holder& h, std::int64_t timeout_ns, Pick&& pick) {
    const auto now_ns = [] { return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count(); };
    const std::int64_t deadline = timeout_ns <= 0 ? -1 : now_ns() + timeout_ns;
    nanoseconds timeout(timeout_ns);
    for (;;) {
        bool found = false;
        {
            ReleasedGil unlocked;
            std::lock_guard guard(h.mutex);
            currant::Queue::set_dequeue_returns_on_signal(true);
            const std::uint64_t cancel_wakeups = h.get().cancel_wakeups();
            found = pick(h.get(), timeout);
            // A cancel for a job this Queue holds ended the wait: the caller looks.
            if (h.get().cancel_wakeups() != cancel_wakeups) found = true;
        }
        if (found || timeout_ns == 0) return;
        // interrupt() sets this flag before the core's, so a dequeue it ended sees it.
        if (h.interrupted.exchange(false, std::memory_order_seq_cst)) return;
        if (PyErr_CheckSignals() != 0) throw py::error_already_set();
        if (deadline >= 0) {
            const std::int64_t now = now_ns();
            if (now >= deadline) return;
            timeout = nanoseconds(deadline - now);
        }
    }
}

long long int_argument(PyObject* obj, const char* what, long long low, long long high) {
    const long long value = PyLong_AsLongLong(obj);
    if (value == -1 && PyErr_Occurred()) throw py::error_already_set();
    if (value < low || value > high) throw py::value_error(std::string(what) + " out of range");
    return value;
}

// ---- the hot path: FastQueue's methods (METH_FASTCALL) ----

// enqueue(entrypoint, payload, priority=0, execute_after_ns=0, max_attempts=0, arena_wait_ms=0) -> id
// A dedupe key from str (UTF-8) or bytes; the core checks length and characters.
std::string dedupe_key_argument(PyObject* value) {
    if (PyUnicode_Check(value)) {
        Py_ssize_t size = 0;
        const char* text = PyUnicode_AsUTF8AndSize(value, &size);
        if (!text) throw py::error_already_set();
        return std::string(text, std::size_t(size));
    }
    if (PyBytes_Check(value)) return std::string(PyBytes_AS_STRING(value), std::size_t(PyBytes_GET_SIZE(value)));
    throw py::type_error(std::string("dedupe_key must be str, bytes or None, not ") + Py_TYPE(value)->tp_name);
}

currant::OnDuplicate on_duplicate_argument(PyObject* value) {
    if (!PyUnicode_Check(value))
        throw py::type_error(std::string("on_duplicate must be 'skip' or 'refuse', not ") + Py_TYPE(value)->tp_name);
    const char* text = PyUnicode_AsUTF8(value);
    if (!text) throw py::error_already_set();
    return currant::parse_on_duplicate(text); // invalid_argument names the value
}

// depends_on: an iterable of job ids (docs/job-dependencies.md).
std::vector<currant::JobId> depends_on_argument(PyObject* value) {
    std::vector<currant::JobId> ids;
    for (py::handle item : py::reinterpret_borrow<py::iterable>(value)) {
        if (!PyLong_Check(item.ptr()))
            throw py::type_error(std::string("depends_on must hold job ids (int), not ") + Py_TYPE(item.ptr())->tp_name);
        const long long id = PyLong_AsLongLong(item.ptr());
        if (id == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            throw currant::Error(currant::Errc::invalid_argument,
                                 "depends_on holds a number that is not a job id (ids are 1 to 2^63-1)");
        }
        if (id <= 0)
            throw currant::Error(currant::Errc::invalid_argument,
                                 "dependency " + std::to_string(id) + " is not a job id (ids are 1 to 2^63-1)");
        ids.push_back(currant::JobId(id));
    }
    return ids;
}

PyObject* fast_enqueue(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    try {
        if (nargs < 2 || nargs > 9)
            throw py::type_error("enqueue(entrypoint, payload, priority=0, execute_after_ns=0, max_attempts=0, "
                                 "arena_wait_ms=0, dedupe_key=None, on_duplicate='skip', depends_on=None)");
        Holder& h = holder_of(self);
        const currant::EntrypointId ep = resolve_entrypoint(h, args[0]);
        Buffer buffer(args[1]);
        currant::EnqueueOptions options;
        if (nargs > 2) options.priority = std::int32_t(int_argument(args[2], "priority", INT32_MIN, INT32_MAX));
        if (nargs > 3) options.execute_after_ns = int_argument(args[3], "execute_after_ns", 0, INT64_MAX);
        if (nargs > 4) options.max_attempts = std::uint32_t(int_argument(args[4], "max_attempts", 0, UINT32_MAX));
        if (nargs > 5) options.arena_wait = milliseconds(int_argument(args[5], "arena_wait_ms", 0, INT64_MAX));
        if (nargs > 6 && args[6] != Py_None) options.dedupe_key = dedupe_key_argument(args[6]);
        if (nargs > 7) options.on_duplicate = on_duplicate_argument(args[7]);
        if (nargs > 8 && args[8] != Py_None) options.depends_on = depends_on_argument(args[8]);
        currant::JobId id = 0;
        std::exception_ptr error;
        {
            ReleasedGil unlocked;
            std::lock_guard guard(h.mutex);
            try {
                id = h.get().enqueue(ep, buffer.span(), options);
            } catch (...) {
                error = std::current_exception();
            }
        }
        if (error) {
            try {
                std::rethrow_exception(error);
            } catch (const currant::Error& e) {
                if (e.code() == currant::Errc::already_exists && options.dedupe_key)
                    throw PyCurrantError{"duplicate_job", "already_exists", e.what()};
                throw;
            }
        }
        return PyLong_FromUnsignedLongLong(id);
    } catch (...) {
        set_error_from_current_exception();
        return nullptr;
    }
}

// dequeue(entrypoints, batch_size, timeout_ns) -> list of Job
PyObject* fast_dequeue(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    try {
        if (nargs != 3) throw py::type_error("dequeue(entrypoints, batch_size, timeout_ns)");
        Holder& h = holder_of(self);
        const std::size_t batch_size = std::size_t(int_argument(args[1], "batch_size", 0, 1 << 24));
        if (batch_size == 0) throw py::value_error("batch_size must be at least 1");
        const std::int64_t timeout_ns = int_argument(args[2], "timeout_ns", INT64_MIN, INT64_MAX);
        const EntrypointSet eps = entrypoint_set(h, args[0]);
        currant::Job one;
        std::vector<currant::Job> many(batch_size > 1 ? batch_size : 0);
        const std::span<currant::Job> jobs = batch_size > 1 ? std::span<currant::Job>(many) : std::span(&one, 1);
        std::size_t count = 0;
        wait_for_jobs(h, timeout_ns, [&](currant::Queue& queue, nanoseconds timeout) {
            count = queue.dequeue(eps.ids(), jobs, timeout);
            return count > 0;
        });
        py::object out = py::reinterpret_steal<py::object>(PyList_New(Py_ssize_t(count)));
        if (!out) throw py::error_already_set();
        for (std::size_t i = 0; i < count; ++i) PyList_SET_ITEM(out.ptr(), Py_ssize_t(i), new_job(self, jobs[i]));
        return out.release().ptr();
    } catch (...) {
        set_error_from_current_exception();
        return nullptr;
    }
}

// dequeue_one(entrypoints, timeout_ns) -> Job or None, from the prefetch buffer
PyObject* fast_dequeue_one(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    try {
        if (nargs != 2) throw py::type_error("dequeue_one(entrypoints, timeout_ns)");
        Holder& h = holder_of(self);
        const std::int64_t timeout_ns = int_argument(args[1], "timeout_ns", INT64_MIN, INT64_MAX);
        const EntrypointSet eps = entrypoint_set(h, args[0]);
        std::optional<currant::Job> job;
        wait_for_jobs(h, timeout_ns, [&](currant::Queue& queue, nanoseconds timeout) {
            job = queue.dequeue_one(eps.ids(), timeout);
            return job.has_value();
        });
        if (!job) Py_RETURN_NONE;
        return new_job(self, *job);
    } catch (...) {
        set_error_from_current_exception();
        return nullptr;
    }
}

// ack(job): releases job.payload, then records success.
PyObject* fast_ack(PyObject* self, PyObject* arg) {
    try {
        JobObject* job = as_job(arg);
        release_job_views(job);
        mark_finished(job);
        Holder& h = holder_of(self);
        ReleasedGil unlocked;
        std::lock_guard guard(h.mutex);
        h.get().ack(job->job.handle);
    } catch (...) {
        set_error_from_current_exception();
        return nullptr;
    }
    Py_RETURN_NONE;
}

// ack_deferred(job): buffered, not a fact when it returns; releases job.payload now.
PyObject* fast_ack_deferred(PyObject* self, PyObject* arg) {
    try {
        JobObject* job = as_job(arg);
        release_job_views(job);
        mark_finished(job);
        Holder& h = holder_of(self);
        auto guard = h.lock();
        h.get().ack_deferred(job->job.handle);
    } catch (...) {
        set_error_from_current_exception();
        return nullptr;
    }
    Py_RETURN_NONE;
}

void fast_dealloc(PyObject* obj) {
    reinterpret_cast<FastQueue*>(obj)->holder.~shared_ptr<Holder>();
    PyTypeObject* type = Py_TYPE(obj);
    type->tp_free(obj);
    Py_DECREF(type);
}

// ---- Job's attributes ----

PyObject* job_payload(PyObject* obj, void*) {
    auto* j = reinterpret_cast<JobObject*>(obj);
    if (j->finished || holder_of(j->queue).closed) {
        PyErr_SetString(PyExc_ValueError, "job payload is no longer valid: the job was acked, failed or retried, "
                                          "or the queue closed");
        return nullptr;
    }
    if (!j->view) {
        if (!j->exporter) {
            try {
                j->exporter = new_payload_view(shared_holder_of(j->queue), j->job.payload).release().ptr();
            } catch (...) {
                set_error_from_current_exception();
                return nullptr;
            }
        }
        j->view = PyMemoryView_FromObject(j->exporter);
        if (!j->view) return nullptr;
    }
    Py_INCREF(j->view);
    return j->view;
}

PyObject* job_id(PyObject* obj, void*) {
    return PyLong_FromUnsignedLongLong(reinterpret_cast<JobObject*>(obj)->job.handle.id);
}
PyObject* job_entrypoint(PyObject* obj, void*) {
    return PyLong_FromUnsignedLong(reinterpret_cast<JobObject*>(obj)->job.entrypoint);
}
PyObject* job_priority(PyObject* obj, void*) { return PyLong_FromLong(reinterpret_cast<JobObject*>(obj)->job.priority); }
PyObject* job_attempts(PyObject* obj, void*) {
    return PyLong_FromUnsignedLong(reinterpret_cast<JobObject*>(obj)->job.attempts);
}
PyObject* job_enqueued_at_ns(PyObject* obj, void*) {
    return PyLong_FromLongLong(reinterpret_cast<JobObject*>(obj)->job.enqueued_at_ns);
}
PyObject* job_finished(PyObject* obj, void*) { return PyBool_FromLong(reinterpret_cast<JobObject*>(obj)->finished); }

PyObject* job_repr(PyObject* obj) {
    auto* j = reinterpret_cast<JobObject*>(obj);
    return PyUnicode_FromFormat("<currant.Job id=%llu entrypoint=%u attempts=%u%s>",
                                static_cast<unsigned long long>(j->job.handle.id), j->job.entrypoint,
                                j->job.attempts, j->finished ? " finished" : "");
}

PyTypeObject* make_fast_types() {
    static PyMethodDef fast_methods[] = {
        {"enqueue", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fast_enqueue)), METH_FASTCALL,
         nullptr},
        {"dequeue", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fast_dequeue)), METH_FASTCALL,
         nullptr},
        {"dequeue_one", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fast_dequeue_one)),
         METH_FASTCALL, nullptr},
        {"ack", fast_ack, METH_O, nullptr},
        {"ack_deferred", fast_ack_deferred, METH_O, nullptr},
        {nullptr, nullptr, 0, nullptr},
    };
    static PyType_Slot fast_slots[] = {
        {Py_tp_dealloc, reinterpret_cast<void*>(fast_dealloc)},
        {Py_tp_methods, fast_methods},
        {Py_tp_doc, const_cast<char*>("The hot path of a currant Queue (raw CPython); use currant.Queue.")},
        {0, nullptr},
    };
    static PyType_Spec fast_spec = {"currant._currant.FastQueue", sizeof(FastQueue), 0,
                                    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, fast_slots};
    static PyGetSetDef job_getset[] = {
        {"id", job_id, nullptr, const_cast<char*>("job id"), nullptr},
        {"entrypoint", job_entrypoint, nullptr, const_cast<char*>("entrypoint id"), nullptr},
        {"priority", job_priority, nullptr, nullptr, nullptr},
        {"attempts", job_attempts, nullptr, const_cast<char*>("1 on the first delivery"), nullptr},
        {"enqueued_at_ns", job_enqueued_at_ns, nullptr, const_cast<char*>("CLOCK_REALTIME"), nullptr},
        {"finished", job_finished, nullptr, const_cast<char*>("True once acked, failed or retried"), nullptr},
        {"payload", job_payload, nullptr,
         const_cast<char*>("read-only memoryview into the segment, released when the job is finished"), nullptr},
        {nullptr, nullptr, nullptr, nullptr, nullptr},
    };
    static PyType_Slot job_slots[] = {
        {Py_tp_dealloc, reinterpret_cast<void*>(job_dealloc)},
        {Py_tp_getset, job_getset},
        {Py_tp_repr, reinterpret_cast<void*>(job_repr)},
        {Py_tp_doc, const_cast<char*>("A picked job. payload is valid until ack/fail/retry.")},
        {0, nullptr},
    };
    static PyType_Spec job_spec = {"currant._currant.Job", sizeof(JobObject), 0,
                                   Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, job_slots};
    job_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&job_spec));
    if (!job_type) return nullptr;
    fast_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&fast_spec));
    return fast_type;
}

class PyQueue {
public:
    explicit PyQueue(currant::Queue queue) : holder_(std::make_shared<Holder>()) {
        holder_->name = queue.name();
        holder_->queue.emplace(std::move(queue));
    }

    static PyQueue create(const std::string& name, std::uint32_t slots, std::uint32_t payload_bytes,
                          std::uint32_t max_entrypoints, std::uint32_t max_participants, std::uint32_t log_capacity,
                          std::uint16_t host_id, unsigned mode, std::uint32_t result_bytes) {
        currant::QueueOptions options;
        options.result_bytes = result_bytes;
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

    // Limits (docs/limits.md): None leaves an existing entrypoint's as they are.
    currant::EntrypointId declare_entrypoint(const std::string& name, const std::string& durability,
                                             std::int64_t lease_ms, std::uint32_t max_attempts,
                                             std::int64_t retry_delay_ms, std::int64_t max_retry_delay_ms,
                                             py::object concurrency_limit, py::object rate_limit,
                                             py::object rate_burst, py::object max_dead,
                                             py::object result_retention_ms) {
        currant::EntrypointOptions options;
        if (!max_dead.is_none()) options.max_dead = max_dead.cast<std::uint32_t>(); // range checked in Python
        if (!result_retention_ms.is_none()) options.result_retention = milliseconds(result_retention_ms.cast<std::int64_t>());
        if (!concurrency_limit.is_none()) options.concurrency_limit = concurrency_limit.cast<std::int64_t>();
        if (!rate_limit.is_none()) options.rate_limit = rate_limit.cast<double>();
        if (!rate_burst.is_none()) options.rate_burst = rate_burst.cast<std::int64_t>();
        try {
            if (!durability.empty()) options.durability = currant::parse_durability(durability); // "": the default
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

    currant::EntrypointId entrypoint(py::handle which) { return resolve_entrypoint(*holder_, which.ptr()); }

    // --- pause and limits (docs/limits.md) ---
    void pause(py::handle which) {
        const auto ep = resolve_entrypoint(*holder_, which.ptr());
        auto guard = holder_->lock();
        holder_->get().pause(ep);
    }
    void resume(py::handle which) {
        const auto ep = resolve_entrypoint(*holder_, which.ptr());
        auto guard = holder_->lock();
        holder_->get().resume(ep);
    }
    void set_concurrency_limit(py::handle which, py::object limit) {
        const auto ep = resolve_entrypoint(*holder_, which.ptr());
        std::optional<std::int64_t> value;
        if (!limit.is_none()) value = limit.cast<std::int64_t>();
        auto guard = holder_->lock();
        holder_->get().set_concurrency_limit(ep, value);
    }
    void set_rate_limit(py::handle which, py::object per_second, std::int64_t burst) {
        const auto ep = resolve_entrypoint(*holder_, which.ptr());
        std::optional<double> value;
        if (!per_second.is_none()) value = per_second.cast<double>();
        auto guard = holder_->lock();
        holder_->get().set_rate_limit(ep, value, burst);
    }
    py::dict limits(py::handle which) {
        const auto ep = resolve_entrypoint(*holder_, which.ptr());
        currant::EntrypointLimits l;
        {
            auto guard = holder_->lock();
            l = holder_->get().limits(ep);
        }
        py::dict d;
        d["paused"] = l.paused;
        d["concurrency"] = l.concurrency ? py::object(py::int_(*l.concurrency)) : py::object(py::none());
        d["in_flight"] = l.in_flight;
        d["rate"] = l.rate ? py::object(py::float_(*l.rate)) : py::object(py::none());
        d["burst"] = l.burst;
        return d;
    }

    // The hot-path object sharing this queue's state.
    py::object fast() {
        PyObject* obj = fast_type->tp_alloc(fast_type, 0);
        if (!obj) throw py::error_already_set();
        new (&reinterpret_cast<FastQueue*>(obj)->holder) std::shared_ptr<Holder>(holder_);
        return py::reinterpret_steal<py::object>(obj);
    }

    std::string entrypoint_name(currant::EntrypointId id) {
        auto guard = holder_->lock();
        return holder_->get().entrypoint_name(id);
    }

    std::vector<std::string> entrypoint_names() {
        auto guard = holder_->lock();
        return holder_->get().entrypoint_names();
    }

    // depends_on: None or an iterable of job ids, for every job of the batch.
    std::vector<currant::JobId> enqueue_batch(py::handle ep, py::iterable payloads, std::int32_t priority,
                                              std::int64_t execute_after_ns, std::uint32_t max_attempts,
                                              std::int64_t arena_wait_ms, py::object depends_on) {
        auto id = entrypoint(ep);
        std::vector<Buffer> buffers;
        for (auto item : payloads) buffers.emplace_back(item);
        std::vector<std::span<const std::byte>> spans;
        spans.reserve(buffers.size());
        for (auto& b : buffers) spans.push_back(b.span());
        std::vector<currant::JobId> ids(spans.size());
        if (spans.empty()) return ids;
        auto options = enqueue_options(priority, execute_after_ns, max_attempts, arena_wait_ms);
        if (!depends_on.is_none()) options.depends_on = depends_on_argument(depends_on.ptr());
        std::size_t done = 0;
        {
            py::gil_scoped_release unlocked;
            std::lock_guard guard(holder_->mutex);
            done = holder_->get().enqueue_batch(id, spans, ids, options);
        }
        ids.resize(done);
        return ids;
    }

    void set_prefetch(std::uint32_t jobs) {
        auto guard = holder_->lock();
        holder_->get().set_prefetch(jobs);
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

    bool last_enqueue_skipped() {
        auto guard = holder_->lock();
        return holder_->get().last_enqueue_skipped();
    }

    // size < 0: the whole capacity.
    currant::JobId commit(PyReservation& r, std::int64_t size, std::int32_t priority, std::int64_t execute_after_ns,
                          std::uint32_t max_attempts, py::object depends_on) {
        r.check_open("commit");
        // Before the views are released: a bad depends_on leaves the
        // reservation as it was.
        std::vector<currant::JobId> dependencies;
        if (!depends_on.is_none()) dependencies = depends_on_argument(depends_on.ptr());
        const std::size_t capacity = r.reservation.payload.size();
        if (size > std::int64_t(capacity))
            throw PyCurrantError{"payload_too_large", "payload_too_large",
                                 "queue '" + holder_->name + "': commit of " + std::to_string(size) +
                                     " bytes exceeds the reservation's " + std::to_string(capacity) + " bytes"};
        r.release_views();
        auto options = enqueue_options(priority, execute_after_ns, max_attempts, 0);
        options.depends_on = std::move(dependencies);
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

    // --- results (docs/results.md) ---
    // The job stays picked (and its Job object usable) when the result is
    // refused for its size: it is marked finished only once the ack is
    // applied or can no longer apply.
    void ack_result(py::handle obj, const py::bytes& result) {
        JobObject* job = as_job(obj.ptr());
        release_job_views(job);
        const std::string_view bytes = result;
        const std::span<const std::byte> span(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size());
        try {
            py::gil_scoped_release unlocked;
            std::lock_guard guard(holder_->mutex);
            holder_->get().ack(job->job.handle, span);
        } catch (const currant::Error& e) {
            if (e.code() != currant::Errc::invalid_argument) mark_finished(job);
            throw;
        }
        mark_finished(job);
    }

    // Blocks with the GIL released; a signal handler ends the wait (then its
    // Python handler runs here, KeyboardInterrupt propagates) and it waits
    // again for the time left, like a dequeue.
    py::list wait(const std::vector<currant::JobId>& ids, std::int64_t timeout_ns) {
        const auto now_ns = [] { return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count(); };
        const std::int64_t deadline = timeout_ns < 0 ? -1 : now_ns() + timeout_ns;
        std::vector<currant::JobOutcome> outcomes;
        for (;;) {
            {
                ReleasedGil unlocked;
                std::lock_guard guard(holder_->mutex);
                currant::Queue::set_dequeue_returns_on_signal(true);
                outcomes = holder_->get().wait(ids, nanoseconds(timeout_ns));
            }
            const bool settled = std::all_of(outcomes.begin(), outcomes.end(), [](const currant::JobOutcome& o) {
                return o.finished || o.status == currant::JobStatus::unknown;
            });
            if (settled || timeout_ns == 0) break;
            if (holder_->interrupted.exchange(false, std::memory_order_seq_cst)) break;
            if (PyErr_CheckSignals() != 0) throw py::error_already_set();
            if (deadline >= 0) {
                const std::int64_t now = now_ns();
                if (now >= deadline) break;
                timeout_ns = deadline - now;
            }
        }
        py::list out;
        for (const auto& o : outcomes) {
            py::dict item;
            item["id"] = o.id;
            item["status"] = std::string(currant::job_status_name(o.status));
            item["finished"] = o.finished;
            if (o.result)
                item["result"] = py::bytes(reinterpret_cast<const char*>(o.result->data()), o.result->size());
            else
                item["result"] = py::none();
            item["error"] = py::reinterpret_steal<py::object>(
                PyUnicode_DecodeUTF8(o.error.data(), Py_ssize_t(o.error.size()), "replace"));
            item["finished_at_ns"] = o.finished_at_ns;
            out.append(item);
        }
        return out;
    }

    void set_result_retention(py::handle which, std::int64_t retention_ms) {
        const auto ep = resolve_entrypoint(*holder_, which.ptr());
        auto guard = holder_->lock();
        holder_->get().set_result_retention(ep, milliseconds(retention_ms));
    }

    std::size_t ack_many(py::handle jobs) {
        std::vector<JobObject*> list = job_list(jobs, "ack_many");
        for (auto* job : list) release_job_views(job);
        std::vector<currant::JobHandle> handles;
        handles.reserve(list.size());
        for (auto* job : list) {
            mark_finished(job);
            handles.push_back(job->job.handle);
        }
        py::gil_scoped_release unlocked;
        std::lock_guard guard(holder_->mutex);
        return holder_->get().ack(handles);
    }

    // error: the failure's text, kept with the job (docs/dead-jobs.md).
    void fail(py::handle obj, const std::string& error) {
        JobObject* job = as_job(obj.ptr());
        release_job_views(job);
        mark_finished(job);
        py::gil_scoped_release unlocked;
        std::lock_guard guard(holder_->mutex);
        holder_->get().fail(job->job.handle, error);
    }

    bool retry(py::handle obj, std::int64_t delay_ms, const std::string& error) {
        JobObject* job = as_job(obj.ptr());
        release_job_views(job);
        mark_finished(job);
        std::optional<milliseconds> delay;
        if (delay_ms >= 0) delay = milliseconds(delay_ms);
        py::gil_scoped_release unlocked;
        std::lock_guard guard(holder_->mutex);
        return holder_->get().retry(job->job.handle, delay, error);
    }

    // --- dead jobs (docs/dead-jobs.md) ---
    py::list dead_jobs(py::handle which) {
        std::optional<currant::EntrypointId> only;
        if (!which.is_none()) only = resolve_entrypoint(*holder_, which.ptr());
        std::vector<currant::DeadJob> all;
        {
            auto guard = holder_->lock();
            all = holder_->get().dead_jobs(only);
        }
        py::list out;
        for (const auto& d : all) {
            py::dict item;
            item["id"] = d.id;
            item["entrypoint"] = d.entrypoint_name;
            item["entrypoint_id"] = d.entrypoint;
            item["priority"] = d.priority;
            item["attempts"] = d.attempts;
            item["max_attempts"] = d.max_attempts;
            item["enqueued_at_ns"] = d.enqueued_at_ns;
            item["died_at_ns"] = d.died_at_ns;
            // Error texts are cut at a UTF-8 boundary; a handler may still
            // have passed bytes that are not UTF-8 through C or C++.
            item["error"] = py::reinterpret_steal<py::object>(
                PyUnicode_DecodeUTF8(d.error.data(), Py_ssize_t(d.error.size()), "replace"));
            item["error_truncated"] = d.error_truncated;
            item["payload"] = py::bytes(reinterpret_cast<const char*>(d.payload.data()), d.payload.size());
            out.append(item);
        }
        return out;
    }

    bool requeue(currant::JobId id) {
        auto guard = holder_->lock();
        try {
            return holder_->get().requeue(id);
        } catch (const currant::Error& e) {
            if (e.code() == currant::Errc::already_exists) throw PyCurrantError{"duplicate_job", "already_exists", e.what()};
            throw;
        }
    }
    std::size_t requeue_dead(py::handle which) {
        const auto ep = resolve_entrypoint(*holder_, which.ptr());
        auto guard = holder_->lock();
        return holder_->get().requeue_dead(ep);
    }
    bool purge(currant::JobId id) {
        auto guard = holder_->lock();
        return holder_->get().purge(id);
    }
    std::size_t purge_dead(py::handle which) {
        const auto ep = resolve_entrypoint(*holder_, which.ptr());
        auto guard = holder_->lock();
        return holder_->get().purge_dead(ep);
    }

    std::size_t heartbeat(py::handle jobs) {
        std::vector<currant::JobHandle> handles;
        for (auto* job : job_list(jobs, "heartbeat")) handles.push_back(job->job.handle);
        py::gil_scoped_release unlocked;
        std::lock_guard guard(holder_->mutex);
        return holder_->get().heartbeat(handles);
    }

    // "canceled", "requested" or "not_cancelable" (docs/cancellation.md).
    std::string cancel(currant::JobId id) {
        auto guard = holder_->lock();
        return std::string(currant::cancel_outcome_name(holder_->get().cancel(id)));
    }
    // Without the mutex (atomics only, like interrupt()): a handler thread
    // may check it while another thread waits in dequeue.
    bool cancel_requested(py::handle obj) {
        JobObject* job = as_job(obj.ptr());
        if (holder_->closed || !holder_->queue) return false;
        return holder_->queue->cancel_requested(job->job.handle);
    }
    // Index of the first job a cancel was requested for, or None (timeout,
    // interrupt(), none of them still held).
    std::optional<std::size_t> wait_for_cancel(py::handle jobs, std::int64_t timeout_ns) {
        std::vector<currant::JobHandle> handles;
        for (auto* job : job_list(jobs, "wait_for_cancel")) handles.push_back(job->job.handle);
        std::optional<std::size_t> found;
        {
            py::gil_scoped_release unlocked;
            std::lock_guard guard(holder_->mutex);
            found = holder_->get().wait_for_cancel(handles, std::chrono::nanoseconds(timeout_ns));
        }
        // Like a dequeue that returns empty: an interrupt() that ended the
        // wait is consumed here, not by the next dequeue.
        if (!found) holder_->interrupted.exchange(false, std::memory_order_seq_cst);
        return found;
    }
    void ack_canceled(py::handle obj) {
        JobObject* job = as_job(obj.ptr());
        release_job_views(job);
        mark_finished(job);
        py::gil_scoped_release unlocked;
        std::lock_guard guard(holder_->mutex);
        holder_->get().ack_canceled(job->job.handle);
    }

    // --- schedules (docs/schedules.md) ---
    void add_schedule(const std::string& name, const std::string& expression, py::handle entrypoint,
                      const py::bytes& payload, std::int32_t priority, const std::string& missed,
                      std::uint32_t catch_up_max) {
        currant::ScheduleOptions options;
        options.name = name;
        options.expression = expression;
        options.entrypoint = resolve_entrypoint(*holder_, entrypoint.ptr());
        const std::string_view bytes = payload;
        const auto* data = reinterpret_cast<const std::byte*>(bytes.data());
        options.payload.assign(data, data + bytes.size());
        options.priority = priority;
        options.missed = currant::parse_missed_ticks(missed);
        options.catch_up_max = catch_up_max;
        auto guard = holder_->lock();
        try {
            holder_->get().add_schedule(options);
        } catch (const currant::Error& e) {
            if (e.code() == currant::Errc::already_exists)
                throw PyCurrantError{"schedule_exists", "already_exists", e.what()};
            throw;
        }
    }

    void remove_schedule(const std::string& name) {
        auto guard = holder_->lock();
        try {
            holder_->get().remove_schedule(name);
        } catch (const currant::Error& e) {
            if (e.code() == currant::Errc::not_found)
                throw PyCurrantError{"schedule_not_found", "not_found", e.what()};
            throw;
        }
    }

    py::list schedules() {
        std::vector<currant::ScheduleInfo> all;
        {
            auto guard = holder_->lock();
            all = holder_->get().schedules();
        }
        py::list out;
        for (const auto& s : all) {
            py::dict d;
            d["name"] = s.name;
            d["expression"] = s.expression;
            d["entrypoint"] = s.entrypoint_name;
            d["entrypoint_id"] = s.entrypoint;
            d["payload"] = py::bytes(reinterpret_cast<const char*>(s.payload.data()), s.payload.size());
            d["priority"] = s.priority;
            d["missed"] = std::string(currant::missed_ticks_name(s.missed));
            d["catch_up_max"] = s.catch_up_max;
            d["next_tick_ns"] = s.next_tick_ns;
            d["last_tick_ns"] = s.last_tick_ns;
            d["fired"] = s.fired;
            d["last_job_id"] = s.last_job_id;
            d["created_at_ns"] = s.created_at_ns;
            out.append(d);
        }
        return out;
    }

    std::size_t run_schedules() {
        auto guard = holder_->lock();
        return holder_->get().run_schedules();
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

    // job_info(id) -> {"status", "depends_on", "waiting_on", "reason", "slot_reused"} (docs/job-dependencies.md)
    py::dict job_info(currant::JobId id) {
        std::vector<currant::JobState> states;
        {
            py::gil_scoped_release unlocked;
            std::lock_guard guard(holder_->mutex);
            const currant::JobId ids[] = {id};
            states = holder_->get().status(ids);
        }
        const currant::JobState& s = states.at(0);
        py::dict d;
        d["status"] = std::string(currant::job_status_name(s.status));
        d["depends_on"] = s.depends_on;
        d["waiting_on"] = s.waiting_on;
        d["reason"] = s.reason;
        d["slot_reused"] = s.slot_reused;
        return d;
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
            d["waiting"] = s.waiting;
            d["dead"] = s.dead;
            d["enqueued"] = s.enqueued;
            d["picks"] = s.picks;
            d["successful"] = s.successful;
            d["failed"] = s.failed;
            d["retried"] = s.retried;
            d["canceled"] = s.canceled;
            d["log_pending"] = s.log_pending;
            d["dirty_slots"] = s.dirty_slots;
            d["mirror_lag_seconds"] = double(s.mirror_lag_ns) / 1e9;
            d["paused"] = s.paused;
            d["concurrency_limit"] = s.concurrency_limit;  // 0: none
            d["in_flight"] = s.in_flight;
            d["rate_limit"] = s.rate_limit;                // 0: none
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
    static std::vector<JobObject*> job_list(py::handle jobs, const char* what) {
        std::vector<JobObject*> list;
        for (auto item : py::iterable(py::reinterpret_borrow<py::object>(jobs))) {
            if (Py_TYPE(item.ptr()) != job_type) throw py::type_error(std::string(what) + " takes Job objects");
            list.push_back(reinterpret_cast<JobObject*>(item.ptr()));
        }
        return list;
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
    if (!make_fast_types()) throw py::error_already_set();
    m.add_object("Job", reinterpret_cast<PyObject*>(job_type));
    m.add_object("FastQueue", reinterpret_cast<PyObject*>(fast_type));

    // Errors become currant.<Class> built by currant._errors.make_error(kind, code, message).
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const PyCurrantError& e) {
            set_python_error(e.kind, e.code, e.message.c_str());
        } catch (const currant::Error& e) {
            const std::string code(currant::errc_name(e.code()));
            set_python_error(code, code, e.what());
        }
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
        .def("pause", &PyQueue::pause)
        .def("resume", &PyQueue::resume)
        .def("set_concurrency_limit", &PyQueue::set_concurrency_limit)
        .def("set_rate_limit", &PyQueue::set_rate_limit)
        .def("limits", &PyQueue::limits)
        .def("entrypoint_name", &PyQueue::entrypoint_name)
        .def("entrypoint_names", &PyQueue::entrypoint_names)
        .def("fast", &PyQueue::fast)
        .def("enqueue_batch", &PyQueue::enqueue_batch)
        .def("set_prefetch", &PyQueue::set_prefetch)
        .def("flush", &PyQueue::flush)
        .def("last_enqueue_skipped", &PyQueue::last_enqueue_skipped)
        .def("reserve", &PyQueue::reserve)
        .def("commit", &PyQueue::commit)
        .def("abandon", &PyQueue::abandon)
        .def("ack_many", &PyQueue::ack_many)
        .def("fail", &PyQueue::fail)
        .def("ack_result", &PyQueue::ack_result)
        .def("wait", &PyQueue::wait)
        .def("set_result_retention", &PyQueue::set_result_retention)
        .def("retry", &PyQueue::retry)
        .def("dead_jobs", &PyQueue::dead_jobs)
        .def("requeue", &PyQueue::requeue)
        .def("requeue_dead", &PyQueue::requeue_dead)
        .def("purge", &PyQueue::purge)
        .def("purge_dead", &PyQueue::purge_dead)
        .def("heartbeat", &PyQueue::heartbeat)
        .def("cancel", &PyQueue::cancel)
        .def("cancel_requested", &PyQueue::cancel_requested)
        .def("wait_for_cancel", &PyQueue::wait_for_cancel)
        .def("ack_canceled", &PyQueue::ack_canceled)
        .def("add_schedule", &PyQueue::add_schedule)
        .def("remove_schedule", &PyQueue::remove_schedule)
        .def("schedules", &PyQueue::schedules)
        .def("run_schedules", &PyQueue::run_schedules)
        .def("status", &PyQueue::status)
        .def("job_info", &PyQueue::job_info)
        .def("stats", &PyQueue::stats)
        .def("info", &PyQueue::info)
        .def("reap", &PyQueue::reap);
}
