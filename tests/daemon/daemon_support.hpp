// The daemon suites' fixture: a database in the shared throwaway cluster
// with the schema installed, a queue name, and currantd run as a real
// process ($CURRANTD) that tests stop with SIGTERM or kill with SIGKILL.
#pragma once

#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <iterator>
#include <regex>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "pg.hpp"
#include "postgres.hpp"
#include "schema.hpp"
#include "test_support.hpp"

namespace currant::daemon_test {

using namespace std::chrono_literals;

// Polls until condition holds or timeout passes (tests only; the product never polls).
inline bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 20'000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return condition();
}

class DaemonProcess {
public:
    DaemonProcess() = default;
    DaemonProcess(const DaemonProcess&) = delete;
    ~DaemonProcess() {
        if (pid_ > 0) kill_now();
    }
    void start(const std::vector<std::string>& arguments, const std::string& log_path) {
        log_path_ = log_path;
        pid_ = fork();
        if (pid_ == 0) {
            // The child must never return into the test process's code.
            const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 2);
                dup2(fd, 1);
                close(fd);
            }
            const char* program = std::getenv("CURRANTD");
            if (!program) _exit(126);
            std::vector<std::string> argv = {program};
            argv.insert(argv.end(), arguments.begin(), arguments.end());
            std::vector<char*> raw;
            for (auto& a : argv) raw.push_back(a.data());
            raw.push_back(nullptr);
            execv(raw[0], raw.data());
            _exit(127);
        }
    }
    void kill_now() {
        ::kill(pid_, SIGKILL);
        wait_for_exit();
    }
    int terminate() {
        ::kill(pid_, SIGTERM);
        return wait_for_exit();
    }
    int wait_for_exit() {
        int status = 0;
        while (waitpid(pid_, &status, 0) < 0) {
        }
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    bool running() const { return pid_ > 0; }
    // Until the daemon has stopped itself (SIGSTOP at a stop point armed by
    // CURRANT_STOP_POINT): its state in /proc/PID/stat is 'T'. False if it
    // exited instead or the limit passed.
    bool wait_until_stopped(std::chrono::milliseconds limit = 60'000ms) const {
        char state = '?';
        eventually([&] {
            std::ifstream stat("/proc/" + std::to_string(pid_) + "/stat");
            const std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
            const auto name_end = text.rfind(')'); // the command name may hold spaces
            if (name_end != std::string::npos && text.size() > name_end + 2) state = text[name_end + 2];
            return state == 'T' || state == 'Z';
        }, limit);
        return state == 'T';
    }
    void continue_running() { ::kill(pid_, SIGCONT); }
    // Not exited yet (a zombie counts as exited; the process is not reaped).
    bool alive() const {
        siginfo_t info{};
        return pid_ > 0 && waitid(P_PID, pid_t(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0;
    }
    std::string log() const {
        std::ifstream in(log_path_);
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    }

private:
    pid_t pid_ = -1;
    std::string log_path_;
};

// The port currantd serves HTTP on when given --http 127.0.0.1:0 (the
// kernel picked it), read from the daemon's log line.
inline std::uint16_t served_http_port(const DaemonProcess& daemon) {
    std::uint16_t port = 0;
    const std::regex line(R"(serving metrics and the dashboard on http://127\.0\.0\.1:([0-9]+)/)");
    REQUIRE(eventually([&] {
        std::smatch match;
        const std::string log = daemon.log();
        if (!std::regex_search(log, match, line)) return false;
        port = std::uint16_t(std::stoi(match[1]));
        return true;
    }));
    return port;
}

// A file whose first line is token (currantd --http-token-file).
inline std::string write_token_file(const std::string& token) {
    const std::string path = testing::shared_postgres().directory() + "/token-" + testing::unique_queue_name("t");
    std::ofstream(path) << token << "\n";
    return path;
}

// One test's world: its own database (schema installed) and queue name.
class DaemonFixture {
public:
    explicit DaemonFixture(const std::string& tag)
        : queue_name_(testing::unique_queue_name(tag)),
          conninfo_(testing::shared_postgres().create_database(database_name(queue_name_))),
          db_(conninfo_) {
        Queue::remove(queue_name_);
        schema::install(db_);
    }
    ~DaemonFixture() {
        for (auto& daemon : daemons_)
            if (daemon->running()) daemon->kill_now();
        try {
            Queue::remove(queue_name_);
        } catch (...) {
        }
    }
    const std::string& queue_name() const { return queue_name_; }
    const std::string& conninfo() const { return conninfo_; }
    pg::Connection& db() { return db_; }

    // Starts currantd on this fixture's queue and database.
    DaemonProcess& start_daemon(std::vector<std::string> extra = {}) {
        std::vector<std::string> arguments = {"--queue", queue_name_, "--db", conninfo_, "--slots", "4096",
                                              "--payload-bytes", "256", "--log-capacity", "4096"};
        arguments.insert(arguments.end(), extra.begin(), extra.end());
        daemons_.push_back(std::make_unique<DaemonProcess>());
        daemons_.back()->start(arguments, testing::shared_postgres().directory() + "/" + queue_name_ + ".log");
        return *daemons_.back();
    }
    // Starts currantd with --http on a loopback port the kernel picks; returns the port.
    std::uint16_t start_http_daemon(std::vector<std::string> extra = {}) {
        extra.insert(extra.begin(), {"--http", "127.0.0.1:0"});
        return served_http_port(start_daemon(extra));
    }
    // The queue once the daemon has created or opened it.
    Queue open_queue() {
        std::optional<Queue> queue;
        REQUIRE(eventually([&] {
            try {
                queue = Queue::open(queue_name_);
                return true;
            } catch (const Error&) {
                return false;
            }
        }));
        return std::move(*queue);
    }
    // The queue once the daemon has rebuilt it from PostgreSQL: a segment
    // being rebuilt is sealed (it accepts enqueues but hands nothing out)
    // until the rebuild is complete.
    Queue open_rebuilt_queue() {
        Queue queue = open_queue();
        REQUIRE(eventually([&] { return !queue.sealed(); }));
        return queue;
    }
    std::int64_t count(const std::string& sql, const std::vector<pg::Parameter>& parameters = {}) {
        return db_.exec(sql, parameters).integer(0, 0);
    }
    // Waits until a count query returns expected; returns the last value.
    std::int64_t wait_count(const std::string& sql, std::int64_t expected, std::chrono::milliseconds timeout = 20'000ms) {
        std::int64_t value = -1;
        eventually([&] { return (value = count(sql)) == expected; }, timeout);
        return value;
    }

private:
    static std::string database_name(const std::string& queue) {
        std::string name = "d_";
        for (char c : queue) name.push_back(std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
        return name;
    }
    std::string queue_name_, conninfo_;
    pg::Connection db_;
    std::vector<std::unique_ptr<DaemonProcess>> daemons_;
};

// Enqueues a job on ep, picks it and fails it with error: a kept dead job.
inline JobId dead_job(Queue& queue, EntrypointId ep, const std::string& payload, const std::string& error) {
    const JobId id = queue.enqueue(ep, as_payload(payload));
    const EntrypointId eps[] = {ep};
    Job job;
    REQUIRE(queue.dequeue(eps, std::span(&job, 1), 5s) == 1);
    REQUIRE(job.handle.id == id);
    queue.fail(job.handle, error);
    return id;
}

inline JobStatus status_of(const Queue& queue, JobId id) {
    const JobId ids[] = {id};
    return queue.status(ids)[0].status;
}

// Runs the `currant` command line (CURRANT_CLI) to its end: exit status and
// everything it printed.
struct CliRun {
    int status;
    std::string output;
};
inline CliRun run_cli(const std::vector<std::string>& arguments) {
    const std::string output_file = testing::shared_postgres().directory() + "/run-cli-output.txt";
    std::remove(output_file.c_str());
    std::vector<std::string> argv = {std::getenv("CURRANT_CLI")};
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    const int status = testing::run_program(argv, output_file);
    std::ifstream in(output_file);
    std::stringstream text;
    text << in.rdbuf();
    return {status, text.str()};
}

inline EntrypointOptions async_options() {
    EntrypointOptions options;
    options.durability = Durability::async;
    return options;
}

} // namespace currant::daemon_test
