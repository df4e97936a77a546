// Shared pieces of the `currant` command line: how subcommands are
// registered, strict parsing of option values, and text/JSON output helpers.
//
// Usage errors (a malformed number, mode, id or duration) are thrown as
// CLI::ValidationError naming the option, so main() reports them like every
// other CLI11 parse error (exit status 2). Failures of the queue itself arrive
// as currant::Error (exit status 1).
#pragma once

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <limits>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <type_traits>
#include <utility>
#include <vector>

#include "currant/queue.hpp"

namespace currant::cli {

// A subcommand and what to run when it was the one given. run() returns the
// process exit status; it may throw currant::Error or CLI::ParseError.
struct Command {
    CLI::App* app = nullptr;
    std::function<int()> run;
};
using Commands = std::vector<Command>;

// Each adds one subcommand to app and its runner to commands.
void add_init(CLI::App& app, Commands& commands);    // commands_queue.cpp
void add_info(CLI::App& app, Commands& commands);
void add_declare(CLI::App& app, Commands& commands);
void add_doctor(CLI::App& app, Commands& commands);
void add_rm(CLI::App& app, Commands& commands);
void add_enqueue(CLI::App& app, Commands& commands); // commands_jobs.cpp
void add_status(CLI::App& app, Commands& commands);
void add_cancel(CLI::App& app, Commands& commands);
void add_wait(CLI::App& app, Commands& commands);
void add_stats(CLI::App& app, Commands& commands);   // commands_stats.cpp
void add_demo(CLI::App& app, Commands& commands);    // demo.cpp
void add_db(CLI::App& app, Commands& commands);      // commands_db.cpp
void add_pause(CLI::App& app, Commands& commands);   // commands_limits.cpp
void add_resume(CLI::App& app, Commands& commands);
void add_limit(CLI::App& app, Commands& commands);
void add_schedules(CLI::App& app, Commands& commands); // commands_schedules.cpp
void add_failed(CLI::App& app, Commands& commands);  // commands_dead.cpp
void add_requeue(CLI::App& app, Commands& commands);
void add_purge(CLI::App& app, Commands& commands);

// --- strict parsing (decimal only, whole text, range-checked) ---

// `what` names the option or argument in the error message.
std::uint64_t parse_unsigned(std::string_view text, std::string_view what, std::uint64_t max);
std::int64_t parse_signed(std::string_view text, std::string_view what, std::int64_t min, std::int64_t max);
// A non-negative, finite number of seconds ("1", "0.25"); returns nanoseconds.
std::chrono::nanoseconds parse_seconds(std::string_view text, std::string_view what);
// Octal permission bits: "600", "0600", "0660". At most 0777.
unsigned parse_mode(std::string_view text, std::string_view what);
// A group name or a numeric gid.
gid_t parse_group(std::string_view text, std::string_view what);
// A decimal job id.
JobId parse_job_id(std::string_view text);
std::vector<JobId> parse_job_ids(const std::vector<std::string>& texts);
// parse_durability, reported as a usage error of option `what`.
Durability parse_durability_option(std::string_view text, std::string_view what);

// Adds an option (or positional) whose value is parsed with parse_unsigned /
// parse_signed into target, within T's range. CLI11's own conversion is not
// used because it accepts octal ("010" = 8), hex and wrapped negatives.
template <typename T>
CLI::Option* add_number(CLI::App& app, const std::string& name, T& target, const std::string& description) {
    static_assert(std::is_integral_v<T>);
    std::string what = name;
    auto* option = app.add_option_function<std::string>(
        name,
        [&target, what](const std::string& text) {
            if constexpr (std::is_signed_v<T>) {
                target = static_cast<T>(parse_signed(text, what, std::numeric_limits<T>::min(),
                                                     std::numeric_limits<T>::max()));
            } else {
                target = static_cast<T>(parse_unsigned(text, what, std::numeric_limits<T>::max()));
            }
        },
        description);
    option->type_name("N")->default_str(std::to_string(target));
    return option;
}

// Adds an option holding a duration in seconds (see parse_seconds).
CLI::Option* add_seconds(CLI::App& app, const std::string& name, std::chrono::nanoseconds& target,
                         const std::string& description);

// --- output ---

// A JSON string literal, quoted and escaped.
std::string json_string(std::string_view text);
// A double in plain notation with the given decimals ("1234.50").
std::string fixed(double value, int decimals);
// CLOCK_REALTIME nanoseconds as an ISO 8601 UTC time with milliseconds.
std::string format_time_ns(std::int64_t ns);
// Permission bits as "0660".
std::string format_mode(unsigned mode);
// "name (id)" for a user or group id, or just the id if it has no name.
std::string user_label(uid_t uid);
std::string group_label(gid_t gid);

// Prints `key: value` lines with the values aligned.
void print_key_values(std::ostream& out, const std::vector<std::pair<std::string, std::string>>& lines);

// Prints a table: a header row and rows, columns separated by two spaces;
// columns from first_numeric_column on are right-aligned.
void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows, std::size_t first_numeric_column);

// Realtime clock in nanoseconds since the epoch (the clock of execute_after).
std::int64_t realtime_now_ns();

} // namespace currant::cli
