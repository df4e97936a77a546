#include "currant/shm/futex.hpp"

#include <cerrno>
#include <climits>
#include <ctime>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace currant::shm {

WaitResult futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                      std::int64_t timeout_ns) noexcept {
    timespec relative{};
    timespec* timeout = nullptr;
    if (timeout_ns >= 0) {
        relative.tv_sec = timeout_ns / 1'000'000'000;
        relative.tv_nsec = timeout_ns % 1'000'000'000;
        timeout = &relative;
    }
    // FUTEX_WAIT's timeout is relative and measured on CLOCK_MONOTONIC.
    long rc = syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT,
                      expected, timeout, nullptr, 0);
    if (rc == 0) return WaitResult::woken;
    switch (errno) {
    case EAGAIN: return WaitResult::value_changed;
    case ETIMEDOUT: return WaitResult::timed_out;
    default: return WaitResult::interrupted;
    }
}

int futex_wake(std::atomic<std::uint32_t>& word, int count) noexcept {
    long rc = syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, count,
                      nullptr, nullptr, 0);
    return rc < 0 ? 0 : int(rc);
}

} // namespace currant::shm
