// currantd's log: one line per event that matters, on stderr, with the UTC
// time. Thread-safe. Never given a connection string or a password.
#pragma once

#include <string>

namespace currant::daemon {

void log_line(const std::string& message);

} // namespace currant::daemon
