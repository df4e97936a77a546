// The web dashboard: one self-contained page (no external scripts, styles
// or fonts). It loads the daemon's recent history (/api/history), then polls
// /api/stats once a second and draws depths and completion rates over time.
#pragma once

#include <string_view>

namespace currant::daemon {

std::string_view dashboard_html() noexcept;

} // namespace currant::daemon
