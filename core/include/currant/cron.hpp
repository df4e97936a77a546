// Cron expressions for currant's schedules (docs/schedules.md).
//
// What a caller may rely on
// -------------------------
// * Five fields (minute hour day-of-month month day-of-week; the second is
//   then 0) or six (second first). Each field is a comma list of `*`, `N`,
//   `N-M`, each optionally followed by `/step`; `N/step` means N to the
//   field's end. Months take JAN..DEC, weekdays SUN..SAT (any case);
//   weekday 7 is Sunday like 0. `?` is `*` in the two day fields.
//   Aliases: @yearly @annually @monthly @weekly @daily @midnight @hourly.
// * Day rule (as Vixie cron): if either day field starts with `*`, a day
//   must match both; if both are restricted, it must match either.
// * Times are whole seconds since the Unix epoch, evaluated in UTC: every
//   process sharing a segment agrees whatever its TZ.
// * parse() throws currant::Error(invalid_argument) naming the field and the
//   problem; an expression that matches no date at all (`0 0 30 2 *`) is
//   refused too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace currant {

// The compiled form: one bit per allowed value. This is what the segment
// stores, so that firing processes never parse text.
struct CronFields {
    std::uint64_t seconds = 0;   // bits 0..59
    std::uint64_t minutes = 0;   // bits 0..59
    std::uint32_t hours = 0;     // bits 0..23
    std::uint32_t days = 0;      // bits 1..31 (day of month)
    std::uint32_t months = 0;    // bits 1..12
    std::uint32_t weekdays = 0;  // bits 0..6, 0 = Sunday
    bool any_day = false;        // the day-of-month field started with '*' or '?'
    bool any_weekday = false;    // the day-of-week field started with '*' or '?'
};

class CronExpression {
public:
    // Throws Error(invalid_argument): "cron expression '<text>': <field>
    // field '<item>': <problem>", or a message about the field count.
    static CronExpression parse(std::string_view text);
    // From stored masks (bits outside a field's range are ignored; an empty
    // field matches nothing).
    static CronExpression from_fields(const CronFields& fields) noexcept;

    // The first matching second strictly after `after_seconds`; nullopt if
    // none within 400 years (only for masks that match no date).
    std::optional<std::int64_t> next_after(std::int64_t after_seconds) const noexcept;
    bool matches(std::int64_t seconds) const noexcept;

    const CronFields& fields() const noexcept { return fields_; }

private:
    CronFields fields_;
};

} // namespace currant
