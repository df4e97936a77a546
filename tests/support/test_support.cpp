#include "test_support.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <poll.h>
#include <sys/syscall.h>
#include <thread>
#include <sys/wait.h>
#include <unistd.h>

namespace currant::testing {

std::string unique_queue_name(const std::string& tag) {
    static std::atomic<int> counter{0};
    return "t" + std::to_string(::getpid()) + "-" + tag + "-" + std::to_string(counter++);
}

ScratchQueue::ScratchQueue(const std::string& tag, QueueOptions options)
    : name_(unique_queue_name(tag)), queue_([&] {
          options.name = name_;
          Queue::remove(name_);
          return Queue::create(options);
      }()) {}

ScratchQueue::~ScratchQueue() {
    try {
        queue_.close();
        Queue::remove(name_);
    } catch (...) {
    }
}

pid_t fork_child(const std::function<void()>& body) {
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        int code = 0;
        try {
            body();
        } catch (const std::exception& error) {
            std::fprintf(stderr, "child %d: %s\n", int(::getpid()), error.what());
            code = 1;
        } catch (...) {
            code = 1;
        }
        std::fflush(nullptr);
        ::_exit(code);
    }
    return pid;
}

pid_t this_thread_id() { return pid_t(::syscall(SYS_gettid)); }

pid_t thread_id_once_stored(const std::atomic<pid_t>& slot) {
    pid_t id = 0;
    while ((id = slot.load()) == 0) std::this_thread::yield();
    return id;
}

bool wait_until_in_futex(pid_t thread_id, std::chrono::milliseconds timeout) {
    const std::string path = "/proc/self/task/" + std::to_string(thread_id) + "/syscall";
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    do {
        std::ifstream in(path);
        long number = -1;
        // "running" (not in a system call) reads as no number.
        if (in >> number && (number == SYS_futex || number == SYS_futex_waitv)) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    } while (std::chrono::steady_clock::now() < deadline);
    return false;
}

int wait_child(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

Signal::Signal() {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    read_fd_ = fds[0];
    write_fd_ = fds[1];
}

Signal::~Signal() {
    ::close(read_fd_);
    ::close(write_fd_);
}

void Signal::notify() {
    char byte = 1;
    while (::write(write_fd_, &byte, 1) < 0 && errno == EINTR) {}
}

bool Signal::wait(std::chrono::milliseconds timeout) {
    pollfd descriptor{read_fd_, POLLIN, 0};
    int rc;
    while ((rc = ::poll(&descriptor, 1, int(timeout.count()))) < 0 && errno == EINTR) {}
    if (rc <= 0) return false;
    char byte;
    return ::read(read_fd_, &byte, 1) == 1;
}

std::vector<std::byte> bytes(const std::string& text) {
    std::vector<std::byte> out(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) out[i] = std::byte(text[i]);
    return out;
}

std::string text(std::span<const std::byte> payload) {
    return std::string(reinterpret_cast<const char*>(payload.data()), payload.size());
}

} // namespace currant::testing
