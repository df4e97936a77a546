// Dedupe keys in one process (docs/dedupe.md): skip and refuse, the key
// freed when its job ends, kept across retries, scoped to the entrypoint,
// bad keys refused. The multiprocess and crash suites cover other processes
// and deaths.
#include "unit_support.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "currant/shm/segment.hpp"
#include "queue_state.hpp"

using namespace currant;
using namespace currant::unit;

namespace {

EnqueueOptions keyed(std::string key, OnDuplicate policy = OnDuplicate::skip) {
    EnqueueOptions options;
    options.dedupe_key = std::move(key);
    options.on_duplicate = policy;
    return options;
}

std::size_t jobs_of(Queue& queue, EntrypointId ep) {
    const EntrypointStats s = stats_of(queue, ep);
    return s.queued + s.delayed + s.picked;
}

void require_sound(Queue& queue) {
    const DoctorReport report = queue.doctor();
    INFO((report.problems.empty() ? std::string() : report.problems.front()));
    REQUIRE(report.sound);
}

// The count of used entries of an entrypoint's dedupe index, read from the
// segment (core's internal layout).
std::uint32_t index_entries_used(const std::string& queue_name, EntrypointId ep) {
    const int fd = ::shm_open(shm::object_name_for(queue_name).c_str(), O_RDONLY, 0);
    REQUIRE(fd >= 0);
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    void* base = ::mmap(nullptr, std::size_t(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    REQUIRE(base != MAP_FAILED);
    const auto* bytes = static_cast<const std::byte*>(base);
    const auto& header = *reinterpret_cast<const shm::SegmentHeader*>(bytes);
    const detail::CoreGeometry g = detail::compute_core_geometry(header.parameters);
    const std::uint32_t used =
        reinterpret_cast<const detail::EntrypointControl*>(bytes + header.core_offset + g.entrypoints_offset)[ep]
            .dedupe_used;
    ::munmap(base, std::size_t(st.st_size));
    return used;
}

} // namespace

TEST_CASE("a second enqueue with a held key is skipped and returns the holder's id", "[dedupe]") {
    ScratchQueue q("dedupe-skip", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    const JobId first = enqueue_text(q.queue(), ep, "one", keyed("order-1"));
    CHECK_FALSE(q->last_enqueue_skipped());
    const JobId second = enqueue_text(q.queue(), ep, "two", keyed("order-1"));
    CHECK(second == first);
    CHECK(q->last_enqueue_skipped());
    CHECK(jobs_of(q.queue(), ep) == 1);
    const auto jobs = dequeue_now(q.queue(), ep);
    REQUIRE(jobs.size() == 1);
    CHECK(as_text(jobs[0].payload) == "one");
    require_sound(q.queue());
}

TEST_CASE("a keyless enqueue after a skipped one is reported as not skipped", "[dedupe]") {
    // The keyless single enqueue has its own path (producing.cpp): it must
    // reset what the skipped keyed enqueue left.
    ScratchQueue q("dedupe-skip-reset", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    enqueue_text(q.queue(), ep, "one", keyed("order-1"));
    enqueue_text(q.queue(), ep, "two", keyed("order-1"));
    REQUIRE(q->last_enqueue_skipped());
    const JobId keyless = enqueue_text(q.queue(), ep, "three");
    CHECK_FALSE(q->last_enqueue_skipped());
    CHECK(keyless != 0);
    CHECK(jobs_of(q.queue(), ep) == 2);
    require_sound(q.queue());
}

TEST_CASE("refuse throws already_exists naming the key and the holder, and enqueues nothing", "[dedupe]") {
    ScratchQueue q("dedupe-refuse", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    const JobId first = enqueue_text(q.queue(), ep, "one", keyed("order-1", OnDuplicate::refuse));
    try {
        enqueue_text(q.queue(), ep, "two", keyed("order-1", OnDuplicate::refuse));
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == Errc::already_exists);
        const std::string message = e.what();
        CHECK(message.find("order-1") != std::string::npos);
        CHECK(message.find(std::to_string(first)) != std::string::npos);
        CHECK(message.find("'work'") != std::string::npos);
    }
    CHECK(jobs_of(q.queue(), ep) == 1);
    CHECK(stats_of(q.queue(), ep).enqueued == 1);
    require_sound(q.queue());
}

TEST_CASE("different keys, keyless jobs and other entrypoints do not collide", "[dedupe]") {
    ScratchQueue q("dedupe-scope", small_options());
    const EntrypointId a = q->declare_entrypoint("a");
    const EntrypointId b = q->declare_entrypoint("b");
    const JobId a1 = enqueue_text(q.queue(), a, "x", keyed("k1"));
    const JobId a2 = enqueue_text(q.queue(), a, "x", keyed("k2"));
    const JobId b1 = enqueue_text(q.queue(), b, "x", keyed("k1")); // per entrypoint
    const JobId plain1 = enqueue_text(q.queue(), a, "x");
    const JobId plain2 = enqueue_text(q.queue(), a, "x");
    const std::set<JobId> ids{a1, a2, b1, plain1, plain2};
    CHECK(ids.size() == 5);
    CHECK(jobs_of(q.queue(), a) == 4);
    CHECK(jobs_of(q.queue(), b) == 1);
    require_sound(q.queue());
}

TEST_CASE("a picked job still holds its key", "[dedupe]") {
    ScratchQueue q("dedupe-picked", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    const JobId first = enqueue_text(q.queue(), ep, "one", keyed("k"));
    auto jobs = dequeue_now(q.queue(), ep);
    REQUIRE(jobs.size() == 1);
    CHECK(enqueue_text(q.queue(), ep, "two", keyed("k")) == first);
    CHECK_ERRC(enqueue_text(q.queue(), ep, "two", keyed("k", OnDuplicate::refuse)), Errc::already_exists);
    q->ack(jobs[0].handle);
}

TEST_CASE("a delayed job holds its key", "[dedupe]") {
    ScratchQueue q("dedupe-delayed", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    EnqueueOptions later = keyed("k");
    later.execute_after_ns = realtime_in(std::chrono::hours(1));
    const JobId first = enqueue_text(q.queue(), ep, "later", later);
    CHECK(stats_of(q.queue(), ep).delayed == 1);
    CHECK(enqueue_text(q.queue(), ep, "now", keyed("k")) == first);
    CHECK(stats_of(q.queue(), ep).queued == 0);
}

TEST_CASE("the key is free again once its job ends", "[dedupe]") {
    for (const Durability durability : {Durability::memory, Durability::async}) {
        DYNAMIC_SECTION("durability " << durability_name(durability)) {
            QueueOptions queue_options = small_options();
            queue_options.log_capacity = 1024; // async without a mirror: the log only fills
            ScratchQueue q("dedupe-freed", queue_options);
            EntrypointOptions options;
            options.durability = durability;
            options.max_attempts = 1;
            const EntrypointId ep = q->declare_entrypoint("work", options);
            auto end_with = [&](const char* how) {
                const JobId held = enqueue_text(q.queue(), ep, how, keyed("k"));
                CHECK(enqueue_text(q.queue(), ep, how, keyed("k")) == held);
                if (std::string(how) == "cancel") {
                    REQUIRE(q->cancel(held) == currant::CancelOutcome::canceled);
                } else {
                    auto jobs = dequeue_now(q.queue(), ep);
                    REQUIRE(jobs.size() == 1);
                    if (std::string(how) == "ack") q->ack(jobs[0].handle);
                    else if (std::string(how) == "fail") q->fail(jobs[0].handle);
                    else if (std::string(how) == "dead") CHECK_FALSE(q->retry(jobs[0].handle)); // max_attempts 1
                    else if (std::string(how) == "deferred") {
                        q->ack_deferred(jobs[0].handle);
                        q->flush();
                    }
                }
                const JobId next = enqueue_text(q.queue(), ep, how, keyed("k", OnDuplicate::refuse));
                CHECK(next != held);
                CHECK_FALSE(q->last_enqueue_skipped());
                auto jobs = dequeue_now(q.queue(), ep);
                REQUIRE(jobs.size() == 1);
                CHECK(jobs[0].handle.id == next);
                q->ack(jobs[0].handle);
            };
            for (const char* how : {"ack", "fail", "cancel", "dead", "deferred"}) {
                INFO(how);
                end_with(how);
            }
            // async: finished slots wait for a mirror; there is none, so
            // they stay until the arena fills. Keys are free regardless.
            require_sound(q.queue());
        }
    }
}

TEST_CASE("a retried job keeps its key", "[dedupe]") {
    ScratchQueue q("dedupe-retry", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    const JobId held = enqueue_text(q.queue(), ep, "one", keyed("k"));
    auto jobs = dequeue_now(q.queue(), ep);
    REQUIRE(jobs.size() == 1);
    REQUIRE(q->retry(jobs[0].handle, std::chrono::milliseconds(0)));
    CHECK(status_of(q.queue(), held) == JobStatus::queued);
    CHECK(enqueue_text(q.queue(), ep, "two", keyed("k")) == held);
    CHECK_ERRC(enqueue_text(q.queue(), ep, "two", keyed("k", OnDuplicate::refuse)), Errc::already_exists);
    CHECK(jobs_of(q.queue(), ep) == 1);
    require_sound(q.queue());
}

TEST_CASE("a job requeued after its owner closed keeps its key", "[dedupe]") {
    ScratchQueue q("dedupe-requeue", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    const JobId held = enqueue_text(q.queue(), ep, "one", keyed("k"));
    {
        Queue consumer = Queue::open(q.name());
        auto jobs = dequeue_now(consumer, ep);
        REQUIRE(jobs.size() == 1);
        consumer.close(); // requeued, attempt counted
    }
    CHECK(status_of(q.queue(), held) == JobStatus::queued);
    CHECK(enqueue_text(q.queue(), ep, "two", keyed("k")) == held);
}

TEST_CASE("reserve and commit honour the key; a duplicate uses the reservation up", "[dedupe]") {
    ScratchQueue q("dedupe-commit", small_options(8));
    const EntrypointId ep = q->declare_entrypoint("work");
    const JobId held = enqueue_text(q.queue(), ep, "one", keyed("k"));
    const std::uint32_t free_before = q->info().free_slots;
    Reservation r = q->reserve(ep);
    std::memcpy(r.payload.data(), "two", 3);
    CHECK(q->commit(r, 3, keyed("k")) == held);
    CHECK(q->last_enqueue_skipped());
    CHECK(r.payload.data() == nullptr);
    Reservation r2 = q->reserve(ep);
    CHECK_ERRC(q->commit(r2, 0, keyed("k", OnDuplicate::refuse)), Errc::already_exists);
    CHECK(r2.payload.data() == nullptr);
    Reservation r3 = q->reserve(ep);
    const JobId other = q->commit(r3, 0, keyed("other"));
    CHECK(other == r3.id);
    CHECK(jobs_of(q.queue(), ep) == 2);
    CHECK(q->info().free_slots + 1 >= free_before - 1); // the duplicates' slots came back (into caches)
    require_sound(q.queue());
}

TEST_CASE("enqueue_batch takes a key for one job only", "[dedupe]") {
    ScratchQueue q("dedupe-batch", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    const std::span<const std::byte> payloads[] = {as_payload("a"), as_payload("b")};
    JobId ids[2] = {};
    CHECK_ERRC(q->enqueue_batch(ep, payloads, ids, keyed("k")), Errc::invalid_argument);
    CHECK(jobs_of(q.queue(), ep) == 0);
    REQUIRE(q->enqueue_batch(ep, std::span(payloads).first(1), ids, keyed("k")) == 1);
    const JobId held = ids[0];
    REQUIRE(q->enqueue_batch(ep, std::span(payloads).first(1), ids, keyed("k")) == 1);
    CHECK(ids[0] == held);
    CHECK(q->last_enqueue_skipped());
    CHECK(jobs_of(q.queue(), ep) == 1);
}

TEST_CASE("bad dedupe keys are refused with a clear error and nothing queued is lost", "[dedupe][errors]") {
    ScratchQueue q("dedupe-bad", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    const JobId held = enqueue_text(q.queue(), ep, "kept", keyed("good"));
    auto refused = [&](const std::string& key, const std::string& says) {
        try {
            enqueue_text(q.queue(), ep, "x", keyed(key));
            FAIL("accepted a bad key");
        } catch (const Error& e) {
            CHECK(e.code() == Errc::invalid_argument);
            const std::string message = e.what();
            INFO(message);
            CHECK(message.find(says) != std::string::npos);
            CHECK(message.find("'work'") != std::string::npos);
        }
    };
    refused("", "empty");
    refused(std::string(max_dedupe_key_bytes + 1, 'k'), "129 bytes");
    refused("line\nbreak", "control character (0x0a) at byte 4");
    refused(std::string("nul\0x", 5), "0x00");
    refused("del\x7f", "0x7f");
    // The longest key and non-ASCII bytes are fine.
    const JobId longest = enqueue_text(q.queue(), ep, "x", keyed(std::string(max_dedupe_key_bytes, 'k')));
    CHECK(enqueue_text(q.queue(), ep, "x", keyed(std::string(max_dedupe_key_bytes, 'k'))) == longest);
    enqueue_text(q.queue(), ep, "x", keyed("caf\xc3\xa9"));
    CHECK(status_of(q.queue(), held) == JobStatus::queued);
    CHECK(jobs_of(q.queue(), ep) == 3);
    CHECK_ERRC(parse_on_duplicate("ignore"), Errc::invalid_argument);
    CHECK(parse_on_duplicate("refuse") == OnDuplicate::refuse);
    EnqueueOptions strange = keyed("k2");
    strange.on_duplicate = OnDuplicate(7);
    CHECK_ERRC(enqueue_text(q.queue(), ep, "x", strange), Errc::invalid_argument);
}

TEST_CASE("many keys through a small arena: stale entries are cleaned and the index stays sound", "[dedupe]") {
    ScratchQueue q("dedupe-churn", small_options(16));
    const EntrypointId ep = q->declare_entrypoint("work");
    // 16 slots: an index of 32 entries. Thousands of distinct keys go
    // through it (each acked without the lock, leaving a stale entry).
    for (int round = 0; round < 2000; ++round) {
        const JobId a = enqueue_text(q.queue(), ep, "x", keyed("key-" + std::to_string(round)));
        const JobId b = enqueue_text(q.queue(), ep, "x", keyed("key-" + std::to_string(round + 1)));
        REQUIRE(enqueue_text(q.queue(), ep, "x", keyed("key-" + std::to_string(round))) == a);
        auto jobs = dequeue_now(q.queue(), ep);
        REQUIRE(jobs.size() == 2);
        q->ack(jobs[0].handle);
        q->ack(jobs[1].handle);
        CHECK(b != a);
        if (round % 500 == 0) require_sound(q.queue());
    }
    // Fill the arena with keyed jobs: every key found.
    std::vector<JobId> held;
    for (int i = 0; i < 16; ++i) held.push_back(enqueue_text(q.queue(), ep, "x", keyed("full-" + std::to_string(i))));
    // A full arena still answers duplicates; a new key gets arena_full.
    for (int i = 0; i < 16; ++i)
        CHECK(enqueue_text(q.queue(), ep, "x", keyed("full-" + std::to_string(i))) == held[std::size_t(i)]);
    CHECK_ERRC(enqueue_text(q.queue(), ep, "x", keyed("full-16")), Errc::arena_full);
    CHECK_ERRC(enqueue_text(q.queue(), ep, "x", keyed("full-3", OnDuplicate::refuse)), Errc::already_exists);
    require_sound(q.queue());
}

TEST_CASE("an index crowded with stale entries of other keys still finds the holder and is rebuilt", "[dedupe]") {
    ScratchQueue q("dedupe-crowded", small_options(16));
    const EntrypointId ep = q->declare_entrypoint("work");
    // 16 slots: an index of 32 entries. One key stays held while hundreds
    // of other keys come and go; their entries (another hash) are skipped
    // unread by probes and go stale, so only the rebuild at three quarters
    // full removes them (doctor reports an index above that).
    const JobId holder = enqueue_text(q.queue(), ep, "held", keyed("the-holder"));
    REQUIRE(dequeue_now(q.queue(), ep).size() == 1); // picked: it still holds its key
    std::set<JobId> seen{holder};
    for (int i = 0; i < 300; ++i) {
        const JobId id = enqueue_text(q.queue(), ep, "x", keyed("passing-" + std::to_string(i), OnDuplicate::refuse));
        REQUIRE(seen.insert(id).second); // a new key is never refused nor answered with another job
        REQUIRE_FALSE(q->last_enqueue_skipped());
        REQUIRE(enqueue_text(q.queue(), ep, "x", keyed("the-holder")) == holder);
        REQUIRE(q->last_enqueue_skipped());
        CHECK_ERRC(enqueue_text(q.queue(), ep, "x", keyed("the-holder", OnDuplicate::refuse)), Errc::already_exists);
        auto jobs = dequeue_now(q.queue(), ep);
        REQUIRE(jobs.size() == 1);
        REQUIRE(jobs[0].handle.id == id);
        q->ack(jobs[0].handle); // lock-free: its entry turns stale
        require_sound(q.queue());
    }
    CHECK(jobs_of(q.queue(), ep) == 1);
}

TEST_CASE("the mirror reads a job's dedupe key", "[dedupe][feed]") {
    ScratchQueue q("dedupe-snapshot", small_options());
    EntrypointOptions options;
    options.durability = Durability::async;
    const EntrypointId ep = q->declare_entrypoint("work", options);
    const JobId keyed_id = enqueue_text(q.queue(), ep, "a", keyed("mirror-me"));
    const JobId plain_id = enqueue_text(q.queue(), ep, "b");
    Transition feed[4];
    REQUIRE(q->read_feed(ep, 1, feed) == 2);
    JobSnapshot snapshot;
    REQUIRE(q->read_job(feed[0].slot, keyed_id, snapshot));
    CHECK(snapshot.dedupe_key == std::optional<std::string>("mirror-me"));
    REQUIRE(q->read_job(feed[1].slot, plain_id, snapshot));
    CHECK_FALSE(snapshot.dedupe_key.has_value());
}

TEST_CASE("restore honours the key (rebuild and remote claims)", "[dedupe][feed]") {
    ScratchQueue q("dedupe-restore", small_options());
    const EntrypointId ep = q->declare_entrypoint("work");
    RestoredJob job;
    job.id = 1000;
    const JobId restored = q->restore(ep, job, keyed("r"));
    CHECK(restored == 1000);
    job.id = 1001;
    CHECK(q->restore(ep, job, keyed("r")) == 1000);
    CHECK(q->last_enqueue_skipped());
    job.id = 1002;
    CHECK_ERRC(q->restore(ep, job, keyed("r", OnDuplicate::refuse)), Errc::already_exists);
    CHECK(enqueue_text(q.queue(), ep, "x", keyed("r")) == 1000);
    CHECK(jobs_of(q.queue(), ep) == 1);
}

// The key hash (dedupe.cpp) is part of the segment's format: stored in the
// key area and the index, recomputed by doctor.

TEST_CASE("the key scan reports a control character at any byte of keys of any length", "[dedupe][hash]") {
    // The scan reads 8 bytes at a time: every position of the first three
    // words and of a partial last word, against the byte rule.
    for (std::size_t length = 1; length <= 24; ++length) {
        for (std::size_t at = 0; at < length; ++at) {
            for (int value = 0; value < 256; ++value) {
                std::string key(length, 'k');
                key[at] = char(value);
                const bool control = value < 0x20 || value == 0x7f;
                std::uint32_t hash = 0;
                INFO("length " << length << ", byte " << at << " = " << value);
                REQUIRE(detail::scan_dedupe_key(key, hash) == !control);
            }
        }
    }
}

TEST_CASE("the key hash gives keys one byte apart different hashes, at any byte", "[dedupe][hash]") {
    const std::string base(max_dedupe_key_bytes, 'k');
    std::unordered_set<std::uint32_t> seen{detail::dedupe_hash(base)};
    for (std::size_t at = 0; at < base.size(); ++at) {
        std::string key = base;
        key[at] = 'K';
        INFO("byte " << at);
        CHECK(seen.insert(detail::dedupe_hash(key)).second);
    }
    // A key and its prefix (the zero padding of a last word is not a byte).
    for (std::size_t length = 1; length < 24; ++length)
        CHECK(detail::dedupe_hash(base.substr(0, length)) != detail::dedupe_hash(base.substr(0, length + 1)));
}

TEST_CASE("the key hash spreads sequential keys over the index's home positions", "[dedupe][hash]") {
    // The index position is the hash's low bits; linear probing needs them
    // spread like a random function's. 2^17 keys that differ only in their
    // last digits (the benchmark's keys) into 2^17 positions: a random
    // function leaves 1/e of them empty (36.8 %) and no position with more
    // than about 10 keys, and gives about 2 full 32-bit collisions.
    constexpr std::uint32_t positions = 1u << 17;
    std::vector<std::uint32_t> load(positions, 0);
    std::unordered_map<std::uint32_t, int> hashes;
    char key[32];
    for (std::uint32_t i = 0; i < positions; ++i) {
        std::snprintf(key, sizeof key, "key-%012u", i);
        const std::uint32_t hash = detail::dedupe_hash(key);
        ++load[hash & (positions - 1)];
        ++hashes[hash];
    }
    const auto empty = std::count(load.begin(), load.end(), 0u);
    CHECK(double(empty) / positions > 0.35);
    CHECK(double(empty) / positions < 0.39);
    CHECK(*std::max_element(load.begin(), load.end()) <= 12);
    CHECK(positions - hashes.size() <= 12);
}

TEST_CASE("the key hash keeps its values (changing it needs a layout version)", "[dedupe][hash]") {
    // Processes of one layout version share a segment: these values are
    // layout 20's. A different hash must bump shm::layout_version.
    CHECK(detail::dedupe_hash("a") == 3568155110u);
    CHECK(detail::dedupe_hash("order-9") == 429456830u);
    CHECK(detail::dedupe_hash("key-000000000042") == 2660002463u);
    CHECK(detail::dedupe_hash("caf\xc3\xa9-0123456789-abcdefghij") == 4156603168u);
}

TEST_CASE("a keyed job in a reused slot deletes the stale entry of the slot's previous key", "[dedupe]") {
    // 16 slots, an index of 32 entries. Each job is acked without the lock
    // (its entry turns stale); the next keyed job that reserves its slot
    // deletes that entry, so the index holds at most one entry per slot and
    // never reaches the rebuild at three quarters (24 entries), which is
    // where it would climb without the deletion.
    ScratchQueue q("dedupe-reuse", small_options(16));
    const EntrypointId ep = q->declare_entrypoint("work");
    std::uint32_t most = 0;
    for (int i = 0; i < 500; ++i) {
        const JobId id = enqueue_text(q.queue(), ep, "x", keyed("reuse-" + std::to_string(i)));
        auto jobs = dequeue_now(q.queue(), ep);
        REQUIRE(jobs.size() == 1);
        REQUIRE(jobs[0].handle.id == id);
        q->ack(jobs[0].handle);
        most = std::max(most, index_entries_used(q.name(), ep));
    }
    CHECK(most <= 16);
    require_sound(q.queue());
}

TEST_CASE("the deletion on reuse takes only the previous key: keys held elsewhere stay found", "[dedupe]") {
    // One slot in use at a time: a key's slot is reused by the next job,
    // keyed on the same or another entrypoint, or keyless.
    ScratchQueue q("dedupe-reuse-keys", small_options(16));
    const EntrypointId ep = q->declare_entrypoint("work");
    const EntrypointId other = q->declare_entrypoint("other");
    const JobId held = enqueue_text(q.queue(), ep, "held", keyed("held"));
    REQUIRE(dequeue_now(q.queue(), ep).size() == 1); // picked: it still holds its key
    for (int i = 0; i < 200; ++i) {
        const EntrypointId where = i % 3 == 0 ? other : ep;
        const JobId id = i % 5 == 4 ? enqueue_text(q.queue(), where, "plain")
                                    : enqueue_text(q.queue(), where, "x", keyed("passing-" + std::to_string(i % 7)));
        REQUIRE_FALSE(q->last_enqueue_skipped()); // each passing key was freed by its job's end
        // The held key and this job's key are both found.
        REQUIRE(enqueue_text(q.queue(), ep, "x", keyed("held")) == held);
        if (i % 5 != 4) REQUIRE(enqueue_text(q.queue(), where, "x", keyed("passing-" + std::to_string(i % 7))) == id);
        const EntrypointId eps[] = {where};
        std::vector<Job> out(1);
        REQUIRE(q->dequeue(eps, out, 0ms) == 1);
        REQUIRE(out[0].handle.id == id);
        q->ack(out[0].handle);
        require_sound(q.queue());
    }
    CHECK(jobs_of(q.queue(), ep) == 1);
}
