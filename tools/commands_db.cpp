// `currant db install | upgrade | status`: the PostgreSQL schema currantd
// mirrors into (daemon/src/schema.cpp holds the versioned steps).
#include <iostream>
#include <memory>

#include "cli.hpp"
#include "pg.hpp"
#include "schema.hpp"

namespace currant::cli {

namespace {

struct DbArgs {
    std::string conninfo;
};

int run_install(const DbArgs& args) {
    pg::Connection connection(args.conninfo);
    schema::install(connection);
    std::cout << "installed currant schema version " << schema::current_version() << "\n";
    return 0;
}

int run_upgrade(const DbArgs& args) {
    pg::Connection connection(args.conninfo);
    const int before = schema::installed_version(connection);
    if (before == 0) throw std::runtime_error("the currant schema is not installed; run `currant db install`");
    const int applied = schema::upgrade(connection);
    if (applied == 0) std::cout << "currant schema is at version " << before << ": nothing to do\n";
    else std::cout << "upgraded currant schema from version " << before << " to " << schema::current_version() << "\n";
    return 0;
}

int run_status(const DbArgs& args) {
    pg::Connection connection(args.conninfo);
    const int installed = schema::installed_version(connection);
    std::cout << "installed version: " << installed << " (this build: " << schema::current_version() << ")\n";
    return installed == schema::current_version() ? 0 : 1;
}

} // namespace

void add_db(CLI::App& app, Commands& commands) {
    auto* db = app.add_subcommand("db", "Install or upgrade the PostgreSQL schema currantd mirrors into");
    db->require_subcommand(1);
    const std::string db_help = "libpq connection string or URI (default: libpq's PG* environment variables)";
    struct Sub {
        const char* name;
        const char* help;
        int (*run)(const DbArgs&);
    };
    for (const Sub& sub : {Sub{"install", "Create currant's tables (fails if any version is installed)", run_install},
                           Sub{"upgrade", "Apply the schema steps newer than the installed version", run_upgrade},
                           Sub{"status", "Print the installed schema version (exit 1 unless current)", run_status}}) {
        auto args = std::make_shared<DbArgs>();
        auto* command = db->add_subcommand(sub.name, sub.help);
        command->add_option("--db", args->conninfo, db_help);
        commands.push_back({command, [args, run = sub.run] { return run(*args); }});
    }
    // Makes `db` a known first word for main(); never run (a db subcommand is required).
    commands.push_back({db, [] { return 2; }});
}

} // namespace currant::cli
