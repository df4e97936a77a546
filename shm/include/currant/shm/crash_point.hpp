// Test-controlled kill points.
//
// Crash tests arm a named point in a forked child; when the child's code
// reaches that point for the n-th time it SIGKILLs itself, so a test stops a
// process at an exact instruction boundary inside a critical section instead
// of hoping a timed kill lands there. Disarmed (always, outside tests) a point
// costs one relaxed load of a process-local word.
//
// The same points can instead be armed to stop the process (SIGSTOP, all
// its threads): the test then changes the world at that exact moment (stops
// PostgreSQL under a currantd that is between two statements) and lets the
// process go on with SIGCONT.
#pragma once

#include <atomic>
#include <string_view>

namespace currant::shm {

namespace detail {
extern std::atomic<bool> crash_point_armed;
void crash_point_slow(std::string_view name) noexcept;
} // namespace detail

inline void crash_point(std::string_view name) noexcept {
    if (detail::crash_point_armed.load(std::memory_order_relaxed)) [[unlikely]]
        detail::crash_point_slow(name);
}

// Arms `name` in this process: the hit-th time (1-based) it is reached, the
// process SIGKILLs itself. Process-local; meant for forked test children.
// Also armed from the environment: CURRANT_CRASH_POINT=name[:hit].
void arm_crash_point(std::string_view name, int hit = 1);
// Arms `name` in this process: the hit-th time it is reached, the process
// stops itself (SIGSTOP) and, once continued (SIGCONT), carries on from the
// point, disarmed. One point is armed at a time: this replaces any armed
// crash point and vice versa. Also from the environment:
// CURRANT_STOP_POINT=name[:hit].
void arm_stop_point(std::string_view name, int hit = 1);
void disarm_crash_point() noexcept;

} // namespace currant::shm
