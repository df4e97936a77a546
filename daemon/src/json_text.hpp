// JSON text pieces for currantd's HTTP answers (and the CLI's --json).
#pragma once

#include <string>
#include <string_view>

namespace currant::daemon {

// A JSON string literal, quotes included; control characters escaped.
std::string json_string(std::string_view text);

} // namespace currant::daemon
