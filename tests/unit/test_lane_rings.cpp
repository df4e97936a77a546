// Ready lanes as rings of slot indices (docs/architecture.md, "Entrypoint
// indexes"; core/src/entrypoint_index.cpp): holes left by cancels, the
// compaction of a ring full of holes, one ring per priority, and what the
// doctor and the repair do with a ring that does not match its jobs. One
// behaviour per test case.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout.hpp"
#include "unit_support.hpp"

using namespace currant;
using namespace currant::unit;

namespace {

// The payloads of every job ready now, in the order dequeue hands them out
// (one job per call, so the order is the pick order), acked.
std::vector<std::string> drain_in_order(Queue& queue, EntrypointId ep) {
    std::vector<std::string> order;
    for (;;) {
        auto jobs = dequeue_now(queue, ep, 1);
        if (jobs.empty()) return order;
        order.push_back(text(jobs[0].payload));
        queue.ack(jobs[0].handle);
    }
}

// The segment mapped read-write, to tear a lane ring the way a bug or a
// stray write would.
struct Mapped {
    void* base = nullptr;
    std::size_t size = 0;
    explicit Mapped(const std::string& name) {
        const int fd = ::shm_open(shm::object_name_for(name).c_str(), O_RDWR, 0);
        REQUIRE(fd >= 0);
        struct stat st {};
        REQUIRE(::fstat(fd, &st) == 0);
        size = std::size_t(st.st_size);
        base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ::close(fd);
        REQUIRE(base != MAP_FAILED);
    }
    ~Mapped() { ::munmap(base, size); }
    std::byte* bytes() const { return static_cast<std::byte*>(base); }
    const shm::SegmentHeader& header() const { return *reinterpret_cast<const shm::SegmentHeader*>(bytes()); }
    detail::EntrypointControl& control(EntrypointId ep) const {
        const detail::CoreGeometry g = detail::compute_core_geometry(header().parameters);
        return reinterpret_cast<detail::EntrypointControl*>(bytes() + header().core_offset + g.entrypoints_offset)[ep];
    }
    std::uint32_t* ring(EntrypointId ep, std::uint32_t ring_index) const {
        const detail::CoreGeometry g = detail::compute_core_geometry(header().parameters);
        return reinterpret_cast<std::uint32_t*>(bytes() + header().core_offset + g.lane_rings_offset) +
               (std::uint64_t(ep) * detail::max_priority_lanes + ring_index) * g.lane_ring_capacity;
    }
};

} // namespace

TEST_CASE("jobs canceled in the middle of a lane leave holes that dequeue skips, in FIFO order", "[lanes]") {
    ScratchQueue scratch("ring-holes", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    std::vector<JobId> ids;
    for (const char* p : {"a", "b", "c", "d", "e"}) ids.push_back(enqueue_text(scratch.queue(), ep, p));
    REQUIRE(scratch->cancel(ids[1]) == CancelOutcome::canceled);
    REQUIRE(scratch->cancel(ids[3]) == CancelOutcome::canceled);
    CHECK(scratch->doctor().sound);
    CHECK(drain_in_order(scratch.queue(), ep) == std::vector<std::string>{"a", "c", "e"});
    CHECK(scratch->doctor().sound);
}

TEST_CASE("an append to a lane ring full of holes compacts it and keeps FIFO order", "[lanes]") {
    // 8 slots: the ring has 8 entries. 8 jobs fill it; 3 cancels in the
    // middle leave holes, so the next append finds the ring full.
    QueueOptions options = small_options(8);
    options.max_participants = 2;
    ScratchQueue scratch("ring-compact", options);
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    std::vector<JobId> ids;
    for (const char* p : {"a", "b", "c", "d", "e", "f", "g", "h"}) ids.push_back(enqueue_text(scratch.queue(), ep, p));
    for (int i : {2, 3, 5}) REQUIRE(scratch->cancel(ids[std::size_t(i)]) == CancelOutcome::canceled);
    for (const char* p : {"i", "j", "k"}) enqueue_text(scratch.queue(), ep, p);
    CHECK(scratch->doctor().sound);
    CHECK(drain_in_order(scratch.queue(), ep) ==
          std::vector<std::string>{"a", "b", "e", "g", "h", "i", "j", "k"});
    CHECK(scratch->doctor().sound);
}

TEST_CASE("32 priorities queued at once each keep their own ring: priority first, FIFO within", "[lanes]") {
    ScratchQueue scratch("ring-32", small_options(128));
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    // Interleaved: priority p gets jobs "p:0" then "p:1", lanes created in a scrambled order.
    for (int round = 0; round < 2; ++round)
        for (int k = 0; k < 32; ++k) {
            const int priority = (k * 7) % 32;
            EnqueueOptions o;
            o.priority = priority;
            enqueue_text(scratch.queue(), ep, std::to_string(priority) + ":" + std::to_string(round), o);
        }
    CHECK(scratch->doctor().sound);
    std::vector<std::string> expected;
    for (int priority = 31; priority >= 0; --priority)
        for (int round = 0; round < 2; ++round) expected.push_back(std::to_string(priority) + ":" + std::to_string(round));
    CHECK(drain_in_order(scratch.queue(), ep) == expected);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a lane emptied and created again for another priority reuses a free ring", "[lanes]") {
    ScratchQueue scratch("ring-reuse", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    for (int cycle = 0; cycle < 40; ++cycle) { // more lane creations than there are rings
        EnqueueOptions high, low;
        high.priority = cycle + 1;
        low.priority = -cycle;
        enqueue_text(scratch.queue(), ep, "low", low);
        enqueue_text(scratch.queue(), ep, "high", high);
        CHECK(drain_in_order(scratch.queue(), ep) == std::vector<std::string>{"high", "low"});
    }
    CHECK(scratch->doctor().sound);
}

TEST_CASE("doctor reports a lane ring entry that does not match its job's recorded position", "[lanes][doctor]") {
    ScratchQueue scratch("ring-doctor", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    enqueue_text(scratch.queue(), ep, "a");
    enqueue_text(scratch.queue(), ep, "b");
    Mapped mapped(scratch.name());
    detail::EntrypointControl& c = mapped.control(ep);
    REQUIRE(c.lane_count == 1);
    std::uint32_t* ring = mapped.ring(ep, c.lanes[0].ring);
    const std::uint32_t head = c.lanes[0].head;
    CHECK(scratch->doctor().sound);
    std::swap(ring[head], ring[head + 1]); // each slot now sits at the other's position
    const DoctorReport torn = scratch->doctor();
    CHECK_FALSE(torn.sound);
    bool named = false;
    for (const auto& problem : torn.problems) named = named || problem.find("does not record its lane ring position") != std::string::npos;
    CHECK(named);
    std::swap(ring[head], ring[head + 1]);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("a pick that meets a torn lane ring refuses with corrupt_segment and the next locker rebuilds it", "[lanes][repair]") {
    ScratchQueue scratch("ring-repair", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    for (const char* p : {"a", "b", "c"}) enqueue_text(scratch.queue(), ep, p);
    {
        Mapped mapped(scratch.name());
        detail::EntrypointControl& c = mapped.control(ep);
        REQUIRE(c.lane_count == 1);
        std::uint32_t* ring = mapped.ring(ep, c.lanes[0].ring);
        ring[c.lanes[0].head] = 1u << 31; // out of range
    }
    std::vector<Job> out(1);
    const EntrypointId eps[] = {ep};
    CHECK_ERRC(scratch->dequeue(eps, out, 0ns), Errc::corrupt_segment);
    // The refusal asked for a repair: the next locker rebuilds the lanes
    // from the state words, and nothing was lost or reordered.
    CHECK(drain_in_order(scratch.queue(), ep) == std::vector<std::string>{"a", "b", "c"});
    CHECK(scratch->doctor().sound);
}

TEST_CASE("lane rings are sparse: a queue that used one lane allocates only the ring pages it reached", "[lanes][memory]") {
    // The default geometry: 65,536 slots and 64 entrypoints, so 32 rings of
    // 65,536 entries each per entrypoint: 512 MiB of address space in rings.
    QueueOptions options = small_options(65536);
    options.max_entrypoints = 64;
    ScratchQueue scratch("ring-sparse", options);
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    for (int i = 0; i < 2000; ++i) enqueue_text(scratch.queue(), ep, "x");
    CHECK(drain_in_order(scratch.queue(), ep).size() == 2000);
    const int fd = ::shm_open(shm::object_name_for(scratch.name()).c_str(), O_RDONLY, 0);
    REQUIRE(fd >= 0);
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    ::close(fd);
    const detail::CoreGeometry g = detail::compute_core_geometry(Mapped(scratch.name()).header().parameters);
    const std::uint64_t ring_bytes = 4ull * g.lane_ring_capacity * detail::max_priority_lanes * 64;
    CHECK(ring_bytes == 512ull << 20);
    CHECK(std::uint64_t(st.st_size) > ring_bytes);
    // Allocated: the arena and the slot-indexed tables the creator writes
    // (tens of MiB), never the 512 MiB of rings.
    const std::uint64_t allocated = std::uint64_t(st.st_blocks) * 512;
    INFO("segment " << st.st_size << " bytes, allocated " << allocated);
    CHECK(allocated < 128ull << 20);
}

TEST_CASE("a lane whose span is longer than its ring is refused at once, not walked, and rebuilt", "[lanes][repair]") {
    ScratchQueue scratch("ring-span", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    for (const char* p : {"a", "b"}) enqueue_text(scratch.queue(), ep, p);
    {
        Mapped mapped(scratch.name());
        detail::EntrypointControl& c = mapped.control(ep);
        REQUIRE(c.lane_count == 1);
        c.lanes[0].tail = c.lanes[0].head - 1; // a span of 2^32 - 1 positions
    }
    CHECK_FALSE(scratch->doctor().sound);
    // An append (the producer) refuses at once; the next locker rebuilds.
    CHECK_ERRC(enqueue_text(scratch.queue(), ep, "c"), Errc::corrupt_segment);
    CHECK(drain_in_order(scratch.queue(), ep) == std::vector<std::string>{"a", "b"});
    CHECK(scratch->doctor().sound);
}
