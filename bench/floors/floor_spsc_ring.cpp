// Floor: lock-free single-producer single-consumer ring between two processes.
//
// Fixed-size 64-byte records in an anonymous shared mapping; the parent
// produces N records, the forked child consumes them and checks order and
// content. Reports records per second from the moment both are ready until
// the child has consumed the last record. This is about the most a
// shared-memory handoff of 64-byte records can do between two processes
// here, with no locking, no allocation and no system calls.
//
// The ring: `tail` counts records published, `head` records consumed (both
// only grow; slot = index & mask). Each side keeps a private copy of the
// other side's index and re-reads the shared one only when its copy says
// the ring is full (producer) or empty (consumer), so the index lines move
// between the cores only when needed.
#include "floor_common.hpp"

#include <array>
#include <atomic>

namespace {

struct alignas(64) Record {
    std::uint64_t seq;
    std::array<std::uint64_t, 7> words;
};
static_assert(sizeof(Record) == 64);
static_assert(std::is_trivially_copyable_v<Record>);

constexpr std::uint64_t word_for(std::uint64_t seq, std::size_t k) {
    return seq * 0x9E3779B97F4A7C15ull + k;
}

struct Shared {
    floors::StartLine start;
    // Producer: stores (release) after writing the record at tail & mask;
    // consumer: loads (acquire) before reading records below it.
    alignas(128) std::uint64_t tail;
    // Consumer: stores (release) after reading the record at head & mask;
    // producer: loads (acquire) before overwriting slots below head + capacity.
    alignas(128) std::uint64_t head;
    // Written by the consumer before it exits; read by the parent after reaping it.
    alignas(128) std::int64_t end_ns;
    std::uint64_t consumed;
    std::uint64_t bad; // records out of order or corrupted
};
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);

using ARef = std::atomic_ref<std::uint64_t>;

void produce(Shared* sh, Record* ring, std::uint64_t capacity, std::uint64_t n) noexcept {
    const std::uint64_t mask = capacity - 1;
    ARef shared_tail(sh->tail), shared_head(sh->head);
    std::uint64_t head_seen = 0;
    for (std::uint64_t tail = 0; tail < n; ++tail) {
        if (tail - head_seen == capacity) {
            while ((head_seen = shared_head.load(std::memory_order_acquire)) + capacity == tail)
                floors::cpu_relax();
        }
        Record& r = ring[tail & mask];
        r.seq = tail;
        for (std::size_t k = 0; k < r.words.size(); ++k) r.words[k] = word_for(tail, k);
        shared_tail.store(tail + 1, std::memory_order_release);
    }
}

int consume(Shared* sh, const Record* ring, std::uint64_t capacity, std::uint64_t n) noexcept {
    const std::uint64_t mask = capacity - 1;
    ARef shared_tail(sh->tail), shared_head(sh->head);
    sh->start.child_arrive_and_wait();
    std::uint64_t tail_seen = 0, bad = 0;
    for (std::uint64_t head = 0; head < n; ++head) {
        if (head == tail_seen) {
            while ((tail_seen = shared_tail.load(std::memory_order_acquire)) == head)
                floors::cpu_relax();
        }
        const Record& r = ring[head & mask];
        bool ok = r.seq == head;
        for (std::size_t k = 0; k < r.words.size(); ++k) ok &= r.words[k] == word_for(head, k);
        bad += ok ? 0 : 1;
        shared_head.store(head + 1, std::memory_order_release);
    }
    sh->end_ns = floors::now_ns();
    sh->consumed = n;
    sh->bad = bad;
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::vector<floors::IntOption> opts{
        {"records", 20'000'000, 1, "records to pass"},
        {"capacity", 1024, 2, "ring capacity in records (a power of two)"},
    };
    const auto common = floors::parse_args(
        argc, argv,
        "Lock-free SPSC ring of 64-byte records between two processes in shared memory; "
        "reports records/s.",
        opts);
    const std::uint64_t n = opts[0].value;
    const std::uint64_t capacity = opts[1].value;
    if ((capacity & (capacity - 1)) != 0 || capacity > (std::uint64_t{1} << 30)) {
        std::fprintf(stderr, "floor_spsc_ring: --capacity must be a power of two <= 2^30\n");
        return 2;
    }
    floors::arm_watchdog(common);

    auto* sh = floors::map_shared_object<Shared>();
    auto* ring = static_cast<Record*>(floors::map_shared(capacity * sizeof(Record)));
    floors::Placement where;
    pid_t child = floors::spawn(common, where, [&] { return consume(sh, ring, capacity, n); });

    sh->start.parent_release();
    produce(sh, ring, capacity, n);
    if (!floors::wait_child(child)) return 1;
    if (sh->consumed != n || sh->bad != 0) {
        std::fprintf(stderr,
                     "floor_spsc_ring: produced %" PRIu64 ", consumed %" PRIu64 ", %" PRIu64
                     " out of order or corrupted\n",
                     n, sh->consumed, sh->bad);
        return 1;
    }

    const double seconds = static_cast<double>(sh->end_ns - sh->start.start_ns) / 1e9;
    const double rate = static_cast<double>(n) / seconds;
    if (common.json) {
        floors::JsonLine j("spsc_ring");
        j.add("records", n).add("record_bytes", std::uint64_t{sizeof(Record)}).add("capacity", capacity);
        j.add("seconds", seconds, 6).add("records_per_sec", rate, 0);
        j.add("ns_per_record", seconds * 1e9 / static_cast<double>(n), 2);
        floors::add_placement(j, where);
        j.print();
    } else {
        std::printf("floor spsc_ring: %" PRIu64 " x %zu-byte records, capacity %" PRIu64
                    ", %s: %.3f s, %.0f records/s (%.2f ns/record)\n",
                    n, sizeof(Record), capacity, floors::placement_text(where), seconds, rate,
                    seconds * 1e9 / static_cast<double>(n));
    }
    return 0;
}
