// JSON text pieces for currantd's HTTP answers (and the CLI's --json).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace currant::daemon {

// A JSON string literal, quotes included; control characters escaped.
std::string json_string(std::string_view text);

// Valid UTF-8 without NUL: invalid sequences and NULs become U+FFFD. Texts
// such as a job's error come from any client (C passes bytes); PostgreSQL
// text and JSON both need valid UTF-8.
std::string valid_utf8_text(std::string_view in);

// At most `limit` bytes of a payload as printable ASCII: bytes 0x20..0x7E
// stay, a backslash becomes "\\", every other byte "\xNN"; "…" marks a cut.
std::string payload_preview(std::span<const std::byte> payload, std::size_t limit);

} // namespace currant::daemon
