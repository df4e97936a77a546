// Names, options and the error vocabulary: bad input is an error value with
// a message a user can act on, never undefined behaviour.
#include "unit_support.hpp"

#include <set>
#include <unistd.h>

#include "currant/shm/segment.hpp"

using namespace currant;
using namespace currant::unit;
using currant::testing::unique_queue_name;

TEST_CASE("bad queue names are refused with invalid_argument by create, open and remove", "[names]") {
    const std::string too_long(101, 'a');
    const std::string bad_names[] = {"", "a/b", "..", ".x", "-x", too_long, "\x01", "a b", "q\n", "caf\xc3\xa9"};
    for (const std::string& name : bad_names) {
        INFO("queue name: '" << name << "' (" << name.size() << " bytes)");
        QueueOptions options = small_options();
        options.name = name;
        CHECK_ERRC(Queue::create(options), Errc::invalid_argument);
        CHECK_ERRC(Queue::open(name), Errc::invalid_argument);
        CHECK_ERRC(Queue::remove(name), Errc::invalid_argument);
    }
}

TEST_CASE("a queue name of 100 characters from the allowed set is accepted", "[names]") {
    std::string name = unique_queue_name("long") + "_A.z-9";
    name.resize(100, 'x');
    QueueOptions options = small_options();
    options.name = name;
    {
        Queue queue = Queue::create(options);
        CHECK(queue.name() == name);
        CHECK_NOTHROW(Queue::open(name));
        queue.close();
    }
    CHECK(Queue::remove(name));
}

TEST_CASE("a bad queue name's message says what is wrong", "[names]") {
    try {
        shm::validate_queue_name("a/b");
        FAIL("a/b was accepted");
    } catch (const Error& error) {
        CHECK(error.code() == Errc::invalid_argument);
        CHECK_THAT(error.what(), Catch::Contains("'/'"));
    }
}

TEST_CASE("bad entrypoint names are refused with invalid_argument", "[names]") {
    ScratchQueue scratch("epnames", small_options());
    const std::string too_long(64, 'e');
    const std::string bad_names[] = {"", too_long, std::string("a\x01" "b"), "tab\there", "new\nline",
                                     std::string("del\x7f"), std::string("nul\0byte", 8)};
    for (const std::string& name : bad_names) {
        INFO("entrypoint name of " << name.size() << " bytes");
        CHECK_ERRC(scratch->declare_entrypoint(name), Errc::invalid_argument);
    }
    CHECK(scratch->entrypoint_names().empty());
}

TEST_CASE("entrypoint names of 1 to 63 printable bytes are accepted, UTF-8 and spaces included", "[names]") {
    ScratchQueue scratch("epgood", small_options());
    const std::string longest(63, 'e');
    const EntrypointId a = scratch->declare_entrypoint("x");
    const EntrypointId b = scratch->declare_entrypoint(longest);
    const EntrypointId c = scratch->declare_entrypoint("send email/ü");
    CHECK(scratch->entrypoint_name(a) == "x");
    CHECK(scratch->entrypoint_name(b) == longest);
    CHECK(scratch->entrypoint_name(c) == "send email/ü");
    CHECK(scratch->entrypoint(longest) == b);
    CHECK(scratch->entrypoint_names() == std::vector<std::string>{"x", longest, "send email/ü"});
}

TEST_CASE("declaring an entrypoint again returns its id and applies the new options", "[names]") {
    ScratchQueue scratch("redeclare", small_options());
    const EntrypointId first = scratch->declare_entrypoint("jobs");
    EntrypointOptions options;
    options.durability = Durability::async;
    const EntrypointId again = scratch->declare_entrypoint("jobs", options);
    CHECK(again == first);
    CHECK(scratch->entrypoint_names().size() == 1);
    CHECK(stats_of(scratch.queue(), first).durability == Durability::async);
}

TEST_CASE("entrypoints declared in one Queue object are visible to another", "[names]") {
    ScratchQueue scratch("epshared", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("shared");
    Queue other = Queue::open(scratch.name());
    CHECK(other.entrypoint("shared") == ep);
    CHECK(other.declare_entrypoint("shared") == ep);
}

TEST_CASE("bad entrypoint options are refused with invalid_argument", "[names]") {
    ScratchQueue scratch("epoptions", small_options());
    EntrypointOptions zero_lease;
    zero_lease.lease = 0ms;
    EntrypointOptions endless_lease;
    endless_lease.lease = max_lease + 1ms;
    EntrypointOptions zero_attempts;
    zero_attempts.max_attempts = 0;
    EntrypointOptions negative_delay;
    negative_delay.retry_delay = -1ms;
    EntrypointOptions negative_cap;
    negative_cap.max_retry_delay = -1ms;
    EntrypointOptions bad_durability;
    bad_durability.durability = Durability(7);
    CHECK_ERRC(scratch->declare_entrypoint("a", zero_lease), Errc::invalid_argument);
    CHECK_ERRC(scratch->declare_entrypoint("a", endless_lease), Errc::invalid_argument);
    CHECK_ERRC(scratch->declare_entrypoint("b", zero_attempts), Errc::invalid_argument);
    CHECK_ERRC(scratch->declare_entrypoint("c", negative_delay), Errc::invalid_argument);
    CHECK_ERRC(scratch->declare_entrypoint("d", negative_cap), Errc::invalid_argument);
    CHECK_ERRC(scratch->declare_entrypoint("e", bad_durability), Errc::invalid_argument);
    CHECK(scratch->entrypoint_names().empty());
}

TEST_CASE("an unknown entrypoint name or id is not_found", "[names]") {
    ScratchQueue scratch("epunknown", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    CHECK_ERRC(scratch->entrypoint("nope"), Errc::not_found);
    CHECK_ERRC(scratch->entrypoint_name(ep + 1), Errc::not_found);
    CHECK_ERRC(enqueue_text(scratch.queue(), ep + 1, "x"), Errc::not_found);
    CHECK_ERRC(enqueue_text(scratch.queue(), 4'000'000'000u, "x"), Errc::not_found);
    CHECK_ERRC(scratch->reserve(ep + 1), Errc::not_found);
    CHECK_ERRC(dequeue_now(scratch.queue(), ep + 1), Errc::not_found);
    Transition out[4];
    CHECK_ERRC(scratch->read_feed(ep + 1, 1, out), Errc::not_found);
    CHECK(stats_of(scratch.queue(), ep).enqueued == 0);
}

TEST_CASE("declaring more entrypoints than the table holds fails with entrypoint_table_full", "[names]") {
    QueueOptions options = small_options();
    options.max_entrypoints = 2;
    ScratchQueue scratch("eptable", options);
    scratch->declare_entrypoint("one");
    scratch->declare_entrypoint("two");
    CHECK_ERRC(scratch->declare_entrypoint("three"), Errc::entrypoint_table_full);
    CHECK(scratch->declare_entrypoint("two") == 1); // existing names still resolve
}

TEST_CASE("attaching more Queue objects than max_participants fails with participant_table_full "
          "until one closes", "[names]") {
    QueueOptions options = small_options();
    options.max_participants = 2;
    ScratchQueue scratch("participants", options);
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    enqueue_text(scratch.queue(), ep, "1"); // registers participant 1
    Queue second = Queue::open(scratch.name());
    enqueue_text(second, ep, "2");
    Queue third = Queue::open(scratch.name());
    CHECK_ERRC(enqueue_text(third, ep, "3"), Errc::participant_table_full);
    CHECK(scratch->info().participants == 2);
    second.close();
    CHECK_NOTHROW(enqueue_text(third, ep, "3"));
    CHECK(stats_of(scratch.queue(), ep).enqueued == 3);
}

TEST_CASE("create refuses sizes of zero with invalid_argument", "[names]") {
    auto with = [](auto change) {
        QueueOptions options = small_options();
        options.name = unique_queue_name("sizes");
        change(options);
        return options;
    };
    CHECK_ERRC(Queue::create(with([](QueueOptions& o) { o.slots = 0; })), Errc::invalid_argument);
    CHECK_ERRC(Queue::create(with([](QueueOptions& o) { o.max_entrypoints = 0; })), Errc::invalid_argument);
    CHECK_ERRC(Queue::create(with([](QueueOptions& o) { o.max_participants = 0; })), Errc::invalid_argument);
    CHECK_ERRC(Queue::create(with([](QueueOptions& o) { o.max_participants = 65535; })), Errc::invalid_argument);
    CHECK_ERRC(Queue::create(with([](QueueOptions& o) { o.log_capacity = 0; })), Errc::invalid_argument);
}

TEST_CASE("job ids carry the queue's host id in their top 16 bits", "[names]") {
    QueueOptions options = small_options();
    options.host_id = 0xbeef;
    ScratchQueue scratch("hostid", options);
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId a = enqueue_text(scratch.queue(), ep, "a");
    const JobId b = enqueue_text(scratch.queue(), ep, "b");
    CHECK((a >> 48) == 0xbeef);
    CHECK((b >> 48) == 0xbeef);
    CHECK(a != b);
    CHECK((a & ((JobId(1) << 48) - 1)) != 0);
}

TEST_CASE("job ids are unique across Queue objects of one queue", "[names]") {
    ScratchQueue scratch("ids", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    Queue other = Queue::open(scratch.name());
    std::set<JobId> ids;
    for (int i = 0; i < 10; ++i) {
        ids.insert(enqueue_text(scratch.queue(), ep, "a"));
        ids.insert(enqueue_text(other, ep, "b"));
    }
    CHECK(ids.size() == 20);
}

TEST_CASE("a payload too large is refused with a message naming queue, entrypoint and limit", "[names]") {
    ScratchQueue scratch("message", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("resize-images");
    const std::vector<std::byte> big(65);
    try {
        scratch->enqueue(ep, big);
        FAIL("oversized payload accepted");
    } catch (const Error& error) {
        CHECK(error.code() == Errc::payload_too_large);
        CHECK_THAT(error.what(), Catch::Contains(scratch.name()));
        CHECK_THAT(error.what(), Catch::Contains("resize-images"));
        CHECK_THAT(error.what(), Catch::Contains("64"));
    }
}

TEST_CASE("bad enqueue, retry and prefetch arguments are refused with invalid_argument", "[names]") {
    ScratchQueue scratch("badargs", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    EnqueueOptions negative_time;
    negative_time.execute_after_ns = -1;
    EnqueueOptions negative_wait;
    negative_wait.log_wait = -1ms;
    CHECK_ERRC(enqueue_text(scratch.queue(), ep, "x", negative_time), Errc::invalid_argument);
    CHECK_ERRC(enqueue_text(scratch.queue(), ep, "x", negative_wait), Errc::invalid_argument);
    CHECK(stats_of(scratch.queue(), ep).queued == 0);

    CHECK_ERRC(scratch->set_prefetch(0), Errc::invalid_argument);
    CHECK_ERRC(scratch->set_prefetch(1025), Errc::invalid_argument);
    CHECK_NOTHROW(scratch->set_prefetch(1024));

    std::vector<Job> out(1);
    CHECK_ERRC(scratch->dequeue({}, out, 0ns), Errc::invalid_argument);

    enqueue_text(scratch.queue(), ep, "x");
    auto jobs = dequeue_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 1);
    CHECK_ERRC(scratch->retry(jobs[0].handle, -1ms), Errc::invalid_argument);
    CHECK(status_of(scratch.queue(), jobs[0].handle.id) == JobStatus::picked);

    JobHandle beyond = jobs[0].handle;
    beyond.slot = 1'000'000;
    CHECK_ERRC(scratch->ack(beyond), Errc::invalid_argument);
    scratch->ack(jobs[0].handle);
}

TEST_CASE("enqueue_batch refuses an ids_out span smaller than the batch", "[names]") {
    ScratchQueue scratch("batchids", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const std::span<const std::byte> payloads[] = {as_payload("a"), as_payload("b")};
    JobId ids[1];
    CHECK_ERRC(scratch->enqueue_batch(ep, payloads, ids), Errc::invalid_argument);
    CHECK(stats_of(scratch.queue(), ep).enqueued == 0);
}

TEST_CASE("a closed Queue object refuses further calls", "[names]") {
    ScratchQueue scratch("closed", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    Queue other = Queue::open(scratch.name());
    other.close();
    CHECK_ERRC(enqueue_text(other, ep, "x"), Errc::invalid_argument);
    CHECK_ERRC(dequeue_now(other, ep), Errc::invalid_argument);
    CHECK_NOTHROW(other.close()); // idempotent
}

TEST_CASE("a handle from one Queue object cannot be acked by another that holds nothing", "[names]") {
    ScratchQueue scratch("notowner", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    enqueue_text(scratch.queue(), ep, "x");
    auto jobs = dequeue_now(scratch.queue(), ep);
    REQUIRE(jobs.size() == 1);
    Queue other = Queue::open(scratch.name());
    CHECK_ERRC(other.ack(jobs[0].handle), Errc::not_owner);
    CHECK_ERRC(other.fail(jobs[0].handle), Errc::not_owner);
    CHECK(status_of(scratch.queue(), jobs[0].handle.id) == JobStatus::picked);
    // A registered non-owner is refused too.
    enqueue_text(other, ep, "y");
    CHECK_ERRC(other.ack(jobs[0].handle), Errc::not_owner);
    CHECK_THROWS_MATCHES(other.retry(jobs[0].handle), Error,
                         HasErrcEither(Errc::not_owner, Errc::stale_handle));
    CHECK(status_of(scratch.queue(), jobs[0].handle.id) == JobStatus::picked);
    scratch->ack(jobs[0].handle);
}

TEST_CASE("every error code has a distinct stable name", "[errors]") {
    std::set<std::string> names;
    for (int code = int(Errc::ok); code <= int(Errc::system_error); ++code) {
        const std::string name(errc_name(Errc(code)));
        CHECK(name != "unknown_error");
        names.insert(name);
    }
    CHECK(names.size() == std::size_t(int(Errc::system_error) + 1));
    CHECK(errc_name(Errc::arena_full) == "arena_full");
    CHECK(errc_name(Errc(9999)) == "unknown_error");
}

TEST_CASE("durability and status names round-trip and bad durability text is invalid_argument", "[errors]") {
    for (Durability d : {Durability::memory, Durability::async, Durability::sync})
        CHECK(parse_durability(durability_name(d)) == d);
    CHECK_ERRC(parse_durability("fast"), Errc::invalid_argument);
    CHECK_ERRC(parse_durability(""), Errc::invalid_argument);
    CHECK(job_status_name(JobStatus::queued) == "queued");
    CHECK(job_status_name(JobStatus::picked) == "picked");
    CHECK(job_status_name(JobStatus::successful) == "successful");
    CHECK(job_status_name(JobStatus::exception) == "exception");
    CHECK(job_status_name(JobStatus::canceled) == "canceled");
    CHECK(job_status_name(JobStatus::unknown) == "unknown");
}

TEST_CASE("throw_system_error maps EACCES to permission_denied and names the call", "[errors]") {
    try {
        throw_system_error("shm_open", EACCES);
    } catch (const Error& error) {
        CHECK(error.code() == Errc::permission_denied);
        CHECK_THAT(error.what(), Catch::Contains("shm_open"));
    }
    try {
        throw_system_error("mmap", ENOMEM);
    } catch (const Error& error) {
        CHECK(error.code() == Errc::system_error);
        CHECK_THAT(error.what(), Catch::Contains("mmap"));
    }
}
