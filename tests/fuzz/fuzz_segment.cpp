// libFuzzer target: a corrupted segment must give an error or a repaired
// queue, never a crash, a sanitizer report, a hang or a write outside the
// mapping.
//
// Once per process a child builds a small valid queue (four entrypoints, one
// of them async with log records, jobs queued, delayed, picked, finished,
// canceled and reserved; keyed jobs queued and picked, a stale dedupe entry,
// dead jobs with error texts, a job waiting for a dependency) and dies
// without closing, SIGKILLed at dependency.linked while it holds the
// dependency lock, so its participant's life lock and the dependency lock
// are left owner-dead, as after a crash. Its bytes are the
// template. Each input is a list of patches over the template's fields:
//
//   repeat { u8 region; u16 offset (LE); u8 length-1 (low 3 bits); bytes }
//
// `region` picks one of the fields listed by make_regions() (header, free
// stack, each slot, core header, each entrypoint, participant, heap and log,
// sleeper bits, counters; then each dedupe index, each entrypoint's dedupe
// and dead-list fields, each slot's dedupe key and outcome area, the
// configuration generation, the dependency control and counts, each slot's
// dependency row, the recent outcomes), `offset` is taken modulo its size; the full
// list is make_regions() and its order is part of the input format. The patched
// bytes go into a fresh shm object, which is opened with Queue::open and
// driven through doctor, stats, status, dequeue (timeout 0), ack/fail/retry,
// enqueue, reap, read_feed, read_job, commit_feed, cancel, keyed enqueue
// (skip and refuse), dead_jobs, requeue and purge (listed and forged ids),
// requeue_dead, purge_dead, enqueues with dependencies (known and forged
// ids) and close. Any
// currant::Error is an accepted outcome.
//
// Not patched: the pthread_mutex_t bytes of the robust mutexes (arena lock,
// registry lock, entrypoint locks, life locks, dependency lock). A fake owner TID there makes
// a lock wait forever for an owner that never unlocks (nor dies, so the
// kernel never marks it OWNER_DIED); that is a property of robust futexes,
// not something a reader of the segment can detect. Patches that hit them
// are undone; the repair_needed / inconsistent words next to them are
// patched like any other field.
//
// Writes outside the mapping: mmap/munmap are wrapped (-Wl,--wrap) so each
// shared file mapping is placed between two PROT_NONE regions of 64 MiB;
// an index that escapes the segment faults there instead of scribbling on
// a neighbouring mapping.
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "currant/queue.hpp"
#include "currant/shm/crash_point.hpp"
#include "currant/shm/segment.hpp"
#include "layout.hpp"

using namespace currant;
using namespace std::chrono_literals;

// ---- guarded shared mappings ---------------------------------------------

extern "C" void* __real_mmap(void* address, std::size_t length, int protection, int flags, int fd, off_t offset);
extern "C" int __real_munmap(void* address, std::size_t length);

namespace {
constexpr std::size_t guard_bytes = 64u << 20;
struct Guarded {
    std::byte* mapping;
    std::size_t length;
};
std::mutex guarded_mutex;
std::vector<Guarded> guarded;
} // namespace

extern "C" void* __wrap_mmap(void* address, std::size_t length, int protection, int flags, int fd, off_t offset) {
    if (address != nullptr || fd < 0 || (flags & MAP_SHARED) == 0)
        return __real_mmap(address, length, protection, flags, fd, offset);
    const std::size_t rounded = (length + 4095) / 4096 * 4096;
    void* reservation = __real_mmap(nullptr, rounded + 2 * guard_bytes, PROT_NONE,
                                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (reservation == MAP_FAILED) return MAP_FAILED;
    auto* middle = static_cast<std::byte*>(reservation) + guard_bytes;
    void* mapped = __real_mmap(middle, length, protection, flags | MAP_FIXED, fd, offset);
    if (mapped == MAP_FAILED) {
        const int saved = errno;
        __real_munmap(reservation, rounded + 2 * guard_bytes);
        errno = saved;
        return MAP_FAILED;
    }
    std::lock_guard lock(guarded_mutex);
    guarded.push_back({middle, rounded});
    return mapped;
}

extern "C" int __wrap_munmap(void* address, std::size_t length) {
    {
        std::lock_guard lock(guarded_mutex);
        for (auto it = guarded.begin(); it != guarded.end(); ++it) {
            if (it->mapping != address) continue;
            const std::size_t whole = it->length + 2 * guard_bytes;
            std::byte* start = it->mapping - guard_bytes;
            guarded.erase(it);
            return __real_munmap(start, whole);
        }
    }
    return __real_munmap(address, length);
}

// ---- the template ----------------------------------------------------------

namespace {

struct Range {
    std::size_t offset, length;
};

std::vector<std::byte> template_bytes;
std::vector<Range> regions;       // patchable fields
std::vector<std::size_t> mutexes; // offsets of pthread_mutex_t objects in the template
std::vector<JobId> template_ids;  // every job id the template's builder got
std::string segment_name;         // the queue each input is written to
std::string object_path;          // its shm_open name
std::byte clean_mutex[sizeof(pthread_mutex_t)];

constexpr std::uint32_t template_slots = 24;
constexpr std::uint32_t template_entrypoints = 4;
constexpr std::uint32_t template_participants = 4;
constexpr std::uint32_t template_log = 64;  // enqueues may fill a third of it

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Runs in a child: builds the queue and dies without closing it.
[[noreturn]] void build_template(const std::string& name, int ids_fd) {
    try {
        Queue q = Queue::create({.name = name, .slots = template_slots, .payload_bytes = 48,
                                 .max_entrypoints = template_entrypoints,
                                 .max_participants = template_participants, .log_capacity = template_log});
        const EntrypointId mem = q.declare_entrypoint("mem", {.durability = Durability::memory});
        const EntrypointId log = q.declare_entrypoint("async", {.durability = Durability::async, .max_attempts = 3});
        const EntrypointId late = q.declare_entrypoint("late", {.durability = Durability::memory,
                                                                .lease = 50ms});
        std::vector<JobId> ids;
        const EnqueueOptions fast{.log_wait = 0ms, .sync_wait = 0ms};
        auto put = [&](EntrypointId ep, int priority, std::int64_t after, const char* text) {
            EnqueueOptions o = fast;
            o.priority = priority;
            o.execute_after_ns = after;
            ids.push_back(q.enqueue(ep, as_payload(text), o));
        };
        const std::int64_t hour = std::int64_t(3600) * 1'000'000'000;
        put(mem, 0, 0, "m0");
        put(mem, 5, 0, "m1-high");
        put(mem, -3, 0, "m2-low");
        put(mem, 0, 0, "m3");
        put(mem, 1, now_ns() + hour, "m4-delayed");
        put(log, 0, 0, "a0");
        put(log, 2, 0, "a1");
        put(log, 0, 0, "a2");
        put(log, 7, 0, "a3");
        put(log, 0, now_ns() + hour, "a4-delayed");
        put(log, 0, 0, "a5");
        put(late, 0, now_ns() + 2 * hour, "l0-delayed");
        put(late, 3, 0, "l1");
        put(late, 3, 0, "l2");

        Job jobs[4];
        const EntrypointId mem_only[] = {mem}, log_only[] = {log}, late_only[] = {late};
        std::size_t n = q.dequeue(mem_only, {jobs, 2}, 0ns);
        if (n >= 1) q.ack(jobs[0].handle);                     // finished, slot freed
        n = q.dequeue(log_only, {jobs, 4}, 0ns);                // one stays picked
        if (n >= 3) {
            q.ack(jobs[0].handle);                              // successful, kept until mirrored
            q.fail(jobs[1].handle);                             // exception
            q.retry(jobs[2].handle, std::chrono::milliseconds(3'600'000)); // back in the heap
        }
        q.dequeue(late_only, {jobs, 1}, 0ns);                   // picked, 50 ms lease
        q.cancel(ids[10]);                                      // a5: canceled
        Transition feed[4];
        if (std::size_t got = q.read_feed(log, 1, feed); got >= 2) q.commit_feed(log, feed[1].sequence);
        Reservation r = q.reserve(mem);                         // reserved, never committed
        std::memcpy(r.payload.data(), "half-written", 12);

        // A second participant that finished its work (idle, counters set).
        Queue other = Queue::open(name);
        put(late, 3, 0, "l3");
        Job got;
        if (other.dequeue(late_only, {&got, 1}, 0ns) == 1) other.ack(got.handle);

        // Dedupe keys and dead jobs (appended last, so the slots above keep
        // their places): a fourth entrypoint whose jobs die at the first
        // failure, with their error texts kept.
        const EntrypointId dead = q.declare_entrypoint("dead", {.durability = Durability::memory,
                                                                .max_attempts = 1, .max_dead = 4});
        const EntrypointId dead_only[] = {dead};
        auto keyed = [&](EntrypointId ep, const char* key, const char* text) {
            EnqueueOptions o = fast;
            o.dedupe_key = key;
            ids.push_back(q.enqueue(ep, as_payload(text), o));
        };
        keyed(dead, "order-d0", "d0");        // dies by fail(error)
        keyed(dead, "order-d1", "d1");        // dies by retry past max_attempts
        keyed(dead, "order-d2", "d2");        // acked: its index entry goes stale
        keyed(dead, "order-d3", "d3");        // stays picked, holding its key
        put(dead, 0, 0, "d4");                // keyless, dies without an error text
        n = q.dequeue(dead_only, {jobs, 4}, 0ns);
        if (n >= 4) {
            q.fail(jobs[0].handle, "ValueError: bad input\n  at line 3");
            q.retry(jobs[1].handle, std::chrono::milliseconds(10), "TimeoutError: gave up");
            q.ack(jobs[2].handle);
        }
        if (q.dequeue(dead_only, {jobs, 1}, 0ns) == 1) q.fail(jobs[0].handle);
        keyed(mem, "order-m5", "m5-keyed");   // queued, holding its key
        keyed(log, "order-a6", "a6-keyed");   // queued in the async log
        keyed(mem, "order-m5", "m5-again");   // skipped: returns m5's id

        // Dependencies (appended last as well): m6 queued, m7 waiting for
        // it; then a producer of another dependent of m6 dies at
        // dependency.linked, holding the dependency lock [G] with one edge
        // counted and its job reserved, so [G] is left owner-dead too.
        put(mem, 0, 0, "m6");
        const JobId m6 = ids.back();
        EnqueueOptions after_m6 = fast;
        after_m6.depends_on = {m6};
        ids.push_back(q.enqueue(mem, as_payload("m7-waiting"), after_m6));

        const std::size_t bytes = ids.size() * sizeof(JobId);
        if (::write(ids_fd, ids.data(), bytes) != ssize_t(bytes)) _exit(3);
        ::close(ids_fd);
        shm::arm_crash_point("dependency.linked", 1);
        (void)q.enqueue(mem, as_payload("m8-killed"), after_m6);
        _exit(4); // not reached: the crash point SIGKILLs the builder
        // No close() either way: the life locks are left owner-dead, the
        // picks picked.
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz_segment: building the template failed: %s\n", e.what());
        _exit(2);
    }
}

void add(std::size_t offset, std::size_t length) {
    if (length != 0) regions.push_back({offset, std::min<std::size_t>(length, 65535)});
}

// The patchable fields of the template, and where its mutexes are.
void make_regions() {
    const auto& h = *reinterpret_cast<const shm::SegmentHeader*>(template_bytes.data());
    const std::size_t core = h.core_offset;
    const auto& ch = *reinterpret_cast<const detail::CoreHeader*>(template_bytes.data() + core);
    using detail::EntrypointControl;
    using detail::ParticipantEntry;

    add(0, offsetof(shm::SegmentHeader, retired));   // immutable header fields
    add(offsetof(shm::SegmentHeader, retired), sizeof(shm::SegmentHeader) - offsetof(shm::SegmentHeader, retired));
    mutexes.push_back(offsetof(shm::SegmentHeader, arena) + offsetof(shm::ArenaControl, lock));
    add(h.free_stack_offset, sizeof(std::uint32_t) * template_slots);
    for (std::uint32_t slot = 0; slot < template_slots; ++slot)
        add(h.arena_offset + std::size_t(slot) * h.slot_bytes, h.slot_bytes);

    add(core, sizeof(detail::CoreHeader));
    mutexes.push_back(core + offsetof(detail::CoreHeader, registry_lock));
    for (std::uint32_t ep = 0; ep < template_entrypoints; ++ep) {
        const std::size_t at = core + ch.entrypoints_offset + ep * sizeof(EntrypointControl);
        add(at, offsetof(EntrypointControl, intent));  // options, name, lock
        add(at + offsetof(EntrypointControl, intent),
            offsetof(EntrypointControl, pick_generation) - offsetof(EntrypointControl, intent)); // intent, lanes
        add(at + offsetof(EntrypointControl, pick_generation),
            sizeof(EntrypointControl) - offsetof(EntrypointControl, pick_generation)); // counts, log positions
        mutexes.push_back(at + offsetof(EntrypointControl, lock));
        add(core + ch.delayed_offset + std::size_t(ep) * template_slots * sizeof(detail::DelayedEntry),
            template_slots * sizeof(detail::DelayedEntry));
        add(core + ch.logs_offset + std::size_t(ep) * template_log * sizeof(detail::TransitionRecord),
            template_log * sizeof(detail::TransitionRecord));
    }
    for (std::uint32_t p = 0; p < template_participants; ++p) {
        const std::size_t at = core + ch.participants_offset + p * sizeof(ParticipantEntry);
        add(at, sizeof(ParticipantEntry));
        mutexes.push_back(at + offsetof(ParticipantEntry, life_lock));
    }
    add(core + ch.sleepers_offset, ch.delayed_offset - ch.sleepers_offset);
    add(core + ch.counters_offset, ch.region_bytes - ch.counters_offset); // capped at 64 KiB: counters, schedules

    // Regions added with dedupe keys and dead jobs, after the old ones so
    // that the older seeds keep their meaning. The tail range above stops
    // at 64 KiB, inside the schedule table: these get their own ranges.
    const detail::CoreGeometry g = detail::compute_core_geometry(h.parameters);
    for (std::uint32_t ep = 0; ep < template_entrypoints; ++ep) {
        add(core + g.dedupe_index_offset + std::size_t(ep) * g.dedupe_capacity * sizeof(detail::DedupeEntry),
            g.dedupe_capacity * sizeof(detail::DedupeEntry));
        const std::size_t at = core + ch.entrypoints_offset + ep * sizeof(EntrypointControl);
        add(at + offsetof(EntrypointControl, dedupe_used),
            sizeof(EntrypointControl) - offsetof(EntrypointControl, dedupe_used)); // dedupe counts, dead list
    }
    for (std::uint32_t slot = 0; slot < template_slots; ++slot) {
        add(core + g.dedupe_keys_offset + std::size_t(slot) * sizeof(detail::DedupeKey), sizeof(detail::DedupeKey));
        add(core + ch.outcomes_offset + std::size_t(slot) * ch.outcome_stride, ch.outcome_stride);
        // The outcome header alone, so that short offsets hit its fields.
        add(core + ch.outcomes_offset + std::size_t(slot) * ch.outcome_stride, sizeof(detail::OutcomeHeader));
    }
    add(core + offsetof(detail::CoreHeader, configuration_generation),
        sizeof(detail::CoreHeader) - offsetof(detail::CoreHeader, configuration_generation)); // generation, outcome geometry

    // Dependencies (after the older regions, so older seeds keep their
    // meaning): the waiting list and counts, each slot's dependency row,
    // the recent outcomes. The dependency lock [G] is a mutex like the others.
    using detail::DependencyControl;
    const std::size_t control = core + g.dependency_control_offset;
    mutexes.push_back(control + offsetof(DependencyControl, lock));
    add(control + offsetof(DependencyControl, waiting_head),
        sizeof(DependencyControl) - offsetof(DependencyControl, waiting_head));
    add(core + g.waiting_counts_offset, sizeof(std::uint32_t) * template_entrypoints);
    for (std::uint32_t slot = 0; slot < template_slots; ++slot)
        add(core + g.dependency_rows_offset + std::size_t(slot) * sizeof(detail::DependencyRow),
            sizeof(detail::DependencyRow));
    add(core + g.ended_offset, std::size_t(g.ended_capacity) * sizeof(std::uint64_t));

    // Lane rings (layout 16), after the older regions: each entrypoint's
    // rings, whose entries and positions every pop checks.
    for (std::uint32_t ep = 0; ep < template_entrypoints; ++ep)
        add(core + g.lane_rings_offset + std::size_t(ep) * detail::max_priority_lanes * g.lane_ring_capacity * 4,
            std::size_t(detail::max_priority_lanes) * g.lane_ring_capacity * 4);
}

void make_template() {
    const std::string name = "fuzz-template-" + std::to_string(::getpid());
    Queue::remove(name);
    int ids_pipe[2];
    if (::pipe(ids_pipe) != 0) std::abort();
    const pid_t child = ::fork();
    if (child == 0) {
        ::close(ids_pipe[0]);
        build_template(name, ids_pipe[1]);
    }
    ::close(ids_pipe[1]);
    JobId id;
    while (::read(ids_pipe[0], &id, sizeof id) == ssize_t(sizeof id)) template_ids.push_back(id);
    ::close(ids_pipe[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) { // killed holding [G], see build_template
        ::shm_unlink(shm::object_name_for(name).c_str());
        std::fprintf(stderr, "fuzz_segment: template builder failed (status %d)\n", status);
        std::abort();
    }
    const std::string path = shm::object_name_for(name);
    const int fd = ::shm_open(path.c_str(), O_RDONLY, 0);
    struct stat info {};
    if (fd < 0 || ::fstat(fd, &info) != 0) std::abort();
    template_bytes.resize(std::size_t(info.st_size));
    std::size_t done = 0;
    while (done < template_bytes.size()) {
        const ssize_t got = ::pread(fd, template_bytes.data() + done, template_bytes.size() - done, off_t(done));
        if (got <= 0) std::abort();
        done += std::size_t(got);
    }
    ::close(fd);
    ::shm_unlink(path.c_str());
    make_regions();

    pthread_mutexattr_t attributes;
    pthread_mutexattr_init(&attributes);
    pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_t fresh;
    pthread_mutex_init(&fresh, &attributes);
    std::memcpy(clean_mutex, &fresh, sizeof fresh);

    segment_name = "fuzz-segment-" + std::to_string(::getpid());
    object_path = shm::object_name_for(segment_name);
}

// Undo patches on the template's mutexes; if the patched parameters still
// describe a valid layout that puts mutexes elsewhere, put unlocked ones there.
void restore_mutexes(std::vector<std::byte>& bytes) {
    for (std::size_t at : mutexes) std::memcpy(bytes.data() + at, template_bytes.data() + at, sizeof(pthread_mutex_t));
    const auto& h = *reinterpret_cast<const shm::SegmentHeader*>(bytes.data());
    const auto& t = *reinterpret_cast<const shm::SegmentHeader*>(template_bytes.data());
    if (std::memcmp(&h.parameters, &t.parameters, sizeof h.parameters) == 0 && h.core_offset == t.core_offset) return;
    if (h.parameter_hash != shm::hash_parameters(h.parameters, h.core_bytes)) return; // open refuses it
    std::vector<std::size_t> moved;
    try {
        const shm::Geometry g = shm::compute_geometry(h.parameters, h.core_bytes);
        if (g.total_bytes != bytes.size()) return; // open refuses it
        const detail::CoreGeometry cg = detail::compute_core_geometry(h.parameters);
        moved.push_back(g.core_offset + offsetof(detail::CoreHeader, registry_lock));
        for (std::uint64_t ep = 0; ep < h.parameters.max_entrypoints; ++ep)
            moved.push_back(g.core_offset + cg.entrypoints_offset + ep * sizeof(detail::EntrypointControl) +
                            offsetof(detail::EntrypointControl, lock));
        for (std::uint64_t p = 0; p < h.parameters.max_participants; ++p)
            moved.push_back(g.core_offset + cg.participants_offset + p * sizeof(detail::ParticipantEntry) +
                            offsetof(detail::ParticipantEntry, life_lock));
        moved.push_back(g.core_offset + cg.dependency_control_offset + offsetof(detail::DependencyControl, lock));
    } catch (const Error&) {
        return; // open refuses these parameters
    }
    for (std::size_t at : moved) {
        if (at + sizeof(pthread_mutex_t) > bytes.size()) break;
        if (std::find(mutexes.begin(), mutexes.end(), at) == mutexes.end())
            std::memcpy(bytes.data() + at, clean_mutex, sizeof clean_mutex);
    }
}

void write_segment(const std::vector<std::byte>& bytes) {
    ::shm_unlink(object_path.c_str());
    const int fd = ::shm_open(object_path.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) std::abort();
    if (::ftruncate(fd, off_t(bytes.size())) != 0) std::abort();
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t put = ::pwrite(fd, bytes.data() + done, bytes.size() - done, off_t(done));
        if (put <= 0) std::abort();
        done += std::size_t(put);
    }
    ::close(fd);
}

// Reads the input after the patches: operation choices.
struct Choices {
    const std::uint8_t* data;
    std::size_t size, at = 0;
    std::uint8_t byte() { return at < size ? data[at++] : 0; }
    std::uint64_t word() {
        std::uint64_t value = 0;
        for (int i = 0; i < 8; ++i) value = value << 8 | byte();
        return value;
    }
};

template <typename F>
void attempt(F&& f) {
    try {
        f();
    } catch (const Error&) {
        // refused or repaired: both fine
    }
}

void exercise(Choices& in) {
    Queue q = Queue::open(segment_name);
    ::shm_unlink(object_path.c_str()); // the mapping stays; a crash leaves no object behind
    const std::uint8_t flags = in.byte();
    std::vector<EntrypointId> eps;
    for (EntrypointId ep = 0; ep < template_entrypoints + 1; ++ep) eps.push_back(ep);
    std::vector<JobId> ids = template_ids;
    ids.push_back(in.word());
    ids.push_back(0);

    attempt([&] { (void)q.info(); });
    attempt([&] { (void)q.entrypoint_names(); });
    attempt([&] { (void)q.stats(); });
    attempt([&] { (void)q.status(ids); });
    attempt([&] { (void)q.participants(); });
    attempt([&] { (void)q.doctor(); });
    for (EntrypointId ep : eps) {
        attempt([&] { (void)q.entrypoint_name(ep); });
        attempt([&] { (void)q.entrypoint_options(ep); });
    }

    Job jobs[8];
    std::size_t picked = 0;
    attempt([&] { picked = q.dequeue(std::span(eps).first(template_entrypoints), jobs, 0ns); });
    for (EntrypointId ep : eps) {
        const EntrypointId one[] = {ep};
        attempt([&] { picked += q.dequeue(one, std::span(jobs).subspan(std::min<std::size_t>(picked, 7)), 0ns); });
        picked = std::min<std::size_t>(picked, 8);
    }
    for (std::size_t i = 0; i < picked; ++i) {
        switch ((flags >> (i % 4)) & 3) {
        case 0: attempt([&] { q.ack(jobs[i].handle); }); break;
        case 1: attempt([&] { q.fail(jobs[i].handle); }); break;
        case 2: attempt([&] { q.retry(jobs[i].handle, std::chrono::milliseconds(in.byte())); }); break;
        default: attempt([&] { q.heartbeat({&jobs[i].handle, 1}); }); break;
        }
    }
    // A forged handle.
    attempt([&] { q.ack(JobHandle{std::uint32_t(in.byte()), in.word(), in.word()}); });

    const EnqueueOptions fast{.priority = std::int8_t(in.byte()), .execute_after_ns = (flags & 0x40) ? now_ns() + 1'000'000'000 : 0,
                              .log_wait = 0ms, .sync_wait = 0ms};
    for (EntrypointId ep : eps) attempt([&] { ids.push_back(q.enqueue(ep, as_payload("fuzz"), fast)); });
    attempt([&] {
        const std::span<const std::byte> batch[] = {as_payload("b0"), as_payload("b1"), as_payload("b2")};
        JobId out[3];
        q.enqueue_batch(in.byte() % (template_entrypoints + 1), batch, out, fast);
    });
    attempt([&] { (void)q.reap(); });

    Transition feed[20];
    for (EntrypointId ep : eps) {
        attempt([&] {
            std::uint64_t from = 1;
            attempt([&] { from = q.feed_committed(ep) + 1; });
            const std::size_t got = q.read_feed(ep, from, feed);
            JobSnapshot snapshot;
            for (std::size_t i = 0; i < got; ++i) (void)q.read_job(feed[i].slot, feed[i].id, snapshot);
            if ((flags & 0x80) && got > 0) q.commit_feed(ep, feed[got - 1].sequence);
        });
        attempt([&] { (void)q.read_feed(ep, in.word(), feed); });
    }
    attempt([&] {
        std::vector<JobSnapshot> dirty;
        q.collect_dirty(dirty);
        q.settle_dirty(dirty);
    });
    attempt([&] { JobSnapshot s; (void)q.read_job(in.byte(), ids[in.byte() % ids.size()], s); });
    attempt([&] { (void)q.cancel(ids[in.byte() % ids.size()]); });
    // Dedupe keys: the template's keys (held, stale, dead) and a fuzzed one,
    // skip and refuse, on every entrypoint id.
    static const char* const keys[] = {"order-d0", "order-d1", "order-d2", "order-d3", "order-m5", "order-a6"};
    for (EntrypointId ep : eps) {
        EnqueueOptions keyed = fast;
        keyed.dedupe_key = keys[in.byte() % std::size(keys)];
        attempt([&] { ids.push_back(q.enqueue(ep, as_payload("keyed"), keyed)); });
        keyed.on_duplicate = OnDuplicate::refuse;
        attempt([&] { ids.push_back(q.enqueue(ep, as_payload("keyed-refuse"), keyed)); });
        std::string own(1 + in.byte() % 16, 'k');
        for (char& c : own) c = char('a' + in.byte() % 26);
        keyed.dedupe_key = own;
        attempt([&] { ids.push_back(q.enqueue(ep, as_payload("keyed-own"), keyed)); });
    }

    // Dead jobs: list, requeue and purge what the listing names, then
    // forged ids, then the per-entrypoint forms.
    std::vector<JobId> dead_ids;
    attempt([&] {
        for (const DeadJob& d : q.dead_jobs()) dead_ids.push_back(d.id);
    });
    for (EntrypointId ep : eps) attempt([&] { (void)q.dead_jobs(ep, 1 + in.byte() % 4); });
    for (std::size_t i = 0; i < dead_ids.size(); ++i) {
        if (in.byte() & 1) attempt([&] { (void)q.requeue(dead_ids[i]); });
        else attempt([&] { (void)q.purge(dead_ids[i]); });
    }
    attempt([&] { (void)q.requeue(in.word()); });
    attempt([&] { (void)q.purge(in.word()); });
    attempt([&] { (void)q.requeue(ids[in.byte() % ids.size()]); });
    attempt([&] { (void)q.purge(ids[in.byte() % ids.size()]); });
    attempt([&] { (void)q.requeue_dead(in.byte() % (template_entrypoints + 1)); });
    attempt([&] { (void)q.purge_dead(in.byte() % (template_entrypoints + 1)); });
    attempt([&] { (void)q.dead_jobs(); });

    // Dependencies: dependents of two known ids (the template's waiting
    // m7 and its dependency m6 among them, or 0) on every entrypoint id, a
    // dependent of a forged id, and a cancel (a waiting job's among the
    // choices).
    for (EntrypointId ep : eps) {
        EnqueueOptions dependent = fast;
        dependent.depends_on = {ids[in.byte() % ids.size()], ids[in.byte() % ids.size()]};
        attempt([&] { ids.push_back(q.enqueue(ep, as_payload("dependent"), dependent)); });
    }
    attempt([&] {
        EnqueueOptions forged = fast;
        forged.depends_on = {in.word()};
        ids.push_back(q.enqueue(in.byte() % (template_entrypoints + 1), as_payload("forged-dependency"), forged));
    });
    attempt([&] { (void)q.cancel(ids[in.byte() % ids.size()]); });

    attempt([&] { (void)q.status(ids); });
    attempt([&] { (void)q.stats(); });
    attempt([&] { (void)q.doctor(); });
    attempt([&] { q.close(); });
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    make_template();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::byte> bytes = template_bytes;
    std::size_t at = 0;
    // Patches first: each needs 4 bytes of header; a zero region byte after
    // at least one patch ends the list (the rest chooses operations).
    while (at + 4 <= size) {
        const std::uint8_t which = data[at];
        if (which == 0xff) {
            ++at;
            break;
        }
        const Range& region = regions[which % regions.size()];
        const std::size_t offset = (std::size_t(data[at + 1]) | std::size_t(data[at + 2]) << 8) % region.length;
        const std::size_t length = (data[at + 3] & 7) + 1;
        at += 4;
        for (std::size_t i = 0; i < length && at < size && offset + i < region.length; ++i)
            bytes[region.offset + offset + i] = std::byte(data[at++]);
    }
    restore_mutexes(bytes);
    write_segment(bytes);
    Choices choices{data + at, size - at};
    try {
        exercise(choices);
    } catch (const Error&) {
        // Queue::open refused the segment
    }
    ::shm_unlink(object_path.c_str());
    return 0;
}
