// Shared (not FUTEX_PRIVATE_FLAG) futex wait/wake on 32-bit words inside the
// segment, so waiter and waker may be different processes that map the word
// at different addresses. Thread-safe and process-safe.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

namespace currant::shm {

enum class WaitResult { woken, value_changed, timed_out, interrupted };

// Sleeps while *word == expected, for at most timeout_ns (negative: forever).
// Returns without looping: the caller re-checks its condition and decides
// (EINTR, EAGAIN and spurious wake-ups all look like an early return).
WaitResult futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                      std::int64_t timeout_ns) noexcept;

// Sleeps until any of the words differs from its expected value or is woken
// (futex_waitv, Linux 5.16+), for at most timeout_ns (negative: forever).
// Returns the index of the word that woke us, or -1 (timeout, signal, a
// value already changed, or an error: the caller re-checks and loops).
struct FutexWaitItem {
    std::atomic<std::uint32_t>* word;
    std::uint32_t expected;
};
int futex_wait_any(std::span<const FutexWaitItem> items, std::int64_t timeout_ns) noexcept;
inline constexpr std::size_t futex_wait_any_max = 128;

// Wakes up to count sleepers on word; returns how many were woken.
int futex_wake(std::atomic<std::uint32_t>& word, int count) noexcept;

static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint32_t>) == 4, "futex word must be 4 bytes");

} // namespace currant::shm
