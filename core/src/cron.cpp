// The cron parser and the next-tick search (currant/cron.hpp). Written for
// currant; the civil-date arithmetic is the usual days-from-civil algorithm
// on the proleptic Gregorian calendar (UTC, no time zones).
#include "currant/cron.hpp"

#include <array>
#include <cctype>
#include <vector>

#include "currant/shm/error.hpp"

namespace currant {

namespace {

struct FieldSpec {
    const char* name;
    int min, max;          // allowed values (day-of-week allows 7 = Sunday)
    const char* const* names; // names for min, min+1, ... (nullptr: none)
    int name_count;
};

constexpr const char* month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr const char* weekday_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

constexpr FieldSpec specs[6] = {
    {"second", 0, 59, nullptr, 0},      {"minute", 0, 59, nullptr, 0},
    {"hour", 0, 23, nullptr, 0},        {"day-of-month", 1, 31, nullptr, 0},
    {"month", 1, 12, month_names, 12},  {"day-of-week", 0, 7, weekday_names, 7},
};

struct ParseError {
    std::string message;
};

[[noreturn]] void field_error(const FieldSpec& spec, std::string_view item, const std::string& problem) {
    throw ParseError{std::string(spec.name) + " field '" + std::string(item) + "': " + problem};
}

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

int parse_value(const FieldSpec& spec, std::string_view item, std::string_view text) {
    if (text.empty()) field_error(spec, item, "a value is missing");
    if (std::isdigit(static_cast<unsigned char>(text[0]))) {
        long value = 0;
        for (char c : text) {
            if (!std::isdigit(static_cast<unsigned char>(c)))
                field_error(spec, item, "'" + std::string(text) + "' is not a number");
            value = value * 10 + (c - '0');
            if (value > 1'000'000) field_error(spec, item, "'" + std::string(text) + "' is out of range " +
                                                               std::to_string(spec.min) + "-" + std::to_string(spec.max));
        }
        if (value < spec.min || value > spec.max)
            field_error(spec, item, "value " + std::to_string(value) + " is out of range " + std::to_string(spec.min) +
                                        "-" + std::to_string(spec.max));
        return int(value);
    }
    if (spec.names != nullptr) {
        const std::string name = lower(text);
        for (int i = 0; i < spec.name_count; ++i)
            if (name == spec.names[i]) return spec.min + i;
        field_error(spec, item, "'" + std::string(text) + "' is not a number or a " +
                                    (spec.names == month_names ? "month name (JAN..DEC)" : "weekday name (SUN..SAT)"));
    }
    field_error(spec, item, "'" + std::string(text) + "' is not a number");
}

// Parses one field into a mask over [spec.min, spec.max]; sets `star` if the
// field starts with '*' (or '?' where allowed).
std::uint64_t parse_field(const FieldSpec& spec, std::string_view text, bool question_allowed, bool& star) {
    star = !text.empty() && (text[0] == '*' || (question_allowed && text[0] == '?'));
    std::uint64_t mask = 0;
    std::size_t start = 0;
    for (;;) {
        const std::size_t comma = text.find(',', start);
        const std::string_view item = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        if (item.empty()) field_error(spec, text, "empty list item");
        std::string_view base = item;
        int step = 1;
        bool has_step = false;
        if (const std::size_t slash = item.find('/'); slash != std::string_view::npos) {
            base = item.substr(0, slash);
            const std::string_view step_text = item.substr(slash + 1);
            if (step_text.empty()) field_error(spec, item, "the step after '/' is missing");
            long value = 0;
            for (char c : step_text) {
                if (!std::isdigit(static_cast<unsigned char>(c)))
                    field_error(spec, item, "step '" + std::string(step_text) + "' is not a number");
                value = value * 10 + (c - '0');
                if (value > 1'000'000) break;
            }
            if (value == 0) field_error(spec, item, "step 0 must be at least 1");
            const int span = spec.max - spec.min + 1;
            if (value > span)
                field_error(spec, item, "step " + std::string(step_text) + " is larger than the field's range " +
                                            std::to_string(spec.min) + "-" + std::to_string(spec.max));
            step = int(value);
            has_step = true;
        }
        int low = 0, high = 0;
        if (base == "*" || (question_allowed && base == "?")) {
            if (base == "?" && has_step) field_error(spec, item, "'?' takes no step");
            low = spec.min;
            high = spec.name_count == 7 ? 6 : spec.max; // '*' in day-of-week is 0-6
        } else if (const std::size_t dash = base.find('-'); dash != std::string_view::npos) {
            low = parse_value(spec, item, base.substr(0, dash));
            high = parse_value(spec, item, base.substr(dash + 1));
            if (high < low)
                field_error(spec, item, "range " + std::to_string(low) + "-" + std::to_string(high) +
                                            " goes backwards (wrap-around is not supported; use a list)");
        } else {
            low = parse_value(spec, item, base);
            high = has_step ? (spec.name_count == 7 ? 6 : spec.max) : low; // N/step: N to the end
        }
        for (int v = low; v <= high; v += step) mask |= std::uint64_t(1) << v;
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    return mask;
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) noexcept {
    const std::int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Days since 1970-01-01 of a civil date (proleptic Gregorian).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
    y -= m <= 2;
    const std::int64_t era = floor_div(y, 400);
    const unsigned yoe = unsigned(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + std::int64_t(doe) - 719468;
}

struct Civil {
    std::int64_t year;
    unsigned month, day;
};

Civil civil_from_days(std::int64_t z) noexcept {
    z += 719468;
    const std::int64_t era = floor_div(z, 146097);
    const unsigned doe = unsigned(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    return {std::int64_t(yoe) + era * 400 + (m <= 2), m, d};
}

unsigned days_in_month(std::int64_t y, unsigned m) noexcept {
    static constexpr unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return days[(m - 1) % 12];
}

// Lowest set bit of mask at or above `from` (at most 63), or -1.
int next_bit(std::uint64_t mask, int from) noexcept {
    if (from > 63) return -1;
    const std::uint64_t rest = mask >> from;
    return rest == 0 ? -1 : from + __builtin_ctzll(rest);
}

constexpr std::uint64_t sixty = (std::uint64_t(1) << 60) - 1;

} // namespace

CronExpression CronExpression::parse(std::string_view text) {
    const std::string quoted = "cron expression '" + std::string(text.substr(0, 200)) + "'";
    std::string_view body = text;
    while (!body.empty() && std::isspace(static_cast<unsigned char>(body.front()))) body.remove_prefix(1);
    while (!body.empty() && std::isspace(static_cast<unsigned char>(body.back()))) body.remove_suffix(1);
    if (body.empty()) throw Error(Errc::invalid_argument, quoted + ": is empty");
    std::string expanded;
    if (body[0] == '@') {
        const std::string alias = lower(body);
        if (alias == "@yearly" || alias == "@annually") expanded = "0 0 0 1 1 *";
        else if (alias == "@monthly") expanded = "0 0 0 1 * *";
        else if (alias == "@weekly") expanded = "0 0 0 * * 0";
        else if (alias == "@daily" || alias == "@midnight") expanded = "0 0 0 * * *";
        else if (alias == "@hourly") expanded = "0 0 * * * *";
        else
            throw Error(Errc::invalid_argument, quoted + ": unknown alias '" + std::string(body) +
                                                    "' (known: @yearly @annually @monthly @weekly @daily @midnight @hourly)");
        body = expanded;
    }
    std::vector<std::string_view> parts;
    std::size_t at = 0;
    while (at < body.size()) {
        while (at < body.size() && std::isspace(static_cast<unsigned char>(body[at]))) ++at;
        const std::size_t start = at;
        while (at < body.size() && !std::isspace(static_cast<unsigned char>(body[at]))) ++at;
        if (at > start) parts.push_back(body.substr(start, at - start));
    }
    if (parts.size() != 5 && parts.size() != 6)
        throw Error(Errc::invalid_argument,
                    quoted + ": has " + std::to_string(parts.size()) +
                        " fields; expected 5 (minute hour day-of-month month day-of-week) or 6 (a second field first)");
    const std::size_t skip = parts.size() == 5 ? 1 : 0; // 5 fields: no second field
    CronExpression cron;
    CronFields& f = cron.fields_;
    try {
        bool star = false;
        f.seconds = skip ? 1 : parse_field(specs[0], parts[0], false, star);
        f.minutes = parse_field(specs[1], parts[1 - skip], false, star);
        f.hours = std::uint32_t(parse_field(specs[2], parts[2 - skip], false, star));
        f.days = std::uint32_t(parse_field(specs[3], parts[3 - skip], true, f.any_day));
        f.months = std::uint32_t(parse_field(specs[4], parts[4 - skip], false, star));
        std::uint64_t weekdays = parse_field(specs[5], parts[5 - skip], true, f.any_weekday);
        if (weekdays & (1u << 7)) weekdays = (weekdays | 1u) & 0x7f; // 7 is Sunday
        f.weekdays = std::uint32_t(weekdays);
    } catch (const ParseError& e) {
        throw Error(Errc::invalid_argument, quoted + ": " + e.message);
    }
    if (!cron.next_after(0))
        throw Error(Errc::invalid_argument, quoted + ": matches no date at all (a day of the month that none of "
                                                     "the chosen months has, like February 30)");
    return cron;
}

CronExpression CronExpression::from_fields(const CronFields& fields) noexcept {
    CronExpression cron;
    cron.fields_ = fields;
    cron.fields_.seconds &= sixty;
    cron.fields_.minutes &= sixty;
    cron.fields_.hours &= (1u << 24) - 1;
    cron.fields_.days &= 0xfffffffeu;
    cron.fields_.months &= 0x1ffeu;
    cron.fields_.weekdays &= 0x7fu;
    return cron;
}

bool CronExpression::matches(std::int64_t t) const noexcept {
    const std::optional<std::int64_t> next = next_after(t - 1);
    return next && *next == t;
}

std::optional<std::int64_t> CronExpression::next_after(std::int64_t after) const noexcept {
    const CronFields& f = fields_;
    if (after >= INT64_MAX / 2 || after < INT64_MIN / 2) return std::nullopt;
    const std::int64_t t = after + 1;
    std::int64_t days = floor_div(t, 86400);
    const std::int64_t second_of_day = t - days * 86400;
    Civil c = civil_from_days(days);
    int hour = int(second_of_day / 3600), minute = int(second_of_day / 60 % 60), second = int(second_of_day % 60);
    const std::int64_t last_year = c.year + 400;
    auto next_month = [&] {
        if (++c.month > 12) {
            c.month = 1;
            ++c.year;
        }
        c.day = 1;
        hour = minute = second = 0;
    };
    auto next_day = [&] {
        ++c.day;
        hour = minute = second = 0;
    };
    for (;;) {
        if (c.year > last_year) return std::nullopt;
        if (!((f.months >> c.month) & 1)) {
            next_month();
            continue;
        }
        if (c.day > days_in_month(c.year, c.month)) {
            next_month();
            continue;
        }
        const std::int64_t day_number = days_from_civil(c.year, c.month, c.day);
        const unsigned weekday = unsigned(floor_div(day_number + 4, 7) * -7 + day_number + 4); // 1970-01-01: Thursday
        const bool day_ok = (f.days >> c.day) & 1;
        const bool weekday_ok = (f.weekdays >> weekday) & 1;
        if (!((f.any_day || f.any_weekday) ? (day_ok && weekday_ok) : (day_ok || weekday_ok))) {
            next_day();
            continue;
        }
        const int h = next_bit(f.hours, hour);
        if (h < 0 || h > 23) {
            next_day();
            continue;
        }
        if (h != hour) {
            hour = h;
            minute = second = 0;
        }
        const int m = next_bit(f.minutes, minute);
        if (m < 0 || m > 59) {
            ++hour;
            minute = second = 0;
            continue;
        }
        if (m != minute) {
            minute = m;
            second = 0;
        }
        const int s = next_bit(f.seconds, second);
        if (s < 0 || s > 59) {
            ++minute;
            second = 0;
            continue;
        }
        return day_number * 86400 + hour * 3600 + minute * 60 + s;
    }
}

} // namespace currant
