// `currant stats`: per-entrypoint counters, and rates over an interval.
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "cli.hpp"

namespace currant::cli {

namespace {

struct StatsArgs {
    std::string name;
    std::chrono::nanoseconds interval = std::chrono::seconds(1);
    bool json = false;
    bool watch = false;
    std::uint64_t count = 0; // --watch: refreshes before exiting (0: until interrupted)
};

// Jobs that reached a final state by a consumer's hand.
std::uint64_t completed(const EntrypointStats& stats) {
    return stats.successful + stats.failed;
}

struct Rates {
    double enqueue = 0;
    double completion = 0;
};

// Rates between two samples taken `seconds` apart.
std::map<EntrypointId, Rates> rates_between(const std::vector<EntrypointStats>& before,
                                            const std::vector<EntrypointStats>& after, double seconds) {
    std::map<EntrypointId, EntrypointStats> old;
    for (const auto& entry : before) old.emplace(entry.id, entry);
    std::map<EntrypointId, Rates> rates;
    for (const auto& entry : after) {
        // Declared during the interval: it started from zero.
        const EntrypointStats& then = old.try_emplace(entry.id).first->second;
        rates[entry.id] = {static_cast<double>(entry.enqueued - then.enqueued) / seconds,
                           static_cast<double>(completed(entry) - completed(then)) / seconds};
    }
    return rates;
}

// A latency quantile's bucket bound in milliseconds (docs/observability.md):
// "-" (JSON null) before any job, ">10000" (JSON "+Inf") above 10 s.
std::string quantile_ms(const LatencyHistogram& histogram, double q, bool json) {
    if (histogram.count() == 0) return json ? "null" : "-";
    const std::int64_t bound = histogram.quantile_bound_ns(q);
    if (bound == INT64_MAX) return json ? "\"+Inf\"" : ">10000";
    return fixed(double(bound) / 1e6, 3);
}

// `one_line`: the whole object on one line (--watch --json: one object per refresh).
void print_json(const StatsArgs& args, const std::vector<EntrypointStats>& stats,
                const std::map<EntrypointId, Rates>* rates, double seconds, bool one_line) {
    const char* indent = one_line ? "" : "\n  ";
    const char* item = one_line ? "" : "\n    ";
    std::cout << "{" << indent << "\"queue\": " << json_string(args.name) << "," << (one_line ? " " : "");
    if (rates) std::cout << indent << "\"interval_seconds\": " << fixed(seconds, 3) << "," << (one_line ? " " : "");
    std::cout << indent << "\"entrypoints\": [";
    for (std::size_t i = 0; i < stats.size(); ++i) {
        const auto& e = stats[i];
        std::cout << (i ? (one_line ? ", " : ",") : "") << item << "{\"name\": " << json_string(e.name)
                  << ", \"id\": " << e.id << ", \"durability\": " << json_string(durability_name(e.durability))
                  << ", \"queued\": " << e.queued << ", \"delayed\": " << e.delayed << ", \"picked\": " << e.picked
                  << ", \"waiting\": " << e.waiting << ", \"dead\": " << e.dead
                  << ", \"enqueued\": " << e.enqueued << ", \"picks\": " << e.picks
                  << ", \"successful\": " << e.successful << ", \"failed\": " << e.failed
                  << ", \"retried\": " << e.retried << ", \"canceled\": " << e.canceled
                  << ", \"log_pending\": " << e.log_pending
                  << ", \"mirror_lag_ms\": " << fixed(double(e.mirror_lag_ns) / 1e6, 1)
                  << ", \"wait_p50_ms\": " << quantile_ms(e.wait, 0.5, true)
                  << ", \"wait_p99_ms\": " << quantile_ms(e.wait, 0.99, true)
                  << ", \"run_p50_ms\": " << quantile_ms(e.run, 0.5, true)
                  << ", \"run_p99_ms\": " << quantile_ms(e.run, 0.99, true);
        if (rates) {
            const Rates& r = rates->at(e.id);
            std::cout << ", \"enqueue_rate\": " << fixed(r.enqueue, 1) << ", \"completion_rate\": " << fixed(r.completion, 1);
        }
        std::cout << "}";
    }
    if (one_line) std::cout << "]}\n";
    else std::cout << (stats.empty() ? "]\n" : "\n  ]\n") << "}\n";
}

void print_rows(const StatsArgs& args, const std::vector<EntrypointStats>& stats,
                const std::map<EntrypointId, Rates>* rates) {
    if (stats.empty()) {
        std::cout << "queue '" << args.name << "' has no entrypoints\n";
        return;
    }
    std::vector<std::string> header = {"entrypoint", "durability", "queued",   "delayed", "picked", "waiting", "dead",
                                       "enqueued",   "successful", "failed",   "retried", "canceled",
                                       "log pending", "mirror lag ms", "wait p99 ms", "run p99 ms"};
    if (rates) {
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
                                        std::to_string(e.waiting),
                                        std::to_string(e.dead),
                                        std::to_string(e.enqueued),
                                        std::to_string(e.successful),
                                        std::to_string(e.failed),
                                        std::to_string(e.retried),
                                        std::to_string(e.canceled),
                                        std::to_string(e.log_pending),
                                        fixed(double(e.mirror_lag_ns) / 1e6, 1),
                                        quantile_ms(e.wait, 0.99, false),
                                        quantile_ms(e.run, 0.99, false)};
        if (rates) {
            row.push_back(fixed(rates->at(e.id).enqueue, 1));
            row.push_back(fixed(rates->at(e.id).completion, 1));
        }
        rows.push_back(std::move(row));
    }
    print_table(std::cout, header, rows, 2);
}

int run_stats(const StatsArgs& args) {
    Queue queue = Queue::open(args.name);
    const bool with_rates = args.interval > std::chrono::nanoseconds::zero();
    if (args.watch && !with_rates) throw CLI::ValidationError("--watch", "needs an --interval above 0");
    // Redraw in place on a terminal; otherwise (a pipe, a file) one table after another.
    const bool redraw = args.watch && !args.json && isatty(STDOUT_FILENO);

    std::vector<EntrypointStats> stats = queue.stats();
    auto sampled_at = std::chrono::steady_clock::now();
    for (std::uint64_t shown = 0;;) {
        std::map<EntrypointId, Rates> rates;
        double seconds = 0;
        if (with_rates) {
            std::this_thread::sleep_for(args.interval);
            std::vector<EntrypointStats> now = queue.stats();
            const auto now_at = std::chrono::steady_clock::now();
            seconds = std::chrono::duration<double>(now_at - sampled_at).count();
            rates = rates_between(stats, now, seconds);
            stats = std::move(now);
            sampled_at = now_at;
        }
        const std::map<EntrypointId, Rates>* shown_rates = with_rates ? &rates : nullptr;
        if (redraw) std::cout << "\x1b[H\x1b[2J" << "currant stats " << args.name << " (every " << fixed(seconds, 1)
                              << " s; Ctrl-C ends)\n\n";
        else if (args.watch && !args.json && shown) std::cout << "\n";
        if (args.json) print_json(args, stats, shown_rates, seconds, args.watch);
        else print_rows(args, stats, shown_rates);
        std::cout.flush();
        ++shown;
        if (!args.watch || (args.count && shown >= args.count)) return 0;
    }
}

} // namespace

void add_stats(CLI::App& app, Commands& commands) {
    auto args = std::make_shared<StatsArgs>();
    auto* sub = app.add_subcommand("stats", "Per-entrypoint counts, totals and rates");
    sub->add_option("NAME", args->name, "Queue name")->required();
    add_seconds(*sub, "--interval", args->interval,
                "Sample twice this far apart to compute per-second rates (0: no rates)");
    sub->add_flag("--json", args->json, "Print a JSON object (with --watch: one per line per refresh)");
    sub->add_flag("--watch", args->watch, "Refresh every --interval until interrupted (Ctrl-C)");
    add_number(*sub, "--count", args->count, "With --watch: stop after this many refreshes (0: never)");
    commands.push_back({sub, [args] { return run_stats(*args); }});
}

} // namespace currant::cli
