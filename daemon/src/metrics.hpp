// What currantd tells about the queue it mirrors: Prometheus text for
// /metrics and JSON for /api/stats (docs/observability.md lists the names).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "currant/queue.hpp"

namespace currant::daemon {

// Written by the mirror thread after each batch, read by the HTTP thread.
// Relaxed: each figure is a counter read on its own, no figure guards another.
struct MirrorStatus {
    std::atomic<std::uint64_t> transitions{0};
    std::atomic<std::uint64_t> jobs{0};
    std::atomic<std::uint64_t> batches{0};
    std::atomic<std::uint64_t> statements{0};
    std::atomic<std::uint64_t> reconnects{0};
    std::atomic<bool> connected{false};
};

// Both read the segment (stats() walks the arena: call them per scrape, not in a loop).
std::string prometheus_text(const Queue& queue, const MirrorStatus& mirror);
std::string stats_json(const Queue& queue, const MirrorStatus& mirror);

} // namespace currant::daemon
