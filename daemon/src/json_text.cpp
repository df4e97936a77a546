#include "json_text.hpp"

#include <algorithm>
#include <cstdint>

namespace currant::daemon {

namespace {
constexpr char hex[] = "0123456789abcdef";
}

std::string json_string(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 2);
    out += '"';
    for (const unsigned char c : text) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20 || c == 0x7f) {
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 15];
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    out += '"';
    return out;
}

std::string valid_utf8_text(std::string_view in) {
    static constexpr char replacement[] = "\xEF\xBF\xBD";
    std::string out;
    out.reserve(in.size());
    std::size_t i = 0;
    while (i < in.size()) {
        const auto b = static_cast<unsigned char>(in[i]);
        std::size_t length = 0;
        std::uint32_t code = 0;
        if (b >= 0x01 && b < 0x80) length = 1, code = b;
        else if (b >= 0xC2 && b < 0xE0) length = 2, code = b & 0x1F;
        else if (b >= 0xE0 && b < 0xF0) length = 3, code = b & 0x0F;
        else if (b >= 0xF0 && b < 0xF5) length = 4, code = b & 0x07;
        bool ok = length != 0 && i + length <= in.size();
        for (std::size_t k = 1; ok && k < length; ++k) {
            const auto c = static_cast<unsigned char>(in[i + k]);
            ok = (c & 0xC0) == 0x80;
            code = (code << 6) | (c & 0x3F);
        }
        // No overlong forms, surrogates or code points past U+10FFFF.
        if (ok && ((length == 3 && (code < 0x800 || (code >= 0xD800 && code < 0xE000))) ||
                   (length == 4 && (code < 0x10000 || code > 0x10FFFF))))
            ok = false;
        if (ok) {
            out.append(in.substr(i, length));
            i += length;
        } else {
            out += replacement;
            ++i;
        }
    }
    return out;
}

std::string payload_preview(std::span<const std::byte> payload, std::size_t limit) {
    std::string out;
    const std::size_t shown = std::min(payload.size(), limit);
    for (std::size_t i = 0; i < shown; ++i) {
        const auto c = static_cast<unsigned char>(payload[i]);
        if (c == '\\') {
            out += "\\\\";
        } else if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    if (shown < payload.size()) out += "\xE2\x80\xA6";
    return out;
}

} // namespace currant::daemon
