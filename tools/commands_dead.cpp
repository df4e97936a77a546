// Subcommands for dead jobs (docs/dead-jobs.md): failed, requeue, purge.
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"

namespace currant::cli {

namespace {

// The last non-empty line of an error text (a traceback ends with the
// exception), cut for a table cell; the whole text is in --json.
std::string summary_of(const std::string& error, std::size_t width = 100) {
    std::size_t end = error.find_last_not_of("\r\n \t");
    if (end == std::string::npos) return "-";
    std::size_t begin = error.rfind('\n', end);
    begin = begin == std::string::npos ? 0 : begin + 1;
    std::string line = error.substr(begin, end + 1 - begin);
    for (char& ch : line)
        if (static_cast<unsigned char>(ch) < 0x20) ch = ' ';
    if (line.size() > width) {
        std::size_t cut = width - 3;
        while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xc0) == 0x80) --cut; // not inside UTF-8
        line = line.substr(0, cut) + "...";
    }
    return line;
}

// ---- failed ----

struct FailedArgs {
    std::string name;
    std::optional<std::string> entrypoint;
    bool json = false;
};

int run_failed(const FailedArgs& args) {
    Queue queue = Queue::open(args.name);
    std::optional<EntrypointId> only;
    if (args.entrypoint) only = queue.entrypoint(*args.entrypoint); // not_found names it
    const std::vector<DeadJob> dead = queue.dead_jobs(only);
    if (args.json) {
        std::cout << "[";
        for (std::size_t i = 0; i < dead.size(); ++i) {
            const DeadJob& d = dead[i];
            std::cout << (i ? ",\n " : "") << "{\"id\": " << d.id << ", \"entrypoint\": " << json_string(d.entrypoint_name)
                      << ", \"priority\": " << d.priority << ", \"attempts\": " << d.attempts
                      << ", \"max_attempts\": " << d.max_attempts << ", \"enqueued_at_ns\": " << d.enqueued_at_ns
                      << ", \"died_at_ns\": " << d.died_at_ns << ", \"died_at\": " << json_string(format_time_ns(d.died_at_ns))
                      << ", \"error\": " << json_string(d.error)
                      << ", \"error_truncated\": " << (d.error_truncated ? "true" : "false")
                      << ", \"payload_bytes\": " << d.payload.size() << "}";
        }
        std::cout << "]\n";
        return 0;
    }
    if (dead.empty()) {
        std::cout << "no dead jobs" << (args.entrypoint ? " in entrypoint '" + *args.entrypoint + "'" : std::string())
                  << " of queue '" << args.name << "'\n";
        return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const DeadJob& d : dead) {
        rows.push_back({std::to_string(d.id), d.entrypoint_name, format_time_ns(d.died_at_ns),
                        std::to_string(d.attempts) + "/" + std::to_string(d.max_attempts),
                        summary_of(d.error) + (d.error_truncated ? " [cut]" : "")});
    }
    print_table(std::cout, {"ID", "ENTRYPOINT", "DIED (UTC)", "ATTEMPTS", "LAST ERROR"}, rows, 5); // all left-aligned
    return 0;
}

// ---- requeue and purge ----

struct DeadActionArgs {
    std::string name;
    std::vector<std::string> ids;
    bool all = false;
    std::optional<std::string> entrypoint;
};

// Why id was not requeued or purged, in one line.
std::string why_not(const Queue& queue, JobId id, const std::string& name) {
    const JobState state = queue.status(std::span(&id, 1)).at(0);
    if (state.status == JobStatus::unknown)
        return "no such job in queue '" + name + "' (never existed, purged or its slot reused)";
    if (state.status == JobStatus::exception)
        return "it is exception but no longer kept (purged, past max_dead, or max_dead is 0)";
    return std::string("it is ") + std::string(job_status_name(state.status)) + ", not a dead job";
}

int run_dead_action(const DeadActionArgs& args, bool requeue) {
    const char* verb = requeue ? "requeued" : "purged";
    if (args.all == !args.ids.empty())
        throw CLI::ValidationError("ID", "give job ids or --all (not both)");
    if (args.entrypoint && !args.all) throw CLI::ValidationError("--entrypoint", "only with --all");
    const std::vector<JobId> ids = parse_job_ids(args.ids);
    Queue queue = Queue::open(args.name);
    if (args.all) {
        std::vector<EntrypointId> eps;
        if (args.entrypoint) eps.push_back(queue.entrypoint(*args.entrypoint));
        else
            for (EntrypointId ep = 0; ep < queue.entrypoint_names().size(); ++ep) eps.push_back(ep);
        std::size_t done = 0;
        for (EntrypointId ep : eps) done += requeue ? queue.requeue_dead(ep) : queue.purge_dead(ep);
        std::cout << done << " dead job(s) " << verb << '\n';
        if (requeue) {
            // Those whose dedupe key is held stay dead: say so, exit 1.
            std::size_t left = 0;
            for (EntrypointId ep : eps) left += queue.dead_jobs(ep).size();
            if (left) {
                std::cout.flush();
                std::cerr << "currant: " << left << " dead job(s) not requeued: their dedupe key is held by a "
                          << "queued or picked job (see `currant failed " << args.name << "`)\n";
                return 1;
            }
        }
        return 0;
    }
    int exit_status = 0;
    for (JobId id : ids) {
        try {
            if (requeue ? queue.requeue(id) : queue.purge(id)) {
                std::cout << id << ' ' << verb << '\n';
                continue;
            }
            std::cout.flush();
            std::cerr << "currant: job " << id << " not " << verb << ": " << why_not(queue, id, args.name) << '\n';
        } catch (const Error& error) {
            if (error.code() != Errc::already_exists) throw;
            std::cout.flush();
            std::cerr << "currant: " << error.what() << '\n';
        }
        exit_status = 1;
    }
    return exit_status;
}

void add_dead_action(CLI::App& app, Commands& commands, bool requeue) {
    auto args = std::make_shared<DeadActionArgs>();
    auto* sub = requeue ? app.add_subcommand("requeue", "Put dead jobs back to queued with fresh attempts; exit 1 "
                                                        "if any was not requeued")
                        : app.add_subcommand("purge", "Drop dead jobs; exit 1 if any was not a kept dead job");
    sub->add_option("NAME", args->name, "Queue name")->required();
    sub->add_option("ID", args->ids, "Job ids (decimal)");
    sub->add_flag("--all", args->all, "Every dead job (of --entrypoint, or of every entrypoint)");
    sub->add_option("--entrypoint", args->entrypoint, "With --all: only this entrypoint's")->type_name("EP");
    commands.push_back({sub, [args, requeue] { return run_dead_action(*args, requeue); }});
}

} // namespace

void add_failed(CLI::App& app, Commands& commands) {
    auto args = std::make_shared<FailedArgs>();
    auto* sub = app.add_subcommand("failed", "List dead jobs (ended `exception`) with their last error");
    sub->add_option("NAME", args->name, "Queue name")->required();
    sub->add_option("--entrypoint", args->entrypoint, "Only this entrypoint's")->type_name("EP");
    sub->add_flag("--json", args->json, "One JSON array, with each whole error text");
    commands.push_back({sub, [args] { return run_failed(*args); }});
}

void add_requeue(CLI::App& app, Commands& commands) { add_dead_action(app, commands, true); }
void add_purge(CLI::App& app, Commands& commands) { add_dead_action(app, commands, false); }

} // namespace currant::cli
