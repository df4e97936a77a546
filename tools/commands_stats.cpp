// `currant stats`: per-entrypoint counters, and rates over an interval.
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli.hpp"

namespace currant::cli {

namespace {

struct StatsArgs {
    std::string name;
    std::chrono::nanoseconds interval = std::chrono::seconds(1);
    bool json = false;
};

// Jobs that reached a final state by a consumer's hand.
std::uint64_t completed(const EntrypointStats& stats) {
    return stats.successful + stats.failed;
}

struct Rates {
    double enqueue = 0;
    double completion = 0;
};

int run_stats(const StatsArgs& args) {
    Queue queue = Queue::open(args.name);
    const bool with_rates = args.interval > std::chrono::nanoseconds::zero();

    std::vector<EntrypointStats> stats = queue.stats();
    std::map<EntrypointId, Rates> rates;
    double seconds = 0;
    if (with_rates) {
        std::map<EntrypointId, EntrypointStats> before;
        for (const auto& entry : stats) {
            before.emplace(entry.id, entry);
        }
        const auto start = std::chrono::steady_clock::now();
        std::this_thread::sleep_for(args.interval);
        stats = queue.stats();
        seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        for (const auto& entry : stats) {
            auto old = before.find(entry.id);
            if (old == before.end()) {
                // Declared during the interval: it started from zero.
                old = before.emplace(entry.id, EntrypointStats{}).first;
            }
            rates[entry.id] = {static_cast<double>(entry.enqueued - old->second.enqueued) / seconds,
                               static_cast<double>(completed(entry) - completed(old->second)) / seconds};
        }
    }

    if (args.json) {
        std::cout << "{\n  \"queue\": " << json_string(args.name) << ",\n";
        if (with_rates) {
            std::cout << "  \"interval_seconds\": " << fixed(seconds, 3) << ",\n";
        }
        std::cout << "  \"entrypoints\": [";
        for (std::size_t i = 0; i < stats.size(); ++i) {
            const auto& e = stats[i];
            std::cout << (i ? ",\n" : "\n") << "    {\"name\": " << json_string(e.name) << ", \"id\": " << e.id
                      << ", \"durability\": " << json_string(durability_name(e.durability))
                      << ", \"queued\": " << e.queued << ", \"delayed\": " << e.delayed
                      << ", \"picked\": " << e.picked << ", \"enqueued\": " << e.enqueued
                      << ", \"picks\": " << e.picks << ", \"successful\": " << e.successful
                      << ", \"failed\": " << e.failed << ", \"retried\": " << e.retried
                      << ", \"canceled\": " << e.canceled << ", \"log_pending\": " << e.log_pending
                      << ", \"mirror_lag_ms\": " << fixed(double(e.mirror_lag_ns) / 1e6, 1);
            if (with_rates) {
                std::cout << ", \"enqueue_rate\": " << fixed(rates[e.id].enqueue, 1)
                          << ", \"completion_rate\": " << fixed(rates[e.id].completion, 1);
            }
            std::cout << "}";
        }
        std::cout << (stats.empty() ? "]\n" : "\n  ]\n") << "}\n";
        return 0;
    }

    if (stats.empty()) {
        std::cout << "queue '" << args.name << "' has no entrypoints\n";
        return 0;
    }
    std::vector<std::string> header = {"entrypoint", "durability", "queued",   "delayed", "picked",
                                       "enqueued",   "successful", "failed",   "retried", "canceled",
                                       "log pending", "mirror lag ms"};
    if (with_rates) {
        header.push_back("enqueued/s");
        header.push_back("completed/s");
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& e : stats) {
        std::vector<std::string> row = {e.name,
                                        std::string(durability_name(e.durability)),
                                        std::to_string(e.queued),
                                        std::to_string(e.delayed),
                                        std::to_string(e.picked),
                                        std::to_string(e.enqueued),
                                        std::to_string(e.successful),
                                        std::to_string(e.failed),
                                        std::to_string(e.retried),
                                        std::to_string(e.canceled),
                                        std::to_string(e.log_pending),
                                        fixed(double(e.mirror_lag_ns) / 1e6, 1)};
        if (with_rates) {
            row.push_back(fixed(rates[e.id].enqueue, 1));
            row.push_back(fixed(rates[e.id].completion, 1));
        }
        rows.push_back(std::move(row));
    }
    print_table(std::cout, header, rows, 2);
    return 0;
}

} // namespace

void add_stats(CLI::App& app, Commands& commands) {
    auto args = std::make_shared<StatsArgs>();
    auto* sub = app.add_subcommand("stats", "Per-entrypoint counts, totals and rates");
    sub->add_option("NAME", args->name, "Queue name")->required();
    add_seconds(*sub, "--interval", args->interval,
                "Sample twice this far apart to compute per-second rates (0: no rates)");
    sub->add_flag("--json", args->json, "Print a JSON object");
    commands.push_back({sub, [args] { return run_stats(*args); }});
}

} // namespace currant::cli
