// What currantd tells about the queue it mirrors: Prometheus text for
// /metrics and JSON for /api/stats (docs/observability.md lists the names).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

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

// The last few minutes of per-entrypoint depths and totals, one sample a
// second, so the dashboard shows a history the moment it opens. Sampled and
// read on the HTTP thread only (no lock). Costs one stats() walk a second,
// and only while --http is on.
class StatsHistory {
public:
    explicit StatsHistory(std::size_t keep = 300) : keep_(keep) {}
    void sample(const Queue& queue);
    std::string json() const; // /api/history

private:
    struct Point {
        std::string name;
        std::uint64_t depth = 0, enqueued = 0, completed = 0, failed = 0;
    };
    struct Sample {
        std::int64_t time_ns = 0; // CLOCK_REALTIME
        std::vector<Point> entrypoints;
    };
    std::size_t keep_;
    std::deque<Sample> samples_;
};

} // namespace currant::daemon
