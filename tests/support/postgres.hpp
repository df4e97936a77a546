// A throwaway PostgreSQL cluster for the daemon tests: initdb into a
// temporary directory, listening only on a Unix socket there, fsync off.
// As root, the server runs as user `postgres` (runuser); otherwise as the
// current user. Stopped and deleted at scope exit.
#pragma once

#include <string>
#include <vector>

namespace currant::testing {

class ScratchPostgres {
public:
    ScratchPostgres();
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
    const std::string& directory() const { return directory_; }

private:
    void pg_ctl(const std::vector<std::string>& arguments);
    std::string directory_, bin_;
    bool running_ = false;
    int owner_pid_ = 0;
};

// One cluster per test process, started on first use.
ScratchPostgres& shared_postgres();

// Runs argv (argv[0] a path) and waits; returns the exit status (128+signal
// if killed). Output goes to the given file (appended) unless empty.
int run_program(const std::vector<std::string>& argv, const std::string& output_file = {});

} // namespace currant::testing
