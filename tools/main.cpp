// `currant`: the command line of the currant job queue.
//
// Exit status: 0 on success; 1 when the queue reports an error (or `doctor`
// finds a problem, or `demo` fails its check); 2 for a usage error. Every
// error is one line on stderr: `currant: <message>`.
#include <algorithm>
#include <exception>
#include <iostream>
#include <string>

#include "cli.hpp"

namespace {

void print_error(const std::string& message) {
    std::string line = message;
    for (char& c : line) {
        if (c == '\n' || c == '\r') c = ' ';
    }
    std::cout.flush();
    std::cerr << "currant: " << line << std::endl;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"currant: a shared-memory job queue for processes on one host", "currant"};
    app.require_subcommand(1);

    currant::cli::Commands commands;
    try {
        using namespace currant::cli;
        for (auto add : {add_init, add_info, add_stats, add_enqueue, add_status, add_cancel, add_wait, add_declare,
                         add_doctor, add_rm, add_demo, add_db, add_pause, add_resume, add_limit,
                         add_schedules, add_failed, add_requeue, add_purge}) {
            add(app, commands);
        }
        // CLI11 would only say "A subcommand is required" for a misspelt one.
        if (argc > 1 && argv[1][0] != '-' &&
            std::none_of(commands.begin(), commands.end(),
                         [&](const Command& command) { return command.app->check_name(argv[1]); })) {
            print_error(std::string("unknown subcommand '") + argv[1] + "' (see `currant --help`)");
            return 2;
        }

        app.parse(argc, argv);
        for (const auto& command : commands) {
            if (command.app->parsed()) {
                return command.run();
            }
        }
        print_error("no subcommand given");
        return 2;
    } catch (const CLI::Success& help) {
        return app.exit(help);
    } catch (const CLI::ParseError& error) {
        print_error(error.what());
        return 2;
    } catch (const currant::Error& error) {
        print_error(error.what());
        return 1;
    } catch (const std::exception& error) {
        print_error(error.what());
        return 1;
    }
}
