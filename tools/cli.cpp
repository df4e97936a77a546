// Parsing and output helpers of the `currant` command line (see cli.hpp).
#include "cli.hpp"
#include "json_text.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <ctime>
#include <grp.h>
#include <iomanip>
#include <ostream>
#include <pwd.h>
#include <sstream>

namespace currant::cli {

namespace {

[[noreturn]] void bad_value(std::string_view what, std::string_view text, std::string_view expected) {
    throw CLI::ValidationError(std::string(what),
                               "bad value '" + std::string(text) + "': expected " + std::string(expected));
}

} // namespace

std::uint64_t parse_unsigned(std::string_view text, std::string_view what, std::uint64_t max) {
    std::uint64_t value = 0;
    const char* end = text.data() + text.size();
    auto [next, error] = std::from_chars(text.data(), end, value, 10);
    if (text.empty() || error == std::errc::invalid_argument || next != end) {
        bad_value(what, text, "a non-negative decimal integer");
    }
    if (error == std::errc::result_out_of_range || value > max) {
        bad_value(what, text, "at most " + std::to_string(max));
    }
    return value;
}

std::int64_t parse_signed(std::string_view text, std::string_view what, std::int64_t min, std::int64_t max) {
    std::int64_t value = 0;
    const char* end = text.data() + text.size();
    auto [next, error] = std::from_chars(text.data(), end, value, 10);
    if (text.empty() || error == std::errc::invalid_argument || next != end) {
        bad_value(what, text, "a decimal integer");
    }
    if (error == std::errc::result_out_of_range || value < min || value > max) {
        bad_value(what, text, "a number from " + std::to_string(min) + " to " + std::to_string(max));
    }
    return value;
}

std::chrono::nanoseconds parse_seconds(std::string_view text, std::string_view what) {
    constexpr double max_seconds = 1e9; // about 31 years; keeps nanoseconds within int64
    double seconds = 0;
    const char* end = text.data() + text.size();
    auto [next, error] = std::from_chars(text.data(), end, seconds, std::chars_format::fixed);
    if (text.empty() || error != std::errc{} || next != end || !std::isfinite(seconds) || seconds < 0 ||
        seconds > max_seconds) {
        bad_value(what, text, "a number of seconds from 0 to 1e9, like 1 or 0.25");
    }
    return std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(seconds * 1e9)));
}

unsigned parse_mode(std::string_view text, std::string_view what) {
    std::string_view digits = text;
    if (digits.size() > 1 && digits.front() == '0') {
        digits.remove_prefix(1);
    }
    unsigned mode = 0;
    const char* end = digits.data() + digits.size();
    auto [next, error] = std::from_chars(digits.data(), end, mode, 8);
    if (digits.empty() || digits.size() > 3 || error != std::errc{} || next != end) {
        bad_value(what, text, "octal permission bits like 0600 or 0660");
    }
    return mode;
}

gid_t parse_group(std::string_view text, std::string_view what) {
    if (!text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return static_cast<gid_t>(parse_unsigned(text, what, std::numeric_limits<gid_t>::max() - 1));
    }
    std::string name(text);
    std::vector<char> buffer(16384);
    for (;;) {
        group entry{};
        group* found = nullptr;
        int rc = getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
        if (rc == ERANGE && buffer.size() < (1u << 22)) {
            buffer.resize(buffer.size() * 2);
            continue;
        }
        if (rc != 0) {
            throw_system_error("getgrnam_r", rc);
        }
        if (found == nullptr) {
            throw CLI::ValidationError(std::string(what), "no group named '" + name + "'");
        }
        return entry.gr_gid;
    }
}

JobId parse_job_id(std::string_view text) {
    JobId id = 0;
    const char* end = text.data() + text.size();
    auto [next, error] = std::from_chars(text.data(), end, id, 10);
    if (text.empty() || error != std::errc{} || next != end) {
        throw CLI::ValidationError("ID", "bad job id '" + std::string(text) +
                                             "': expected a decimal number below 2^64");
    }
    return id;
}

std::vector<JobId> parse_job_ids(const std::vector<std::string>& texts) {
    std::vector<JobId> ids;
    ids.reserve(texts.size());
    for (const auto& text : texts) {
        ids.push_back(parse_job_id(text));
    }
    return ids;
}

Durability parse_durability_option(std::string_view text, std::string_view what) {
    try {
        return parse_durability(text);
    } catch (const Error& error) {
        throw CLI::ValidationError(std::string(what), error.what());
    }
}

CLI::Option* add_seconds(CLI::App& app, const std::string& name, std::chrono::nanoseconds& target,
                         const std::string& description) {
    std::string what = name;
    auto* option = app.add_option_function<std::string>(
        name, [&target, what](const std::string& text) { target = parse_seconds(text, what); }, description);
    option->type_name("SECONDS")->default_str(fixed(std::chrono::duration<double>(target).count(), 3));
    return option;
}

std::string json_string(std::string_view text) { return daemon::json_string(text); }

std::string fixed(double value, int decimals) {
    std::ostringstream out;
    out << std::fixed << std::setprecision(decimals) << value;
    return out.str();
}

std::string format_time_ns(std::int64_t ns) {
    std::time_t seconds = static_cast<std::time_t>(ns / 1'000'000'000);
    long millis = static_cast<long>((ns % 1'000'000'000) / 1'000'000);
    std::tm utc{};
    if (ns < 0 || gmtime_r(&seconds, &utc) == nullptr) {
        return std::to_string(ns) + " ns";
    }
    char text[64];
    std::size_t length = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
    std::ostringstream out;
    out << std::string_view(text, length) << '.' << std::setw(3) << std::setfill('0') << millis << 'Z';
    return out.str();
}

std::string format_mode(unsigned mode) {
    std::ostringstream out;
    out << '0' << std::oct << std::setw(3) << std::setfill('0') << (mode & 07777);
    return out.str();
}

std::string user_label(uid_t uid) {
    std::vector<char> buffer(16384);
    passwd entry{};
    passwd* found = nullptr;
    if (getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
        return std::string(entry.pw_name) + " (" + std::to_string(uid) + ")";
    }
    return std::to_string(uid);
}

std::string group_label(gid_t gid) {
    std::vector<char> buffer(16384);
    group entry{};
    group* found = nullptr;
    if (getgrgid_r(gid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
        return std::string(entry.gr_name) + " (" + std::to_string(gid) + ")";
    }
    return std::to_string(gid);
}

void print_key_values(std::ostream& out, const std::vector<std::pair<std::string, std::string>>& lines) {
    std::size_t width = 0;
    for (const auto& [key, value] : lines) {
        width = std::max(width, key.size() + 1);
    }
    for (const auto& [key, value] : lines) {
        out << std::left << std::setw(static_cast<int>(width)) << (key + ":") << ' ' << value << '\n';
    }
}

void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows, std::size_t first_numeric_column) {
    std::vector<std::size_t> widths(header.size());
    for (std::size_t c = 0; c < header.size(); ++c) {
        widths[c] = header[c].size();
        for (const auto& row : rows) {
            if (c < row.size()) widths[c] = std::max(widths[c], row[c].size());
        }
    }
    auto print_row = [&](const std::vector<std::string>& row) {
        std::string line;
        for (std::size_t c = 0; c < widths.size(); ++c) {
            const std::string cell = c < row.size() ? row[c] : std::string();
            std::string pad(widths[c] - cell.size(), ' ');
            if (c > 0) line += "  ";
            line += c >= first_numeric_column ? pad + cell : cell + pad;
        }
        line.erase(line.find_last_not_of(' ') + 1);
        out << line << '\n';
    };
    print_row(header);
    for (const auto& row : rows) {
        print_row(row);
    }
}

std::int64_t realtime_now_ns() {
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    return std::int64_t(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

} // namespace currant::cli
