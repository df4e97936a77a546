#include "cluster.hpp"

#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <glob.h>
#include <pwd.h>
#include <sstream>
#include <stdexcept>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace currant::bench {

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

// Fields after the command name of /proc/<pid>/stat (field 3 is index 0).
std::vector<std::string> stat_fields(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(in, line)) return {};
    const auto close = line.rfind(')');
    if (close == std::string::npos) return {};
    std::istringstream rest(line.substr(close + 2));
    std::vector<std::string> fields;
    for (std::string field; rest >> field;) fields.push_back(field);
    return fields;
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

double process_cpu_seconds(pid_t pid) {
    // Nanoseconds on CPU of every live thread (/proc/<pid>/task/*/schedstat);
    // the clock-tick counts of /proc/<pid>/stat are only 10 ms precise.
    const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
    if (DIR* dir = opendir(tasks.c_str())) {
        double ns = 0;
        bool any = false;
        while (const dirent* entry = readdir(dir)) {
            if (entry->d_name[0] == '.') continue;
            std::ifstream in(tasks + "/" + entry->d_name + "/schedstat");
            double on_cpu = 0;
            if (in >> on_cpu) {
                ns += on_cpu;
                any = true;
            }
        }
        closedir(dir);
        if (any) return ns / 1e9;
    }
    const std::vector<std::string> fields = stat_fields(pid);
    if (fields.size() < 13) return -1;
    // utime and stime are fields 14 and 15 of the whole line.
    const double ticks = std::stod(fields[11]) + std::stod(fields[12]);
    return ticks / double(sysconf(_SC_CLK_TCK));
}

std::vector<pid_t> child_processes(pid_t parent) {
    std::vector<pid_t> children;
    DIR* proc = opendir("/proc");
    if (!proc) return children;
    while (const dirent* entry = readdir(proc)) {
        char* end = nullptr;
        const long pid = std::strtol(entry->d_name, &end, 10);
        if (*end != '\0' || pid <= 0) continue;
        const std::vector<std::string> fields = stat_fields(pid_t(pid));
        if (fields.size() > 1 && std::stol(fields[1]) == parent) children.push_back(pid_t(pid));
    }
    closedir(proc);
    return children;
}

BenchPostgres::BenchPostgres(const std::string& base, bool want_pg_stat_statements, bool keep)
    : bin_(postgres_bin_directory()), keep_(keep), owner_pid_(getpid()) {
    std::string pattern_text = base + "/currant-bench-pg-XXXXXX";
    std::vector<char> pattern(pattern_text.begin(), pattern_text.end());
    pattern.push_back('\0');
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp under " + base + " failed");
    directory_ = pattern.data();
    if (running_as_root()) {
        const passwd* user = getpwnam("postgres");
        if (!user) throw std::runtime_error("user postgres missing (install postgresql)");
        if (chown(directory_.c_str(), user->pw_uid, user->pw_gid) != 0)
            throw std::runtime_error("chown of the cluster directory failed");
    }
    const std::string log = directory_ + "/setup.log";
    // --no-sync only skips initdb's own final sync of the files it wrote;
    // the running server keeps its default durability settings.
    if (run_program(as_server_user({bin_ + "/initdb", "-D", directory_ + "/data", "-A", "trust", "-U", "postgres",
                                    "--no-sync", "-E", "UTF8", "--locale=C"}),
                    log) != 0)
        throw std::runtime_error("initdb failed (see " + log + ")");
    struct stat info {};
    pg_stat_statements_ = want_pg_stat_statements && stat((bin_ + "/../lib/pg_stat_statements.so").c_str(), &info) == 0;
    std::string settings = "-k " + directory_ + " -c listen_addresses='' -p 5432";
    if (pg_stat_statements_)
        settings += " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_utility=on";
    pg_ctl({"start", "-l", directory_ + "/server.log", "-o", settings});
    running_ = true;
}

BenchPostgres::~BenchPostgres() {
    if (getpid() != owner_pid_) return; // a forked child exiting: the cluster is its parent's
    stop_now();
}

void BenchPostgres::stop_now() {
    try {
        if (running_) pg_ctl({"stop", "-m", "immediate"});
    } catch (...) {
    }
    running_ = false;
    if (keep_) return;
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
}

void BenchPostgres::pg_ctl(const std::vector<std::string>& arguments) {
    std::vector<std::string> argv = {bin_ + "/pg_ctl", "-D", directory_ + "/data", "-w", "-t", "60"};
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    if (run_program(as_server_user(argv), directory_ + "/setup.log") != 0)
        throw std::runtime_error("pg_ctl " + arguments[0] + " failed (see " + directory_ + "/setup.log)");
}

std::string BenchPostgres::conninfo(const std::string& database) const {
    return "host=" + directory_ + " port=5432 user=postgres dbname=" + database;
}

pid_t BenchPostgres::postmaster_pid() const {
    std::ifstream in(directory_ + "/data/postmaster.pid");
    long pid = 0;
    in >> pid;
    return pid_t(pid);
}

} // namespace currant::bench
