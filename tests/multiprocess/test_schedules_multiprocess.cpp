// Cron schedules with several consumer processes racing to fire the same
// ticks (docs/schedules.md): every process sleeps until the next tick and
// wakes for it, and each tick must come out as exactly one job. The count is
// checked against the tick times the jobs carry (enqueued_at_ns is the
// tick), not against how long the test slept.
#include "process_harness.hpp"

#include <set>

using namespace currant;
using namespace currant::harness;

namespace {
constexpr std::int64_t second = 1'000'000'000;
}

TEST_CASE("each tick fires exactly once with several consumer processes racing", "[schedules][multiprocess]") {
    ScratchQueue scratch(currant::testing::unique_queue_name("sched-mp"), small_queue(1024, 32));
    Queue& queue = scratch.queue();
    const EntrypointId ep = queue.declare_entrypoint("ticks");
    // A second entrypoint whose consumers also fire ticks for "ticks".
    queue.declare_entrypoint("other");
    constexpr int consumers = 5;
    constexpr std::size_t capacity = 4096;
    SharedArray<std::atomic<std::int64_t>> seen(capacity); // enqueued_at of every job taken, any process
    SharedCounters taken(2);                               // [0] jobs recorded, [1] stop flag
    std::vector<pid_t> pids;
    for (int c = 0; c < consumers; ++c) {
        pids.push_back(fork_child([&, c] {
            Queue consumer = Queue::open(scratch.name());
            // Consumer 0 and 1 wait on "other" only: they fire ticks but never take them.
            const std::vector<std::string> names = c < 2 ? std::vector<std::string>{"other"}
                                                         : std::vector<std::string>{"ticks"};
            const auto eps = entrypoint_ids(consumer, names);
            std::vector<Job> out(8);
            while (taken[1].load() == 0) {
                const std::size_t n = consumer.dequeue(eps, out, 100ms);
                for (std::size_t i = 0; i < n; ++i) {
                    const std::uint64_t at = taken[0].fetch_add(1);
                    expect(at < capacity, "too many jobs");
                    seen[at].store(out[i].enqueued_at_ns);
                    consumer.ack(out[i].handle);
                }
            }
        }));
    }
    REQUIRE(wait_until_sleeping(queue, pids));
    ScheduleOptions options;
    options.name = "every-second";
    options.expression = "* * * * * *";
    options.entrypoint = ep;
    options.missed = MissedTicks::catch_up; // exact counts even if every process was busy for a moment
    queue.add_schedule(options);
    const std::int64_t first = queue.schedules()[0].next_tick_ns;
    // Let at least four ticks fire (observed through the schedule's count).
    REQUIRE(wait_until([&] { return queue.schedules()[0].fired >= 4; }, 30s));
    queue.remove_schedule("every-second");
    // Everything enqueued by now is taken by the consumers of "ticks".
    REQUIRE(wait_until([&] {
        for (const EntrypointStats& s : queue.stats())
            if (s.queued + s.picked != 0) return false;
        return true;
    }, 30s));
    taken[1].store(1);
    for (pid_t pid : pids) CHECK(wait_child(pid) == 0);

    std::vector<std::int64_t> ticks;
    for (std::uint64_t i = 0; i < taken[0].load(); ++i) ticks.push_back(seen[i].load());
    std::sort(ticks.begin(), ticks.end());
    INFO("jobs taken: " << ticks.size());
    REQUIRE(ticks.size() >= 4);
    const std::set<std::int64_t> distinct(ticks.begin(), ticks.end());
    CHECK(distinct.size() == ticks.size());       // no tick doubled
    CHECK(ticks.front() == first);
    for (std::size_t i = 1; i < ticks.size(); ++i) // none lost: consecutive seconds
        CHECK(ticks[i] == ticks[i - 1] + second);
    for (const EntrypointStats& s : queue.stats()) {
        if (s.id != ep) continue;
        CHECK(s.enqueued == ticks.size());
        CHECK(s.successful == ticks.size());
    }
    require_doctor_sound(queue);
}
