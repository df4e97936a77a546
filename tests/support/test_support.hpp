// Helpers shared by the Catch2 suites: unique queue names, forked children
// with exit-status checks, and small payload helpers.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <sys/types.h>
#include <vector>

#include <catch2/catch.hpp>

#include "currant/queue.hpp"

namespace Catch {
// Job statuses print by name in failed assertions.
template <>
struct StringMaker<currant::JobStatus> {
    static std::string convert(currant::JobStatus status) { return std::string(currant::job_status_name(status)); }
};
} // namespace Catch

namespace currant::testing {

// A queue name unique to this process and call ("t<pid>-<tag>-<n>").
std::string unique_queue_name(const std::string& tag);

// Creates a queue with a unique name and removes it at scope exit.
class ScratchQueue {
public:
    explicit ScratchQueue(const std::string& tag, QueueOptions options = {});
    ~ScratchQueue();
    ScratchQueue(const ScratchQueue&) = delete;
    ScratchQueue& operator=(const ScratchQueue&) = delete;
    const std::string& name() const { return name_; }
    Queue& queue() { return queue_; }
    Queue* operator->() { return &queue_; }

private:
    std::string name_;
    Queue queue_;
};

// Runs body in a forked child; the child exits 0 if body returns normally,
// 1 if it throws (message on stderr). Returns the child's pid.
pid_t fork_child(const std::function<void()>& body);

// Waits for pid; returns its exit code, or 128+signal if it was killed.
int wait_child(pid_t pid);

// The calling thread's kernel id, for wait_until_in_futex.
pid_t this_thread_id();

// Waits until thread `thread_id` of this process is blocked in futex or
// futex_waitv (/proc/self/task/ID/syscall); false after timeout. A test that
// forks while another of its threads runs must wait for this first: a child
// forked while that thread held an allocator lock (the sanitizers'
// allocators have no fork handler) deadlocks at its first allocation.
bool wait_until_in_futex(pid_t thread_id, std::chrono::milliseconds timeout = std::chrono::seconds(30));

// The id another thread stored in `slot` (this_thread_id()), once it did.
pid_t thread_id_once_stored(const std::atomic<pid_t>& slot);

// A pipe for "child reached point X" signalling across fork.
class Signal {
public:
    Signal();
    ~Signal();
    void notify();                                  // write one byte
    bool wait(std::chrono::milliseconds timeout);   // read one byte
private:
    int read_fd_, write_fd_;
};

std::vector<std::byte> bytes(const std::string& text);
std::string text(std::span<const std::byte> payload);

} // namespace currant::testing
