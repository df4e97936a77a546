#include "currant/shm/crash_point.hpp"

#include <csignal>
#include <cstdlib>
#include <string>
#include <unistd.h>

namespace currant::shm {

namespace {
std::string armed_name;
int hits_left = 0;
} // namespace

namespace detail {
std::atomic<bool> crash_point_armed{false};

void crash_point_slow(std::string_view name) noexcept {
    if (name != armed_name) return;
    if (--hits_left > 0) return;
    ::kill(::getpid(), SIGKILL);
    for (;;) ::pause();
}
} // namespace detail

void arm_crash_point(std::string_view name, int hit) {
    armed_name.assign(name);
    hits_left = hit < 1 ? 1 : hit;
    detail::crash_point_armed.store(true, std::memory_order_relaxed);
}

void disarm_crash_point() noexcept {
    detail::crash_point_armed.store(false, std::memory_order_relaxed);
}

namespace {
// Lets a test arm a point in an exec'd child (the CLI, another language).
struct ArmFromEnvironment {
    ArmFromEnvironment() {
        const char* value = std::getenv("CURRANT_CRASH_POINT");
        if (!value || !*value) return;
        std::string spec(value);
        int hit = 1;
        if (auto colon = spec.rfind(':'); colon != std::string::npos) {
            hit = std::atoi(spec.c_str() + colon + 1);
            spec.resize(colon);
        }
        arm_crash_point(spec, hit);
    }
} arm_from_environment;
} // namespace

} // namespace currant::shm
