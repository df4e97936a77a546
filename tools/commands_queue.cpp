// Subcommands that manage a queue as a whole: init, info, declare, doctor, rm.
#include <algorithm>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli.hpp"

namespace currant::cli {

namespace {

std::string mebibytes(std::uint64_t bytes) {
    return fixed(static_cast<double>(bytes) / (1024.0 * 1024.0), 1) + " MiB";
}

// ---- init ----

struct EntrypointSpec {
    std::string name;
    std::optional<Durability> durability; // unset: the queue's default
};

// NAME or NAME:DURABILITY (split at the last colon).
EntrypointSpec parse_entrypoint_spec(const std::string& text) {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) {
        return {text, std::nullopt};
    }
    return {text.substr(0, colon), parse_durability_option(text.substr(colon + 1), "--entrypoint")};
}

struct InitArgs {
    QueueOptions options;
    bool mode_given = false;
    std::vector<std::string> entrypoints;
};

int run_init(InitArgs& args) {
    std::vector<EntrypointSpec> specs;
    for (const auto& text : args.entrypoints) {
        specs.push_back(parse_entrypoint_spec(text));
    }
    if (args.options.group && !args.mode_given) {
        args.options.mode = 0660; // a group is given to be let in
    }

    std::vector<std::pair<EntrypointId, EntrypointSpec>> declared;
    QueueInfo info;
    {
        Queue queue = Queue::create(args.options);
        try {
            for (const auto& spec : specs) {
                EntrypointOptions options;
                options.durability = spec.durability;
                declared.emplace_back(queue.declare_entrypoint(spec.name, options), spec);
            }
            info = queue.info();
        } catch (...) {
            // All or nothing: do not leave a half-configured queue behind.
            queue.close();
            Queue::remove(args.options.name);
            throw;
        }
    }
    std::cout << "created queue '" << info.name << "': " << info.slots << " slots of " << info.payload_bytes
              << " payload bytes, segment " << mebibytes(info.segment_bytes) << ", mode "
              << format_mode(info.mode) << ", group " << group_label(info.owner_gid) << '\n';
    for (const auto& [id, spec] : declared) {
        std::cout << "declared entrypoint '" << spec.name << "' (id " << id << ", durability "
                  << durability_name(spec.durability.value_or(Durability::memory)) << ")\n";
    }
    return 0;
}

} // namespace

void add_init(CLI::App& app, Commands& commands) {
    auto args = std::make_shared<InitArgs>();
    auto* sub = app.add_subcommand("init", "Create a queue (a new shared-memory segment)");
    sub->add_option("NAME", args->options.name, "Queue name")->required();
    add_number(*sub, "--slots", args->options.slots, "Jobs the queue holds at once");
    add_number(*sub, "--payload-bytes", args->options.payload_bytes, "Payload capacity of one job, in bytes");
    add_number(*sub, "--entrypoints", args->options.max_entrypoints, "Most entrypoints that can be declared");
    add_number(*sub, "--participants", args->options.max_participants,
               "Most Queue objects (producers, consumers, tools) attached at once");
    add_number(*sub, "--log-capacity", args->options.log_capacity,
               "Transition records per entrypoint (async and sync durability)");
    add_number(*sub, "--host-id", args->options.host_id, "High 16 bits of every job id");
    add_number(*sub, "--result-bytes", args->options.result_bytes,
               "Largest job result, in bytes (0 to 1048576; docs/results.md)");
    sub->add_option_function<std::string>(
           "--mode",
           [args](const std::string& text) {
               args->options.mode = parse_mode(text, "--mode");
               args->mode_given = true;
           },
           "Permission bits of the segment (0660 when --group is given)")
        ->type_name("OCTAL")
        ->default_str("0600");
    sub->add_option_function<std::string>(
           "--group", [args](const std::string& text) { args->options.group = parse_group(text, "--group"); },
           "Owning group of the segment, by name or gid")
        ->type_name("GROUP");
    sub->add_option("--entrypoint", args->entrypoints,
                    "Declare an entrypoint; DURABILITY is memory (default), async or sync; repeatable")
        ->type_name("NAME[:DURABILITY]")
        ->allow_extra_args(false);
    commands.push_back({sub, [args] { return run_init(*args); }});
}

namespace {

// ---- info ----

struct InfoArgs {
    std::string name;
    bool json = false;
};

int run_info(const InfoArgs& args) {
    Queue queue = Queue::open(args.name);
    QueueInfo info = queue.info();
    std::vector<std::string> entrypoints = queue.entrypoint_names();

    if (args.json) {
        std::string names = "[";
        for (std::size_t i = 0; i < entrypoints.size(); ++i) {
            names += (i ? ", " : "") + json_string(entrypoints[i]);
        }
        names += "]";
        std::vector<std::pair<std::string, std::string>> fields = {
            {"name", json_string(info.name)},
            {"slots", std::to_string(info.slots)},
            {"free_slots", std::to_string(info.free_slots)},
            {"payload_bytes", std::to_string(info.payload_bytes)},
            {"slot_bytes", std::to_string(info.slot_bytes)},
            {"max_entrypoints", std::to_string(info.max_entrypoints)},
            {"max_participants", std::to_string(info.max_participants)},
            {"participants", std::to_string(info.participants)},
            {"log_capacity", std::to_string(info.log_capacity)},
            {"host_id", std::to_string(info.host_id)},
            {"segment_bytes", std::to_string(info.segment_bytes)},
            {"incarnation", std::to_string(info.incarnation)},
            {"created_at_ns", std::to_string(info.created_at_ns)},
            {"created_at", json_string(format_time_ns(info.created_at_ns))},
            {"mode", json_string(format_mode(info.mode))},
            {"owner_uid", std::to_string(info.owner_uid)},
            {"owner_gid", std::to_string(info.owner_gid)},
            {"entrypoints", names},
        };
        std::cout << "{\n";
        for (std::size_t i = 0; i < fields.size(); ++i) {
            std::cout << "  " << json_string(fields[i].first) << ": " << fields[i].second
                      << (i + 1 < fields.size() ? ",\n" : "\n");
        }
        std::cout << "}\n";
        return 0;
    }

    std::string names;
    for (std::size_t i = 0; i < entrypoints.size(); ++i) {
        names += (i ? ", " : "") + entrypoints[i];
    }
    print_key_values(std::cout, {
        {"name", info.name},
        {"slots", std::to_string(info.slots)},
        {"free slots", std::to_string(info.free_slots)},
        {"payload bytes", std::to_string(info.payload_bytes)},
        {"slot bytes", std::to_string(info.slot_bytes)},
        {"max entrypoints", std::to_string(info.max_entrypoints)},
        {"max participants", std::to_string(info.max_participants)},
        {"participants", std::to_string(info.participants)},
        {"log capacity", std::to_string(info.log_capacity)},
        {"host id", std::to_string(info.host_id)},
        {"segment bytes", std::to_string(info.segment_bytes) + " (" + mebibytes(info.segment_bytes) + ")"},
        {"incarnation", std::to_string(info.incarnation)},
        {"created at", format_time_ns(info.created_at_ns)},
        {"mode", format_mode(info.mode)},
        {"owner", user_label(info.owner_uid)},
        {"group", group_label(info.owner_gid)},
        {"entrypoints", entrypoints.empty() ? "(none)" : names},
    });
    return 0;
}

} // namespace

void add_info(CLI::App& app, Commands& commands) {
    auto args = std::make_shared<InfoArgs>();
    auto* sub = app.add_subcommand("info", "Show a queue's sizes, owner and entrypoints");
    sub->add_option("NAME", args->name, "Queue name")->required();
    sub->add_flag("--json", args->json, "Print a JSON object");
    commands.push_back({sub, [args] { return run_info(*args); }});
}

namespace {

// ---- declare ----

struct DeclareArgs {
    std::string name;
    std::string entrypoint;
    std::optional<Durability> durability;
    std::chrono::nanoseconds lease = std::chrono::milliseconds(EntrypointOptions{}.lease);
    std::uint32_t max_attempts = EntrypointOptions{}.max_attempts;
    std::optional<std::uint32_t> max_dead;
    std::optional<std::chrono::nanoseconds> result_retention;
};

int run_declare(const DeclareArgs& args) {
    if (args.lease <= std::chrono::nanoseconds::zero()) {
        throw CLI::ValidationError("--lease", "must be more than 0 seconds");
    }
    if (args.max_attempts == 0) {
        throw CLI::ValidationError("--max-attempts", "must be at least 1");
    }
    Queue queue = Queue::open(args.name);

    EntrypointOptions options;
    options.lease = std::max(std::chrono::milliseconds(1),
                             std::chrono::ceil<std::chrono::milliseconds>(args.lease));
    options.max_attempts = args.max_attempts;
    // Unset: a new entrypoint gets the queue's default, an existing one keeps its own.
    options.durability = args.durability;
    options.max_dead = args.max_dead; // unset: 1000 for a new one, an existing one keeps its own
    // Unset: none for a new one, an existing one keeps its own (docs/results.md).
    if (args.result_retention)
        options.result_retention = std::chrono::ceil<std::chrono::milliseconds>(*args.result_retention);
    EntrypointId id = queue.declare_entrypoint(args.entrypoint, options);
    std::cout << "declared entrypoint '" << args.entrypoint << "' of queue '" << args.name << "': id " << id
              << ", durability " << durability_name(*queue.entrypoint_options(id).durability) << ", lease "
              << fixed(std::chrono::duration<double>(options.lease).count(), 3) << " s, max attempts "
              << options.max_attempts << ", max dead " << queue.entrypoint_options(id).max_dead.value_or(0)
              << ", result retention "
              << fixed(std::chrono::duration<double>(
                           queue.entrypoint_options(id).result_retention.value_or(std::chrono::milliseconds(0)))
                           .count(),
                       3)
              << " s\n";
    return 0;
}

} // namespace

void add_declare(CLI::App& app, Commands& commands) {
    auto args = std::make_shared<DeclareArgs>();
    auto* sub = app.add_subcommand("declare", "Declare an entrypoint, or change an existing one's options");
    sub->add_option("NAME", args->name, "Queue name")->required();
    sub->add_option("ENTRYPOINT", args->entrypoint, "Entrypoint name (1 to 63 bytes)")->required();
    sub->add_option_function<std::string>(
           "--durability",
           [args](const std::string& text) { args->durability = parse_durability_option(text, "--durability"); },
           "memory, async or sync (default: memory, or the existing entrypoint's)")
        ->type_name("MODE");
    add_seconds(*sub, "--lease", args->lease, "How long a pick is valid without a heartbeat");
    add_number(*sub, "--max-attempts", args->max_attempts, "Deliveries before a job ends `exception`");
    sub->add_option_function<std::string>(
           "--max-dead",
           [args](const std::string& text) {
               args->max_dead = std::uint32_t(parse_unsigned(text, "--max-dead", UINT32_MAX));
           },
           "Dead jobs kept with their last error, oldest recycled first; 0 keeps none (default 1000)")
        ->type_name("N");
    sub->add_option_function<std::string>(
           "--result-retention",
           [args](const std::string& text) { args->result_retention = parse_seconds(text, "--result-retention"); },
           "How long finished jobs are kept with their results for `currant wait` and `status` "
           "(default 0: not kept, or the existing entrypoint's)")
        ->type_name("SECONDS");
    commands.push_back({sub, [args] { return run_declare(*args); }});
}

namespace {

// ---- doctor ----

struct NameArgs {
    std::string name;
};

int run_doctor(const NameArgs& args) {
    Queue queue = Queue::open(args.name);
    DoctorReport report = queue.doctor();
    if (report.dead_participants_reaped > 0 || report.expired_leases_requeued > 0) {
        std::cout << "reaped " << report.dead_participants_reaped << " dead participant(s), requeued "
                  << report.expired_leases_requeued << " job(s) with expired leases\n";
    }
    if (report.sound) {
        std::cout << "sound\n";
        return 0;
    }
    for (const auto& problem : report.problems) {
        std::cout << "problem: " << problem << '\n';
    }
    if (report.problems.empty()) {
        std::cout << "problem: the queue is not sound (no details reported)\n";
    }
    return 1;
}

} // namespace

void add_doctor(CLI::App& app, Commands& commands) {
    auto args = std::make_shared<NameArgs>();
    auto* sub = app.add_subcommand(
        "doctor", "Reap dead processes and expired leases, check every structure; exit 1 if not sound");
    sub->add_option("NAME", args->name, "Queue name")->required();
    commands.push_back({sub, [args] { return run_doctor(*args); }});
}

namespace {

// ---- rm ----

int run_rm(const NameArgs& args) {
    if (!Queue::remove(args.name)) {
        throw Error(Errc::not_found, "no queue named '" + args.name + "'");
    }
    std::cout << "removed queue '" << args.name << "'\n";
    return 0;
}

} // namespace

void add_rm(CLI::App& app, Commands& commands) {
    auto args = std::make_shared<NameArgs>();
    auto* sub = app.add_subcommand("rm", "Remove a queue; processes still attached get `segment_retired`");
    sub->add_option("NAME", args->name, "Queue name")->required();
    commands.push_back({sub, [args] { return run_rm(*args); }});
}

} // namespace currant::cli
