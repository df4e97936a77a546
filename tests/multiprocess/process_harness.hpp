// Helpers shared by the multiprocess and crash suites: a ledger of jobs in
// MAP_SHARED memory (created before fork, so every process writes the same
// counters), self-checking payloads carrying a sequence number, waiting for
// observable states (never for a guessed amount of time), and the closing
// checks every test ends with: every job accounted for, doctor() sound, the
// queue still working.
//
// Rules these helpers follow (and the tests must too):
//   * a Queue object never crosses fork(): children open the queue again;
//   * children report through exit codes, Signal pipes and the ledger, never
//     through Catch2 assertions (expect() throws, so the child exits 1);
//   * a completion is counted only after ack() returned.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "currant/queue.hpp"
#include "test_support.hpp"

namespace currant::harness {

using namespace std::chrono_literals;
using currant::testing::fork_child;
using currant::testing::ScratchQueue;
using currant::testing::Signal;
using currant::testing::wait_child;
using currant::testing::this_thread_id;
using currant::testing::thread_id_once_stored;
using currant::testing::wait_until_in_futex;

inline constexpr int killed_by_sigkill = 128 + SIGKILL;

// Throws in a child (which then exits 1 with the message on stderr).
inline void expect(bool condition, const std::string& what) {
    if (!condition) throw std::runtime_error("expectation failed: " + what);
}

// An array of T in anonymous MAP_SHARED memory; create it before fork.
// Fresh pages are zero, which is a valid initial value for the lock-free
// atomics kept here.
template <typename T>
class SharedArray {
public:
    explicit SharedArray(std::size_t count) : count_(count == 0 ? 1 : count) {
        bytes_ = sizeof(T) * count_;
        void* memory = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED) throw std::runtime_error("mmap of shared test memory failed");
        data_ = static_cast<T*>(memory);
    }
    ~SharedArray() { ::munmap(data_, bytes_); }
    SharedArray(const SharedArray&) = delete;
    SharedArray& operator=(const SharedArray&) = delete;
    T& operator[](std::size_t i) { return data_[i]; }
    const T& operator[](std::size_t i) const { return data_[i]; }
    std::size_t size() const { return count_; }

private:
    T* data_ = nullptr;
    std::size_t count_ = 0;
    std::size_t bytes_ = 0;
};

using SharedCounters = SharedArray<std::atomic<std::uint64_t>>;

// Per job (indexed by sequence number): how often its enqueue returned, how
// often it was delivered, how often an ack of it returned success, and the
// attempts count of its last delivery. Plus totals.
class Ledger {
public:
    explicit Ledger(std::size_t jobs)
        : enqueued_(jobs), delivered_(jobs), acked_(jobs), attempts_(jobs), totals_(8), jobs_(jobs) {}

    std::size_t jobs() const { return jobs_; }
    void on_enqueued(std::uint64_t seq) { enqueued_[seq].fetch_add(1); totals_[0].fetch_add(1); }
    void on_delivered(std::uint64_t seq, std::uint32_t attempts) {
        delivered_[seq].fetch_add(1);
        attempts_[seq].store(attempts);
        totals_[1].fetch_add(1);
    }
    void on_acked(std::uint64_t seq) { acked_[seq].fetch_add(1); totals_[2].fetch_add(1); }

    std::uint32_t enqueued(std::uint64_t seq) const { return enqueued_[seq].load(); }
    std::uint32_t delivered(std::uint64_t seq) const { return delivered_[seq].load(); }
    std::uint32_t acked(std::uint64_t seq) const { return acked_[seq].load(); }
    std::uint32_t attempts(std::uint64_t seq) const { return attempts_[seq].load(); }
    std::uint64_t total_enqueued() const { return totals_[0].load(); }
    std::uint64_t total_delivered() const { return totals_[1].load(); }
    std::uint64_t total_acked() const { return totals_[2].load(); }
    // Free counters for a test's own use (index 0..4).
    std::atomic<std::uint64_t>& extra(std::size_t i) { return totals_[3 + i]; }

private:
    SharedArray<std::atomic<std::uint32_t>> enqueued_, delivered_, acked_, attempts_;
    SharedCounters totals_;
    std::size_t jobs_;
};

// A payload that names its job and checks itself: a torn or foreign payload
// is detected, not just a wrong count.
struct JobPayload {
    std::uint64_t seq;
    std::uint64_t check;
    std::uint32_t producer;
    std::uint32_t tag; // test-defined (entrypoint index, priority index, ...)
};
static_assert(sizeof(JobPayload) == 24);

inline std::uint64_t payload_check(std::uint64_t seq, std::uint32_t producer, std::uint32_t tag) {
    return (seq * 0x9E3779B97F4A7C15ull) ^ (std::uint64_t(producer) << 40) ^ (std::uint64_t(tag) << 8) ^ 0xC0FFEEull;
}

inline JobPayload make_payload(std::uint64_t seq, std::uint32_t producer = 0, std::uint32_t tag = 0) {
    return JobPayload{seq, payload_check(seq, producer, tag), producer, tag};
}

inline std::span<const std::byte> payload_bytes(const JobPayload& payload) {
    return std::as_bytes(std::span<const JobPayload>(&payload, 1));
}

// Decodes and verifies a payload; throws if it is not one of ours.
inline JobPayload read_payload(std::span<const std::byte> bytes, std::size_t jobs) {
    expect(bytes.size() >= sizeof(JobPayload), "payload of " + std::to_string(bytes.size()) + " bytes is too short");
    JobPayload payload;
    std::memcpy(&payload, bytes.data(), sizeof payload);
    expect(payload.check == payload_check(payload.seq, payload.producer, payload.tag),
           "payload check word is wrong (torn or foreign payload) for seq " + std::to_string(payload.seq));
    expect(payload.seq < jobs, "payload seq " + std::to_string(payload.seq) + " out of range");
    return payload;
}

// Enqueues one job, retrying while the arena is full (back-pressure). The
// retry yields the CPU so that consumers can run; correctness never depends
// on how long it waits. Returns how many arena_full errors it saw; calls
// on_first_refusal (if given) at the first one.
inline std::uint64_t enqueue_with_backpressure(Queue& queue, EntrypointId ep, const JobPayload& payload,
                                               const EnqueueOptions& options = {},
                                               const std::function<void()>& on_first_refusal = {}) {
    std::uint64_t refusals = 0;
    for (;;) {
        try {
            queue.enqueue(ep, payload_bytes(payload), options);
            return refusals;
        } catch (const Error& error) {
            if (error.code() != Errc::arena_full) throw;
            if (++refusals == 1 && on_first_refusal) on_first_refusal();
            if (refusals % 64 == 0) std::this_thread::sleep_for(200us);
            else std::this_thread::yield();
        }
    }
}

// Polls an observable condition (not a guessed duration) until it holds or
// the generous deadline passes.
inline bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 60s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// True once `count` participants of these pids are marked sleeping.
inline bool wait_until_sleeping(const Queue& queue, const std::vector<pid_t>& pids,
                                std::chrono::milliseconds timeout = 60s) {
    return wait_until(
        [&] {
            std::size_t asleep = 0;
            for (const ParticipantInfo& p : queue.participants())
                if (p.sleeping && std::find(pids.begin(), pids.end(), p.pid) != pids.end()) ++asleep;
            return asleep == pids.size();
        },
        timeout);
}

// The scheduler state of pid's main thread from /proc/<pid>/stat ('S'
// asleep in the kernel, 'T' stopped, 'R' running, ...), '?' if unreadable.
inline char process_state(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');
    return close != std::string::npos && close + 2 < text.size() ? text[close + 2] : '?';
}

// True once pid is blocked in the kernel (state S): after
// wait_until_sleeping (its wake word set), this means it is inside its
// futex wait, past its last check of the queue, so only a wake-up can end
// the wait.
inline bool wait_until_blocked_in_kernel(pid_t pid, std::chrono::milliseconds timeout = 60s) {
    return wait_until([pid] { return process_state(pid) == 'S'; }, timeout);
}

// Waits for pid to exit; its exit code (128 + signal if killed), or -1
// after SIGKILLing it when it did not exit in time.
inline int exit_within(pid_t pid, std::chrono::milliseconds timeout = 60s) {
    int status = 0;
    const bool exited = wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, timeout);
    if (!exited) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Small queue options: a small arena keeps slot scans cheap and the segment small.
inline QueueOptions small_queue(std::uint32_t slots = 1024, std::uint32_t participants = 32) {
    QueueOptions options;
    options.slots = slots;
    options.payload_bytes = 64;
    options.max_entrypoints = 16;
    options.max_participants = participants;
    options.log_capacity = 256;
    return options;
}

inline std::vector<EntrypointId> entrypoint_ids(const Queue& queue, const std::vector<std::string>& names) {
    std::vector<EntrypointId> ids;
    for (const auto& name : names) ids.push_back(queue.entrypoint(name));
    return ids;
}

// Picks and acks every ready job in a forked child (so that its slot cache is
// returned when it exits), recording deliveries and acks in the ledger.
// Returns how many jobs it acked; REQUIREs that the child exited cleanly.
inline std::uint64_t drain_in_child(const std::string& queue_name, const std::vector<std::string>& names,
                                    Ledger& ledger) {
    const std::uint64_t before = ledger.total_acked();
    const pid_t pid = fork_child([&] {
        Queue queue = Queue::open(queue_name);
        const auto eps = entrypoint_ids(queue, names);
        std::vector<Job> out(32);
        for (;;) {
            const std::size_t got = queue.dequeue(eps, out, 0ns);
            if (got == 0) break;
            for (std::size_t i = 0; i < got; ++i) {
                const JobPayload payload = read_payload(out[i].payload, ledger.jobs());
                ledger.on_delivered(payload.seq, out[i].attempts);
                queue.ack(out[i].handle);
                ledger.on_acked(payload.seq);
            }
        }
        queue.close();
    });
    REQUIRE(wait_child(pid) == 0);
    return ledger.total_acked() - before;
}

inline std::string describe_problems(const DoctorReport& report) {
    std::ostringstream text;
    for (const auto& problem : report.problems) text << "  " << problem << "\n";
    return text.str();
}

inline void require_doctor_sound(Queue& queue) {
    const DoctorReport report = queue.doctor();
    INFO("doctor problems:\n" << describe_problems(report));
    REQUIRE(report.sound);
    REQUIRE(report.problems.empty());
}

// No job left queued, delayed or picked on any entrypoint.
inline void require_queue_empty(const Queue& queue) {
    for (const EntrypointStats& s : queue.stats()) {
        INFO("entrypoint " << s.name);
        CHECK(s.queued == 0);
        CHECK(s.delayed == 0);
        CHECK(s.picked == 0);
    }
}

// The queue still works: a fresh job goes in and comes out and its ack succeeds.
inline void require_queue_works(Queue& queue, const std::string& entrypoint_name) {
    const EntrypointId ep = queue.entrypoint(entrypoint_name);
    const std::string text = "still working";
    const JobId id = queue.enqueue(ep, as_payload(text));
    Job job;
    const EntrypointId eps[] = {ep};
    REQUIRE(queue.dequeue(eps, std::span<Job>(&job, 1), 10s) == 1);
    CHECK(job.handle.id == id);
    CHECK(as_text(job.payload) == text);
    queue.ack(job.handle);
    const JobId ids[] = {id};
    const auto states = queue.status(ids);
    // memory durability: successful until the slot is reused
    CHECK((states[0].status == JobStatus::successful || states[0].status == JobStatus::unknown));
}

// What must have become of job `seq` by the end of a test.
enum class Fate {
    absent,          // never enqueued (its enqueue did not complete): never delivered, never acked
    completed_once,  // acked successfully exactly once (deliveries may repeat after a crash)
    completed_by_crashed_ack, // its ack applied, then the acker died: delivered once, no recorded ack
    completed_by_killed_acker, // like the above, but earlier deliveries to killed consumers may precede it
};

// (a) every job accounted for.
inline void require_accounted(const Ledger& ledger, const std::function<Fate(std::uint64_t)>& fate) {
    std::uint64_t wrong = 0;
    std::string first;
    for (std::uint64_t seq = 0; seq < ledger.jobs(); ++seq) {
        const std::uint32_t acked = ledger.acked(seq), delivered = ledger.delivered(seq);
        bool ok = true;
        switch (fate(seq)) {
        case Fate::absent: ok = acked == 0 && delivered == 0; break;
        case Fate::completed_once: ok = acked == 1 && delivered >= 1; break;
        case Fate::completed_by_crashed_ack: ok = acked == 0 && delivered == 1; break;
        case Fate::completed_by_killed_acker: ok = acked == 0 && delivered >= 1; break;
        }
        if (!ok && wrong++ == 0)
            first = "seq " + std::to_string(seq) + ": acked " + std::to_string(acked) + ", delivered " +
                    std::to_string(delivered) + ", expected fate " + std::to_string(int(fate(seq)));
    }
    INFO("first mismatch: " << first);
    REQUIRE(wrong == 0);
}

} // namespace currant::harness
