// `currant pause`, `currant resume` and `currant limit` (docs/cli.md,
// docs/limits.md): an entrypoint's pause flag and its concurrency and rate
// limits, which live in the queue's segment.
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "cli.hpp"

namespace currant::cli {

namespace {

struct EntrypointArgs {
    std::string name;
    std::string entrypoint;
};

void add_queue_and_entrypoint(CLI::App& sub, EntrypointArgs& args) {
    sub.add_option("NAME", args.name, "Queue name")->required();
    sub.add_option("ENTRYPOINT", args.entrypoint, "Entrypoint name")->required();
}

std::string describe_limits(const EntrypointLimits& limits) {
    std::string text = limits.paused ? "paused" : "running";
    text += ", concurrency ";
    text += limits.concurrency ? std::to_string(*limits.concurrency) + " (" + std::to_string(limits.in_flight) +
                                     " in flight)"
                               : std::string("unlimited");
    text += ", rate ";
    text += limits.rate ? fixed(*limits.rate, 3) + "/s burst " + std::to_string(limits.burst) : std::string("unlimited");
    return text;
}

int run_pause(const EntrypointArgs& args, bool pause) {
    Queue queue = Queue::open(args.name);
    const EntrypointId ep = queue.entrypoint(args.entrypoint); // not_found names it
    if (pause) queue.pause(ep);
    else queue.resume(ep);
    std::cout << (pause ? "paused" : "resumed") << " entrypoint '" << args.entrypoint << "' of queue '" << args.name
              << "'\n";
    return 0;
}

// A limit given on the command line: "none" removes it, anything else must be
// a number; its range (at least 1, ...) is the queue's to check, so that the
// error names the queue and entrypoint like the APIs' do.
struct LimitArgs : EntrypointArgs {
    std::optional<std::optional<std::int64_t>> concurrency; // outer: given; inner: none = remove
    std::optional<std::optional<double>> rate;
    std::optional<std::int64_t> burst;
    bool json = false;
};

std::optional<std::int64_t> parse_concurrency(const std::string& text) {
    if (text == "none") return std::nullopt;
    return parse_signed(text, "--concurrency", std::numeric_limits<std::int64_t>::min(),
                        std::numeric_limits<std::int64_t>::max());
}

std::optional<double> parse_rate(const std::string& text) {
    if (text == "none") return std::nullopt;
    std::size_t used = 0;
    double value = 0;
    try {
        value = std::stod(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != text.size())
        throw CLI::ValidationError("--rate", "'" + text + "' is not a number of starts per second or 'none'");
    return value;
}

int run_limit(const LimitArgs& args) {
    if (args.burst && !args.rate)
        throw CLI::ValidationError("--burst", "goes with --rate (the bucket of a rate limit)");
    Queue queue = Queue::open(args.name);
    const EntrypointId ep = queue.entrypoint(args.entrypoint);
    if (args.concurrency) queue.set_concurrency_limit(ep, *args.concurrency);
    if (args.rate) queue.set_rate_limit(ep, *args.rate, args.burst.value_or(1));
    const EntrypointLimits limits = queue.limits(ep);
    if (args.json) {
        std::cout << "{\"queue\": " << json_string(args.name) << ", \"entrypoint\": " << json_string(args.entrypoint)
                  << ", \"paused\": " << (limits.paused ? "true" : "false") << ", \"concurrency\": "
                  << (limits.concurrency ? std::to_string(*limits.concurrency) : std::string("null"))
                  << ", \"in_flight\": " << limits.in_flight << ", \"rate\": "
                  << (limits.rate ? fixed(*limits.rate, 6) : std::string("null")) << ", \"burst\": " << limits.burst
                  << "}\n";
        return 0;
    }
    std::cout << "entrypoint '" << args.entrypoint << "' of queue '" << args.name << "': " << describe_limits(limits)
              << '\n';
    return 0;
}

} // namespace

void add_pause(CLI::App& app, Commands& commands) {
    auto args = std::make_shared<EntrypointArgs>();
    auto* sub = app.add_subcommand("pause", "Pause an entrypoint: nothing is handed out, enqueues are still accepted");
    add_queue_and_entrypoint(*sub, *args);
    commands.push_back({sub, [args] { return run_pause(*args, true); }});
}

void add_resume(CLI::App& app, Commands& commands) {
    auto args = std::make_shared<EntrypointArgs>();
    auto* sub = app.add_subcommand("resume", "Resume a paused entrypoint and wake its consumers");
    add_queue_and_entrypoint(*sub, *args);
    commands.push_back({sub, [args] { return run_pause(*args, false); }});
}

void add_limit(CLI::App& app, Commands& commands) {
    auto args = std::make_shared<LimitArgs>();
    auto* sub = app.add_subcommand(
        "limit", "Show or set an entrypoint's concurrency and rate limits (without options: show them)");
    add_queue_and_entrypoint(*sub, *args);
    sub->add_option_function<std::string>(
           "--concurrency", [args](const std::string& text) { args->concurrency = parse_concurrency(text); },
           "At most N jobs picked at once across all processes; 'none' removes the limit")
        ->type_name("N|none");
    sub->add_option_function<std::string>(
           "--rate", [args](const std::string& text) { args->rate = parse_rate(text); },
           "At most R starts per second (token bucket); 'none' removes the limit")
        ->type_name("R|none");
    sub->add_option_function<std::string>(
           "--burst",
           [args](const std::string& text) {
               args->burst = parse_signed(text, "--burst", std::numeric_limits<std::int64_t>::min(),
                                          std::numeric_limits<std::int64_t>::max());
           },
           "Starts the rate limit's bucket holds (default 1)")
        ->type_name("N");
    sub->add_flag("--json", args->json, "Print the limits as one JSON object");
    commands.push_back({sub, [args] { return run_limit(*args); }});
}

} // namespace currant::cli
