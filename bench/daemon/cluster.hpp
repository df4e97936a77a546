// A throwaway PostgreSQL cluster for the mirror benchmark: initdb into a
// temporary directory on disk, listening only on a Unix socket there, with
// the server's DEFAULT durability settings (fsync, synchronous_commit and
// full_page_writes on; nothing is turned off). pg_stat_statements is
// preloaded when the server has it, so the benchmark can count and time the
// daemon's statements without instrumenting the daemon.
//
// Same approach as tests/support/postgres.cpp (as root the server runs as
// user `postgres` via runuser), without its fsync=off and without Catch2.
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

namespace currant::bench {

class BenchPostgres {
public:
    // base: directory under which the cluster's directory is made (on disk,
    // not tmpfs, so that fsync means something). keep: leave it at exit.
    BenchPostgres(const std::string& base, bool want_pg_stat_statements, bool keep);
    ~BenchPostgres();
    BenchPostgres(const BenchPostgres&) = delete;
    BenchPostgres& operator=(const BenchPostgres&) = delete;

    std::string conninfo(const std::string& database = "postgres") const;
    const std::string& directory() const { return directory_; }
    bool has_pg_stat_statements() const { return pg_stat_statements_; }
    pid_t postmaster_pid() const;
    // Immediate shutdown and removal (unless kept); for an interrupted bench.
    void stop_now();

private:
    void pg_ctl(const std::vector<std::string>& arguments);
    std::string directory_, bin_;
    bool running_ = false, pg_stat_statements_ = false, keep_ = false;
    pid_t owner_pid_ = 0;
};

// Runs argv (argv[0] a path) and waits; returns the exit status (128+signal
// if killed). Output goes to the given file (appended) unless empty.
int run_program(const std::vector<std::string>& argv, const std::string& output_file = {});

// CPU time of a process's live threads in seconds (schedstat, else
// utime + stime of /proc/<pid>/stat); -1 if it is gone.
double process_cpu_seconds(pid_t pid);
// Children of a process (from /proc/*/stat), for the postmaster's processes.
std::vector<pid_t> child_processes(pid_t parent);

} // namespace currant::bench
