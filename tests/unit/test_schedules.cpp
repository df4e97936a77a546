// Cron schedules in one process (docs/schedules.md): add, list, remove, the
// errors of each, a tick fired by a dequeue, skip and catch_up after a gap,
// and a sleeping consumer woken for a schedule added after it fell asleep.
// Tick times come from the jobs (enqueued_at_ns is the tick), never from
// assumptions about how long a sleep took. The multiprocess and crash
// suites cover racing processes and deaths.
#include "unit_support.hpp"

#include <algorithm>
#include <thread>

using namespace currant;
using namespace currant::unit;

namespace {

constexpr std::int64_t second = 1'000'000'000;

ScheduleOptions every_second(const std::string& name, EntrypointId ep, MissedTicks missed = MissedTicks::skip,
                             std::uint32_t catch_up_max = 100) {
    ScheduleOptions options;
    options.name = name;
    options.expression = "* * * * * *";
    options.entrypoint = ep;
    options.payload = bytes("tick:" + name);
    options.priority = 3;
    options.missed = missed;
    options.catch_up_max = catch_up_max;
    return options;
}

// Every job ready now (no waiting), acked; returns their enqueued_at (the
// ticks) up to `until` (a dequeue fires ticks too: later ones are left out).
std::vector<std::int64_t> take_ticks(Queue& queue, EntrypointId ep, std::int64_t until = INT64_MAX) {
    std::vector<std::int64_t> ticks;
    std::vector<Job> out(64);
    const EntrypointId eps[] = {ep};
    for (;;) {
        const std::size_t n = queue.dequeue(eps, out, 0ns);
        if (n == 0) break;
        for (std::size_t i = 0; i < n; ++i) {
            if (out[i].enqueued_at_ns <= until) ticks.push_back(out[i].enqueued_at_ns);
            queue.ack(out[i].handle);
        }
    }
    std::sort(ticks.begin(), ticks.end());
    return ticks;
}

void sleep_until_realtime(std::int64_t at_ns) {
    while (shm::realtime_ns() < at_ns) std::this_thread::sleep_for(10ms);
}

} // namespace

TEST_CASE("a schedule is listed with its first tick after now and removed by name", "[schedules]") {
    ScratchQueue q("sched-list", small_options());
    const EntrypointId ep = q->declare_entrypoint("reports");
    ScheduleOptions options;
    options.name = "nightly";
    options.expression = "0 30 2 * * *";
    options.entrypoint = ep;
    options.payload = bytes("run");
    options.priority = -2;
    options.missed = MissedTicks::catch_up;
    options.catch_up_max = 7;
    const std::int64_t before = shm::realtime_ns();
    q->add_schedule(options);
    const auto list = q->schedules();
    REQUIRE(list.size() == 1);
    const ScheduleInfo& info = list[0];
    CHECK(info.name == "nightly");
    CHECK(info.expression == "0 30 2 * * *");
    CHECK(info.entrypoint == ep);
    CHECK(info.entrypoint_name == "reports");
    CHECK(text(info.payload) == "run");
    CHECK(info.priority == -2);
    CHECK(info.missed == MissedTicks::catch_up);
    CHECK(info.catch_up_max == 7);
    CHECK(info.fired == 0);
    CHECK(info.last_tick_ns == 0);
    CHECK(info.next_tick_ns > before);
    CHECK(info.next_tick_ns <= before + 86'400 * second);
    CHECK(info.next_tick_ns % (86'400 * second) == (2 * 3600 + 30 * 60) * second);
    q->remove_schedule("nightly");
    CHECK(q->schedules().empty());
    // The name is free again.
    q->add_schedule(options);
    CHECK(q->schedules().size() == 1);
}

TEST_CASE("schedule errors: bad expression, unknown entrypoint, duplicate, unknown name, sizes", "[schedules][errors]") {
    using Catch::Matchers::Contains;
    ScratchQueue q("sched-errors", small_options());
    const EntrypointId ep = q->declare_entrypoint("e");
    ScheduleOptions good = every_second("good", ep);

    ScheduleOptions bad = good;
    bad.expression = "* * 25 * * *";
    REQUIRE_THROWS_WITH(q->add_schedule(bad), Contains("schedule 'good'") && Contains("hour field '25'") &&
                                                  Contains("out of range 0-23"));
    CHECK_ERRC(q->add_schedule(bad), Errc::invalid_argument);
    bad.expression = "* * *";
    CHECK_THROWS_WITH(q->add_schedule(bad), Contains("has 3 fields"));
    bad.expression = std::string(200, '*');
    CHECK_ERRC(q->add_schedule(bad), Errc::invalid_argument);

    bad = good;
    bad.entrypoint = 7;
    CHECK_ERRC(q->add_schedule(bad), Errc::not_found);
    bad = good;
    bad.name = "";
    CHECK_ERRC(q->add_schedule(bad), Errc::invalid_argument);
    bad.name = std::string(64, 'n');
    CHECK_ERRC(q->add_schedule(bad), Errc::invalid_argument);
    bad.name = "tab\there";
    CHECK_ERRC(q->add_schedule(bad), Errc::invalid_argument);
    bad = good;
    bad.payload.resize(65); // the queue's slots hold 64 bytes
    CHECK_ERRC(q->add_schedule(bad), Errc::payload_too_large);
    bad = good;
    bad.catch_up_max = 0;
    CHECK_THROWS_WITH(q->add_schedule(bad), Contains("catch_up_max must be 1..100000"));
    CHECK_ERRC(parse_missed_ticks("sometimes"), Errc::invalid_argument);
    CHECK(parse_missed_ticks("catch_up") == MissedTicks::catch_up);
    CHECK(q->schedules().empty()); // nothing half-added

    q->add_schedule(good);
    REQUIRE_ERRC(q->add_schedule(good), Errc::already_exists);
    CHECK_THROWS_WITH(q->add_schedule(good), Contains("schedule 'good' exists already"));
    REQUIRE_ERRC(q->remove_schedule("nope"), Errc::not_found);
    CHECK_THROWS_WITH(q->remove_schedule("nope"), Contains("unknown schedule 'nope'"));
    CHECK(q->schedules().size() == 1);

    // The queue keeps working after the bad input: jobs flow and the good
    // schedule fires.
    const JobId id = q->enqueue(ep, bytes("plain"));
    const auto jobs = dequeue_now(q.queue(), ep); // a tick of "good" may come along
    CHECK(std::any_of(jobs.begin(), jobs.end(), [&](const Job& job) { return job.handle.id == id; }));
    for (const Job& job : jobs) q->ack(job.handle);
    const EntrypointId eps[] = {ep};
    std::vector<Job> out(1);
    REQUIRE(q->dequeue(eps, out, 5s) == 1);
    CHECK(text(out[0].payload) == "tick:good");
    q->ack(out[0].handle);
}

TEST_CASE("the schedule table holds 64 schedules", "[schedules][errors]") {
    ScratchQueue q("sched-full", small_options());
    const EntrypointId ep = q->declare_entrypoint("e");
    ScheduleOptions options;
    options.expression = "@daily";
    options.entrypoint = ep;
    for (int i = 0; i < 64; ++i) {
        options.name = "s" + std::to_string(i);
        q->add_schedule(options);
    }
    options.name = "one-too-many";
    REQUIRE_THROWS_WITH(q->add_schedule(options), Catch::Matchers::Contains("all 64 schedules are in use"));
    q->remove_schedule("s10");
    q->add_schedule(options);
    CHECK(q->schedules().size() == 64);
}

TEST_CASE("a dequeue fires a due tick: one job whose enqueued_at is the tick", "[schedules]") {
    ScratchQueue q("sched-fire", small_options());
    const EntrypointId ep = q->declare_entrypoint("e");
    q->add_schedule(every_second("s", ep));
    const std::int64_t first = q->schedules()[0].next_tick_ns;
    CHECK(first % second == 0);
    const EntrypointId eps[] = {ep};
    std::vector<Job> out(4);
    // Nothing else is queued: the sleep must end at the tick for this to return a job.
    REQUIRE(q->dequeue(eps, out, 10s) == 1);
    CHECK(out[0].enqueued_at_ns == first);
    CHECK(out[0].priority == 3);
    CHECK(text(out[0].payload) == "tick:s");
    CHECK(shm::realtime_ns() >= first);
    q->ack(out[0].handle);
    const ScheduleInfo info = q->schedules()[0];
    CHECK(info.fired >= 1);
    CHECK(info.last_tick_ns >= first);
    CHECK(info.next_tick_ns > info.last_tick_ns);
    CHECK(info.next_tick_ns % second == 0);
    const auto stats = q->stats();
    CHECK(stats[0].enqueued == info.fired);
}

TEST_CASE("skip fires once for the latest missed tick after a gap", "[schedules][missed]") {
    ScratchQueue q("sched-skip", small_options());
    const EntrypointId ep = q->declare_entrypoint("e");
    q->add_schedule(every_second("s", ep, MissedTicks::skip));
    const std::int64_t first = q->schedules()[0].next_tick_ns;
    sleep_until_realtime(first + 3 * second + 200'000'000); // at least 4 ticks due, nobody fires them
    CHECK(q->run_schedules() == 1);
    const ScheduleInfo info = q->schedules()[0];
    const auto ticks = take_ticks(q.queue(), ep, info.last_tick_ns);
    REQUIRE(ticks.size() == 1);
    CHECK(ticks[0] >= first + 3 * second); // the latest, not the first
    CHECK(info.last_tick_ns == ticks[0]);
    CHECK(info.fired == 1);
    CHECK(info.next_tick_ns == ticks[0] + second); // the ones before were dropped
}

TEST_CASE("catch_up fires every missed tick, oldest first, at most catch_up_max", "[schedules][missed]") {
    ScratchQueue q("sched-catch", small_options());
    const EntrypointId ep = q->declare_entrypoint("e");
    SECTION("all of them") {
        q->add_schedule(every_second("s", ep, MissedTicks::catch_up, 100));
        const std::int64_t first = q->schedules()[0].next_tick_ns;
        sleep_until_realtime(first + 3 * second + 200'000'000);
        const std::size_t fired = q->run_schedules();
        const ScheduleInfo info = q->schedules()[0];
        const auto ticks = take_ticks(q.queue(), ep, info.last_tick_ns);
        REQUIRE(ticks.size() == fired);
        REQUIRE(ticks.size() >= 4);
        for (std::size_t i = 0; i < ticks.size(); ++i) CHECK(ticks[i] == first + std::int64_t(i) * second);
        CHECK(info.fired == ticks.size());
        CHECK(info.next_tick_ns == ticks.back() + second);
    }
    SECTION("bounded: the latest two") {
        q->add_schedule(every_second("s", ep, MissedTicks::catch_up, 2));
        const std::int64_t first = q->schedules()[0].next_tick_ns;
        sleep_until_realtime(first + 3 * second + 200'000'000);
        CHECK(q->run_schedules() == 2);
        const ScheduleInfo info = q->schedules()[0];
        const auto ticks = take_ticks(q.queue(), ep, info.last_tick_ns);
        REQUIRE(ticks.size() == 2);
        CHECK(ticks[0] >= first + 2 * second);
        CHECK(ticks[1] == ticks[0] + second);
        CHECK(info.next_tick_ns == ticks[1] + second);
    }
}

TEST_CASE("a removed schedule fires no more", "[schedules]") {
    ScratchQueue q("sched-removed", small_options());
    const EntrypointId ep = q->declare_entrypoint("e");
    q->add_schedule(every_second("s", ep, MissedTicks::catch_up));
    const std::int64_t first = q->schedules()[0].next_tick_ns;
    q->remove_schedule("s");
    sleep_until_realtime(first + second + 100'000'000);
    CHECK(q->run_schedules() == 0);
    CHECK(take_ticks(q.queue(), ep).empty());
}

TEST_CASE("a consumer asleep before a schedule was added wakes for its first tick", "[schedules]") {
    ScratchQueue q("sched-wake", small_options());
    const EntrypointId ep = q->declare_entrypoint("e");
    const std::string name = q.name();
    const pid_t child = currant::testing::fork_child([&] {
        Queue consumer = Queue::open(name);
        const EntrypointId eps[] = {consumer.entrypoint("e")};
        std::vector<Job> out(1);
        // Asleep with a long timeout: only the schedule can end this soon.
        const auto start = std::chrono::steady_clock::now();
        if (consumer.dequeue(eps, out, 60s) != 1) throw std::runtime_error("no job");
        if (std::chrono::steady_clock::now() - start > 30s) throw std::runtime_error("woke by timeout");
        consumer.ack(out[0].handle);
    });
    // Wait until it sleeps (its participant entry says so), then add.
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    for (;;) {
        bool sleeping = false;
        for (const ParticipantInfo& p : q->participants()) sleeping |= p.pid == child && p.sleeping;
        if (sleeping) break;
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        std::this_thread::sleep_for(5ms);
    }
    q->add_schedule(every_second("s", ep));
    CHECK(currant::testing::wait_child(child) == 0);
    CHECK(q->schedules()[0].fired >= 1);
}
