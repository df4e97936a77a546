#include "currant/shm/crash_point.hpp"

#include <csignal>
#include <cstdlib>
#include <string>
#include <unistd.h>

namespace currant::shm {

namespace {
std::string armed_name;
int hits_left = 0;
bool stop_instead = false; // the armed point stops the process instead of killing it
} // namespace

namespace detail {
std::atomic<bool> crash_point_armed{false};

void crash_point_slow(std::string_view name) noexcept {
    if (name != armed_name) return;
    if (--hits_left > 0) return;
    if (stop_instead) {
        // Disarmed first: after SIGCONT the process runs on like any other.
        crash_point_armed.store(false, std::memory_order_relaxed);
        ::kill(::getpid(), SIGSTOP); // process-directed: every thread stops
        return;
    }
    ::kill(::getpid(), SIGKILL);
    for (;;) ::pause();
}
} // namespace detail

namespace {
void arm(std::string_view name, int hit, bool stop) {
    armed_name.assign(name);
    hits_left = hit < 1 ? 1 : hit;
    stop_instead = stop;
    detail::crash_point_armed.store(true, std::memory_order_relaxed);
}
} // namespace

void arm_crash_point(std::string_view name, int hit) { arm(name, hit, false); }

void arm_stop_point(std::string_view name, int hit) { arm(name, hit, true); }

void disarm_crash_point() noexcept {
    detail::crash_point_armed.store(false, std::memory_order_relaxed);
}

namespace {
// Lets a test arm a point in an exec'd child (the CLI, another language):
// CURRANT_CRASH_POINT or CURRANT_STOP_POINT, each name[:hit].
struct ArmFromEnvironment {
    ArmFromEnvironment() {
        for (const bool stop : {false, true}) {
            const char* value = std::getenv(stop ? "CURRANT_STOP_POINT" : "CURRANT_CRASH_POINT");
            if (!value || !*value) continue;
            std::string spec(value);
            int hit = 1;
            if (auto colon = spec.rfind(':'); colon != std::string::npos) {
                hit = std::atoi(spec.c_str() + colon + 1);
                spec.resize(colon);
            }
            arm(spec, hit, stop);
        }
    }
} arm_from_environment;
} // namespace

} // namespace currant::shm
