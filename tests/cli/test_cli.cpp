// cli suite: the `currant` command line (docs/cli.md), run as a real
// executable (posix_spawn) with its stdout, stderr and exit status captured.
// The binary is found through $CURRANT_CLI (set by tests/cli/meson.build).
//
// One behaviour per test case. Every case works on queues of its own
// ("tcli<pid>-<n>"), kept small, and removes them when it ends.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <spawn.h>
#include <string>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "currant/queue.hpp"
#include "test_support.hpp"

extern char** environ;

namespace {

using namespace std::chrono_literals;

// ---------------------------------------------------------------- running

struct Result {
    int code = -1;      // exit status, or 128 + signal
    std::string out;    // standard output
    std::string err;    // standard error
};

std::ostream& operator<<(std::ostream& os, const Result& r) {
    return os << "exit " << r.code << "\n--- stdout ---\n" << r.out << "--- stderr ---\n" << r.err << "---";
}

const std::string& cli_path() {
    static const std::string path = [] {
        const char* env = std::getenv("CURRANT_CLI");
        if (env == nullptr || *env == '\0') {
            throw std::runtime_error("CURRANT_CLI is not set (run through `meson test --suite cli`)");
        }
        if (::access(env, X_OK) != 0) {
            throw std::runtime_error(std::string("CURRANT_CLI='") + env + "' is not executable");
        }
        return std::string(env);
    }();
    return path;
}

// A temporary file, unlinked at once; the descriptor stays open.
struct TempFile {
    int fd = -1;
    TempFile() {
        const char* dir = std::getenv("TMPDIR");
        std::string pattern = std::string(dir && *dir ? dir : "/tmp") + "/currant-cli-test-XXXXXX";
        fd = ::mkstemp(pattern.data());
        if (fd < 0) throw std::runtime_error("mkstemp: " + std::string(std::strerror(errno)));
        ::unlink(pattern.c_str());
    }
    ~TempFile() { if (fd >= 0) ::close(fd); }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;

    void write_all(const std::string& data) {
        std::size_t done = 0;
        while (done < data.size()) {
            ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, off_t(done));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) throw std::runtime_error("pwrite: " + std::string(std::strerror(errno)));
            done += std::size_t(n);
        }
    }
    std::string read_all() const {
        std::string data;
        char buffer[65536];
        off_t at = 0;
        for (;;) {
            ssize_t n = ::pread(fd, buffer, sizeof buffer, at);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) throw std::runtime_error("pread: " + std::string(std::strerror(errno)));
            if (n == 0) break;
            data.append(buffer, std::size_t(n));
            at += n;
        }
        return data;
    }
};

// A running `currant` process whose output goes to temporary files.
class Proc {
public:
    explicit Proc(const std::vector<std::string>& args, const std::string& input = {},
                  std::optional<mode_t> umask_for_child = std::nullopt) {
        in_.write_all(input);
        std::vector<std::string> argv_storage;
        argv_storage.push_back(cli_path());
        argv_storage.insert(argv_storage.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& a : argv_storage) argv.push_back(a.data());
        argv.push_back(nullptr);

        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, in_.fd, STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&actions, out_.fd, STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&actions, err_.fd, STDERR_FILENO);
        // The umask is inherited; set it around the spawn (the test is single-threaded here).
        const mode_t old_umask = ::umask(umask_for_child.value_or(022));
        const int rc = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
        ::umask(old_umask);
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0) throw std::runtime_error("posix_spawn " + cli_path() + ": " + std::strerror(rc));
    }
    ~Proc() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
    }
    Proc(const Proc&) = delete;
    Proc& operator=(const Proc&) = delete;

    pid_t pid() const { return pid_; }

    // Waits for the exit (killing it after `limit`) and collects the output.
    Result wait(std::chrono::milliseconds limit = 60s) {
        Result r;
        int status = 0;
        const auto deadline = std::chrono::steady_clock::now() + limit;
        for (;;) {
            pid_t got = ::waitpid(pid_, &status, WNOHANG);
            if (got == pid_) break;
            if (got < 0 && errno != EINTR) throw std::runtime_error("waitpid: " + std::string(std::strerror(errno)));
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, &status, 0);
                pid_ = -1;
                FAIL("currant did not exit within " << limit.count() << " ms");
            }
            std::this_thread::sleep_for(2ms);
        }
        pid_ = -1;
        r.code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
        r.out = out_.read_all();
        r.err = err_.read_all();
        return r;
    }

private:
    TempFile in_, out_, err_;
    pid_t pid_ = -1;
};

Result run(const std::vector<std::string>& args, const std::string& input = {},
           std::optional<mode_t> umask_for_child = std::nullopt) {
    Proc proc(args, input, umask_for_child);
    return proc.wait();
}

// ---------------------------------------------------------------- queues

std::string unique_name() {
    static int counter = 0;
    return "tcli" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

std::string shm_path(const std::string& name) { return "/dev/shm/currant." + name; }

bool segment_exists(const std::string& name) {
    struct stat st{};
    return ::stat(shm_path(name).c_str(), &st) == 0;
}

// A queue name for this case; the queue (if any) is removed when the case ends.
struct Name {
    std::string name = unique_name();
    Name() { currant::Queue::remove(name); }
    ~Name() {
        try {
            currant::Queue::remove(name);
        } catch (...) {
        }
    }
    operator const std::string&() const { return name; }
    const std::string& str() const { return name; }
};

// Options that keep a test queue's segment small.
const std::vector<std::string> small = {"--slots", "64", "--log-capacity", "64", "--entrypoints", "4",
                                        "--participants", "16"};

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// `currant init NAME <small> <extra>`, which must succeed.
void init_queue(const std::string& name, const std::vector<std::string>& extra = {"--entrypoint", "e"}) {
    Result r = run(std::vector<std::string>{"init", name} + small + extra);
    INFO(r);
    REQUIRE(r.code == 0);
}

// ---------------------------------------------------------------- output checks

// The error contract: exactly one line on stderr, "currant: <message>\n".
void check_one_error_line(const Result& r) {
    INFO(r);
    CHECK(r.err.rfind("currant: ", 0) == 0);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK(!r.err.empty());
    CHECK(r.err.back() == '\n');
    CHECK(r.err.size() > std::string("currant: \n").size());
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        lines.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return lines;
}

std::vector<std::string> words_of(const std::string& line) {
    std::vector<std::string> words;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && line[i] == ' ') ++i;
        std::size_t j = i;
        while (j < line.size() && line[j] != ' ') ++j;
        if (j > i) words.push_back(line.substr(i, j - i));
        i = j;
    }
    return words;
}

bool is_decimal(const std::string& text) {
    return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Minimal JSON reading: the raw value of "key" (a number, or a string with its quotes)
// in text, searching from the first occurrence of `within` (if given).
std::optional<std::string> json_raw(const std::string& text, const std::string& key,
                                    const std::string& within = {}) {
    std::size_t from = 0;
    if (!within.empty()) {
        from = text.find(within);
        if (from == std::string::npos) return std::nullopt;
    }
    const std::string pattern = "\"" + key + "\":";
    std::size_t at = text.find(pattern, from);
    if (at == std::string::npos) return std::nullopt;
    at += pattern.size();
    while (at < text.size() && text[at] == ' ') ++at;
    std::size_t end = at;
    if (at < text.size() && text[at] == '"') {
        end = text.find('"', at + 1);
        if (end == std::string::npos) return std::nullopt;
        return text.substr(at, end + 1 - at);
    }
    while (end < text.size() && text[end] != ',' && text[end] != '}' && text[end] != '\n' && text[end] != ' ')
        ++end;
    return text.substr(at, end - at);
}

std::optional<long long> json_number(const std::string& text, const std::string& key,
                                     const std::string& within = {}) {
    auto raw = json_raw(text, key, within);
    if (!raw || raw->empty()) return std::nullopt;
    try {
        std::size_t used = 0;
        long long value = std::stoll(*raw, &used);
        if (used != raw->size()) return std::nullopt;
        return value;
    } catch (...) {
        return std::nullopt;
    }
}

// `stats NAME --interval 0 --json`, which must succeed.
std::string stats_json(const std::string& name) {
    Result r = run({"stats", name, "--interval", "0", "--json"});
    INFO(r);
    REQUIRE(r.code == 0);
    return r.out;
}

// A counter of one entrypoint from `stats --json` (-1 if missing).
long long stat_of(const std::string& json, const std::string& entrypoint, const std::string& key) {
    return json_number(json, key, "{\"name\": \"" + entrypoint + "\"").value_or(-1);
}

// `info NAME --json`, which must succeed.
std::string info_json(const std::string& name) {
    Result r = run({"info", name, "--json"});
    INFO(r);
    REQUIRE(r.code == 0);
    return r.out;
}

// Enqueues one job through the CLI and returns its id.
std::string enqueue(const std::string& name, const std::string& entrypoint, const std::string& payload = "x") {
    Result r = run({"enqueue", name, entrypoint, payload});
    INFO(r);
    REQUIRE(r.code == 0);
    REQUIRE(r.err.empty());
    auto lines = lines_of(r.out);
    REQUIRE(lines.size() == 1);
    REQUIRE(is_decimal(lines[0]));
    return lines[0];
}

// The STATUS column of `currant status NAME ID` for one id.
std::vector<std::string> status_row(const std::string& name, const std::string& id) {
    Result r = run({"status", name, id});
    INFO(r);
    REQUIRE(r.code == 0);
    auto lines = lines_of(r.out);
    REQUIRE(lines.size() == 1);
    auto words = words_of(lines[0]);
    REQUIRE(words.size() == 4);
    return words;
}

} // namespace

// ================================================================ init / info

TEST_CASE("init creates a queue that info reports with the requested slots, payload bytes and mode 0600",
          "[cli][init][info]") {
    Name q;
    Result r = run({"init", q, "--slots", "48", "--payload-bytes", "40", "--log-capacity", "64", "--entrypoints",
                    "4", "--participants", "16", "--entrypoint", "e"});
    INFO(r);
    REQUIRE(r.code == 0);
    CHECK(r.err.empty());
    CHECK(contains(r.out, "created queue '" + q.str() + "'"));
    CHECK(contains(r.out, "declared entrypoint 'e'"));

    const std::string json = info_json(q);
    INFO(json);
    CHECK(json_raw(json, "name") == "\"" + q.str() + "\"");
    CHECK(json_number(json, "slots") == 48);
    CHECK(json_number(json, "free_slots") == 48);
    CHECK(json_number(json, "payload_bytes") == 40);
    CHECK(json_number(json, "max_entrypoints") == 4);
    CHECK(json_number(json, "max_participants") == 16);
    CHECK(json_number(json, "log_capacity") == 64);
    CHECK(json_raw(json, "mode") == std::string("\"0600\""));
    CHECK(json_number(json, "owner_uid") == static_cast<long long>(::geteuid()));
    CHECK(contains(json, "\"entrypoints\": [\"e\"]"));

    // The plain form says the same.
    Result plain = run({"info", q});
    INFO(plain);
    REQUIRE(plain.code == 0);
    bool saw_slots = false, saw_payload = false, saw_mode = false;
    for (const auto& line : lines_of(plain.out)) {
        auto words = words_of(line);
        if (words.size() == 2 && words[0] == "slots:") saw_slots = words[1] == "48";
        if (words.size() == 3 && words[0] == "payload" && words[1] == "bytes:") saw_payload = words[2] == "40";
        if (words.size() == 2 && words[0] == "mode:") saw_mode = words[1] == "0600";
    }
    CHECK(saw_slots);
    CHECK(saw_payload);
    CHECK(saw_mode);

    struct stat st{};
    REQUIRE(::stat(shm_path(q).c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
}

TEST_CASE("init --mode 0640 is honoured on the segment and in info, whatever the umask", "[cli][init]") {
    Name q;
    Result r = run(std::vector<std::string>{"init", q} + small + std::vector<std::string>{"--mode", "0640"}, {},
                   mode_t(077));
    INFO(r);
    REQUIRE(r.code == 0);
    CHECK(contains(r.out, "mode 0640"));
    struct stat st{};
    REQUIRE(::stat(shm_path(q).c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0640);
    CHECK(json_raw(info_json(q), "mode") == std::string("\"0640\""));
}

TEST_CASE("init --group without --mode gives the group the segment with mode 0660", "[cli][init]") {
    Name q;
    const gid_t gid = ::getegid();
    Result r = run(std::vector<std::string>{"init", q} + small + std::vector<std::string>{"--group", std::to_string(gid)});
    INFO(r);
    REQUIRE(r.code == 0);
    struct stat st{};
    REQUIRE(::stat(shm_path(q).c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0660);
    CHECK(st.st_gid == gid);
    const std::string json = info_json(q);
    CHECK(json_raw(json, "mode") == std::string("\"0660\""));
    CHECK(json_number(json, "owner_gid") == static_cast<long long>(gid));
}

TEST_CASE("init of an existing queue exits 1 with one line saying it already exists and leaves it alone",
          "[cli][init][errors]") {
    Name q;
    init_queue(q);
    const std::string id = enqueue(q, "e");
    const auto incarnation = json_raw(info_json(q), "incarnation");  // may exceed long long
    REQUIRE(incarnation.has_value());
    REQUIRE(is_decimal(*incarnation));

    Result r = run(std::vector<std::string>{"init", q} + small);
    INFO(r);
    CHECK(r.code == 1);
    check_one_error_line(r);
    CHECK(contains(r.err, "already exists"));
    CHECK(contains(r.err, q.str()));
    CHECK(r.out.empty());

    // The existing queue is untouched: same incarnation, job still queued.
    CHECK(json_raw(info_json(q), "incarnation") == incarnation);
    CHECK(status_row(q, id)[1] == "queued");
}

TEST_CASE("init is all or nothing: an entrypoint that cannot be declared removes the new queue",
          "[cli][init][errors]") {
    Name q;
    Result r = run({"init", q, "--slots", "8", "--log-capacity", "16", "--entrypoints", "1", "--entrypoint", "a",
                    "--entrypoint", "b"});
    INFO(r);
    CHECK(r.code == 1);
    check_one_error_line(r);
    CHECK(contains(r.err, q.str()));
    CHECK(contains(r.err, "entrypoints"));
    CHECK_FALSE(segment_exists(q));
    Result info = run({"info", q});
    CHECK(info.code == 1);
    CHECK(contains(info.err, "no such queue"));
}

TEST_CASE("numbers are decimal only: --slots 010 makes ten slots", "[cli][init][numbers]") {
    Name q;
    Result r = run({"init", q, "--slots", "010", "--log-capacity", "16", "--entrypoints", "2"});
    INFO(r);
    REQUIRE(r.code == 0);
    CHECK(json_number(info_json(q), "slots") == 10);
}

TEST_CASE("bad numbers are usage errors: exit 2 with one line naming the option", "[cli][numbers][errors]") {
    Name q;
    init_queue(q);

    struct Case {
        std::vector<std::string> args;
        std::string names;  // the option or argument the message must name
    };
    const std::vector<Case> cases = {
        {{"init", q.str() + "-x", "--slots", "-1"}, "--slots"},
        {{"init", q.str() + "-x", "--slots", "0x10"}, "--slots"},
        {{"init", q.str() + "-x", "--slots", "abc"}, "--slots"},
        {{"init", q.str() + "-x", "--slots", "99999999999999999999"}, "--slots"},
        {{"init", q.str() + "-x", "--payload-bytes", "1.5"}, "--payload-bytes"},
        {{"init", q.str() + "-x", "--host-id", "70000"}, "--host-id"},
        {{"init", q.str() + "-x", "--mode", "0800"}, "--mode"},
        {{"init", q.str() + "-x", "--mode", "abc"}, "--mode"},
        {{"enqueue", q, "e", "x", "--priority", "abc"}, "--priority"},
        {{"enqueue", q, "e", "x", "--priority", "2147483648"}, "--priority"},
        {{"enqueue", q, "e", "x", "--count", "-3"}, "--count"},
        {{"enqueue", q, "e", "x", "--delay", "-1"}, "--delay"},
        {{"enqueue", q, "e", "x", "--delay", "soon"}, "--delay"},
        {{"stats", q, "--interval", "x"}, "--interval"},
        {{"status", q, "abc"}, "abc"},
        {{"status", q, "-5"}, ""},
        {{"cancel", q, "18446744073709551616"}, "18446744073709551616"},
        {{"demo", "--name", q.str() + "-d", "--jobs", "-1"}, "--jobs"},
    };
    for (const auto& c : cases) {
        std::string command;
        for (const auto& a : c.args) command += a + " ";
        INFO("currant " << command);
        Result r = run(c.args);
        INFO(r);
        CHECK(r.code == 2);
        check_one_error_line(r);
        CHECK(contains(r.err, c.names));
        CHECK(r.out.empty());
    }
    CHECK_FALSE(segment_exists(q.str() + "-x"));
    CHECK_FALSE(segment_exists(q.str() + "-d"));
    // Nothing was enqueued by the refused commands.
    CHECK(stat_of(stats_json(q), "e", "enqueued") == 0);
}

TEST_CASE("bad queue names exit with one error line naming the problem and create nothing",
          "[cli][names][errors]") {
    struct Case {
        std::string name;
        std::string problem;
    };
    const std::vector<Case> cases = {
        {"a/b", "'/'"},
        {"..", "must not start with '.'"},
        {"", "queue name is empty"},
        {std::string(101, 'a'), "longer than 100 characters"},
        {"-x", "must not start with"},  // after `--`, so that it is not taken for an option
        {"a b", "' '"},
    };
    for (const auto& c : cases) {
        INFO("queue name '" << c.name << "'");
        for (const std::string command : {"init", "info", "rm", "stats", "doctor"}) {
            INFO("currant " << command);
            Result r = run({command, "--", c.name});
            INFO(r);
            CHECK(r.code != 0);
            check_one_error_line(r);
            CHECK(contains(r.err, c.problem));
            CHECK(r.out.empty());
        }
    }
    for (const auto& c : cases) {
        if (c.name.find('/') == std::string::npos && !c.name.empty()) {
            CHECK_FALSE(segment_exists(c.name));
        }
    }
}

TEST_CASE("a queue name of exactly 100 characters is accepted", "[cli][names]") {
    const std::string base = unique_name() + "-";
    const std::string name = base + std::string(100 - base.size(), 'n');
    REQUIRE(name.size() == 100);
    struct Cleanup {
        std::string name;
        ~Cleanup() { try { currant::Queue::remove(name); } catch (...) {} }
    } cleanup{name};
    init_queue(name);
    CHECK(json_raw(info_json(name), "name") == "\"" + name + "\"");
    Result r = run({"rm", name});
    INFO(r);
    CHECK(r.code == 0);
}

TEST_CASE("info inspects without attaching: an idle queue reports no participants", "[cli][info]") {
    // docs/cli.md: inspection commands do not register as participants.
    Name q;
    init_queue(q);
    const std::string json = info_json(q);
    INFO(json);
    CHECK(json_number(json, "participants") == 0);
}

TEST_CASE("info of a missing queue exits 1 saying there is no such queue", "[cli][info][errors]") {
    Name q;
    Result r = run({"info", q});
    INFO(r);
    CHECK(r.code == 1);
    check_one_error_line(r);
    CHECK(contains(r.err, "no such queue"));
    CHECK(contains(r.err, q.str()));
}

// ================================================================ enqueue

TEST_CASE("enqueue prints a job id and stats shows it queued", "[cli][enqueue][stats]") {
    Name q;
    init_queue(q);
    CHECK(stat_of(stats_json(q), "e", "queued") == 0);

    const std::string id = enqueue(q, "e", "hello");
    CHECK(id != "0");

    const std::string json = stats_json(q);
    INFO(json);
    CHECK(json_raw(json, "queue") == "\"" + q.str() + "\"");
    CHECK(stat_of(json, "e", "queued") == 1);
    CHECK(stat_of(json, "e", "enqueued") == 1);
    CHECK(stat_of(json, "e", "delayed") == 0);
    CHECK(stat_of(json, "e", "picked") == 0);
    CHECK(json_raw(json, "durability", "{\"name\": \"e\"") == std::string("\"memory\""));
    // --interval 0: one sample, no rates.
    CHECK_FALSE(contains(json, "enqueue_rate"));
    CHECK_FALSE(contains(json, "interval_seconds"));
    CHECK(json_number(info_json(q), "free_slots") == 63);
}

TEST_CASE("enqueue gives each job its own id", "[cli][enqueue]") {
    Name q;
    init_queue(q);
    const std::string a = enqueue(q, "e");
    const std::string b = enqueue(q, "e");
    CHECK(a != b);
    CHECK(stat_of(stats_json(q), "e", "queued") == 2);
}

TEST_CASE("enqueue to an unknown entrypoint exits 1 naming it and leaves the queued jobs intact",
          "[cli][enqueue][errors]") {
    Name q;
    init_queue(q);
    const std::string id1 = enqueue(q, "e");
    const std::string id2 = enqueue(q, "e");

    Result r = run({"enqueue", q, "no-such-entrypoint", "payload"});
    INFO(r);
    CHECK(r.code == 1);
    check_one_error_line(r);
    CHECK(contains(r.err, "'no-such-entrypoint'"));
    CHECK(contains(r.err, q.str()));
    CHECK(r.out.empty());

    const std::string json = stats_json(q);
    INFO(json);
    CHECK(stat_of(json, "e", "queued") == 2);
    CHECK(stat_of(json, "e", "enqueued") == 2);
    CHECK_FALSE(contains(json, "no-such-entrypoint"));  // enqueue never declares one
    CHECK(status_row(q, id1)[1] == "queued");
    CHECK(status_row(q, id2)[1] == "queued");
}

TEST_CASE("an oversized payload exits 1 naming both sizes and leaves the queued jobs intact",
          "[cli][enqueue][errors]") {
    Name q;
    init_queue(q, {"--payload-bytes", "32", "--entrypoint", "e"});
    const std::string id = enqueue(q, "e", std::string(32, 'p'));  // exactly the capacity fits

    Result r = run({"enqueue", q, "e", std::string(33, 'p')});
    INFO(r);
    CHECK(r.code == 1);
    check_one_error_line(r);
    CHECK(contains(r.err, "33"));
    CHECK(contains(r.err, "32"));
    CHECK(contains(r.err, "'e'"));
    CHECK(r.out.empty());

    const std::string json = stats_json(q);
    INFO(json);
    CHECK(stat_of(json, "e", "queued") == 1);
    CHECK(stat_of(json, "e", "enqueued") == 1);
    CHECK(status_row(q, id)[1] == "queued");
}

TEST_CASE("enqueue --stdin takes the payload from standard input, within the payload bytes",
          "[cli][enqueue]") {
    Name q;
    init_queue(q, {"--payload-bytes", "16", "--entrypoint", "e"});
    Result ok = run({"enqueue", q, "e", "--stdin"}, std::string(16, 's'));
    INFO(ok);
    CHECK(ok.code == 0);
    CHECK(is_decimal(lines_of(ok.out).at(0)));

    Result big = run({"enqueue", q, "e", "--stdin"}, std::string(17, 's'));
    INFO(big);
    CHECK(big.code == 1);
    check_one_error_line(big);
    CHECK(contains(big.err, "17"));
    CHECK(contains(big.err, "16"));
    CHECK(stat_of(stats_json(q), "e", "queued") == 1);
}

TEST_CASE("enqueue --file of a missing file exits 1 naming the file", "[cli][enqueue][errors]") {
    Name q;
    init_queue(q);
    const std::string path = "/nonexistent-dir-for-currant-test/" + q.str();
    Result r = run({"enqueue", q, "e", "--file", path});
    INFO(r);
    CHECK(r.code == 1);
    check_one_error_line(r);
    CHECK(contains(r.err, path));
    CHECK(stat_of(stats_json(q), "e", "enqueued") == 0);
}

TEST_CASE("a payload starting with '-' is a usage error unless it follows --", "[cli][enqueue]") {
    Name q;
    init_queue(q);
    Result bad = run({"enqueue", q, "e", "-dash"});
    INFO(bad);
    CHECK(bad.code == 2);
    check_one_error_line(bad);
    CHECK(stat_of(stats_json(q), "e", "enqueued") == 0);

    Result ok = run({"enqueue", q, "e", "--", "-dash"});
    INFO(ok);
    CHECK(ok.code == 0);
    CHECK(stat_of(stats_json(q), "e", "queued") == 1);
}

TEST_CASE("enqueue --delay counts the job as delayed, not queued", "[cli][enqueue][stats]") {
    Name q;
    init_queue(q);
    Result r = run({"enqueue", q, "e", "later", "--delay", "3600"});
    INFO(r);
    REQUIRE(r.code == 0);
    const std::string json = stats_json(q);
    INFO(json);
    CHECK(stat_of(json, "e", "delayed") == 1);
    CHECK(stat_of(json, "e", "queued") == 0);
    CHECK(stat_of(json, "e", "enqueued") == 1);
    CHECK(status_row(q, lines_of(r.out).at(0))[1] == "queued");
}

TEST_CASE("enqueue --count N prints N distinct ids, one per line", "[cli][enqueue]") {
    Name q;
    init_queue(q);
    Result r = run({"enqueue", q, "e", "copy", "--count", "40"});
    INFO(r);
    REQUIRE(r.code == 0);
    auto ids = lines_of(r.out);
    CHECK(ids.size() == 40);
    CHECK(std::all_of(ids.begin(), ids.end(), is_decimal));
    std::sort(ids.begin(), ids.end());
    CHECK(std::unique(ids.begin(), ids.end()) == ids.end());
    CHECK(stat_of(stats_json(q), "e", "queued") == 40);
}

TEST_CASE("enqueue --count into a queue that fills up prints the ids enqueued so far, then one error",
          "[cli][enqueue][errors]") {
    Name q;
    Result init = run({"init", q, "--slots", "8", "--log-capacity", "16", "--entrypoints", "2", "--entrypoint", "e"});
    REQUIRE(init.code == 0);
    Result r = run({"enqueue", q, "e", "copy", "--count", "20"});
    INFO(r);
    CHECK(r.code == 1);
    check_one_error_line(r);
    CHECK(contains(r.err, q.str()));
    CHECK(contains(r.err, "arena full"));
    CHECK(contains(r.err, " 8"));  // names the limit: the queue's 8 slots
    auto ids = lines_of(r.out);
    CHECK(ids.size() == 8);
    CHECK(std::all_of(ids.begin(), ids.end(), is_decimal));
    CHECK(stat_of(stats_json(q), "e", "queued") == 8);
}

// ================================================================ status / cancel

TEST_CASE("status of an enqueued id says queued, of an unknown id says unknown", "[cli][status]") {
    Name q;
    init_queue(q);
    const std::string id = enqueue(q, "e");
    const std::string unknown = "987654321";

    Result r = run({"status", q, id, unknown});
    INFO(r);
    REQUIRE(r.code == 0);
    CHECK(r.err.empty());
    auto lines = lines_of(r.out);
    REQUIRE(lines.size() == 2);
    CHECK(words_of(lines[0]) == std::vector<std::string>{id, "queued", "e", "0"});
    CHECK(words_of(lines[1]) == std::vector<std::string>{unknown, "unknown", "-", "-"});
    // Aligned columns: the STATUS column starts at the same offset on both lines.
    CHECK(lines[0].find("queued") == lines[1].find("unknown"));
}

TEST_CASE("status of a missing queue exits 1 saying there is no such queue", "[cli][status][errors]") {
    Name q;
    Result r = run({"status", q, "1"});
    INFO(r);
    CHECK(r.code == 1);
    check_one_error_line(r);
    CHECK(contains(r.err, "no such queue"));
}

TEST_CASE("cancel of a queued job prints canceled, then status says canceled", "[cli][cancel][status]") {
    Name q;
    init_queue(q);
    const std::string id = enqueue(q, "e");
    const std::string other = enqueue(q, "e");

    Result r = run({"cancel", q, id});
    INFO(r);
    CHECK(r.code == 0);
    CHECK(r.err.empty());
    CHECK(r.out == id + " canceled\n");

    CHECK(status_row(q, id)[1] == "canceled");
    CHECK(status_row(q, other)[1] == "queued");
    const std::string json = stats_json(q);
    CHECK(stat_of(json, "e", "canceled") == 1);
    CHECK(stat_of(json, "e", "queued") == 1);
}

TEST_CASE("cancel of an unknown or finished id exits 1 but still cancels the other ids", "[cli][cancel][errors]") {
    Name q;
    init_queue(q);
    const std::string a = enqueue(q, "e");
    const std::string b = enqueue(q, "e");
    const std::string unknown = "987654321";

    Result r = run({"cancel", q, a, unknown, b});
    INFO(r);
    CHECK(r.code == 1);
    check_one_error_line(r);
    CHECK(contains(r.err, unknown));
    CHECK(r.out == a + " canceled\n" + b + " canceled\n");
    CHECK(status_row(q, a)[1] == "canceled");
    CHECK(status_row(q, b)[1] == "canceled");

    // Canceling again: it is no longer queued.
    Result again = run({"cancel", q, a});
    INFO(again);
    CHECK(again.code == 1);
    check_one_error_line(again);
    CHECK(contains(again.err, "canceled"));
    CHECK(contains(again.err, a));
}

TEST_CASE("a picked job: cancel prints requested, the holder sees it, and it ends canceled",
          "[cli][cancel][status]") {
    Name q;
    init_queue(q);
    const std::string id = enqueue(q, "e");

    auto consumer = currant::Queue::open(q.str());
    const currant::EntrypointId ep = consumer.entrypoint("e");
    currant::Job job;
    REQUIRE(consumer.dequeue(std::span(&ep, 1), std::span(&job, 1), 1s) == 1);
    REQUIRE(std::to_string(job.handle.id) == id);

    auto row = status_row(q, id);
    CHECK(row[1] == "picked");
    CHECK(row[3] == "1");
    CHECK_FALSE(consumer.cancel_requested(job.handle));

    Result r = run({"cancel", q, id});
    INFO(r);
    CHECK(r.code == 0);
    CHECK(r.err.empty());
    CHECK(r.out == id + " requested (running: its worker was told to stop)\n");
    CHECK(consumer.cancel_requested(job.handle));
    CHECK(status_row(q, id)[1] == "picked"); // until the holder acknowledges

    consumer.ack_canceled(job.handle);
    CHECK(status_row(q, id)[1] == "canceled");
    const std::string json = stats_json(q);
    CHECK(stat_of(json, "e", "successful") == 0);
    CHECK(stat_of(json, "e", "canceled") == 1);

    Result again = run({"cancel", q, id});
    INFO(again);
    CHECK(again.code == 1);
    check_one_error_line(again);
    CHECK(contains(again.err, "already finished"));
}

TEST_CASE("cancel of a picked job whose handler completes anyway: it ends successful", "[cli][cancel][status]") {
    Name q;
    init_queue(q);
    const std::string id = enqueue(q, "e");
    auto consumer = currant::Queue::open(q.str());
    const currant::EntrypointId ep = consumer.entrypoint("e");
    currant::Job job;
    REQUIRE(consumer.dequeue(std::span(&ep, 1), std::span(&job, 1), 1s) == 1);
    Result r = run({"cancel", q, id});
    INFO(r);
    CHECK(r.code == 0);
    CHECK(contains(r.out, id + " requested"));
    consumer.ack(job.handle);
    CHECK(status_row(q, id)[1] == "successful");
    const std::string json = stats_json(q);
    CHECK(stat_of(json, "e", "successful") == 1);
    CHECK(stat_of(json, "e", "canceled") == 0);
}

TEST_CASE("cancel reports canceled, requested and not cancelable per id in order", "[cli][cancel]") {
    Name q;
    init_queue(q);
    const std::string running = enqueue(q, "e");
    auto consumer = currant::Queue::open(q.str());
    const currant::EntrypointId ep = consumer.entrypoint("e");
    currant::Job job;
    REQUIRE(consumer.dequeue(std::span(&ep, 1), std::span(&job, 1), 1s) == 1);
    const std::string queued = enqueue(q, "e");
    Result r = run({"cancel", q, queued, running, "987654321"});
    INFO(r);
    CHECK(r.code == 1);
    CHECK(r.out == queued + " canceled\n" + running + " requested (running: its worker was told to stop)\n");
    check_one_error_line(r);
    CHECK(contains(r.err, "987654321 not cancelable: no such job"));
    consumer.ack_canceled(job.handle);
}

TEST_CASE("cancel with a bad id among good ones is a usage error and cancels nothing", "[cli][cancel][errors]") {
    Name q;
    init_queue(q);
    const std::string id = enqueue(q, "e");
    for (const std::string bad : {"0", "9223372036854775808", "12x", "-3"}) {
        INFO(bad);
        Result r = run({"cancel", q, id, bad});
        INFO(r);
        CHECK(r.code == 2);
        check_one_error_line(r);
        CHECK(contains(r.err, bad));
        CHECK(r.out.empty());
        CHECK(status_row(q, id)[1] == "queued");
    }
}

// ================================================================ declare

TEST_CASE("declare without --durability keeps an existing entrypoint's durability", "[cli][declare]") {
    Name q;
    init_queue(q, {"--entrypoint", "e:async"});
    Result r = run({"declare", q, "e", "--lease", "2", "--max-attempts", "3"});
    INFO(r);
    CHECK(r.code == 0);
    CHECK(contains(r.out, "durability async"));
    CHECK(json_raw(stats_json(q), "durability", "{\"name\": \"e\"") == std::string("\"async\""));
}

TEST_CASE("declare adds an entrypoint that enqueue can then use", "[cli][declare][enqueue]") {
    Name q;
    init_queue(q, {});
    Result before = run({"enqueue", q, "later", "x"});
    CHECK(before.code == 1);
    Result r = run({"declare", q, "later", "--durability", "memory"});
    INFO(r);
    REQUIRE(r.code == 0);
    enqueue(q, "later");
    CHECK(stat_of(stats_json(q), "later", "queued") == 1);
}

// ================================================================ doctor / rm

TEST_CASE("doctor on a healthy queue prints sound and exits 0", "[cli][doctor]") {
    Name q;
    init_queue(q);
    enqueue(q, "e");
    Result r = run({"doctor", q});
    INFO(r);
    CHECK(r.code == 0);
    CHECK(r.out == "sound\n");
    CHECK(r.err.empty());
}

TEST_CASE("doctor requeues a job whose lease expired and says so", "[cli][doctor]") {
    Name q;
    init_queue(q);
    Result d = run({"declare", q, "e", "--lease", "0.05"});
    REQUIRE(d.code == 0);
    const std::string id = enqueue(q, "e");

    auto consumer = currant::Queue::open(q.str());
    const currant::EntrypointId ep = consumer.entrypoint("e");
    currant::Job job;
    REQUIRE(consumer.dequeue(std::span(&ep, 1), std::span(&job, 1), 1s) == 1);
    std::this_thread::sleep_for(200ms);

    Result r = run({"doctor", q});
    INFO(r);
    CHECK(r.code == 0);
    CHECK(contains(r.out, "requeued 1 job(s) with expired leases"));
    CHECK(contains(r.out, "sound\n"));
    auto row = status_row(q, id);
    CHECK(row[1] == "queued");
    CHECK(row[3] == "1");
}

TEST_CASE("doctor reaps a dead participant and says so", "[cli][doctor]") {
    Name q;
    init_queue(q);
    // A producer that dies while attached (SIGKILL: no chance to unregister).
    const std::string name = q.str();
    const pid_t child = currant::testing::fork_child([&name] {
        auto producer = currant::Queue::open(name);
        producer.enqueue(producer.entrypoint("e"), currant::as_payload("orphan"));
        ::raise(SIGKILL);
    });
    REQUIRE(currant::testing::wait_child(child) == 128 + SIGKILL);

    Result r = run({"doctor", q});
    INFO(r);
    CHECK(r.code == 0);
    CHECK(contains(r.out, "reaped 1 dead participant(s)"));
    CHECK(contains(r.out, "sound\n"));
    // The dead producer's job is still there; nobody is attached any more.
    CHECK(stat_of(stats_json(q), "e", "queued") == 1);
    CHECK(currant::Queue::open(name).info().participants == 0);
}

TEST_CASE("rm removes the queue: info afterwards exits 1 saying there is no such queue", "[cli][rm]") {
    Name q;
    init_queue(q);
    enqueue(q, "e");
    Result r = run({"rm", q});
    INFO(r);
    CHECK(r.code == 0);
    CHECK(r.err.empty());
    CHECK(contains(r.out, q.str()));
    CHECK_FALSE(segment_exists(q));

    Result info = run({"info", q});
    INFO(info);
    CHECK(info.code == 1);
    check_one_error_line(info);
    CHECK(contains(info.err, "no such queue"));
    CHECK(contains(info.err, q.str()));
}

TEST_CASE("rm of a missing queue exits 1 naming it", "[cli][rm][errors]") {
    Name q;
    Result r = run({"rm", q});
    INFO(r);
    CHECK(r.code == 1);
    check_one_error_line(r);
    CHECK(contains(r.err, q.str()));
    CHECK(r.out.empty());
}

TEST_CASE("a process still attached when rm runs is told the queue was retired", "[cli][rm]") {
    Name q;
    init_queue(q);
    auto producer = currant::Queue::open(q.str());
    const currant::EntrypointId ep = producer.entrypoint("e");
    producer.enqueue(ep, currant::as_payload("before"));
    Result r = run({"rm", q});
    INFO(r);
    REQUIRE(r.code == 0);
    try {
        producer.enqueue(ep, currant::as_payload("after"));
        FAIL("enqueue on a removed queue succeeded");
    } catch (const currant::Error& error) {
        CHECK(error.code() == currant::Errc::segment_retired);
    }
}

// ================================================================ stats

TEST_CASE("stats --watch --count N prints N tables, each with rates, one after another when not a terminal",
          "[cli][stats][watch]") {
    Name q;
    init_queue(q);
    enqueue(q, "e");
    Result r = run({"stats", q, "--watch", "--interval", "0.05", "--count", "3"});
    INFO(r);
    REQUIRE(r.code == 0);
    std::size_t tables = 0;
    for (const std::string& line : lines_of(r.out)) {
        if (words_of(line).empty() || words_of(line)[0] != "entrypoint") continue;
        ++tables;
        CHECK(contains(line, "completed/s"));
    }
    CHECK(tables == 3);
    CHECK_FALSE(contains(r.out, "\x1b[")); // no screen control codes into a pipe
}

TEST_CASE("stats --watch --json prints one JSON object per line per refresh", "[cli][stats][watch]") {
    Name q;
    init_queue(q);
    enqueue(q, "e");
    enqueue(q, "e");
    Result r = run({"stats", q, "--watch", "--json", "--interval", "0.05", "--count", "2"});
    INFO(r);
    REQUIRE(r.code == 0);
    const auto lines = lines_of(r.out);
    REQUIRE(lines.size() == 2);
    for (const std::string& line : lines) {
        CHECK(line.starts_with("{\"queue\": "));
        CHECK(json_number(line, "queued", "{\"name\": \"e\"") == 2);
        CHECK(json_raw(line, "completion_rate", "{\"name\": \"e\"").has_value());
    }
}

TEST_CASE("stats --watch without an interval is a usage error naming --watch", "[cli][stats][watch][errors]") {
    Name q;
    init_queue(q);
    Result r = run({"stats", q, "--watch", "--interval", "0"});
    INFO(r);
    CHECK(r.code == 2);
    check_one_error_line(r);
    CHECK(contains(r.err, "--watch"));
}

TEST_CASE("stats with an interval samples twice and adds rates", "[cli][stats]") {
    Name q;
    init_queue(q);
    enqueue(q, "e");
    Result r = run({"stats", q, "--interval", "0.1", "--json"});
    INFO(r);
    REQUIRE(r.code == 0);
    CHECK(json_raw(r.out, "interval_seconds").has_value());
    CHECK(json_raw(r.out, "enqueue_rate", "{\"name\": \"e\"").has_value());
    CHECK(json_raw(r.out, "completion_rate", "{\"name\": \"e\"").has_value());

    Result table = run({"stats", q, "--interval", "0"});
    INFO(table);
    REQUIRE(table.code == 0);
    auto lines = lines_of(table.out);
    REQUIRE(lines.size() == 2);
    CHECK(words_of(lines[0]).at(0) == "entrypoint");
    CHECK_FALSE(contains(lines[0], "enqueued/s"));
    auto row = words_of(lines[1]);
    REQUIRE(row.size() >= 3);
    CHECK(row[0] == "e");
    CHECK(row[1] == "memory");
    CHECK(row[2] == "1");
}

// ================================================================ demo

TEST_CASE("demo with --jobs 20000 exits 0, says every job was consumed exactly once, and removes its queue",
          "[cli][demo]") {
    Name q;
    Proc proc({"demo", "--name", q, "--jobs", "20000"});
    Result r = proc.wait(100s);
    INFO(r);
    CHECK(r.code == 0);
    CHECK(r.err.empty());
    CHECK(contains(r.out, "exactly once"));
    CHECK(contains(r.out, "20000 enqueued"));
    CHECK_FALSE(segment_exists(q));
}

// ================================================================ the error contract

TEST_CASE("every error goes to stderr as exactly one line starting \"currant: \"", "[cli][errors]") {
    Name q;
    init_queue(q);
    Name missing;
    const std::vector<std::vector<std::string>> commands = {
        {},                                          // no subcommand
        {"frobnicate"},                              // unknown subcommand
        {"init"},                                    // missing NAME
        {"init", q},                                 // already exists
        {"init", missing, "--entrypoint", "e:bogus"}, // bad durability
        {"init", missing, "--slots", "0"},           // refused by the queue
        {"init", missing, "--no-such-option"},
        {"info", missing},
        {"info", q, "extra"},
        {"enqueue", q},                              // missing ENTRYPOINT
        {"enqueue", q, "nope", "x"},
        {"enqueue", q, "e", "x", "--stdin"},         // excludes
        {"enqueue", q, "e", "--count", "0"},
        {"enqueue", missing, "e", "x"},
        {"status", q},                               // missing ID
        {"status", missing, "1"},
        {"cancel", q, "424242"},
        {"declare", q, "e", "--durability", "forever"},
        {"declare", q, "e", "--lease", "0"},
        {"declare", q, "e", "--max-attempts", "0"},
        {"declare", q, std::string(64, 'x')},        // entrypoint name too long
        {"declare", missing, "e"},
        {"doctor", missing},
        {"rm", missing},
        {"stats", missing},
        {"stats", q, "--interval"},                  // missing value
        {"demo", "--name", "bad/name", "--jobs", "10"},
        {"demo", "--name", missing, "--producers", "0"},
    };
    for (const auto& args : commands) {
        std::string command;
        for (const auto& a : args) command += a + " ";
        INFO("currant " << command);
        Result r = run(args);
        INFO(r);
        CHECK((r.code == 1 || r.code == 2));
        check_one_error_line(r);
        CHECK(r.out.empty());
    }
    CHECK_FALSE(segment_exists(missing));
}

TEST_CASE("usage errors exit 2; errors the queue reports exit 1", "[cli][errors]") {
    Name q;
    init_queue(q);
    CHECK(run({}).code == 2);
    CHECK(run({"frobnicate"}).code == 2);
    CHECK(run({"init"}).code == 2);
    CHECK(run({"enqueue", q, "e", "x", "--stdin"}).code == 2);
    CHECK(run({"declare", q, "e", "--lease", "0"}).code == 2);
    CHECK(run({"enqueue", q, "nope", "x"}).code == 1);
    CHECK(run({"info", q.str() + "-missing"}).code == 1);
}

TEST_CASE("--help prints usage on stdout and exits 0", "[cli]") {
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"--help"}, std::vector<std::string>{"enqueue", "--help"}}) {
        Result r = run(args);
        INFO(r);
        CHECK(r.code == 0);
        CHECK(r.err.empty());
        CHECK(contains(r.out, "Usage"));
    }
}

// ---------------------------------------------------------------- schedules

TEST_CASE("schedules add, list and rm; bad input exits with one line naming the problem", "[cli][schedules]") {
    Name q;
    init_queue(q);
    Result empty = run({"schedules", "list", q});
    INFO(empty);
    CHECK(empty.code == 0);
    CHECK(empty.out == "no schedules\n");

    Result added = run({"schedules", "add", q, "nightly", "0 30 2 * * *", "e", "report", "--priority", "4",
                        "--missed", "catch_up", "--catch-up-max", "3"});
    INFO(added);
    REQUIRE(added.code == 0);
    CHECK(contains(added.out, "next tick "));
    CHECK(contains(added.out, "T02:30:00.000"));

    Result list = run({"schedules", "list", q});
    INFO(list);
    CHECK(list.code == 0);
    CHECK(contains(list.out, "nightly"));
    CHECK(contains(list.out, "0 30 2 * * *"));
    CHECK(contains(list.out, "catch_up(3)"));
    Result json = run({"schedules", "list", q, "--json"});
    INFO(json);
    CHECK(contains(json.out, "\"name\": \"nightly\""));
    CHECK(contains(json.out, "\"priority\": 4"));
    CHECK(contains(json.out, "\"payload_bytes\": 6"));

    Result bad = run({"schedules", "add", q, "broken", "61 * * * *", "e"});
    INFO(bad);
    CHECK(bad.code == 1);
    check_one_error_line(bad);
    CHECK(contains(bad.err, "minute field '61'"));
    Result duplicate = run({"schedules", "add", q, "nightly", "@daily", "e"});
    INFO(duplicate);
    CHECK(duplicate.code == 1);
    check_one_error_line(duplicate);
    CHECK(contains(duplicate.err, "exists already"));
    Result policy = run({"schedules", "add", q, "p", "@daily", "e", "--missed", "never"});
    INFO(policy);
    CHECK(policy.code == 2);
    check_one_error_line(policy);
    Result unknown_ep = run({"schedules", "add", q, "u", "@daily", "nope"});
    INFO(unknown_ep);
    CHECK(unknown_ep.code == 1);
    CHECK(contains(unknown_ep.err, "nope"));

    Result rm_unknown = run({"schedules", "rm", q, "nope"});
    INFO(rm_unknown);
    CHECK(rm_unknown.code == 1);
    check_one_error_line(rm_unknown);
    CHECK(contains(rm_unknown.err, "unknown schedule 'nope'"));
    Result rm = run({"schedules", "rm", q, "nightly"});
    INFO(rm);
    CHECK(rm.code == 0);
    CHECK(run({"schedules", "list", q}).out == "no schedules\n");
}

// ---------------------------------------------------------------- dedupe keys (docs/dedupe.md)

TEST_CASE("enqueue --dedupe-key: a held key prints the holder's id and says it skipped", "[cli][enqueue][dedupe]") {
    Name name;
    init_queue(name);
    Result first = run({"enqueue", name, "e", "one", "--dedupe-key", "order-1"});
    INFO(first);
    REQUIRE(first.code == 0);
    CHECK(first.err.empty());
    const auto ids = lines_of(first.out);
    REQUIRE(ids.size() == 1);
    REQUIRE(is_decimal(ids[0]));
    Result again = run({"enqueue", name, "e", "two", "--dedupe-key", "order-1"});
    INFO(again);
    REQUIRE(again.code == 0);
    CHECK(lines_of(again.out) == ids);
    check_one_error_line(again);
    CHECK(contains(again.err, "skipped: dedupe key 'order-1' is held by job " + ids[0]));
    CHECK(stat_of(stats_json(name), "e", "queued") == 1);
}

TEST_CASE("enqueue --on-duplicate refuse exits 3 naming the key and the holder", "[cli][enqueue][dedupe]") {
    Name name;
    init_queue(name);
    Result first = run({"enqueue", name, "e", "--dedupe-key", "k", "--on-duplicate", "refuse"});
    INFO(first);
    REQUIRE(first.code == 0);
    const std::string id = lines_of(first.out).at(0);
    Result refused = run({"enqueue", name, "e", "--dedupe-key", "k", "--on-duplicate", "refuse"});
    INFO(refused);
    CHECK(refused.code == 3);
    CHECK(refused.out.empty());
    check_one_error_line(refused);
    CHECK(contains(refused.err, "dedupe key 'k' is held by job " + id));
    CHECK(stat_of(stats_json(name), "e", "queued") == 1);
    // Once the job is gone the key is free again.
    Result cancel = run({"cancel", name, id});
    INFO(cancel);
    REQUIRE(cancel.code == 0);
    Result after = run({"enqueue", name, "e", "--dedupe-key", "k", "--on-duplicate", "refuse"});
    INFO(after);
    CHECK(after.code == 0);
    CHECK(lines_of(after.out).at(0) != id);
}

TEST_CASE("enqueue with a bad dedupe key or policy is refused and nothing queued is lost",
          "[cli][enqueue][dedupe][errors]") {
    Name name;
    init_queue(name);
    const std::string kept = enqueue(name, "e");
    struct Bad {
        std::vector<std::string> args;
        int code;
        std::string says;
    };
    for (const Bad& bad : {Bad{{"--dedupe-key", ""}, 1, "empty"},
                           Bad{{"--dedupe-key", std::string(129, 'k')}, 1, "129 bytes"},
                           Bad{{"--dedupe-key", "tab\there"}, 1, "control character (0x09)"},
                           Bad{{"--dedupe-key", "k", "--on-duplicate", "ignore"}, 2, "on-duplicate"},
                           Bad{{"--dedupe-key", "k", "--count", "2"}, 2, "cannot be used with --count 2"}}) {
        Result r = run(std::vector<std::string>{"enqueue", name, "e"} + bad.args);
        INFO(r);
        CHECK(r.code == bad.code);
        check_one_error_line(r);
        CHECK(contains(r.err, bad.says));
    }
    CHECK(status_row(name, kept).at(1) == "queued");
    CHECK(stat_of(stats_json(name), "e", "queued") == 1);
}

TEST_CASE("stats gives wait and run p50 and p99 in ms from the latency histograms, null before any job",
          "[cli][stats][latency]") {
    Name q;
    init_queue(q);
    std::string json = stats_json(q);
    CHECK(json_raw(json, "wait_p99_ms", "{\"name\": \"e\"") == std::string("null"));
    CHECK(json_raw(json, "run_p50_ms", "{\"name\": \"e\"") == std::string("null"));

    enqueue(q, "e", "job");
    {
        currant::Queue queue = currant::Queue::open(q.str());
        const currant::EntrypointId ep = queue.entrypoint("e");
        currant::Job job;
        REQUIRE(queue.dequeue(std::span(&ep, 1), std::span(&job, 1), std::chrono::seconds(5)) == 1);
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        queue.ack(job.handle);
    }
    json = stats_json(q);
    INFO(json);
    const auto run_p99 = json_raw(json, "run_p99_ms", "{\"name\": \"e\"");
    const auto run_p50 = json_raw(json, "run_p50_ms", "{\"name\": \"e\"");
    const auto wait_p50 = json_raw(json, "wait_p50_ms", "{\"name\": \"e\"");
    REQUIRE(run_p99);
    REQUIRE(wait_p50);
    CHECK(run_p50 == run_p99);               // one job: one bucket
    CHECK(std::stod(*run_p99) >= 50.0);      // held 30 ms: the bucket bound above it
    CHECK(std::stod(*wait_p50) > 0.0);

    Result table = run({"stats", q.str(), "--interval", "0"});
    INFO(table);
    REQUIRE(table.code == 0);
    CHECK(contains(table.out, "wait p99 ms"));
    CHECK(contains(table.out, "run p99 ms"));
}
