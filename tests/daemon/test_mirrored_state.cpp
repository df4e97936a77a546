// Entrypoint pause, limits and schedules mirrored to PostgreSQL
// (currant_entrypoints, currant_schedules) and restored by a rebuild.
#include "daemon_support.hpp"

#include <set>

#include "currant/cron.hpp"
#include "currant/shm/clock.hpp"

using namespace currant;
using namespace currant::daemon_test;

namespace {

std::vector<std::byte> bytes_of(const std::string& text) {
    const auto* data = reinterpret_cast<const std::byte*>(text.data());
    return {data, data + text.size()};
}

const ScheduleInfo* find_schedule(const std::vector<ScheduleInfo>& list, const std::string& name) {
    for (const ScheduleInfo& s : list)
        if (s.name == name) return &s;
    return nullptr;
}

// Sleeps until the wall clock is past `realtime_ns` (tests only).
void wait_until_realtime(std::int64_t realtime_ns) {
    while (shm::realtime_ns() <= realtime_ns) std::this_thread::sleep_for(20ms);
}

} // namespace

TEST_CASE("pause, limits and schedules survive a segment rebuild; a schedule keeps its next tick", "[rebuild][state]") {
    DaemonFixture fixture("state-rebuild");
    DaemonProcess& first = fixture.start_daemon({"--host-id", "9"});
    const std::string quoted = "it's \"quoted\", {braced}\\";
    ScheduleInfo recorded_tick;
    std::int64_t nightly_next = 0;
    JobId tick_job = 0;
    {
        Queue queue = fixture.open_queue();
        const EntrypointId paced = queue.declare_entrypoint("paced", async_options());
        EntrypointOptions memory;
        memory.durability = Durability::memory;
        const EntrypointId held = queue.declare_entrypoint(quoted, memory);
        queue.set_concurrency_limit(paced, 3);
        queue.set_rate_limit(paced, 2.5, 4);
        queue.pause(held);

        ScheduleOptions nightly;
        nightly.name = "nightly \"report\"";
        nightly.expression = "0 0 3 * * *";
        nightly.entrypoint = held;
        nightly.payload = bytes_of(std::string("a\0b", 3));
        nightly.priority = -2;
        nightly.missed = MissedTicks::catch_up;
        nightly.catch_up_max = 7;
        queue.add_schedule(nightly);
        ScheduleOptions every;
        every.name = "every-second";
        every.expression = "* * * * * *";
        every.entrypoint = paced;
        every.payload = bytes_of("tick");
        queue.add_schedule(every);

        // Fire one tick of every-second and wait until PostgreSQL has both
        // its job and the schedule's move past it.
        const std::int64_t first_tick = find_schedule(queue.schedules(), "every-second")->next_tick_ns;
        wait_until_realtime(first_tick);
        REQUIRE(queue.run_schedules() >= 1);
        recorded_tick = *find_schedule(queue.schedules(), "every-second");
        tick_job = recorded_tick.last_job_id;
        nightly_next = find_schedule(queue.schedules(), nightly.name)->next_tick_ns;
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_jobs WHERE id = " +
                                       std::to_string(std::int64_t(tick_job)),
                                   1) == 1);
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_schedules WHERE host = 9 AND name = 'every-second' "
                                   "AND fired = " + std::to_string(recorded_tick.fired),
                                   1) == 1);
        REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_entrypoints WHERE host = 9 AND paused", 1) == 1);
        first.kill_now();
    }
    Queue::remove(fixture.queue_name()); // a reboot

    DaemonProcess& second = fixture.start_daemon({"--host-id", "9"});
    Queue queue = fixture.open_rebuilt_queue();
    CHECK_THAT(second.log(), Catch::Contains("2 schedules restored"));
    const EntrypointId paced = queue.entrypoint("paced");
    const EntrypointId held = queue.entrypoint(quoted);
    const EntrypointLimits paced_limits = queue.limits(paced);
    CHECK_FALSE(paced_limits.paused);
    CHECK(paced_limits.concurrency == std::optional<std::uint32_t>(3));
    REQUIRE(paced_limits.rate);
    CHECK(*paced_limits.rate == Approx(2.5));
    CHECK(paced_limits.burst == 4);
    const EntrypointLimits held_limits = queue.limits(held);
    CHECK(held_limits.paused);
    CHECK_FALSE(held_limits.concurrency);
    CHECK_FALSE(held_limits.rate);
    CHECK(queue.entrypoint_options(held).durability == Durability::memory);

    const std::vector<ScheduleInfo> schedules = queue.schedules();
    REQUIRE(schedules.size() == 2);
    const ScheduleInfo* nightly = find_schedule(schedules, "nightly \"report\"");
    REQUIRE(nightly);
    CHECK(nightly->expression == "0 0 3 * * *");
    CHECK(nightly->entrypoint == held);
    CHECK(testing::text(nightly->payload) == std::string("a\0b", 3));
    CHECK(nightly->priority == -2);
    CHECK(nightly->missed == MissedTicks::catch_up);
    CHECK(nightly->catch_up_max == 7);
    CHECK(nightly->next_tick_ns == nightly_next);
    const ScheduleInfo* every = find_schedule(schedules, "every-second");
    REQUIRE(every);
    CHECK(every->entrypoint == paced);
    CHECK(every->next_tick_ns == recorded_tick.next_tick_ns); // kept, not recomputed from now
    CHECK(every->fired == recorded_tick.fired);
    CHECK(every->last_tick_ns == recorded_tick.last_tick_ns);
    CHECK(every->last_job_id == tick_job);

    // The restored job of the fired tick is back; the next firing is for a
    // later tick (the ticks missed while down: skip fires only the latest).
    wait_until_realtime(every->next_tick_ns);
    CHECK(queue.run_schedules() >= 1);
    queue.remove_schedule("every-second"); // no more ticks while we drain
    queue.resume(held);
    queue.set_concurrency_limit(paced, 100);
    queue.set_rate_limit(paced, std::nullopt);
    const EntrypointId eps[] = {paced};
    Job jobs[16];
    std::size_t got = 0;
    std::set<std::int64_t> tick_times;
    std::size_t restored_tick_jobs = 0;
    while ((got = queue.dequeue(eps, jobs, 500ms)) > 0) {
        for (std::size_t i = 0; i < got; ++i) {
            CHECK(tick_times.insert(jobs[i].enqueued_at_ns).second); // no tick twice
            if (jobs[i].handle.id == tick_job) ++restored_tick_jobs;
            queue.ack(jobs[i].handle);
        }
    }
    CHECK(restored_tick_jobs == 1);
    CHECK(tick_times.size() >= 2);
    CHECK(*tick_times.begin() == recorded_tick.last_tick_ns);
}

TEST_CASE("limits, pause and schedules changed while the daemon runs are recorded without a restart",
          "[mirror][state]") {
    DaemonFixture fixture("state-live");
    fixture.start_daemon({"--host-id", "10"});
    Queue queue = fixture.open_queue();
    const EntrypointId ep = queue.declare_entrypoint("mail", async_options());
    REQUIRE(fixture.wait_count("SELECT count(*) FROM currant_entrypoints WHERE host = 10 AND name = 'mail' AND "
                               "concurrency_limit IS NULL AND NOT paused",
                               1) == 1);
    // Nothing is enqueued: only the configuration change wakes the mirror.
    queue.set_concurrency_limit(ep, 7);
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_entrypoints WHERE host = 10 AND concurrency_limit = 7",
                             1) == 1);
    queue.set_rate_limit(ep, 0.5, 2);
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_entrypoints WHERE host = 10 AND rate_limit = 0.5 AND "
                             "rate_burst = 2",
                             1) == 1);
    queue.pause(ep);
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_entrypoints WHERE host = 10 AND paused", 1) == 1);
    queue.resume(ep);
    queue.set_concurrency_limit(ep, std::nullopt);
    queue.set_rate_limit(ep, std::nullopt);
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_entrypoints WHERE host = 10 AND NOT paused AND "
                             "concurrency_limit IS NULL AND rate_limit IS NULL AND rate_burst IS NULL",
                             1) == 1);
    // Options changed by a later declare are recorded too.
    EntrypointOptions longer = async_options();
    longer.lease = 90'000ms;
    longer.max_attempts = 9;
    queue.declare_entrypoint("mail", longer);
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_entrypoints WHERE host = 10 AND lease_ms = 90000 AND "
                             "max_attempts = 9",
                             1) == 1);

    ScheduleOptions hourly;
    hourly.name = "hourly";
    hourly.expression = "@hourly";
    hourly.entrypoint = ep;
    queue.add_schedule(hourly);
    const std::int64_t next = find_schedule(queue.schedules(), "hourly")->next_tick_ns;
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_schedules WHERE host = 10 AND name = 'hourly' AND "
                             "expression = '@hourly' AND entrypoint = 'mail' AND fired = 0 AND "
                             "(extract(epoch FROM next_tick) * 1000000)::bigint = " +
                                 std::to_string(next / 1000),
                             1) == 1);
    queue.remove_schedule("hourly");
    CHECK(fixture.wait_count("SELECT count(*) FROM currant_schedules WHERE host = 10", 0) == 0);
}
