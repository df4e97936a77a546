// `currant schedules list|add|rm` (docs/schedules.md, docs/cli.md).
#include <iostream>
#include <memory>

#include "cli.hpp"

namespace currant::cli {

namespace {

struct ScheduleArgs {
    std::string name;           // queue
    std::string schedule;       // schedule name
    std::string expression;
    std::string entrypoint;
    std::string payload;
    std::int32_t priority = 0;
    std::string missed = "skip";
    std::uint32_t catch_up_max = 100;
    bool json = false;
};

int run_list(const ScheduleArgs& args) {
    Queue queue = Queue::open(args.name);
    const std::vector<ScheduleInfo> list = queue.schedules();
    if (args.json) {
        std::cout << "[";
        for (std::size_t i = 0; i < list.size(); ++i) {
            const ScheduleInfo& s = list[i];
            std::cout << (i ? ",\n " : "") << "{\"name\": " << json_string(s.name)
                      << ", \"expression\": " << json_string(s.expression)
                      << ", \"entrypoint\": " << json_string(s.entrypoint_name) << ", \"priority\": " << s.priority
                      << ", \"missed\": " << json_string(missed_ticks_name(s.missed))
                      << ", \"catch_up_max\": " << s.catch_up_max << ", \"payload_bytes\": " << s.payload.size()
                      << ", \"next_tick_ns\": " << s.next_tick_ns << ", \"last_tick_ns\": " << s.last_tick_ns
                      << ", \"fired\": " << s.fired << ", \"last_job_id\": " << s.last_job_id << "}";
        }
        std::cout << "]\n";
        return 0;
    }
    if (list.empty()) {
        std::cout << "no schedules\n";
        return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const ScheduleInfo& s : list) {
        const std::string missed = s.missed == MissedTicks::catch_up
                                       ? "catch_up(" + std::to_string(s.catch_up_max) + ")"
                                       : std::string(missed_ticks_name(s.missed));
        rows.push_back({s.name, s.expression, s.entrypoint_name, missed,
                        s.next_tick_ns == INT64_MAX ? "never" : format_time_ns(s.next_tick_ns),
                        s.last_tick_ns ? format_time_ns(s.last_tick_ns) : "-", std::to_string(s.priority),
                        std::to_string(s.fired)});
    }
    print_table(std::cout, {"NAME", "EXPRESSION", "ENTRYPOINT", "MISSED", "NEXT TICK (UTC)", "LAST TICK (UTC)",
                            "PRIORITY", "FIRED"},
                rows, 6);
    return 0;
}

int run_add(const ScheduleArgs& args) {
    Queue queue = Queue::open(args.name);
    ScheduleOptions options;
    options.name = args.schedule;
    options.expression = args.expression;
    options.entrypoint = queue.entrypoint(args.entrypoint);
    const auto* data = reinterpret_cast<const std::byte*>(args.payload.data());
    options.payload.assign(data, data + args.payload.size());
    options.priority = args.priority;
    try {
        options.missed = parse_missed_ticks(args.missed);
    } catch (const Error& e) {
        throw CLI::ValidationError("--missed", e.what());
    }
    options.catch_up_max = args.catch_up_max;
    queue.add_schedule(options);
    for (const ScheduleInfo& s : queue.schedules())
        if (s.name == args.schedule) std::cout << "next tick " << format_time_ns(s.next_tick_ns) << "\n";
    return 0;
}

int run_rm(const ScheduleArgs& args) {
    Queue queue = Queue::open(args.name);
    queue.remove_schedule(args.schedule);
    return 0;
}

} // namespace

void add_schedules(CLI::App& app, Commands& commands) {
    auto* group = app.add_subcommand("schedules", "List, add and remove cron schedules (UTC; docs/schedules.md)");
    group->require_subcommand(1);
    {
        auto args = std::make_shared<ScheduleArgs>();
        auto* sub = group->add_subcommand("list", "Show the queue's schedules, their next and last tick");
        sub->add_option("NAME", args->name, "Queue name")->required();
        sub->add_flag("--json", args->json, "One JSON array");
        commands.push_back({sub, [args] { return run_list(*args); }});
    }
    {
        auto args = std::make_shared<ScheduleArgs>();
        auto* sub = group->add_subcommand(
            "add", "Add a schedule that enqueues a job on each tick (fired by any process waiting in dequeue)");
        sub->add_option("NAME", args->name, "Queue name")->required();
        sub->add_option("SCHEDULE", args->schedule, "Schedule name")->required();
        sub->add_option("EXPRESSION", args->expression,
                        "Cron expression: 5 fields, 6 with seconds first, or @hourly/@daily/...; quote it")
            ->required();
        sub->add_option("ENTRYPOINT", args->entrypoint, "Entrypoint the jobs go to")->required();
        sub->add_option("PAYLOAD", args->payload, "Payload text of each job (default: empty)");
        add_number(*sub, "--priority", args->priority, "Priority of each job");
        sub->add_option("--missed", args->missed, "Ticks missed while nothing ran: skip (default) or catch_up")
            ->type_name("POLICY");
        add_number(*sub, "--catch-up-max", args->catch_up_max, "catch_up: fire at most this many missed ticks");
        commands.push_back({sub, [args] { return run_add(*args); }});
    }
    {
        auto args = std::make_shared<ScheduleArgs>();
        auto* sub = group->add_subcommand("rm", "Remove a schedule");
        sub->add_option("NAME", args->name, "Queue name")->required();
        sub->add_option("SCHEDULE", args->schedule, "Schedule name")->required();
        commands.push_back({sub, [args] { return run_rm(*args); }});
    }
    // Makes `schedules` a known first word for main(); never run (a subcommand is required).
    commands.push_back({group, [] { return 2; }});
}

} // namespace currant::cli
