// The two clocks currant uses (see DESIGN.md "Clocks").
//   monotonic: leases, heartbeats, sleeps. System-wide, so comparable across
//              processes of one boot; never mirrored.
//   realtime:  execute_after and every time written to PostgreSQL.
#pragma once

#include <cstdint>
#include <ctime>

namespace currant::shm {

inline std::int64_t monotonic_ns() noexcept {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return std::int64_t(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

inline std::int64_t realtime_ns() noexcept {
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    return std::int64_t(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

} // namespace currant::shm
