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

int futex_wait_any(std::span<const FutexWaitItem> items, std::int64_t timeout_ns) noexcept {
    if (items.empty() || items.size() > futex_wait_any_max) return -1;
    futex_waitv waiters[futex_wait_any_max] = {};
    for (std::size_t i = 0; i < items.size(); ++i) {
        waiters[i].val = items[i].expected;
        waiters[i].uaddr = reinterpret_cast<std::uintptr_t>(items[i].word);
        waiters[i].flags = FUTEX_32; // shared: no FUTEX_PRIVATE_FLAG
    }
    timespec absolute{};
    timespec* deadline = nullptr;
    if (timeout_ns >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &absolute);
        const std::int64_t total = std::int64_t(absolute.tv_nsec) + timeout_ns % 1'000'000'000;
        absolute.tv_sec += timeout_ns / 1'000'000'000 + total / 1'000'000'000;
        absolute.tv_nsec = total % 1'000'000'000;
        deadline = &absolute;
    }
    const long rc = syscall(SYS_futex_waitv, waiters, items.size(), 0, deadline, CLOCK_MONOTONIC);
    return rc < 0 ? -1 : int(rc);
}

int futex_wake(std::atomic<std::uint32_t>& word, int count) noexcept {
    long rc = syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, count,
                      nullptr, nullptr, 0);
    return rc < 0 ? 0 : int(rc);
}

} // namespace currant::shm
