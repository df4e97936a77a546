// The web dashboard: one self-contained page (no external scripts, styles
// or fonts) that polls /api/stats once a second and draws what it saw.
#pragma once

#include <string_view>

namespace currant::daemon {

std::string_view dashboard_html() noexcept;

} // namespace currant::daemon
