#include "postgres.hpp"

#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <glob.h>
#include <pwd.h>
#include <cstdlib>
#include <stdexcept>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace currant::testing {

namespace {

std::string postgres_bin_directory() {
    glob_t found{};
    std::string best;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, nullptr, &found) == 0) {
        for (std::size_t i = 0; i < found.gl_pathc; ++i) best = found.gl_pathv[i]; // sorted: newest last
    }
    globfree(&found);
    if (best.empty()) throw std::runtime_error("PostgreSQL server binaries not found (install postgresql)");
    return best.substr(0, best.size() - std::string("/initdb").size());
}

bool running_as_root() { return geteuid() == 0; }

std::vector<std::string> as_server_user(std::vector<std::string> argv) {
    if (!running_as_root()) return argv;
    argv.insert(argv.begin(), {"/usr/sbin/runuser", "-u", "postgres", "--"});
    return argv;
}

} // namespace

int run_program(const std::vector<std::string>& argv, const std::string& output_file) {
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        if (!output_file.empty()) {
            const int fd = open(output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
        }
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execv(args[0], args.data());
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

ScratchPostgres::ScratchPostgres(PostgresOptions options)
    : options_(std::move(options)), bin_(postgres_bin_directory()), owner_pid_(getpid()) {
    std::string pattern_text = options_.parent_directory + "/currant-pg-XXXXXX";
    std::vector<char> pattern(pattern_text.begin(), pattern_text.end());
    pattern.push_back('\0');
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp under " + options_.parent_directory + " failed");
    directory_ = pattern.data();
    if (running_as_root()) {
        const passwd* user = getpwnam("postgres");
        if (!user) throw std::runtime_error("user postgres missing (install postgresql)");
        if (chown(directory_.c_str(), user->pw_uid, user->pw_gid) != 0)
            throw std::runtime_error("chown of the cluster directory failed");
    }
    const std::string log = directory_ + "/setup.log";
    // --no-sync only skips initdb's own final sync of the files it wrote;
    // the running server's durability is options_.fsync's.
    if (run_program(as_server_user({bin_ + "/initdb", "-D", directory_ + "/data", "-A", "trust", "-U", "postgres",
                                    "--no-sync", "-E", "UTF8", "--locale=C"}),
                    log) != 0)
        throw std::runtime_error("initdb failed (see " + log + ")");
    struct stat info {};
    pg_stat_statements_ =
        options_.pg_stat_statements && stat((bin_ + "/../lib/pg_stat_statements.so").c_str(), &info) == 0;
    start();
}

ScratchPostgres::~ScratchPostgres() {
    if (getpid() != owner_pid_) return; // a forked child exiting: the cluster is its parent's
    stop_and_remove();
}

void ScratchPostgres::stop_and_remove() noexcept {
    try {
        if (running_) pg_ctl({"stop", "-m", "immediate"});
    } catch (...) {
    }
    running_ = false;
    if (options_.keep || std::getenv("CURRANT_KEEP_POSTGRES")) return; // for a look at server and daemon logs
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
}

void ScratchPostgres::pg_ctl(const std::vector<std::string>& arguments) {
    std::vector<std::string> argv = {bin_ + "/pg_ctl", "-D", directory_ + "/data", "-w", "-t", "60"};
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    if (run_program(as_server_user(argv), directory_ + "/setup.log") != 0)
        throw std::runtime_error("pg_ctl " + arguments[0] + " failed (see " + directory_ + "/setup.log)");
}

void ScratchPostgres::start() {
    std::string settings = "-k " + directory_ + " -c listen_addresses='' -p 5432 -c max_connections=" +
                           std::to_string(options_.max_connections);
    if (!options_.fsync) settings += " -c fsync=off";
    if (pg_stat_statements_)
        settings += " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_utility=on";
    pg_ctl({"start", "-l", directory_ + "/server.log", "-o", settings});
    running_ = true;
}

void ScratchPostgres::stop() {
    pg_ctl({"stop", "-m", "fast"});
    running_ = false;
}

void ScratchPostgres::stop_immediately() {
    pg_ctl({"stop", "-m", "immediate"});
    running_ = false;
}

std::string ScratchPostgres::conninfo(const std::string& database) const {
    return "host=" + directory_ + " port=5432 user=postgres dbname=" + database;
}

std::string ScratchPostgres::create_database(const std::string& name) {
    if (run_program({bin_ + "/createdb", "-h", directory_, "-p", "5432", "-U", "postgres", name}) != 0)
        throw std::runtime_error("createdb " + name + " failed");
    return conninfo(name);
}

pid_t ScratchPostgres::postmaster_pid() const {
    std::ifstream in(directory_ + "/data/postmaster.pid");
    long pid = 0;
    in >> pid;
    return pid_t(pid);
}

ScratchPostgres& shared_postgres() {
    static ScratchPostgres cluster;
    return cluster;
}

} // namespace currant::testing
