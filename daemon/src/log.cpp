#include "log.hpp"

#include <cstdio>
#include <ctime>
#include <mutex>

#include "currant/shm/clock.hpp"

namespace currant::daemon {

void log_line(const std::string& message) {
    static std::mutex mutex;
    const std::int64_t now = shm::realtime_ns();
    const std::time_t seconds = std::time_t(now / 1'000'000'000);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    std::string line = message;
    for (char& c : line)
        if (c == '\n' || c == '\r') c = ' ';
    std::lock_guard lock(mutex);
    std::fprintf(stderr, "%s.%03dZ currantd: %s\n", stamp, int(now / 1'000'000 % 1000), line.c_str());
    std::fflush(stderr);
}

} // namespace currant::daemon
