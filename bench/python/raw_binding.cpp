// _rawbinding: the Python client's single-job hot path (enqueue, dequeue,
// ack) written against the raw CPython API, built only to measure what
// pybind11 costs per call (bench/python/binding_overhead.py). It does the
// same work per call as clients/python/src/module.cpp: the payload through
// the buffer protocol, the GIL released and the queue's mutex taken around
// each core call, a job object that exports its payload and refuses the ack
// while a view is alive. Not installed; not part of the client.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <currant/queue.hpp>

#include <chrono>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

namespace {

struct RawQueue {
    PyObject_HEAD
    currant::Queue* queue;
    std::mutex* mutex;
};

struct RawJob {
    PyObject_HEAD
    currant::Job job;
    Py_ssize_t exports;
    bool valid;
    PyObject* queue;  // keeps the mapping alive
};

PyTypeObject* queue_type = nullptr;
PyTypeObject* job_type = nullptr;

// Runs a core call with the GIL released and the mutex held; false (with a
// Python exception set) if it threw.
template <typename F>
bool call_core(RawQueue* q, F&& body) {
    const char* message = nullptr;
    std::string text;
    Py_BEGIN_ALLOW_THREADS
    try {
        std::lock_guard guard(*q->mutex);
        body();
    } catch (const std::exception& e) {
        text = e.what();
        message = text.c_str();
    }
    Py_END_ALLOW_THREADS
    if (message) {
        PyErr_SetString(PyExc_RuntimeError, message);
        return false;
    }
    return true;
}

PyObject* queue_new(PyTypeObject* type, PyObject* args, PyObject*) {
    const char* name = nullptr;
    if (!PyArg_ParseTuple(args, "s", &name)) return nullptr;
    auto* self = reinterpret_cast<RawQueue*>(type->tp_alloc(type, 0));
    if (!self) return nullptr;
    try {
        self->queue = new currant::Queue(currant::Queue::open(name));
        self->mutex = new std::mutex;
    } catch (const std::exception& e) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_RuntimeError, e.what());
        return nullptr;
    }
    return reinterpret_cast<PyObject*>(self);
}

void queue_dealloc(PyObject* obj) {
    auto* self = reinterpret_cast<RawQueue*>(obj);
    delete self->queue;
    delete self->mutex;
    PyTypeObject* type = Py_TYPE(obj);
    type->tp_free(obj);
    Py_DECREF(type);
}

// enqueue(entrypoint_id, payload) -> job id
PyObject* queue_enqueue(PyObject* obj, PyObject* const* args, Py_ssize_t nargs) {
    auto* self = reinterpret_cast<RawQueue*>(obj);
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "enqueue(entrypoint_id, payload)");
        return nullptr;
    }
    const unsigned long ep = PyLong_AsUnsignedLong(args[0]);
    if (ep == static_cast<unsigned long>(-1) && PyErr_Occurred()) return nullptr;
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) != 0) return nullptr;
    currant::JobId id = 0;
    const bool ok = call_core(self, [&] {
        id = self->queue->enqueue(currant::EntrypointId(ep),
                                  {static_cast<const std::byte*>(view.buf), std::size_t(view.len)});
    });
    PyBuffer_Release(&view);
    return ok ? PyLong_FromUnsignedLongLong(id) : nullptr;
}

// dequeue(entrypoint_id, batch_size, timeout_ns) -> list of jobs
PyObject* queue_dequeue(PyObject* obj, PyObject* const* args, Py_ssize_t nargs) {
    auto* self = reinterpret_cast<RawQueue*>(obj);
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "dequeue(entrypoint_id, batch_size, timeout_ns)");
        return nullptr;
    }
    const unsigned long ep = PyLong_AsUnsignedLong(args[0]);
    const Py_ssize_t batch = PyLong_AsSsize_t(args[1]);
    const long long timeout_ns = PyLong_AsLongLong(args[2]);
    if (PyErr_Occurred()) return nullptr;
    if (batch < 1) {
        PyErr_SetString(PyExc_ValueError, "batch_size must be at least 1");
        return nullptr;
    }
    std::vector<currant::EntrypointId> eps{currant::EntrypointId(ep)};
    std::vector<currant::Job> jobs(static_cast<std::size_t>(batch));
    std::size_t count = 0;
    if (!call_core(self, [&] {
            currant::Queue::set_dequeue_returns_on_signal(true);
            count = self->queue->dequeue(eps, jobs, std::chrono::nanoseconds(timeout_ns));
        }))
        return nullptr;
    PyObject* out = PyList_New(Py_ssize_t(count));
    if (!out) return nullptr;
    for (std::size_t i = 0; i < count; ++i) {
        auto* job = reinterpret_cast<RawJob*>(job_type->tp_alloc(job_type, 0));
        if (!job) {
            Py_DECREF(out);
            return nullptr;
        }
        job->job = jobs[i];
        job->exports = 0;
        job->valid = true;
        Py_INCREF(obj);
        job->queue = obj;
        PyList_SET_ITEM(out, Py_ssize_t(i), reinterpret_cast<PyObject*>(job));
    }
    return out;
}

// ack(job)
PyObject* queue_ack(PyObject* obj, PyObject* arg) {
    auto* self = reinterpret_cast<RawQueue*>(obj);
    if (Py_TYPE(arg) != job_type) {
        PyErr_SetString(PyExc_TypeError, "ack takes a job");
        return nullptr;
    }
    auto* job = reinterpret_cast<RawJob*>(arg);
    if (job->exports > 0) {
        PyErr_SetString(PyExc_BufferError, "a view of the job's payload is still alive");
        return nullptr;
    }
    job->valid = false;
    if (!call_core(self, [&] { self->queue->ack(job->job.handle); })) return nullptr;
    Py_RETURN_NONE;
}

// native_loop(entrypoint_id, payload, n): n x (enqueue, dequeue one, ack) in
// C++ with the GIL released: the core's own cost, for comparison.
PyObject* queue_native_loop(PyObject* obj, PyObject* const* args, Py_ssize_t nargs) {
    auto* self = reinterpret_cast<RawQueue*>(obj);
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "native_loop(entrypoint_id, payload, n)");
        return nullptr;
    }
    const unsigned long ep = PyLong_AsUnsignedLong(args[0]);
    const long long n = PyLong_AsLongLong(args[2]);
    if (PyErr_Occurred()) return nullptr;
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) != 0) return nullptr;
    const bool ok = call_core(self, [&] {
        const currant::EntrypointId eps[] = {currant::EntrypointId(ep)};
        const std::span<const std::byte> payload(static_cast<const std::byte*>(view.buf), std::size_t(view.len));
        currant::Job job;
        for (long long i = 0; i < n; ++i) {
            self->queue->enqueue(eps[0], payload);
            if (self->queue->dequeue(eps, {&job, 1}, std::chrono::nanoseconds(0)) != 1)
                throw std::runtime_error("native_loop: no job");
            self->queue->ack(job.handle);
        }
    });
    PyBuffer_Release(&view);
    if (!ok) return nullptr;
    Py_RETURN_NONE;
}

PyObject* queue_close(PyObject* obj, PyObject*) {
    auto* self = reinterpret_cast<RawQueue*>(obj);
    if (!call_core(self, [&] { self->queue->close(); })) return nullptr;
    Py_RETURN_NONE;
}

int job_getbuffer(PyObject* obj, Py_buffer* view, int flags) {
    auto* job = reinterpret_cast<RawJob*>(obj);
    if (!job->valid) {
        view->obj = nullptr;
        PyErr_SetString(PyExc_ValueError, "job payload is no longer valid");
        return -1;
    }
    if (PyBuffer_FillInfo(view, obj, const_cast<std::byte*>(job->job.payload.data()),
                          Py_ssize_t(job->job.payload.size()), 1, flags) < 0)
        return -1;
    ++job->exports;
    return 0;
}

void job_releasebuffer(PyObject* obj, Py_buffer*) { --reinterpret_cast<RawJob*>(obj)->exports; }

void job_dealloc(PyObject* obj) {
    Py_XDECREF(reinterpret_cast<RawJob*>(obj)->queue);
    PyTypeObject* type = Py_TYPE(obj);
    type->tp_free(obj);
    Py_DECREF(type);
}

PyObject* job_id(PyObject* obj, void*) {
    return PyLong_FromUnsignedLongLong(reinterpret_cast<RawJob*>(obj)->job.handle.id);
}

PyMethodDef queue_methods[] = {
    {"enqueue", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(queue_enqueue)), METH_FASTCALL, nullptr},
    {"dequeue", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(queue_dequeue)), METH_FASTCALL, nullptr},
    {"ack", queue_ack, METH_O, nullptr},
    {"native_loop", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(queue_native_loop)), METH_FASTCALL,
     nullptr},
    {"close", queue_close, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef job_getset[] = {
    {"id", job_id, nullptr, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_rawbinding", "Raw CPython hot path, for measurement only.", -1,
                          nullptr, nullptr, nullptr, nullptr, nullptr};

} // namespace

PyMODINIT_FUNC PyInit__rawbinding() {
    static PyType_Slot queue_slots[] = {
        {Py_tp_new, reinterpret_cast<void*>(queue_new)},
        {Py_tp_dealloc, reinterpret_cast<void*>(queue_dealloc)},
        {Py_tp_methods, queue_methods},
        {0, nullptr},
    };
    static PyType_Spec queue_spec = {"_rawbinding.Queue", sizeof(RawQueue), 0, Py_TPFLAGS_DEFAULT, queue_slots};
    static PyType_Slot job_slots[] = {
        {Py_bf_getbuffer, reinterpret_cast<void*>(job_getbuffer)},
        {Py_bf_releasebuffer, reinterpret_cast<void*>(job_releasebuffer)},
        {Py_tp_dealloc, reinterpret_cast<void*>(job_dealloc)},
        {Py_tp_getset, job_getset},
        {0, nullptr},
    };
    static PyType_Spec job_spec = {"_rawbinding.Job", sizeof(RawJob), 0, Py_TPFLAGS_DEFAULT, job_slots};
    PyObject* module = PyModule_Create(&module_def);
    if (!module) return nullptr;
    queue_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&queue_spec));
    job_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&job_spec));
    if (!queue_type || !job_type || PyModule_AddObjectRef(module, "Queue", reinterpret_cast<PyObject*>(queue_type)) < 0 ||
        PyModule_AddObjectRef(module, "Job", reinterpret_cast<PyObject*>(job_type)) < 0) {
        Py_DECREF(module);
        return nullptr;
    }
    return module;
}
