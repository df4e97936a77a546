// Shared helpers for the benchmark floors in bench/floors/.
//
// The floors are standalone programs (no currant code) that measure what the
// hardware and kernel allow between two processes on this host, so the
// numbers of currant's own benchmarks can be read against them. Each floor
// forks one child, shares memory with it through an anonymous MAP_SHARED
// mapping, prints one human-readable result line, or one JSON object with
// --json.
//
// Process lifetime rules used by every floor:
//   - the child gets PR_SET_PDEATHSIG(SIGKILL): it never outlives the parent;
//   - the parent's SIGCHLD handler ends the parent at once if the child dies
//     abnormally (signal or non-zero exit), so nobody spins or blocks on a
//     dead peer;
//   - both processes arm alarm(--timeout) as a backstop against a hang.
// A floor may register a cleanup function (for example to unlink a named
// queue); it runs on these abnormal exits too, and must be async-signal-safe.
#pragma once

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace floors {

// ---------------------------------------------------------------- time

inline std::int64_t now_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

inline void sleep_ns(std::int64_t ns) noexcept {
    timespec req{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    timespec rem{};
    while (nanosleep(&req, &rem) != 0 && errno == EINTR) req = rem;
}

// Tells the CPU we are in a spin-wait loop (lets the sibling hyper-thread or
// the peer's cache-line request through sooner).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#else
    asm volatile("" ::: "memory");
#endif
}

// ---------------------------------------------------------------- arguments

struct IntOption {
    const char* name;    // without the leading "--"
    std::uint64_t value; // default on input, parsed value on output
    std::uint64_t min;
    const char* help;
};

struct CommonOptions {
    bool json = false;
    bool pin = false;
    std::uint64_t timeout_s = 600;
};

[[noreturn]] inline void usage(const char* prog, const char* summary, std::vector<IntOption>& opts,
                               int code) {
    std::FILE* out = code == 0 ? stdout : stderr;
    std::fprintf(out, "usage: %s [options]\n%s\n\noptions:\n", prog, summary);
    for (const auto& o : opts)
        std::fprintf(out, "  --%-14s N  %s (default %" PRIu64 ")\n", o.name, o.help, o.value);
    std::fprintf(out,
                 "  --timeout        S  give up after S seconds, 0 = never (default 600)\n"
                 "  --pin               pin the two processes to two different CPUs\n"
                 "  --json              print one JSON object instead of the text line\n"
                 "  --help              show this help\n");
    std::exit(code);
}

// Parses --json, --pin, --timeout S, --help and the floor's own integer
// options, given as "--name N" or "--name=N". Exits with status 2 on bad input.
inline CommonOptions parse_args(int argc, char** argv, const char* summary,
                                std::vector<IntOption>& opts) {
    CommonOptions common;
    const char* prog = argc > 0 ? argv[0] : "floor";
    auto parse_uint = [&](std::string_view name, const char* text, std::uint64_t min) {
        char* end = nullptr;
        errno = 0;
        unsigned long long v = std::strtoull(text, &end, 10);
        if (text[0] == '\0' || text[0] == '-' || *end != '\0' || errno != 0 || v < min) {
            std::fprintf(stderr, "%s: --%.*s needs an integer >= %" PRIu64 ", got '%s'\n", prog,
                         static_cast<int>(name.size()), name.data(), min, text);
            std::exit(2);
        }
        return static_cast<std::uint64_t>(v);
    };
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--json") { common.json = true; continue; }
        if (arg == "--pin") { common.pin = true; continue; }
        if (arg == "--help" || arg == "-h") usage(prog, summary, opts, 0);
        if (arg.substr(0, 2) != "--") {
            std::fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[i]);
            usage(prog, summary, opts, 2);
        }
        std::string_view name = arg.substr(2);
        const char* value = nullptr;
        if (auto eq = name.find('='); eq != std::string_view::npos) {
            value = argv[i] + 2 + eq + 1;
            name = name.substr(0, eq);
        }
        auto take_value = [&]() -> const char* {
            if (value != nullptr) return value;
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s: --%.*s needs a value\n", prog,
                             static_cast<int>(name.size()), name.data());
                std::exit(2);
            }
            return argv[++i];
        };
        if (name == "timeout") {
            common.timeout_s = parse_uint(name, take_value(), 0);
            continue;
        }
        auto it = std::find_if(opts.begin(), opts.end(),
                               [&](const IntOption& o) { return name == o.name; });
        if (it == opts.end()) {
            std::fprintf(stderr, "%s: unknown option '%s'\n", prog, argv[i]);
            usage(prog, summary, opts, 2);
        }
        it->value = parse_uint(name, take_value(), it->min);
    }
    return common;
}

// ---------------------------------------------------------------- shared memory

// Zero-filled anonymous MAP_SHARED mapping: inherited by fork, so both
// processes see the same pages (and shared futexes on it work across them).
inline void* map_shared(std::size_t bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        std::fprintf(stderr, "mmap(%zu bytes): %s\n", bytes, std::strerror(errno));
        std::exit(1);
    }
    return p;
}

template <class T>
T* map_shared_object() {
    static_assert(std::is_trivially_default_constructible_v<T>);
    return static_cast<T*>(map_shared(sizeof(T)));
}

// Start line shared by parent and child: the timed part begins only once the
// child has finished its setup. Lives in a map_shared_object().
struct StartLine {
    alignas(64) std::uint32_t child_ready; // child: store 1 (release); parent: load (acquire)
    alignas(64) std::uint32_t go;          // parent: store 1 (release); child: load (acquire)
    std::int64_t start_ns;                 // written by the parent before `go`

    // Child side: announce readiness, wait for the parent's go.
    void child_arrive_and_wait() noexcept {
        std::atomic_ref<std::uint32_t>(child_ready).store(1, std::memory_order_release);
        while (std::atomic_ref<std::uint32_t>(go).load(std::memory_order_acquire) == 0) cpu_relax();
    }
    // Parent side: wait for the child, take the start time, release the child.
    std::int64_t parent_release() noexcept {
        while (std::atomic_ref<std::uint32_t>(child_ready).load(std::memory_order_acquire) == 0)
            cpu_relax();
        start_ns = now_ns();
        std::atomic_ref<std::uint32_t>(go).store(1, std::memory_order_release);
        return start_ns;
    }
};
static_assert(std::atomic_ref<std::uint32_t>::is_always_lock_free);

// ---------------------------------------------------------------- processes

namespace detail {
inline volatile sig_atomic_t child_pid = 0;
inline void (*cleanup)() noexcept = nullptr;

inline void write_stderr(const char* msg) noexcept {
    std::size_t len = std::strlen(msg);
    while (len > 0) {
        ssize_t n = ::write(STDERR_FILENO, msg, len);
        if (n <= 0) break;
        msg += n;
        len -= static_cast<std::size_t>(n);
    }
}

[[noreturn]] inline void die_from_signal(const char* msg) noexcept {
    write_stderr(msg);
    if (cleanup != nullptr) cleanup();
    _exit(1);
}

inline void on_alarm(int) { die_from_signal("floor: timed out (see --timeout)\n"); }

inline void on_child(int) {
    int saved = errno;
    pid_t pid = child_pid;
    if (pid > 0) {
        siginfo_t info{};
        // WNOWAIT: only look; wait_child() reaps it later.
        if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            info.si_pid == pid && (info.si_code != CLD_EXITED || info.si_status != 0))
            die_from_signal("floor: child process died before finishing\n");
    }
    errno = saved;
}

inline void on_terminate(int) { die_from_signal("floor: interrupted\n"); }

inline void install(int sig, void (*handler)(int)) {
    struct sigaction sa{};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | (sig == SIGCHLD ? SA_NOCLDSTOP : 0);
    sigaction(sig, &sa, nullptr);
}

inline int nth_allowed_cpu(int n) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
        if (CPU_ISSET(cpu, &set) && n-- == 0) return cpu;
    return -1;
}

inline void pin_to(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        std::fprintf(stderr, "floor: warning: cannot pin to CPU %d: %s\n", cpu,
                     std::strerror(errno));
}
} // namespace detail

// Registers an async-signal-safe function run on abnormal exits.
inline void set_cleanup(void (*fn)() noexcept) { detail::cleanup = fn; }

// Arms the timeout and SIGINT/SIGTERM handling for the calling process.
inline void arm_watchdog(const CommonOptions& common) {
    detail::install(SIGALRM, detail::on_alarm);
    detail::install(SIGINT, detail::on_terminate);
    detail::install(SIGTERM, detail::on_terminate);
    alarm(static_cast<unsigned>(std::min<std::uint64_t>(common.timeout_s, 1u << 30)));
}

// The CPUs the parent and the child run on with --pin (-1: not pinned).
struct Placement {
    int parent_cpu = -1;
    int child_cpu = -1;
};

// Forks; the child runs fn() and exits with its return value. With --pin the
// parent and child are pinned to the first two CPUs this process may use.
template <class Fn>
pid_t spawn(const CommonOptions& common, Placement& where, Fn&& fn) {
    if (common.pin) {
        where.parent_cpu = detail::nth_allowed_cpu(0);
        where.child_cpu = detail::nth_allowed_cpu(1);
        if (where.child_cpu < 0) {
            std::fprintf(stderr, "floor: warning: fewer than 2 CPUs allowed, not pinning\n");
            where = Placement{};
        }
    }
    detail::install(SIGCHLD, detail::on_child);
    std::fflush(nullptr);
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0) {
        std::fprintf(stderr, "fork: %s\n", std::strerror(errno));
        std::exit(1);
    }
    if (pid == 0) {
        detail::install(SIGCHLD, SIG_DFL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1); // parent already gone
        detail::cleanup = nullptr;         // the parent owns cleanup
        arm_watchdog(common);
        detail::pin_to(where.child_cpu);
        int rc = fn();
        std::fflush(nullptr);
        _exit(rc);
    }
    detail::child_pid = pid;
    detail::pin_to(where.parent_cpu);
    return pid;
}

// Reaps the child; true if it exited with status 0.
inline bool wait_child(pid_t pid) {
    int status = 0;
    pid_t r;
    do r = waitpid(pid, &status, 0);
    while (r < 0 && errno == EINTR);
    detail::child_pid = 0;
    if (r != pid) {
        std::fprintf(stderr, "waitpid: %s\n", std::strerror(errno));
        return false;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
    if (WIFSIGNALED(status))
        std::fprintf(stderr, "floor: child killed by signal %d\n", WTERMSIG(status));
    else
        std::fprintf(stderr, "floor: child exited with status %d\n", WEXITSTATUS(status));
    return false;
}

// ---------------------------------------------------------------- output

// One JSON object on one line. Keys and string values are plain ASCII.
class JsonLine {
public:
    explicit JsonLine(const char* floor) { add("floor", floor); }
    JsonLine& add(const char* key, const char* value) {
        field(key);
        text_ += '"';
        text_ += value;
        text_ += '"';
        return *this;
    }
    JsonLine& add(const char* key, std::uint64_t value) {
        field(key);
        text_ += std::to_string(value);
        return *this;
    }
    JsonLine& add(const char* key, int value) {
        field(key);
        text_ += std::to_string(value);
        return *this;
    }
    JsonLine& add(const char* key, bool value) {
        field(key);
        text_ += value ? "true" : "false";
        return *this;
    }
    JsonLine& add(const char* key, double value, int decimals) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
        field(key);
        text_ += buf;
        return *this;
    }
    void print() const { std::printf("{%s}\n", text_.c_str()); }

private:
    void field(const char* key) {
        if (!text_.empty()) text_ += ", ";
        text_ += '"';
        text_ += key;
        text_ += "\": ";
    }
    std::string text_;
};

inline void add_placement(JsonLine& j, const Placement& where) {
    j.add("pinned", where.parent_cpu >= 0);
    if (where.parent_cpu >= 0) j.add("parent_cpu", where.parent_cpu).add("child_cpu", where.child_cpu);
}

inline const char* placement_text(const Placement& where) {
    static char buf[64];
    if (where.parent_cpu < 0) return "unpinned";
    std::snprintf(buf, sizeof buf, "pinned to CPUs %d,%d", where.parent_cpu, where.child_cpu);
    return buf;
}

} // namespace floors
