#include "metrics.hpp"

#include <cstdio>
#include <vector>

#include "currant/shm/clock.hpp"
#include "json_text.hpp"

namespace currant::daemon {

namespace {

// Label values escape backslash, double quote and newline (text format 0.0.4).
std::string label_value(std::string_view text) {
    std::string out;
    for (const char c : text) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

std::string number(double value) {
    char text[64];
    std::snprintf(text, sizeof text, "%.9g", value);
    return text;
}

// Seconds since the epoch to the millisecond (%g would round to 10 s).
std::string epoch_seconds(std::int64_t realtime_ns) {
    char text[64];
    std::snprintf(text, sizeof text, "%.3f", double(realtime_ns / 1'000'000) / 1e3);
    return text;
}

class Exposition {
public:
    explicit Exposition(std::string queue) : queue_(label_value(queue)) {}

    void family(const char* name, const char* type, const char* help) {
        out_ += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    }
    void sample(const char* name, const std::string& labels, double value) {
        out_ += std::string(name) + "{queue=\"" + queue_ + "\"" + (labels.empty() ? "" : "," + labels) + "} " +
                number(value) + "\n";
    }
    std::string take() { return std::move(out_); }

private:
    std::string queue_;
    std::string out_;
};

// A quantile's bucket bound in seconds for JSON: null when nothing was
// counted, the string "+Inf" when it lies above the last bound.
std::string quantile_json(const LatencyHistogram& histogram, double q) {
    if (histogram.count() == 0) return "null";
    const std::int64_t bound = histogram.quantile_bound_ns(q);
    if (bound == INT64_MAX) return "\"+Inf\"";
    return number(double(bound) / 1e9);
}

std::string entrypoint_label(const EntrypointStats& entry) {
    return "entrypoint=\"" + label_value(entry.name) + "\"";
}

} // namespace

std::string prometheus_text(const Queue& queue, const MirrorStatus& mirror) {
    const QueueInfo info = queue.info();
    const std::vector<EntrypointStats> stats = queue.stats();
    Exposition out(queue.name());

    out.family("currant_jobs", "gauge", "Jobs in the segment now, by state (delayed: queued for later; waiting: for dependencies; dead: kept "
               "failed jobs).");
    for (const EntrypointStats& e : stats) {
        out.sample("currant_jobs", entrypoint_label(e) + ",state=\"queued\"", double(e.queued));
        out.sample("currant_jobs", entrypoint_label(e) + ",state=\"delayed\"", double(e.delayed));
        out.sample("currant_jobs", entrypoint_label(e) + ",state=\"picked\"", double(e.picked));
        out.sample("currant_jobs", entrypoint_label(e) + ",state=\"waiting\"", double(e.waiting));
        out.sample("currant_jobs", entrypoint_label(e) + ",state=\"dead\"", double(e.dead));
    }
    struct Total {
        const char* name;
        const char* help;
        std::uint64_t EntrypointStats::*field;
    };
    static constexpr Total totals[] = {
        {"currant_jobs_enqueued_total", "Jobs enqueued since the queue was created.", &EntrypointStats::enqueued},
        {"currant_jobs_picked_total", "Deliveries to consumers (a retried job counts again).", &EntrypointStats::picks},
        {"currant_jobs_successful_total", "Jobs that ended successful.", &EntrypointStats::successful},
        {"currant_jobs_failed_total", "Jobs that ended exception (failed past their attempts: dead jobs).",
         &EntrypointStats::failed},
        {"currant_jobs_retried_total", "Requeues after a failure, an expired lease or a consumer's death.",
         &EntrypointStats::retried},
        {"currant_jobs_canceled_total", "Jobs canceled.", &EntrypointStats::canceled},
    };
    for (const Total& total : totals) {
        out.family(total.name, "counter", total.help);
        for (const EntrypointStats& e : stats) out.sample(total.name, entrypoint_label(e), double(e.*total.field));
    }
    // Latency histograms (cumulative buckets, as the text format wants).
    struct Histogram {
        const char* name;
        const char* help;
        LatencyHistogram EntrypointStats::*field;
    };
    static constexpr Histogram histograms[] = {
        {"currant_job_wait_seconds", "Time from enqueue (or execute_after, if later) to the pick, per delivery.",
         &EntrypointStats::wait},
        {"currant_job_run_seconds", "Time from the pick to the holder's ack, fail or retry.", &EntrypointStats::run},
    };
    for (const Histogram& histogram : histograms) {
        out.family(histogram.name, "histogram", histogram.help);
        const std::string bucket = std::string(histogram.name) + "_bucket";
        for (const EntrypointStats& e : stats) {
            const LatencyHistogram& h = e.*histogram.field;
            std::uint64_t cumulative = 0;
            for (std::size_t b = 0; b < latency_bucket_count; ++b) {
                cumulative += h.counts[b];
                const std::string le = b + 1 < latency_bucket_count ? number(double(latency_bucket_bounds_ns[b]) / 1e9) : "+Inf";
                out.sample(bucket.c_str(), entrypoint_label(e) + ",le=\"" + le + "\"", double(cumulative));
            }
            out.sample((std::string(histogram.name) + "_sum").c_str(), entrypoint_label(e), double(h.sum_ns) / 1e9);
            // The +Inf bucket's value: one read gives a consistent count.
            out.sample((std::string(histogram.name) + "_count").c_str(), entrypoint_label(e), double(cumulative));
        }
    }

    out.family("currant_mirror_lag_seconds", "gauge", "Age of the oldest transition not yet in PostgreSQL (0: none).");
    for (const EntrypointStats& e : stats)
        out.sample("currant_mirror_lag_seconds", entrypoint_label(e), double(e.mirror_lag_ns) / 1e9);
    out.family("currant_mirror_pending_transitions", "gauge", "Transitions logged and not yet in PostgreSQL.");
    for (const EntrypointStats& e : stats)
        out.sample("currant_mirror_pending_transitions", entrypoint_label(e), double(e.log_pending));
    out.family("currant_mirror_dirty_jobs", "gauge", "Jobs whose transitions found the log full (mirrored by a scan).");
    for (const EntrypointStats& e : stats) out.sample("currant_mirror_dirty_jobs", entrypoint_label(e), double(e.dirty_slots));

    out.family("currant_mirror_transitions_total", "counter", "Transitions this currantd mirrored.");
    out.sample("currant_mirror_transitions_total", "", double(mirror.transitions.load(std::memory_order_relaxed)));
    out.family("currant_mirror_batches_total", "counter", "Transactions this currantd committed.");
    out.sample("currant_mirror_batches_total", "", double(mirror.batches.load(std::memory_order_relaxed)));
    out.family("currant_mirror_statements_total", "counter", "SQL statements the mirror sent (COPY included).");
    out.sample("currant_mirror_statements_total", "", double(mirror.statements.load(std::memory_order_relaxed)));
    out.family("currant_mirror_reconnects_total", "counter", "Times the mirror lost PostgreSQL and reconnected.");
    out.sample("currant_mirror_reconnects_total", "", double(mirror.reconnects.load(std::memory_order_relaxed)));
    out.family("currant_mirror_connected", "gauge", "1 while the mirror's last statement succeeded.");
    out.sample("currant_mirror_connected", "", mirror.connected.load(std::memory_order_relaxed) ? 1 : 0);

    out.family("currant_arena_slots", "gauge", "Slots in the job arena.");
    out.sample("currant_arena_slots", "", double(info.slots));
    out.family("currant_arena_free_slots", "gauge", "Slots free now.");
    out.sample("currant_arena_free_slots", "", double(info.free_slots));
    out.family("currant_participants", "gauge", "Queue objects attached now, across processes.");
    out.sample("currant_participants", "", double(info.participants));
    return out.take();
}

std::string stats_json(const Queue& queue, const MirrorStatus& mirror) {
    const QueueInfo info = queue.info();
    const std::vector<EntrypointStats> stats = queue.stats();
    std::string out = "{\"queue\": " + json_string(queue.name()) +
                      ", \"time\": " + epoch_seconds(shm::realtime_ns()) +
                      ", \"slots\": " + std::to_string(info.slots) +
                      ", \"free_slots\": " + std::to_string(info.free_slots) +
                      ", \"participants\": " + std::to_string(info.participants) +
                      ", \"mirror\": {\"connected\": " + (mirror.connected.load() ? "true" : "false") +
                      ", \"transitions\": " + std::to_string(mirror.transitions.load()) +
                      ", \"batches\": " + std::to_string(mirror.batches.load()) + "}, \"entrypoints\": [";
    for (std::size_t i = 0; i < stats.size(); ++i) {
        const EntrypointStats& e = stats[i];
        out += (i ? ", " : "");
        out += "{\"name\": " + json_string(e.name) + ", \"durability\": " + json_string(durability_name(e.durability)) +
               ", \"queued\": " + std::to_string(e.queued) + ", \"delayed\": " + std::to_string(e.delayed) +
               ", \"picked\": " + std::to_string(e.picked) + ", \"waiting\": " + std::to_string(e.waiting) +
               ", \"dead\": " + std::to_string(e.dead) + ", \"enqueued\": " + std::to_string(e.enqueued) +
               ", \"picks\": " + std::to_string(e.picks) + ", \"successful\": " + std::to_string(e.successful) +
               ", \"failed\": " + std::to_string(e.failed) + ", \"retried\": " + std::to_string(e.retried) +
               ", \"canceled\": " + std::to_string(e.canceled) + ", \"log_pending\": " + std::to_string(e.log_pending) +
               ", \"mirror_lag_seconds\": " + number(double(e.mirror_lag_ns) / 1e9) +
               ", \"dirty_slots\": " + std::to_string(e.dirty_slots) +
               ", \"wait_p50_seconds\": " + quantile_json(e.wait, 0.5) +
               ", \"wait_p99_seconds\": " + quantile_json(e.wait, 0.99) +
               ", \"run_p50_seconds\": " + quantile_json(e.run, 0.5) +
               ", \"run_p99_seconds\": " + quantile_json(e.run, 0.99) + "}";
    }
    return out + "]}\n";
}

void StatsHistory::sample(const Queue& queue) {
    Sample sample;
    sample.time_ns = shm::realtime_ns();
    for (const EntrypointStats& e : queue.stats())
        sample.entrypoints.push_back(
            {e.name, e.queued + e.delayed + e.picked, e.enqueued, e.successful + e.failed + e.canceled, e.failed});
    samples_.push_back(std::move(sample));
    while (samples_.size() > keep_) samples_.pop_front();
}

std::string StatsHistory::json() const {
    std::string out = "{\"samples\": [";
    for (std::size_t i = 0; i < samples_.size(); ++i) {
        const Sample& sample = samples_[i];
        out += (i ? ", " : "");
        out += "{\"time\": " + epoch_seconds(sample.time_ns) + ", \"entrypoints\": [";
        for (std::size_t k = 0; k < sample.entrypoints.size(); ++k) {
            const Point& p = sample.entrypoints[k];
            out += (k ? ", " : "");
            out += "{\"name\": " + json_string(p.name) + ", \"depth\": " + std::to_string(p.depth) +
                   ", \"enqueued\": " + std::to_string(p.enqueued) + ", \"completed\": " + std::to_string(p.completed) +
                   ", \"failed\": " + std::to_string(p.failed) + "}";
        }
        out += "]}";
    }
    return out + "]}\n";
}

} // namespace currant::daemon
