// Shared (not FUTEX_PRIVATE_FLAG) futex wait/wake on 32-bit words inside the
// segment, so waiter and waker may be different processes that map the word
// at different addresses. Thread-safe and process-safe.
#pragma once

#include <atomic>
#include <cstdint>

namespace currant::shm {

enum class WaitResult { woken, value_changed, timed_out, interrupted };

// Sleeps while *word == expected, for at most timeout_ns (negative: forever).
// Returns without looping: the caller re-checks its condition and decides
// (EINTR, EAGAIN and spurious wake-ups all look like an early return).
WaitResult futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                      std::int64_t timeout_ns) noexcept;

// Wakes up to count sleepers on word; returns how many were woken.
int futex_wake(std::atomic<std::uint32_t>& word, int count) noexcept;

static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint32_t>) == 4, "futex word must be 4 bytes");

} // namespace currant::shm
