// Crash tests for dedupe keys (docs/dedupe.md, docs/crash-points.md): a
// producer SIGKILLed at each point of a keyed enqueue, an inserter killed in
// the middle of deleting a stale entry (one it walked over, or the entry of
// the previous key of the slot it reuses), a repairer killed in the middle of
// rebuilding the index. Afterwards the key is held by exactly the jobs that
// were published, a new holder can take a free key, and doctor() is sound.
#include "process_harness.hpp"

#include "currant/shm/crash_point.hpp"
#include "queue_state.hpp"

using namespace currant;
using namespace currant::harness;

namespace {

const std::string ep_name = "keyed";

EnqueueOptions keyed(const std::string& key, OnDuplicate policy = OnDuplicate::skip) {
    EnqueueOptions options;
    options.dedupe_key = key;
    options.on_duplicate = policy;
    return options;
}

void require_killed(pid_t pid) {
    const int status = wait_child(pid);
    INFO("child exit status " << status << " (137 = SIGKILL)");
    REQUIRE(status == killed_by_sigkill);
}

// The index's home position of a key, as dedupe.cpp computes it (the low
// bits of its hash): lets a test build a collision.
std::uint32_t home_of(const std::string& key, std::uint32_t capacity) {
    return currant::detail::dedupe_hash(key) & (capacity - 1);
}

std::uint64_t live_jobs(Queue& queue, EntrypointId ep) {
    const EntrypointStats s = queue.stats().at(ep);
    return s.queued + s.delayed + s.picked;
}

// A child that enqueues `key` with the crash point armed and dies there.
void kill_keyed_enqueue(ScratchQueue& scratch, const std::string& point, const std::string& key, int hit = 1) {
    const pid_t child = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId ep = queue.entrypoint(ep_name);
        shm::arm_crash_point(point.c_str(), hit);
        queue.enqueue(ep, as_payload("from the dead"), keyed(key));
        ::_exit(3); // not reached
    });
    require_killed(child);
}

} // namespace

TEST_CASE("SIGKILL at each point of a keyed enqueue: the key is held iff the job was published",
          "[crash][dedupe]") {
    struct Case {
        const char* point;
        bool published;
    };
    for (const Case c : {Case{"enqueue.locked", false}, Case{"dedupe.indexed", false}, Case{"enqueue.linked", false},
                         Case{"enqueue.published", true}}) {
        for (Durability durability : {Durability::memory, Durability::async}) {
            CAPTURE(c.point, durability_name(durability));
            ScratchQueue scratch("crash-dedupe-enqueue", small_queue(64));
            EntrypointOptions options;
            options.durability = durability;
            const EntrypointId ep = scratch->declare_entrypoint(ep_name, options);
            const JobId other = scratch->enqueue(ep, as_payload("bystander"), keyed("other"));
            kill_keyed_enqueue(scratch, c.point, "k");
            // The next locker repairs (rebuilding the index from the slots).
            if (c.published) {
                CHECK_THROWS_MATCHES(scratch->enqueue(ep, as_payload("again"), keyed("k", OnDuplicate::refuse)),
                                     Error, Catch::Predicate<Error>([](const Error& e) {
                                         return e.code() == Errc::already_exists;
                                     }));
                CHECK(live_jobs(scratch.queue(), ep) == 2);
            } else {
                const JobId mine = scratch->enqueue(ep, as_payload("again"), keyed("k", OnDuplicate::refuse));
                CHECK(mine != other);
                CHECK(live_jobs(scratch.queue(), ep) == 2);
            }
            CHECK(scratch->enqueue(ep, as_payload("dup"), keyed("other")) == other);
            scratch->reap();
            require_doctor_sound(scratch.queue());
            // Exactly one job per key is delivered.
            std::vector<Job> out(8);
            const EntrypointId eps[] = {ep};
            CHECK(scratch->dequeue(eps, out, 0ns) == 2);
        }
    }
}

TEST_CASE("SIGKILL in the middle of deleting a stale entry (dedupe.shifted)", "[crash][dedupe]") {
    ScratchQueue scratch("crash-dedupe-shift", small_queue(16));
    const EntrypointId ep = scratch->declare_entrypoint(ep_name);
    const std::uint32_t capacity = 32; // twice the 16 slots
    // Two keys with the same home: the second sits right after the first.
    const std::string first = "first";
    std::string second;
    for (int i = 0; second.empty(); ++i)
        if (const std::string k = "second-" + std::to_string(i); home_of(k, capacity) == home_of(first, capacity))
            second = k;
    const JobId first_id = scratch->enqueue(ep, as_payload("1"), keyed(first));
    const JobId second_id = scratch->enqueue(ep, as_payload("2"), keyed(second));
    std::vector<Job> out(1);
    const EntrypointId eps[] = {ep};
    REQUIRE(scratch->dequeue(eps, out, 0ns) == 1);
    REQUIRE(out[0].handle.id == first_id);
    scratch->ack(out[0].handle); // memory durability: lock-free, the entry turns stale
    // The child's insert of `first` again walks from the home: the stale
    // entry there has its own hash (an entry of another hash is skipped
    // unread), so it reads the slot, deletes the entry, shifts `second`'s
    // entry back, and dies with that entry in two places.
    kill_keyed_enqueue(scratch, "dedupe.shifted", first);
    CHECK(scratch->enqueue(ep, as_payload("dup"), keyed(second)) == second_id);
    CHECK(scratch->last_enqueue_skipped());
    const JobId again = scratch->enqueue(ep, as_payload("1 again"), keyed(first, OnDuplicate::refuse));
    CHECK(again != first_id);
    CHECK(live_jobs(scratch.queue(), ep) == 2);
    scratch->reap();
    require_doctor_sound(scratch.queue());
}

TEST_CASE("SIGKILL in the middle of deleting the entry of a reused slot's previous key (dedupe.shifted)",
          "[crash][dedupe]") {
    // 4 slots, an index of 16 entries; one slot per cache refill, so the
    // child reserves the one slot the parent's ack freed.
    ScratchQueue scratch("crash-dedupe-reuse", small_queue(4));
    const EntrypointId ep = scratch->declare_entrypoint(ep_name);
    const std::uint32_t capacity = 16;
    // Two keys with the same home: the second's entry sits right after the
    // first's, and deleting the first's shifts it back.
    const std::string first = "first";
    std::string second, third;
    for (int i = 0; second.empty(); ++i)
        if (const std::string k = "second-" + std::to_string(i); home_of(k, capacity) == home_of(first, capacity))
            second = k;
    for (int i = 0; third.empty(); ++i)
        if (const std::string k = "third-" + std::to_string(i);
            home_of(k, capacity) != home_of(first, capacity) && home_of(k, capacity) != (home_of(first, capacity) + 1) % capacity)
            third = k;
    const JobId first_id = scratch->enqueue(ep, as_payload("1"), keyed(first));
    const JobId second_id = scratch->enqueue(ep, as_payload("2"), keyed(second));
    std::vector<Job> out(1);
    const EntrypointId eps[] = {ep};
    REQUIRE(scratch->dequeue(eps, out, 0ns) == 1);
    REQUIRE(out[0].handle.id == first_id);
    scratch->ack(out[0].handle); // memory durability: lock-free, the entry turns stale, the slot is free
    // The child's keyed enqueue of a third key reserves that slot and, inside
    // the entrypoint lock, deletes the first key's entry (its hash is in the
    // slot's record): it shifts the second key's entry back and dies with
    // that entry in two places.
    kill_keyed_enqueue(scratch, "dedupe.shifted", third);
    scratch->reap();
    CHECK(scratch->enqueue(ep, as_payload("dup"), keyed(second)) == second_id);
    CHECK(scratch->last_enqueue_skipped());
    CHECK(scratch->enqueue(ep, as_payload("1 again"), keyed(first, OnDuplicate::refuse)) != first_id);
    CHECK(scratch->enqueue(ep, as_payload("3"), keyed(third, OnDuplicate::refuse)) != 0); // the dead one's job never existed
    CHECK(live_jobs(scratch.queue(), ep) == 3);
    require_doctor_sound(scratch.queue());
}

TEST_CASE("SIGKILL of a repairer in the middle of rebuilding the dedupe index (dedupe.rebuild)", "[crash][dedupe]") {
    ScratchQueue scratch("crash-dedupe-rebuild", small_queue(64));
    const EntrypointId ep = scratch->declare_entrypoint(ep_name);
    std::vector<JobId> held;
    for (int i = 0; i < 5; ++i)
        held.push_back(scratch->enqueue(ep, as_payload("held"), keyed("held-" + std::to_string(i))));
    // A producer dies holding the lock; the next locker repairs and is
    // killed after clearing the index, before refilling it.
    kill_keyed_enqueue(scratch, "enqueue.locked", "lost");
    kill_keyed_enqueue(scratch, "dedupe.rebuild", "repairer");
    // The third locker repairs again: every held key is found.
    for (int i = 0; i < 5; ++i)
        CHECK(scratch->enqueue(ep, as_payload("dup"), keyed("held-" + std::to_string(i))) == held[std::size_t(i)]);
    // Neither dead producer's job exists, so both keys are free.
    CHECK(scratch->enqueue(ep, as_payload("new"), keyed("lost", OnDuplicate::refuse)) != 0);
    CHECK(scratch->enqueue(ep, as_payload("new"), keyed("repairer", OnDuplicate::refuse)) != 0);
    CHECK(live_jobs(scratch.queue(), ep) == 7);
    scratch->reap();
    require_doctor_sound(scratch.queue());
}

TEST_CASE("a consumer SIGKILLed holding a keyed job: the requeued job keeps the key", "[crash][dedupe]") {
    ScratchQueue scratch("crash-dedupe-holder", small_queue(64));
    const EntrypointId ep = scratch->declare_entrypoint(ep_name);
    const JobId held = scratch->enqueue(ep, as_payload("work"), keyed("k"));
    Signal picked, never;
    const pid_t child = fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {queue.entrypoint(ep_name)};
        std::vector<Job> out(1);
        expect(queue.dequeue(eps, out, 10s) == 1, "picked nothing");
        picked.notify();
        never.wait(300s);
        ::_exit(2);
    });
    REQUIRE(picked.wait(60s));
    ::kill(child, SIGKILL);
    require_killed(child);
    CHECK(scratch->reap() == 1);
    const JobId ids[] = {held};
    CHECK(scratch->status(ids).at(0).status == JobStatus::queued);
    CHECK(scratch->enqueue(ep, as_payload("dup"), keyed("k")) == held);
    require_doctor_sound(scratch.queue());
}
