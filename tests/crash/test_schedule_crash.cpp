// A process SIGKILLed while firing a schedule's tick (docs/schedules.md,
// docs/crash-points.md): at each crash point of the firing critical
// section, and while repairing after such a death. Afterwards the survivors
// fire what is due, and the jobs' tick times (enqueued_at_ns) must be
// consecutive seconds from the schedule's first tick with none missing and
// none twice; doctor() must find the segment sound.
#include "process_harness.hpp"

#include <set>

#include "currant/shm/clock.hpp"
#include "currant/shm/crash_point.hpp"

using namespace currant;
using namespace currant::harness;

namespace {

constexpr std::int64_t second = 1'000'000'000;

void sleep_until_realtime(std::int64_t at_ns) {
    while (shm::realtime_ns() < at_ns) std::this_thread::sleep_for(10ms);
}

// In a child: arm `point` (hit 1), fire the due ticks; the child must die there.
void fire_and_die(const std::string& name, const std::string& point) {
    const pid_t pid = fork_child([&] {
        Queue queue = Queue::open(name);
        shm::arm_crash_point(point, 1);
        queue.run_schedules();
    });
    const int status = wait_child(pid);
    INFO("child exit status " << status << " (137 = SIGKILL) at " << point);
    REQUIRE(status == killed_by_sigkill);
}

std::vector<std::int64_t> take_all(Queue& queue, EntrypointId ep) {
    std::vector<std::int64_t> ticks;
    std::vector<Job> out(64);
    const EntrypointId eps[] = {ep};
    for (;;) {
        const std::size_t n = queue.dequeue(eps, out, 0ns);
        if (n == 0) break;
        for (std::size_t i = 0; i < n; ++i) {
            ticks.push_back(out[i].enqueued_at_ns);
            queue.ack(out[i].handle);
        }
    }
    std::sort(ticks.begin(), ticks.end());
    return ticks;
}

void run_case(const std::string& point, bool kill_the_repairer, Durability durability) {
    INFO("crash point " << point << (kill_the_repairer ? ", then the repairer killed too" : "") << ", durability "
                        << durability_name(durability));
    ScratchQueue scratch(currant::testing::unique_queue_name("sched-crash"), small_queue(256, 16));
    Queue& queue = scratch.queue();
    EntrypointOptions ep_options;
    ep_options.durability = durability;
    const EntrypointId ep = queue.declare_entrypoint("ticks", ep_options);
    ScheduleOptions options;
    options.name = "s";
    options.expression = "* * * * * *";
    options.entrypoint = ep;
    options.missed = MissedTicks::catch_up;
    queue.add_schedule(options);
    const std::int64_t first = queue.schedules()[0].next_tick_ns;
    sleep_until_realtime(first + 100'000'000);

    fire_and_die(scratch.name(), point);
    if (kill_the_repairer) fire_and_die(scratch.name(), "repair.entrypoint");
    const ScheduleInfo after_death = queue.schedules()[0];

    // Another tick falls due; a survivor repairs and fires everything due.
    sleep_until_realtime(first + second + 100'000'000);
    std::vector<std::int64_t> ticks;
    {
        Queue survivor = Queue::open(scratch.name());
        survivor.run_schedules();
        const ScheduleInfo info = survivor.schedules()[0];
        survivor.remove_schedule("s"); // no more ticks while we count
        ticks = take_all(survivor, ep);
        INFO("next tick " << info.next_tick_ns << ", first " << first << ", jobs " << ticks.size()
                          << ", next tick right after the death " << after_death.next_tick_ns);
        REQUIRE(ticks.size() >= 2);
        const std::set<std::int64_t> distinct(ticks.begin(), ticks.end());
        CHECK(distinct.size() == ticks.size()); // none doubled
        CHECK(ticks.front() == first);          // the tick being fired is not lost
        for (std::size_t i = 1; i < ticks.size(); ++i) CHECK(ticks[i] == ticks[i - 1] + second);
        // Every tick before the next one was fired, and only those.
        CHECK(info.next_tick_ns == ticks.back() + second);
        survivor.close();
    }
    if (durability != Durability::memory) {
        // The log holds exactly one `queued` record per job.
        std::vector<Transition> feed(256);
        const std::size_t n = queue.read_feed(ep, 1, feed);
        std::size_t queued = 0;
        for (std::size_t i = 0; i < n; ++i) queued += feed[i].status == JobStatus::queued;
        CHECK(queued == ticks.size());
    }
    require_doctor_sound(queue);
    require_queue_works(queue, "ticks");
}

} // namespace

TEST_CASE("a firer killed at any point of a tick loses no tick and doubles none", "[schedules][crash]") {
    const char* points[] = {"schedule.intent", "schedule.published", "schedule.advanced"};
    for (const char* point : points) {
        run_case(point, false, Durability::memory);
        run_case(point, false, Durability::async);
    }
}

TEST_CASE("a repairer killed while repairing a dead firer's tick: the next one repairs it", "[schedules][crash]") {
    run_case("schedule.published", true, Durability::memory);
    run_case("schedule.intent", true, Durability::async);
}

TEST_CASE("an adder killed while writing a schedule leaves no schedule and a usable table", "[schedules][crash]") {
    ScratchQueue scratch(currant::testing::unique_queue_name("sched-add-crash"), small_queue(256, 16));
    Queue& queue = scratch.queue();
    const EntrypointId ep = queue.declare_entrypoint("ticks");
    const pid_t pid = fork_child([&] {
        Queue adder = Queue::open(scratch.name());
        shm::arm_crash_point("schedule.add.writing", 1);
        ScheduleOptions options;
        options.name = "half";
        options.expression = "* * * * * *";
        options.entrypoint = adder.entrypoint("ticks");
        adder.add_schedule(options);
    });
    REQUIRE(wait_child(pid) == killed_by_sigkill);
    CHECK(queue.schedules().empty());
    CHECK(queue.run_schedules() == 0);
    ScheduleOptions options;
    options.name = "half"; // the name was never taken
    options.expression = "@hourly";
    options.entrypoint = ep;
    queue.add_schedule(options);
    CHECK(queue.schedules().size() == 1);
    require_doctor_sound(queue);
}
