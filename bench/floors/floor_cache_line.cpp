// Floor: one cache line bouncing between two processes.
//
// A 64-bit counter alone on its cache line in an anonymous shared mapping.
// The parent turns even values into odd ones, the forked child odd into
// even, each spinning until it is its turn. One round trip is two hops of
// the line between the cores; a hop is the least any cross-process handoff
// through shared memory can cost (a job queue's publish-then-observe needs
// at least one). Both processes spin, so run it with two CPUs free.
#include "floor_common.hpp"

#include <atomic>

namespace {

struct Shared {
    floors::StartLine start;
    // The ping-pong counter. Parent: waits (acquire) for an even value v and
    // stores v + 1 (release); child: waits for an odd value and stores v + 1.
    // Only the side whose turn it is writes, so a plain store suffices.
    alignas(128) std::uint64_t counter;
};
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);

using ARef = std::atomic_ref<std::uint64_t>;

// Plays one side: waits for values with the given parity, bumps them, until
// the counter has reached `last`.
void play(std::uint64_t* counter, std::uint64_t parity, std::uint64_t last) noexcept {
    ARef c(*counter);
    for (std::uint64_t v = parity; v < last; v += 2) {
        while (c.load(std::memory_order_acquire) != v) floors::cpu_relax();
        c.store(v + 1, std::memory_order_release);
    }
}

} // namespace

int main(int argc, char** argv) {
    std::vector<floors::IntOption> opts{
        {"round-trips", 1'000'000, 1, "round trips (two hops each)"},
    };
    const auto common = floors::parse_args(
        argc, argv,
        "Cache-line ping-pong between two processes through a shared atomic counter; "
        "reports round trips/s and ns per one-way hop.",
        opts);
    const std::uint64_t n = opts[0].value;
    const std::uint64_t hops = 2 * n;
    floors::arm_watchdog(common);

    auto* sh = floors::map_shared_object<Shared>();
    floors::Placement where;
    pid_t child = floors::spawn(common, where, [&] {
        sh->start.child_arrive_and_wait();
        play(&sh->counter, 1, hops);
        return 0;
    });

    const std::int64_t t0 = sh->start.parent_release();
    play(&sh->counter, 0, hops);
    // The child makes the last hop (hops - 1 -> hops); wait to see it.
    while (ARef(sh->counter).load(std::memory_order_acquire) != hops) floors::cpu_relax();
    const std::int64_t t1 = floors::now_ns();
    if (!floors::wait_child(child)) return 1;

    const double seconds = static_cast<double>(t1 - t0) / 1e9;
    const double rate = static_cast<double>(n) / seconds;
    const double ns_per_hop = static_cast<double>(t1 - t0) / static_cast<double>(hops);
    if (common.json) {
        floors::JsonLine j("cache_line");
        j.add("round_trips", n).add("seconds", seconds, 6);
        j.add("round_trips_per_sec", rate, 0).add("ns_per_hop", ns_per_hop, 1);
        floors::add_placement(j, where);
        j.print();
    } else {
        std::printf("floor cache_line: %" PRIu64 " round trips, %s: %.3f s, %.0f round trips/s, "
                    "%.1f ns per one-way hop\n",
                    n, floors::placement_text(where), seconds, rate, ns_per_hop);
    }
    return 0;
}
