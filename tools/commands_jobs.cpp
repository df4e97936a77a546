// Subcommands that act on jobs: enqueue, status, cancel.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli.hpp"

namespace currant::cli {

namespace {

// ---- enqueue ----

struct EnqueueArgs {
    std::string name;
    std::string entrypoint;
    std::optional<std::string> payload;
    std::optional<std::string> file;
    bool from_stdin = false;
    std::int32_t priority = 0;
    std::chrono::nanoseconds delay{0};
    std::uint32_t count = 1;
    std::optional<std::string> dedupe_key;
    std::string on_duplicate = "skip";
    std::vector<std::string> after; // --after ID (docs/job-dependencies.md)
};

std::string read_all(std::istream& in, const std::string& what) {
    std::string data{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (in.bad()) {
        throw std::runtime_error("cannot read " + what);
    }
    return data;
}

std::string read_payload(const EnqueueArgs& args) {
    if (args.file) {
        std::ifstream in(*args.file, std::ios::binary);
        if (!in) {
            throw std::runtime_error("cannot open '" + *args.file + "': " + std::strerror(errno));
        }
        return read_all(in, "'" + *args.file + "'");
    }
    if (args.from_stdin) {
        return read_all(std::cin, "standard input");
    }
    return args.payload.value_or(std::string());
}

int run_enqueue(const EnqueueArgs& args) {
    if (args.count == 0) {
        throw CLI::ValidationError("--count", "must be at least 1");
    }
    if (args.dedupe_key && args.count != 1) {
        throw CLI::ValidationError("--dedupe-key", "a dedupe key names one job; it cannot be used with --count " +
                                                       std::to_string(args.count));
    }
    const OnDuplicate on_duplicate = parse_on_duplicate(args.on_duplicate);
    const std::string payload = read_payload(args);

    Queue queue = Queue::open(args.name);
    const EntrypointId entrypoint = queue.entrypoint(args.entrypoint);

    EnqueueOptions options;
    options.priority = args.priority;
    if (args.delay > std::chrono::nanoseconds::zero()) {
        options.execute_after_ns = realtime_now_ns() + args.delay.count();
    }
    if (!args.after.empty()) options.depends_on = parse_job_ids(args.after);

    if (args.dedupe_key) {
        // docs/dedupe.md: skip prints the holder's id (and says so on
        // stderr); refuse fails with exit status 3.
        options.dedupe_key = args.dedupe_key;
        options.on_duplicate = on_duplicate;
        try {
            const JobId id = queue.enqueue(entrypoint, as_payload(payload), options);
            std::cout << id << '\n';
            if (queue.last_enqueue_skipped())
                std::cerr << "currant: skipped: dedupe key '" << *args.dedupe_key << "' is held by job " << id
                          << " (queued or picked); nothing was enqueued\n";
            return 0;
        } catch (const Error& error) {
            if (error.code() != Errc::already_exists) throw;
            std::cerr << "currant: " << error.what() << '\n';
            return 3;
        }
    }
    if (args.count == 1) {
        std::cout << queue.enqueue(entrypoint, as_payload(payload), options) << '\n';
        return 0;
    }
    // Several copies: in batches. enqueue_batch stops at the first failure and
    // throws only if it enqueued nothing, so a persistent failure surfaces on
    // the call after a short batch, once the ids enqueued so far are printed.
    constexpr std::size_t batch = 1024;
    const std::vector<std::span<const std::byte>> payloads(std::min<std::size_t>(args.count, batch),
                                                           as_payload(payload));
    std::vector<JobId> ids(payloads.size());
    std::size_t remaining = args.count;
    while (remaining > 0) {
        const std::size_t want = std::min(remaining, payloads.size());
        const std::size_t got = queue.enqueue_batch(entrypoint, std::span(payloads).first(want),
                                                    std::span(ids).first(want), options);
        for (std::size_t i = 0; i < got; ++i) {
            std::cout << ids[i] << '\n';
        }
        std::cout.flush();
        remaining -= got;
    }
    return 0;
}

} // namespace

void add_enqueue(CLI::App& app, Commands& commands) {
    auto args = std::make_shared<EnqueueArgs>();
    auto* sub = app.add_subcommand("enqueue", "Enqueue a job and print its id (the entrypoint must exist)");
    sub->add_option("NAME", args->name, "Queue name")->required();
    sub->add_option("ENTRYPOINT", args->entrypoint, "Entrypoint name")->required();
    auto* payload = sub->add_option("PAYLOAD", args->payload, "Payload text (default: empty)");
    auto* file = sub->add_option("--file", args->file, "Read the payload from a file")->type_name("PATH");
    auto* from_stdin = sub->add_flag("--stdin", args->from_stdin, "Read the payload from standard input");
    file->excludes(payload)->excludes(from_stdin);
    from_stdin->excludes(payload);
    add_number(*sub, "--priority", args->priority, "Higher runs first");
    add_seconds(*sub, "--delay", args->delay, "Run no earlier than this many seconds from now");
    add_number(*sub, "--count", args->count, "Enqueue this many copies");
    sub->add_option("--dedupe-key", args->dedupe_key,
                    "While a job of the entrypoint with this key is queued or picked, enqueue nothing "
                    "(1..128 bytes, no control characters; docs/dedupe.md)")
        ->type_name("KEY");
    sub->add_option("--on-duplicate", args->on_duplicate,
                    "With --dedupe-key, when the key is held: skip (print the holder's id, exit 0) or "
                    "refuse (exit 3)")
        ->type_name("skip|refuse")
        ->check(CLI::IsMember({"skip", "refuse"}));
    sub->add_option("--after", args->after,
                    "Run only after this job ended successful (repeat for several, at most 16; the job waits "
                    "until then, and ends canceled if one fails; docs/job-dependencies.md)")
        ->type_name("ID")
        ->allow_extra_args(false);
    commands.push_back({sub, [args] { return run_enqueue(*args); }});
}

namespace {

// ---- status ----

struct IdsArgs {
    std::string name;
    std::vector<std::string> ids;
};

// The entrypoint's name, or "#id" if it cannot be named.
std::string entrypoint_label(const Queue& queue, EntrypointId id) {
    try {
        return queue.entrypoint_name(id);
    } catch (const Error&) {
        return "#" + std::to_string(id);
    }
}

// Whether text is well-formed UTF-8 (no overlong forms, surrogates or
// code points above U+10FFFF).
bool valid_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const unsigned char c = static_cast<unsigned char>(text[i]);
        std::size_t length = 0;
        std::uint32_t code = 0;
        if (c < 0x80) length = 1, code = c;
        else if ((c & 0xe0) == 0xc0) length = 2, code = c & 0x1f;
        else if ((c & 0xf0) == 0xe0) length = 3, code = c & 0x0f;
        else if ((c & 0xf8) == 0xf0) length = 4, code = c & 0x07;
        else return false;
        if (i + length > text.size()) return false;
        for (std::size_t k = 1; k < length; ++k) {
            const unsigned char next = static_cast<unsigned char>(text[i + k]);
            if ((next & 0xc0) != 0x80) return false;
            code = (code << 6) | (next & 0x3f);
        }
        static const std::uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
        if (code < smallest[length] || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return false;
        i += length;
    }
    return true;
}

// A job's result for a terminal (docs/results.md): a JSON string if it is
// valid UTF-8, else 0x and its bytes in hex.
std::string render_result(const std::vector<std::byte>& result) {
    const std::string_view text(reinterpret_cast<const char*>(result.data()), result.size());
    if (valid_utf8(text)) return json_string(text);
    static const char digits[] = "0123456789abcdef";
    std::string hex = "0x";
    for (std::byte b : result) {
        hex += digits[std::to_integer<unsigned>(b) >> 4];
        hex += digits[std::to_integer<unsigned>(b) & 15];
    }
    return hex;
}

// Aligned columns, no header; rows may have a last column the others lack.
void print_rows(const std::vector<std::vector<std::string>>& rows) {
    std::size_t columns = 0;
    for (const auto& row : rows) columns = std::max(columns, row.size());
    std::vector<std::size_t> widths(columns, 0);
    for (const auto& row : rows)
        for (std::size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t c = 0; c < row.size(); ++c) {
            line += row[c];
            if (c + 1 < row.size()) line += std::string(widths[c] - row[c].size() + 1, ' ');
        }
        std::cout << line << '\n';
    }
}

int run_status(const IdsArgs& args) {
    const std::vector<JobId> ids = parse_job_ids(args.ids);
    Queue queue = Queue::open(args.name);
    // The kept results (docs/results.md): a look, no waiting. Ids no job can
    // have are reported unknown by status() and not asked for.
    std::vector<JobId> valid;
    for (JobId id : ids)
        if (id != 0 && id <= JobId(INT64_MAX)) valid.push_back(id);
    const std::vector<JobOutcome> outcomes = queue.wait(valid, std::chrono::nanoseconds(0));
    std::vector<std::vector<std::string>> rows;
    for (const JobState& state : queue.status(ids)) {
        // A job whose slot was reused: only its final status is known.
        const bool known = state.status != JobStatus::unknown && !state.slot_reused;
        rows.push_back({std::to_string(state.id), std::string(job_status_name(state.status)),
                        known ? entrypoint_label(queue, state.entrypoint) : "-",
                        known ? std::to_string(state.attempts) : "-"});
        // ID STATUS ENTRYPOINT ATTEMPTS, and RESULT for a job with a kept result.
        for (const JobOutcome& outcome : outcomes)
            if (outcome.id == state.id && outcome.result && state.status == JobStatus::successful) {
                rows.back().push_back(render_result(*outcome.result));
                break;
            }
        // Dependencies (docs/job-dependencies.md): what a waiting job waits
        // for, and why a job was canceled by one.
        if (state.status == JobStatus::waiting) {
            std::string text = "waiting for " + std::to_string(state.waiting_on) + " of";
            for (JobId id : state.depends_on) text += " " + std::to_string(id);
            rows.back().push_back(text);
        } else if (state.status == JobStatus::canceled && !state.reason.empty()) {
            rows.back().push_back(state.reason);
        } else if (state.slot_reused) {
            rows.back().push_back("(slot reused: only its status is kept)");
        }
    }
    print_rows(rows);
    return 0;
}

} // namespace

void add_status(CLI::App& app, Commands& commands) {
    auto args = std::make_shared<IdsArgs>();
    auto* sub = app.add_subcommand("status", "Print `ID STATUS ENTRYPOINT ATTEMPTS [RESULT]` for each job id "
                                             "(RESULT: a kept result, as a JSON string or 0x hex)");
    sub->add_option("NAME", args->name, "Queue name")->required();
    sub->add_option("ID", args->ids, "Job ids (decimal)")->required();
    commands.push_back({sub, [args] { return run_status(*args); }});
}

namespace {

// ---- wait ----

struct WaitArgs {
    std::string name;
    std::vector<std::string> ids;
    std::chrono::nanoseconds timeout{-1};
};

int run_wait(const WaitArgs& args) {
    const std::vector<JobId> ids = parse_job_ids(args.ids);
    for (std::size_t i = 0; i < ids.size(); ++i)
        if (ids[i] == 0 || ids[i] > JobId(INT64_MAX))
            throw CLI::ValidationError("ID", "bad job id '" + args.ids[i] + "': job ids are 1 to 2^63-1");
    Queue queue = Queue::open(args.name);
    const std::vector<JobOutcome> outcomes = queue.wait(ids, args.timeout);
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> problems;
    for (const JobOutcome& outcome : outcomes) {
        rows.push_back({std::to_string(outcome.id), std::string(job_status_name(outcome.status))});
        if (outcome.result) rows.back().push_back(render_result(*outcome.result));
        if (outcome.status == JobStatus::unknown)
            problems.push_back("currant: job " + std::to_string(outcome.id) + ": no such job in queue '" + args.name +
                               "' (never existed, or finished and no longer kept)");
        else if (!outcome.finished)
            problems.push_back("currant: job " + std::to_string(outcome.id) + " is still " +
                               std::string(job_status_name(outcome.status)) + " (timed out)");
    }
    print_rows(rows);
    std::cout.flush();
    for (const std::string& line : problems) std::cerr << line << '\n';
    return problems.empty() ? 0 : 1;
}

} // namespace

void add_wait(CLI::App& app, Commands& commands) {
    auto args = std::make_shared<WaitArgs>();
    auto* sub = app.add_subcommand("wait", "Wait until the jobs end; print `ID STATUS [RESULT]` for each; exit 1 if "
                                           "any is unknown or still running at the timeout");
    sub->add_option("NAME", args->name, "Queue name")->required();
    sub->add_option("ID", args->ids, "Job ids (decimal)")->required();
    sub->add_option_function<std::string>(
           "--timeout", [args](const std::string& text) { args->timeout = parse_seconds(text, "--timeout"); },
           "How long to wait (default: until they end)")
        ->type_name("SECONDS");
    commands.push_back({sub, [args] { return run_wait(*args); }});
}

namespace {

// ---- cancel ----

int run_cancel(const IdsArgs& args) {
    const std::vector<JobId> ids = parse_job_ids(args.ids);
    // Every id is checked before any job is touched: a typo among the ids
    // cancels nothing (docs/cancellation.md: ids are 1 to 2^63-1).
    for (std::size_t i = 0; i < ids.size(); ++i)
        if (ids[i] == 0 || ids[i] > JobId(INT64_MAX))
            throw CLI::ValidationError("ID", "bad job id '" + args.ids[i] + "': job ids are 1 to 2^63-1");
    Queue queue = Queue::open(args.name);
    int exit_status = 0;
    for (JobId id : ids) {
        const CancelOutcome outcome = queue.cancel(id);
        if (outcome == CancelOutcome::canceled) {
            std::cout << id << " canceled\n";
            continue;
        }
        if (outcome == CancelOutcome::requested) {
            // docs/cancellation.md: recorded in the segment, the holder
            // woken; it never runs again and ends canceled unless its
            // handler finishes first.
            std::cout << id << " requested (running: its worker was told to stop)\n";
            continue;
        }
        const JobState state = queue.status(std::span(&id, 1)).at(0);
        std::cout.flush();
        if (state.status == JobStatus::unknown) {
            std::cerr << "currant: job " << id << " not cancelable: no such job in queue '" << args.name << "'\n";
        } else {
            std::cerr << "currant: job " << id << " not cancelable: it is " << job_status_name(state.status)
                      << ", already finished\n";
        }
        exit_status = 1;
    }
    return exit_status;
}

} // namespace

void add_cancel(CLI::App& app, Commands& commands) {
    auto args = std::make_shared<IdsArgs>();
    auto* sub = app.add_subcommand("cancel", "Cancel jobs: prints `ID canceled` (was queued) or `ID requested` (running: its worker is told to stop); exit 1 if any is not cancelable (finished or unknown)");
    sub->add_option("NAME", args->name, "Queue name")->required();
    sub->add_option("ID", args->ids, "Job ids (decimal)")->required();
    commands.push_back({sub, [args] { return run_cancel(*args); }});
}

} // namespace currant::cli
