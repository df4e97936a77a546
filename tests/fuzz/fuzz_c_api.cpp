// libFuzzer target: the C ABI (clients/c, currant.h) fed arbitrary names,
// sizes, durabilities, batches, handles and timeouts must never crash: every
// call returns a status code, and the few outcomes the header promises are
// checked (a NULL argument is INVALID_ARGUMENT, a name outside the allowed
// set is never created, a dequeued payload lies inside its slot).
//
// Each input creates one queue under a name private to this process
// ("fzc<pid>", plus a fuzzed suffix for some inputs), runs a sequence of
// calls chosen by the input on up to three handles, and removes it.
//
// Bounded waits, so that an input cannot hang the run: dequeue timeouts are
// folded into [0, 1 ms] (a negative timeout means "forever"), arena waits
// into [0, 1] ms, and a declared `sync` durability becomes `async` (a sync
// enqueue waits 5 s for a mirror that does not run here). The transition
// log holds at least 8192 records, more than one input can write, so the
// 1 s wait for log space is never reached either.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

#include "currant.h"

namespace {

struct Input {
    const std::uint8_t* data;
    std::size_t size, at = 0;
    bool empty() const { return at >= size; }
    std::uint8_t u8() { return at < size ? data[at++] : 0; }
    std::uint16_t u16() { return std::uint16_t(u8() | u8() << 8); }
    std::uint32_t u32() { return std::uint32_t(u16()) | std::uint32_t(u16()) << 16; }
    std::uint64_t u64() { return std::uint64_t(u32()) | std::uint64_t(u32()) << 32; }
    std::string text(std::size_t max) {
        std::string s;
        const std::size_t n = u8() % (max + 1);
        for (std::size_t i = 0; i < n && !empty(); ++i) s.push_back(char(u8()));
        return s;
    }
};

[[noreturn]] void broken(const char* what) {
    std::fprintf(stderr, "fuzz_c_api: %s (last error: %s)\n", what, currant_last_error());
    std::abort();
}

void expect_invalid(int rc, const char* call) {
    if (rc != CURRANT_ERR_INVALID_ARGUMENT) {
        std::fprintf(stderr, "fuzz_c_api: %s with a NULL argument returned %d\n", call, rc);
        std::abort();
    }
}

bool acceptable_queue_name(const std::string& name) {
    if (name.empty() || name.size() > 100 || name.find('\0') != std::string::npos) return false;
    if (name[0] == '.' || name[0] == '-') return false;
    for (unsigned char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-'))
            return false;
    return true;
}

std::int64_t folded_timeout(std::uint64_t raw) { return std::int64_t(raw % 1'000'001); }

struct Held {
    currant_job job;
    std::size_t handle;
};

struct Session {
    Input& in;
    std::vector<currant_queue*> handles;
    std::vector<Held> jobs;
    std::vector<std::pair<currant_reservation, std::size_t>> reservations;
    std::vector<std::uint64_t> ids;
    std::uint32_t payload_bytes;
    std::string name;

    currant_queue* pick_handle(std::size_t& index) {
        index = in.u8() % handles.size();
        return handles[index];
    }

    currant_job job_for_call(std::size_t& index) {
        const std::uint8_t how = in.u8();
        if (!jobs.empty() && how < 200) {
            const Held& held = jobs[how % jobs.size()];
            index = held.handle;
            currant_job job = held.job;
            if (how & 1) job.epoch ^= std::uint64_t(1) << (in.u8() % 64); // stale
            return job;
        }
        currant_job forged{};
        forged.slot = (how & 1) ? in.u32() : in.u8();
        forged.epoch = in.u64();
        forged.id = ids.empty() || (how & 2) ? in.u64() : ids[in.u8() % ids.size()];
        index = in.u8() % handles.size();
        return forged;
    }

    void remember(const currant_job* got, std::size_t n, std::size_t handle) {
        for (std::size_t i = 0; i < n; ++i) {
            // The payload view must lie inside the slot: read all of it.
            if (got[i].payload_size > payload_bytes) broken("payload size exceeds the slot");
            volatile std::uint8_t sum = 0;
            const auto* bytes = static_cast<const std::uint8_t*>(got[i].payload);
            for (std::size_t k = 0; k < got[i].payload_size; ++k) sum = std::uint8_t(sum + bytes[k]);
            if (jobs.size() < 64) jobs.push_back({got[i], handle});
        }
    }

    currant_enqueue_options options() {
        currant_enqueue_options o;
        currant_enqueue_options_init(&o);
        const std::uint8_t how = in.u8();
        if (how & 1) o.priority = std::int32_t(in.u32());
        else if (how & 2) o.priority = std::int8_t(in.u8()) % 4;
        if (how & 4) o.execute_after_ns = std::int64_t(in.u64());
        if (how & 8) o.max_attempts = in.u8();
        if (how & 16) o.arena_wait_ms = in.u8() % 2;
        return o;
    }

    void step() {
        std::size_t h = 0;
        switch (in.u8() % 24) {
        case 0: { // declare
            const std::string ep = in.text(70);
            int durability = std::int8_t(in.u8());
            if (durability == 100) durability = int(in.u32());
            if (durability == CURRANT_DURABILITY_SYNC) durability = CURRANT_DURABILITY_ASYNC;
            std::uint32_t id = 0;
            (void)currant_declare_entrypoint(pick_handle(h), ep.c_str(), durability, &id);
            break;
        }
        case 1: {
            const std::string ep = in.text(70);
            std::uint32_t id = 0;
            (void)currant_entrypoint(pick_handle(h), ep.c_str(), &id);
            break;
        }
        case 2: { // enqueue
            currant_queue* q = pick_handle(h);
            const std::uint32_t ep = (in.u8() & 0x80) ? in.u32() : in.u8() % 8;
            const std::size_t size = in.u16() % (std::size_t(payload_bytes) + 17);
            std::vector<std::uint8_t> payload(size, in.u8());
            const currant_enqueue_options o = options();
            std::uint64_t id = 0;
            const bool defaults = in.u8() & 1;
            if (currant_enqueue(q, ep, size ? payload.data() : nullptr, size, defaults ? nullptr : &o, &id) ==
                CURRANT_OK)
                ids.push_back(id);
            break;
        }
        case 3: { // batch
            currant_queue* q = pick_handle(h);
            const std::uint32_t ep = in.u8() % 8;
            const std::size_t count = in.u8() % 80;
            std::vector<std::vector<std::uint8_t>> storage(count);
            std::vector<currant_buffer> buffers(count);
            for (std::size_t i = 0; i < count; ++i) {
                storage[i].assign(in.u8() % (payload_bytes + 3), std::uint8_t(i));
                buffers[i] = {storage[i].empty() ? nullptr : storage[i].data(), storage[i].size()};
            }
            std::vector<std::uint64_t> out(count);
            const currant_enqueue_options o = options();
            std::size_t enqueued = 0;
            if (currant_enqueue_batch(q, ep, buffers.data(), count, &o, out.data(), &enqueued) == CURRANT_OK) {
                if (enqueued > count) broken("batch enqueued more than it was given");
                ids.insert(ids.end(), out.begin(), out.begin() + std::ptrdiff_t(enqueued));
            }
            break;
        }
        case 4: { // reserve
            currant_queue* q = pick_handle(h);
            currant_reservation r{};
            if (currant_reserve(q, in.u8() % 8, &r) == CURRANT_OK) {
                if (r.payload == nullptr || r.capacity != payload_bytes) broken("reservation without its payload");
                std::memset(r.payload, 0x5a, r.capacity);
                reservations.push_back({r, h});
            }
            break;
        }
        case 5: { // commit (maybe forged)
            if (reservations.empty()) break;
            auto& [r, owner] = reservations[in.u8() % reservations.size()];
            currant_reservation copy = r;
            const std::uint8_t how = in.u8();
            if (how & 1) copy.slot = in.u32();
            if (how & 2) copy.epoch = in.u64();
            if (how & 4) copy.entrypoint = in.u8() % 8;
            if (how & 8) copy.capacity = in.u32();
            const std::size_t handle = (how & 16) ? in.u8() % handles.size() : owner;
            const currant_enqueue_options o = options();
            std::uint64_t id = 0;
            const int rc = currant_commit(handles[handle], &copy, in.u16() % (payload_bytes + 9), &o, &id);
            if (rc == CURRANT_OK) ids.push_back(id);
            if (copy.payload == nullptr) r = copy;
            break;
        }
        case 6: { // abandon
            if (reservations.empty()) break;
            auto& [r, owner] = reservations[in.u8() % reservations.size()];
            (void)currant_abandon(handles[(in.u8() & 1) ? owner : in.u8() % handles.size()], &r);
            break;
        }
        case 7: { // dequeue
            currant_queue* q = pick_handle(h);
            std::uint32_t eps[4];
            const std::size_t ep_count = in.u8() % 5;
            for (std::size_t i = 0; i < ep_count; ++i) eps[i] = (in.u8() & 0x80) ? in.u32() : in.u8() % 6;
            currant_job out[16];
            const std::size_t max_jobs = in.u8() % 17;
            std::size_t n = 0;
            const int rc = currant_dequeue(q, eps, ep_count, out, max_jobs, folded_timeout(in.u64()), &n);
            if (rc == CURRANT_OK) {
                if (n > max_jobs) broken("dequeue returned more jobs than asked for");
                remember(out, n, h);
            } else if ((ep_count == 0 || max_jobs == 0) && rc != CURRANT_ERR_INVALID_ARGUMENT) {
                broken("dequeue with no entrypoints or no room did not say INVALID_ARGUMENT");
            }
            break;
        }
        case 8: { // dequeue_one
            currant_queue* q = pick_handle(h);
            std::uint32_t eps[3];
            const std::size_t ep_count = 1 + in.u8() % 3;
            for (std::size_t i = 0; i < ep_count; ++i) eps[i] = in.u8() % 6;
            currant_job job{};
            std::size_t n = 0;
            if (currant_dequeue_one(q, eps, ep_count, &job, folded_timeout(in.u64()), &n) == CURRANT_OK)
                remember(&job, n, h);
            break;
        }
        case 9: (void)currant_set_prefetch(pick_handle(h), (in.u8() & 1) ? in.u32() : in.u8()); break;
        case 10: {
            const currant_job job = job_for_call(h);
            (void)currant_ack(handles[h], &job);
            break;
        }
        case 11: {
            std::vector<currant_job> batch;
            for (const Held& held : jobs) batch.push_back(held.job);
            std::size_t acked = 0;
            if (currant_ack_batch(pick_handle(h), batch.data(), batch.size(), &acked) == CURRANT_OK &&
                acked > batch.size())
                broken("ack_batch acked more than it was given");
            break;
        }
        case 12: {
            const currant_job job = job_for_call(h);
            (void)currant_ack_deferred(handles[h], &job);
            break;
        }
        case 13: {
            std::size_t acked = 0;
            (void)currant_flush(pick_handle(h), (in.u8() & 1) ? &acked : nullptr);
            break;
        }
        case 14: {
            const currant_job job = job_for_call(h);
            (void)currant_fail(handles[h], &job);
            break;
        }
        case 15: {
            const currant_job job = job_for_call(h);
            int requeued = 0;
            (void)currant_retry(handles[h], &job, std::int64_t(in.u64()), &requeued);
            break;
        }
        case 16: {
            std::vector<currant_job> batch;
            for (const Held& held : jobs) batch.push_back(held.job);
            if (in.u8() & 1) batch.push_back(job_for_call(h));
            std::size_t extended = 0;
            (void)currant_heartbeat(pick_handle(h), batch.data(), batch.size(), &extended);
            break;
        }
        case 17: {
            const std::uint64_t id = ids.empty() || (in.u8() & 1) ? in.u64() : ids[in.u8() % ids.size()];
            int canceled = 0;
            (void)currant_cancel(pick_handle(h), id, &canceled);
            break;
        }
        case 18: {
            std::vector<std::uint64_t> query = ids;
            query.push_back(in.u64());
            std::vector<int> statuses(query.size(), -1);
            if (currant_job_status(pick_handle(h), query.data(), query.size(), statuses.data()) == CURRANT_OK)
                for (int s : statuses)
                    if (s < CURRANT_JOB_UNKNOWN || s > CURRANT_JOB_CANCELED) broken("job status out of range");
            break;
        }
        case 19: {
            currant_entrypoint_stats stats{};
            (void)currant_stats(pick_handle(h), (in.u8() & 1) ? in.u32() : in.u8() % 8, &stats);
            break;
        }
        case 20: {
            const char* text = currant_strerror(std::int32_t(in.u32()));
            if (text == nullptr || currant_last_error() == nullptr) broken("strerror or last_error gave NULL");
            break;
        }
        case 21: null_arguments(pick_handle(h)); break;
        case 22: { // another handle on the same queue
            if (handles.size() >= 3) break;
            currant_queue* q = nullptr;
            if (currant_queue_open(name.c_str(), &q) == CURRANT_OK) handles.push_back(q);
            break;
        }
        default: { // close a handle other than the first; its jobs are gone
            if (handles.size() < 2) break;
            const std::size_t index = 1 + in.u8() % (handles.size() - 1);
            currant_queue_close(handles[index]);
            handles.erase(handles.begin() + std::ptrdiff_t(index));
            std::erase_if(jobs, [&](const Held& held) { return held.handle == index; });
            std::erase_if(reservations, [&](const auto& r) { return r.second == index; });
            for (Held& held : jobs)
                if (held.handle > index) --held.handle;
            for (auto& r : reservations)
                if (r.second > index) --r.second;
            break;
        }
        }
    }

    // Every pointer the header names as required, passed as NULL.
    void null_arguments(currant_queue* q) {
        std::uint32_t id = 0, ep = 0;
        std::uint64_t id64 = 0;
        std::size_t n = 0;
        currant_job job{};
        currant_reservation r{};
        expect_invalid(currant_queue_create(nullptr, nullptr), "queue_create");
        currant_create_options o;
        currant_create_options_init(&o);
        expect_invalid(currant_queue_create(&o, nullptr), "queue_create(name NULL)");
        expect_invalid(currant_queue_open(nullptr, nullptr), "queue_open");
        expect_invalid(currant_queue_remove(nullptr), "queue_remove");
        expect_invalid(currant_declare_entrypoint(nullptr, "x", 0, &id), "declare_entrypoint");
        expect_invalid(currant_declare_entrypoint(q, nullptr, 0, &id), "declare_entrypoint(name)");
        expect_invalid(currant_declare_entrypoint(q, "x", 0, nullptr), "declare_entrypoint(id_out)");
        expect_invalid(currant_entrypoint(q, nullptr, &id), "entrypoint");
        expect_invalid(currant_enqueue(nullptr, 0, nullptr, 0, nullptr, &id64), "enqueue");
        expect_invalid(currant_enqueue(q, 0, nullptr, 1 + in.u8(), nullptr, &id64), "enqueue(payload NULL)");
        expect_invalid(currant_enqueue(q, 0, nullptr, 0, nullptr, nullptr), "enqueue(id_out)");
        expect_invalid(currant_enqueue_batch(q, 0, nullptr, 1, nullptr, &id64, &n), "enqueue_batch(payloads)");
        const currant_buffer bad{nullptr, 3};
        expect_invalid(currant_enqueue_batch(q, 0, &bad, 1, nullptr, &id64, &n), "enqueue_batch(data NULL)");
        expect_invalid(currant_reserve(q, 0, nullptr), "reserve");
        expect_invalid(currant_commit(q, nullptr, 0, nullptr, &id64), "commit");
        expect_invalid(currant_commit(q, &r, 0, nullptr, &id64), "commit(finished reservation)");
        expect_invalid(currant_abandon(q, nullptr), "abandon");
        expect_invalid(currant_dequeue(q, nullptr, 1, &job, 1, 0, &n), "dequeue(eps)");
        expect_invalid(currant_dequeue(q, &ep, 1, nullptr, 1, 0, &n), "dequeue(jobs_out)");
        expect_invalid(currant_dequeue_one(q, &ep, 1, &job, 0, nullptr), "dequeue_one(count_out)");
        expect_invalid(currant_set_prefetch(nullptr, 1), "set_prefetch");
        expect_invalid(currant_ack(q, nullptr), "ack");
        expect_invalid(currant_ack_batch(q, nullptr, 1, &n), "ack_batch");
        expect_invalid(currant_ack_deferred(q, nullptr), "ack_deferred");
        expect_invalid(currant_flush(nullptr, &n), "flush");
        expect_invalid(currant_fail(q, nullptr), "fail");
        expect_invalid(currant_retry(q, nullptr, 0, nullptr), "retry");
        expect_invalid(currant_heartbeat(q, nullptr, 1, &n), "heartbeat");
        expect_invalid(currant_cancel(nullptr, 1, nullptr), "cancel");
        expect_invalid(currant_job_status(q, nullptr, 1, nullptr), "job_status");
        expect_invalid(currant_stats(q, 0, nullptr), "stats");
        currant_create_options_init(nullptr);
        currant_enqueue_options_init(nullptr);
        currant_queue_close(nullptr);
    }
};

std::string base_name;

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    base_name = "fzc" + std::to_string(::getpid());
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Input in{data, size};
    currant_create_options o;
    currant_create_options_init(&o);
    const std::uint8_t how = in.u8();
    std::string name = base_name;
    if (how & 1) name += in.text(12); // may be refused: '/', "..", control bytes, too long
    name = std::string(name.c_str());  // what the C side sees
    o.name = name.c_str();
    o.slots = in.u16() % 600;
    o.payload_bytes = (how & 2) ? in.u32() : in.u16() % 300;
    o.max_entrypoints = in.u8() % 6;
    o.max_participants = in.u8() % 6;
    o.log_capacity = 8192 + in.u16();
    o.host_id = in.u16();
    o.mode = (how & 4) ? in.u32() : 0600;
    if (o.slots > 64 && o.payload_bytes > 4096) o.payload_bytes %= 4096; // keep the segment small

    currant_queue* first = nullptr;
    const int created = currant_queue_create(&o, &first);
    if (created != CURRANT_OK) {
        if (created == CURRANT_ERR_ALREADY_EXISTS) broken("a fresh private name already exists");
        return 0;
    }
    if (!acceptable_queue_name(name)) broken("a queue was created under a name outside [A-Za-z0-9_.-]");
    if (o.mode > 0777) broken("a queue was created with a mode beyond 0777");

    Session session{in, {first}, {}, {}, {}, o.payload_bytes, name};
    for (int steps = 0; steps < 300 && !in.empty(); ++steps) session.step();
    for (currant_queue* q : session.handles) currant_queue_close(q);
    if (currant_queue_remove(name.c_str()) != CURRANT_OK) broken("removing the fuzzed queue failed");
    return 0;
}
