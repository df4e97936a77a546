// Floor: bare futex wake-up latency between two processes.
//
// The parent (waiter) sleeps in FUTEX_WAIT on a word of an anonymous shared
// mapping (a shared futex: no FUTEX_PRIVATE_FLAG, since the two processes
// have different mm's). The forked child (waker) takes a CLOCK_MONOTONIC
// timestamp, publishes it, flips the word and calls FUTEX_WAKE; the waiter
// records now - timestamp when it is running again. This is the least a
// consumer that really sleeps in the kernel can take to notice new work.
//
// The waker makes sure the waiter is really asleep before each wake: it waits
// until the waiter has published "about to sleep" for this sample, sleeps
// --sleep-us with nanosleep, and then checks /proc/<waiter>/stat shows the
// waiter in state S (it has nothing else to sleep in), sleeping again if not.
// A sample where the waiter nevertheless found the word already flipped (its
// FUTEX_WAIT never slept) is not counted, and reported as not_asleep.
//
// --wait-many 1 makes the waiter sleep the way currant's sleepers do: in
// futex_waitv on the word and two words nobody wakes (currant's death
// watches), with a 10 s deadline. The report splits the latency by the CPU
// the waiter woke on, with the p99 of each part: on this VM the rare
// millisecond wake-ups are those that land on the other, idle vCPU.
#include "floor_common.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/syscall.h>

#include <atomic>
#include <cmath>

namespace {

long futex(std::uint32_t* word, int op, std::uint32_t val) noexcept {
    return syscall(SYS_futex, word, op, val, nullptr, nullptr, 0);
}

// futex_waitv on `word` (expecting val) and two idle words, 10 s deadline:
// 0 after a wake of `word`, like futex() above.
long futex_wait_many(std::uint32_t* word, std::uint32_t val, std::uint32_t* idle) noexcept {
    futex_waitv waiters[3] = {};
    waiters[0].val = val;
    waiters[0].uaddr = reinterpret_cast<std::uintptr_t>(word);
    waiters[0].flags = FUTEX_32;
    for (int i = 1; i < 3; ++i) {
        waiters[i].val = 0;
        waiters[i].uaddr = reinterpret_cast<std::uintptr_t>(&idle[i - 1]);
        waiters[i].flags = FUTEX_32;
    }
    timespec deadline{};
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += 10;
    const long rc = syscall(SYS_futex_waitv, waiters, 3, 0, &deadline, CLOCK_MONOTONIC);
    return rc < 0 ? rc : 0;
}

struct Shared {
    floors::StartLine start;
    // Futex word: the number of the last sample the waker fired. Waker:
    // store (release) after `stamp_ns`, then FUTEX_WAKE. Waiter: load
    // (acquire), FUTEX_WAIT while it still holds the previous number.
    alignas(64) std::uint32_t fired;
    std::int64_t stamp_ns;  // waker: store (relaxed) before `fired`; waiter: read after acquiring `fired`
    std::int32_t waker_cpu; // same protocol as stamp_ns: the CPU the waker ran on
    std::uint32_t idle_words[2]; // --wait-many: always 0, never woken
    // Waiter: store (release) of sample i just before its FUTEX_WAIT; waker: load (acquire).
    alignas(64) std::uint32_t armed;
    // Written by the waker before it exits; read by the parent after reaping it.
    alignas(64) std::uint64_t woke_nobody;   // FUTEX_WAKE returned 0
    std::uint64_t extra_sleeps;              // /proc showed the waiter not asleep yet
    std::uint64_t proc_unreadable;           // /proc/<pid>/stat could not be read
};

using ARef = std::atomic_ref<std::uint32_t>;

// State letter of a process from /proc/<pid>/stat ("pid (comm) S ..."), or 0.
char process_state(int fd) noexcept {
    char buf[512];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return 0;
    buf[n] = '\0';
    const char* close = std::strrchr(buf, ')');
    return (close != nullptr && close[1] == ' ') ? close[2] : 0;
}

int waker(Shared* sh, std::uint32_t total, std::int64_t sleep_ns) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%ld/stat", static_cast<long>(getppid()));
    const int stat_fd = open(path, O_RDONLY | O_CLOEXEC);
    sh->start.child_arrive_and_wait();
    std::uint64_t woke_nobody = 0, extra_sleeps = 0, unreadable = 0;
    for (std::uint32_t i = 1; i <= total; ++i) {
        while (ARef(sh->armed).load(std::memory_order_acquire) != i) floors::cpu_relax();
        floors::sleep_ns(sleep_ns);
        // Give the waiter up to ~100 more sleeps to show up as asleep.
        for (int tries = 0; tries < 100; ++tries) {
            char st = stat_fd >= 0 ? process_state(stat_fd) : 0;
            if (st == 'S') break;
            if (st == 0) { ++unreadable; break; }
            ++extra_sleeps;
            floors::sleep_ns(sleep_ns);
        }
        const std::int64_t t = floors::now_ns();
        std::atomic_ref<std::int64_t>(sh->stamp_ns).store(t, std::memory_order_relaxed);
        std::atomic_ref<std::int32_t>(sh->waker_cpu).store(sched_getcpu(), std::memory_order_relaxed);
        ARef(sh->fired).store(i, std::memory_order_release);
        if (futex(&sh->fired, FUTEX_WAKE, 1) == 0) ++woke_nobody;
    }
    if (stat_fd >= 0) close(stat_fd);
    sh->woke_nobody = woke_nobody;
    sh->extra_sleeps = extra_sleeps;
    sh->proc_unreadable = unreadable;
    return 0;
}

// Nearest-rank percentile of sorted values.
double percentile(const std::vector<std::int64_t>& sorted, double p) {
    if (sorted.empty()) return 0;
    auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
    rank = std::clamp<std::size_t>(rank, 1, sorted.size());
    return static_cast<double>(sorted[rank - 1]);
}

} // namespace

int main(int argc, char** argv) {
    std::vector<floors::IntOption> opts{
        {"samples", 2000, 1, "wake-ups to measure"},
        {"warmup", 20, 0, "wake-ups done first and not measured"},
        {"sleep-us", 200, 1, "microseconds the waker sleeps before each wake"},
        {"wait-many", 0, 0, "1: sleep in futex_waitv on the word and two idle words with a 10 s deadline"},
    };
    const auto common = floors::parse_args(
        argc, argv,
        "Shared-futex wake-up latency between two processes: the time from the waker's "
        "timestamp just before FUTEX_WAKE to the sleeping waiter running again.",
        opts);
    const std::uint64_t samples = opts[0].value;
    const std::uint64_t warmup = opts[1].value;
    const std::int64_t sleep_ns = static_cast<std::int64_t>(opts[2].value) * 1000;
    const bool wait_many = opts[3].value != 0;
    if (samples + warmup > UINT32_MAX - 1) {
        std::fprintf(stderr, "floor_futex_wakeup: too many samples\n");
        return 2;
    }
    const auto total = static_cast<std::uint32_t>(samples + warmup);
    floors::arm_watchdog(common);

    auto* sh = floors::map_shared_object<Shared>();
    floors::Placement where;
    pid_t child = floors::spawn(common, where, [&] { return waker(sh, total, sleep_ns); });

    std::vector<std::int64_t> lat, lat_same_cpu, lat_other_cpu;
    lat.reserve(samples);
    std::uint64_t not_asleep = 0;
    sh->start.parent_release();
    for (std::uint32_t i = 1; i <= total; ++i) {
        ARef(sh->armed).store(i, std::memory_order_release); // "about to sleep"
        bool slept = false;
        while (ARef(sh->fired).load(std::memory_order_acquire) != i) {
            // Returns 0 after a wake (or spuriously), -1/EAGAIN if the word
            // already changed, -1/EINTR on a signal: all loop back.
            const long rc = wait_many ? futex_wait_many(&sh->fired, i - 1, sh->idle_words)
                                      : futex(&sh->fired, FUTEX_WAIT, i - 1);
            if (rc == 0) slept = true;
        }
        const std::int64_t now = floors::now_ns();
        const int cpu = sched_getcpu();
        const std::int64_t stamp = std::atomic_ref<std::int64_t>(sh->stamp_ns).load(std::memory_order_relaxed);
        const int waker_cpu = std::atomic_ref<std::int32_t>(sh->waker_cpu).load(std::memory_order_relaxed);
        if (i <= warmup) continue;
        if (!slept) { ++not_asleep; continue; }
        lat.push_back(now - stamp);
        (cpu == waker_cpu ? lat_same_cpu : lat_other_cpu).push_back(now - stamp);
    }
    if (!floors::wait_child(child)) return 1;
    if (lat.empty()) {
        std::fprintf(stderr, "floor_futex_wakeup: the waiter never slept; no samples\n");
        return 1;
    }

    std::sort(lat.begin(), lat.end());
    std::sort(lat_same_cpu.begin(), lat_same_cpu.end());
    std::sort(lat_other_cpu.begin(), lat_other_cpu.end());
    double sum = 0;
    for (auto v : lat) sum += static_cast<double>(v);
    const double us = 1e-3;
    const double p50 = percentile(lat, 0.50) * us, p90 = percentile(lat, 0.90) * us,
                 p99 = percentile(lat, 0.99) * us, max = static_cast<double>(lat.back()) * us,
                 min = static_cast<double>(lat.front()) * us,
                 mean = sum / static_cast<double>(lat.size()) * us;
    if (common.json) {
        floors::JsonLine j("futex_wakeup");
        j.add("samples", std::uint64_t{lat.size()}).add("sleep_us", opts[2].value);
        j.add("min_us", min, 2).add("p50_us", p50, 2).add("p90_us", p90, 2).add("p99_us", p99, 2);
        j.add("max_us", max, 2).add("mean_us", mean, 2);
        // Split by where the waiter ran once awake: on the waker's CPU (the
        // scheduler pulled it over) or on another CPU (woken from idle there).
        j.add("same_cpu_wakes", std::uint64_t{lat_same_cpu.size()});
        j.add("same_cpu_p50_us", percentile(lat_same_cpu, 0.5) * us, 2);
        j.add("other_cpu_wakes", std::uint64_t{lat_other_cpu.size()});
        j.add("other_cpu_p50_us", percentile(lat_other_cpu, 0.5) * us, 2);
        j.add("same_cpu_p99_us", percentile(lat_same_cpu, 0.99) * us, 2);
        j.add("other_cpu_p99_us", percentile(lat_other_cpu, 0.99) * us, 2);
        j.add("wait_many", std::uint64_t{wait_many ? 1u : 0u});
        j.add("not_asleep", not_asleep).add("woke_nobody", sh->woke_nobody);
        j.add("extra_sleeps", sh->extra_sleeps).add("proc_unreadable", sh->proc_unreadable);
        floors::add_placement(j, where);
        j.print();
    } else {
        std::printf("floor futex_wakeup%s: %zu samples, %s: p50 %.2f us, p90 %.2f us, p99 %.2f us, "
                    "max %.2f us (min %.2f, mean %.2f; woke on the waker's CPU %zu times, p50 "
                    "%.2f us, p99 %.2f us; on another CPU %zu times, p50 %.2f us, p99 %.2f us; "
                    "not asleep %" PRIu64 ")\n",
                    wait_many ? " (futex_waitv, 3 words, deadline)" : "", lat.size(),
                    floors::placement_text(where), p50, p90, p99, max, min, mean, lat_same_cpu.size(),
                    percentile(lat_same_cpu, 0.5) * us, percentile(lat_same_cpu, 0.99) * us,
                    lat_other_cpu.size(), percentile(lat_other_cpu, 0.5) * us,
                    percentile(lat_other_cpu, 0.99) * us, not_asleep);
    }
    return 0;
}
