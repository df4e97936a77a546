// What the cli suite's test programs share: run the real `currant`
// executable ($CURRANT_CLI) with stdout and stderr captured, and a small
// queue's options.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <ostream>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "currant/queue.hpp"

namespace currant::cli_test {

struct Result {
    int code = -1;
    std::string out, err;
};

inline std::ostream& operator<<(std::ostream& os, const Result& r) {
    return os << "exit " << r.code << "\n--- stdout ---\n" << r.out << "--- stderr ---\n" << r.err << "---";
}

inline std::string read_all(int fd) {
    std::string text;
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n > 0) text.append(buffer, std::size_t(n));
        else if (n == 0 || errno != EINTR) break;
    }
    return text;
}

// Runs `currant args...`; stdout and stderr go to unlinked temporary files.
inline Result run(const std::vector<std::string>& args) {
    const char* cli = std::getenv("CURRANT_CLI");
    if (cli == nullptr) throw std::runtime_error("CURRANT_CLI is not set (run through `meson test --suite cli`)");
    char out_path[] = "/tmp/currant-cli-XXXXXX", err_path[] = "/tmp/currant-cli-XXXXXX";
    const int out_fd = ::mkstemp(out_path), err_fd = ::mkstemp(err_path);
    ::unlink(out_path);
    ::unlink(err_path);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out_fd, 1);
        ::dup2(err_fd, 2);
        std::vector<char*> argv{const_cast<char*>(cli)};
        for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
        argv.push_back(nullptr);
        ::execv(cli, argv.data());
        ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    Result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    ::lseek(out_fd, 0, SEEK_SET);
    ::lseek(err_fd, 0, SEEK_SET);
    r.out = read_all(out_fd);
    r.err = read_all(err_fd);
    ::close(out_fd);
    ::close(err_fd);
    return r;
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

inline currant::QueueOptions small() {
    currant::QueueOptions options;
    options.slots = 64;
    options.payload_bytes = 64;
    options.max_entrypoints = 4;
    options.max_participants = 8;
    options.log_capacity = 64;
    return options;
}

} // namespace currant::cli_test
