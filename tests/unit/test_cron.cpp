// The cron parser and next-tick search (currant/cron.hpp): fields, lists,
// ranges, steps, names, aliases, the day-of-month/day-of-week rule, month
// ends and leap years, and an error naming the field for each bad input.
#include "unit_support.hpp"

#include <ctime>

#include "currant/cron.hpp"

using namespace currant;

namespace {

// Seconds since the epoch of a UTC date and time.
std::int64_t utc(int year, int month, int day, int hour = 0, int minute = 0, int second = 0) {
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    return std::int64_t(timegm(&tm));
}

std::int64_t next(std::string_view expression, std::int64_t after) {
    const auto tick = CronExpression::parse(expression).next_after(after);
    REQUIRE(tick.has_value());
    return *tick;
}

std::string parse_error(std::string_view expression) {
    try {
        CronExpression::parse(expression);
    } catch (const Error& e) {
        CHECK(e.code() == Errc::invalid_argument);
        return e.what();
    }
    FAIL("'" << expression << "' parsed");
    return {};
}

// Brute force: the first second after `after` that matches, by testing each
// second with the definition of a match (gmtime), for cross-checking.
bool brute_matches(const CronFields& f, std::int64_t t) {
    const std::time_t time = std::time_t(t);
    std::tm tm{};
    gmtime_r(&time, &tm);
    const bool day_ok = (f.days >> tm.tm_mday) & 1;
    const bool weekday_ok = (f.weekdays >> tm.tm_wday) & 1;
    const bool day = (f.any_day || f.any_weekday) ? (day_ok && weekday_ok) : (day_ok || weekday_ok);
    return ((f.seconds >> tm.tm_sec) & 1) && ((f.minutes >> tm.tm_min) & 1) && ((f.hours >> tm.tm_hour) & 1) &&
           ((f.months >> (tm.tm_mon + 1)) & 1) && day;
}

} // namespace

TEST_CASE("five fields mean second 0; six fields start with the second", "[cron]") {
    CHECK(next("* * * * *", utc(2026, 1, 1, 0, 0, 0)) == utc(2026, 1, 1, 0, 1, 0));
    CHECK(next("* * * * * *", utc(2026, 1, 1, 0, 0, 0)) == utc(2026, 1, 1, 0, 0, 1));
    CHECK(next("30 * * * * *", utc(2026, 1, 1, 0, 0, 30)) == utc(2026, 1, 1, 0, 1, 30));
    CHECK(next("0 12 * * *", utc(2026, 1, 1, 12, 0, 0)) == utc(2026, 1, 2, 12, 0, 0));
    CHECK(next("  */15   *  * * *  ", utc(2026, 1, 1, 0, 7, 0)) == utc(2026, 1, 1, 0, 15, 0));
}

TEST_CASE("lists, ranges and steps", "[cron]") {
    const CronFields f = CronExpression::parse("1,5-7,*/20 0-30/10 3 * * *").fields();
    CHECK(f.seconds == ((1ull << 1) | (1ull << 5) | (1ull << 6) | (1ull << 7) | (1ull << 0) | (1ull << 20) | (1ull << 40)));
    CHECK(f.minutes == ((1ull << 0) | (1ull << 10) | (1ull << 20) | (1ull << 30)));
    CHECK(f.hours == (1u << 3));
    CHECK(CronExpression::parse("5/20 * * * * *").fields().seconds == ((1ull << 5) | (1ull << 25) | (1ull << 45)));
    CHECK(CronExpression::parse("*/60 * * * * *").fields().seconds == 1);
    CHECK(next("0 0 9-17/4 * * *", utc(2026, 3, 3, 13, 0, 0)) == utc(2026, 3, 3, 17, 0, 0));
    CHECK(next("0 0 9-17/4 * * *", utc(2026, 3, 3, 17, 0, 0)) == utc(2026, 3, 4, 9, 0, 0));
}

TEST_CASE("month and weekday names in any case, weekday 7 is Sunday", "[cron]") {
    CHECK(CronExpression::parse("0 0 1 jan,Mar-MAY *").fields().months == ((1u << 1) | (1u << 3) | (1u << 4) | (1u << 5)));
    CHECK(CronExpression::parse("0 0 * * sun").fields().weekdays == 1u);
    CHECK(CronExpression::parse("0 0 * * 7").fields().weekdays == 1u);
    CHECK(CronExpression::parse("0 0 * * 5-7").fields().weekdays == ((1u << 5) | (1u << 6) | 1u));
    CHECK(CronExpression::parse("0 0 * * MON-FRI").fields().weekdays == 0b0111110u);
    // 2026-11-23 is a Monday.
    CHECK(next("0 9 * * sat", utc(2026, 11, 23)) == utc(2026, 11, 28, 9, 0, 0));
}

TEST_CASE("aliases", "[cron]") {
    CHECK(next("@hourly", utc(2026, 5, 5, 10, 30)) == utc(2026, 5, 5, 11, 0));
    CHECK(next("@daily", utc(2026, 5, 5, 10, 30)) == utc(2026, 5, 6));
    CHECK(next("@midnight", utc(2026, 5, 5, 10, 30)) == utc(2026, 5, 6));
    CHECK(next("@weekly", utc(2026, 11, 23)) == utc(2026, 11, 29)); // Sunday
    CHECK(next("@monthly", utc(2026, 5, 5)) == utc(2026, 6, 1));
    CHECK(next("@YEARLY", utc(2026, 5, 5)) == utc(2027, 1, 1));
    CHECK(next("@annually", utc(2026, 5, 5)) == utc(2027, 1, 1));
}

TEST_CASE("day of month and day of week: either if both are restricted, both if one is a star", "[cron]") {
    // The 13th or any Friday (2026-11-23 is a Monday; the 27th is a Friday).
    CHECK(next("0 0 13 * fri", utc(2026, 11, 23)) == utc(2026, 11, 27));
    CHECK(next("0 0 13 * fri", utc(2026, 11, 27)) == utc(2026, 12, 4));
    CHECK(next("0 0 13 * fri", utc(2026, 12, 12)) == utc(2026, 12, 13));
    // A star day of month: Fridays only.
    CHECK(next("0 0 * * fri", utc(2026, 12, 12)) == utc(2026, 12, 18));
    // A star day of week: the 13th only; '?' is a star too.
    CHECK(next("0 0 13 * *", utc(2026, 12, 13)) == utc(2027, 1, 13));
    CHECK(next("0 0 13 * ?", utc(2026, 12, 13)) == utc(2027, 1, 13));
    // '*/2' counts as a star (Vixie cron): odd days that are also Mondays.
    CHECK(next("0 0 */2 * mon", utc(2026, 11, 23)) == utc(2026, 12, 7));
}

TEST_CASE("month ends and leap years", "[cron]") {
    CHECK(next("0 0 31 * *", utc(2026, 1, 31)) == utc(2026, 3, 31));
    CHECK(next("0 0 29 2 *", utc(2026, 1, 1)) == utc(2028, 2, 29));
    CHECK(next("0 0 29 2 *", utc(2096, 3, 1)) == utc(2104, 2, 29)); // 2100 is not a leap year
    CHECK(next("59 59 23 31 12 *", utc(2026, 12, 31, 23, 59, 58)) == utc(2026, 12, 31, 23, 59, 59));
    CHECK(next("* * * * * *", utc(2026, 12, 31, 23, 59, 59)) == utc(2027, 1, 1));
    CHECK(next("0 0 1 1 *", -1) == 0);
}

TEST_CASE("next_after agrees with a second-by-second search", "[cron]") {
    const char* expressions[] = {"*/7 */13 * * * *", "0 0 */5 1,15 * tue", "0 30 22 * 2 *", "5 4 3 2 * 1-3",
                                 "0 0 0 29-31 * *"};
    for (const char* expression : expressions) {
        INFO(expression);
        const CronExpression cron = CronExpression::parse(expression);
        std::int64_t at = utc(2027, 12, 30, 23);
        for (int n = 0; n < 20; ++n) {
            const std::int64_t tick = *cron.next_after(at);
            // Every second strictly between at and tick does not match; tick does.
            REQUIRE(brute_matches(cron.fields(), tick));
            if (tick - at < 200'000)
                for (std::int64_t t = at + 1; t < tick; ++t) REQUIRE_FALSE(brute_matches(cron.fields(), t));
            CHECK(cron.matches(tick));
            at = tick;
        }
    }
}

TEST_CASE("bad expressions name the field and the problem", "[cron][errors]") {
    using Catch::Matchers::Contains;
    CHECK_THAT(parse_error(""), Contains("is empty"));
    CHECK_THAT(parse_error("* * * *"), Contains("has 4 fields; expected 5"));
    CHECK_THAT(parse_error("* * * * * * *"), Contains("has 7 fields"));
    CHECK_THAT(parse_error("60 * * * *"), Contains("minute field '60': value 60 is out of range 0-59"));
    CHECK_THAT(parse_error("* 24 * * *"), Contains("hour field '24': value 24 is out of range 0-23"));
    CHECK_THAT(parse_error("* * 0 * *"), Contains("day-of-month field '0': value 0 is out of range 1-31"));
    CHECK_THAT(parse_error("* * * 13 *"), Contains("month field '13'"));
    CHECK_THAT(parse_error("* * * * 8"), Contains("day-of-week field '8': value 8 is out of range 0-7"));
    CHECK_THAT(parse_error("61 * * * * *"), Contains("second field '61'"));
    CHECK_THAT(parse_error("5-2 * * * *"), Contains("minute field '5-2': range 5-2 goes backwards"));
    CHECK_THAT(parse_error("*/0 * * * *"), Contains("minute field '*/0': step 0 must be at least 1"));
    CHECK_THAT(parse_error("*/ * * * *"), Contains("the step after '/' is missing"));
    CHECK_THAT(parse_error("*/61 * * * *"), Contains("step 61 is larger than the field's range 0-59"));
    CHECK_THAT(parse_error("*/x * * * *"), Contains("step 'x' is not a number"));
    CHECK_THAT(parse_error("1,,2 * * * *"), Contains("minute field '1,,2': empty list item"));
    CHECK_THAT(parse_error("1, * * * *"), Contains("empty list item"));
    CHECK_THAT(parse_error("a * * * *"), Contains("minute field 'a': 'a' is not a number"));
    CHECK_THAT(parse_error("1x * * * *"), Contains("'1x' is not a number"));
    CHECK_THAT(parse_error("* * * foo *"), Contains("month field 'foo': 'foo' is not a number or a month name"));
    CHECK_THAT(parse_error("* * * * funday"), Contains("day-of-week field 'funday'"));
    CHECK_THAT(parse_error("* * * jan- *"), Contains("a value is missing"));
    CHECK_THAT(parse_error("? * * * *"), Contains("minute field '?'"));
    CHECK_THAT(parse_error("99999999999 * * * *"), Contains("out of range"));
    CHECK_THAT(parse_error("@every"), Contains("unknown alias '@every'"));
    CHECK_THAT(parse_error("0 0 30 2 *"), Contains("matches no date at all"));
    CHECK_THAT(parse_error("0 0 31 4,6,9,11 *"), Contains("matches no date at all"));
    CHECK_THAT(parse_error("x * * * *"), Contains("cron expression 'x * * * *'"));
}

TEST_CASE("stored masks: bits out of range are ignored, an empty field never fires", "[cron]") {
    CronFields f = CronExpression::parse("* * * * * *").fields();
    f.seconds = ~0ull;
    f.hours = ~0u;
    CHECK(CronExpression::from_fields(f).next_after(utc(2026, 1, 1, 23, 59, 59)) == utc(2026, 1, 2));
    f.months = 1u << 13; // no valid month
    CHECK_FALSE(CronExpression::from_fields(f).next_after(0).has_value());
}
