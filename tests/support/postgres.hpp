// A throwaway PostgreSQL cluster: initdb into a fresh directory, listening
// only on a Unix socket there, stopped and deleted at scope exit. As root
// the server runs as user `postgres` (runuser); otherwise as the current
// user. Used by the daemon tests (fsync off, one cluster per test process)
// and by bench/daemon (on disk, the server's default durability).
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

namespace currant::testing {

struct PostgresOptions {
    std::string parent_directory = "/tmp"; // where the cluster's directory is made
    bool fsync = false;                     // false: -c fsync=off (tests); true: the server's defaults
    bool pg_stat_statements = false;        // preload it when the server has it
    int max_connections = 200;
    bool keep = false;                      // leave the directory at exit (also CURRANT_KEEP_POSTGRES)
};

class ScratchPostgres {
public:
    explicit ScratchPostgres(PostgresOptions options = {});
    ~ScratchPostgres();
    ScratchPostgres(const ScratchPostgres&) = delete;
    ScratchPostgres& operator=(const ScratchPostgres&) = delete;

    // A fresh database with the given name; returns its connection string.
    std::string create_database(const std::string& name);
    std::string conninfo(const std::string& database = "postgres") const;

    void stop();   // fast shutdown (connections are cut)
    // Immediate shutdown, as in a crash: every backend quits at once and
    // closes its socket with no error a client could read (only a warning).
    void stop_immediately();
    void start();
    void restart() { stop(); start(); }
    // Immediate shutdown and removal (unless kept); for an interrupted run.
    void stop_and_remove() noexcept;

    const std::string& directory() const { return directory_; }
    bool has_pg_stat_statements() const { return pg_stat_statements_; }
    pid_t postmaster_pid() const;

private:
    void pg_ctl(const std::vector<std::string>& arguments);
    PostgresOptions options_;
    std::string directory_, bin_;
    bool running_ = false, pg_stat_statements_ = false;
    pid_t owner_pid_ = 0;
};

// One cluster per test process (the tests' options), started on first use.
ScratchPostgres& shared_postgres();

// Runs argv (argv[0] a path) and waits; returns the exit status (128+signal
// if killed). Output goes to the given file (appended) unless empty.
int run_program(const std::vector<std::string>& argv, const std::string& output_file = {});

} // namespace currant::testing
