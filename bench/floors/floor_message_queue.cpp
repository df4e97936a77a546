// Floor: Boost.Interprocess message_queue between two processes.
//
// The parent sends N messages of 64 bytes, the forked child receives them
// (checking order and content). Reports messages per second from the moment
// both are ready until the child has received the last message. This is the
// "off-the-shelf" baseline a shared-memory job queue has to beat.
#include "floor_common.hpp"

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>

#include <array>
#include <atomic>

namespace bip = boost::interprocess;

namespace {

constexpr std::size_t kMessageBytes = 64;

// One message: a sequence number and payload words derived from it, so the
// receiver can tell a lost, reordered or torn message.
struct Message {
    std::uint64_t seq;
    std::array<std::uint64_t, 7> words;
};
static_assert(sizeof(Message) == kMessageBytes);
static_assert(std::is_trivially_copyable_v<Message>);

constexpr std::uint64_t word_for(std::uint64_t seq, std::size_t k) {
    return seq * 0x9E3779B97F4A7C15ull + k;
}

struct Shared {
    floors::StartLine start;
    std::int64_t end_ns;      // child: time of the last receive, before exit
    std::uint64_t received;   // child: messages received
    std::uint64_t bad;        // child: messages out of order or corrupted
};

// Name of the queue: one per run, so concurrent runs do not collide. Kept
// in a static buffer so the signal-time cleanup can unlink it safely.
char g_name[64];
char g_shm_path[72];

void unlink_queue() noexcept { shm_unlink(g_shm_path); }

int receive_all(Shared* sh, std::uint64_t n) {
    try {
        bip::message_queue mq(bip::open_only, g_name);
        sh->start.child_arrive_and_wait();
        Message m{};
        std::uint64_t bad = 0;
        for (std::uint64_t i = 0; i < n; ++i) {
            bip::message_queue::size_type got = 0;
            unsigned prio = 0;
            mq.receive(&m, sizeof m, got, prio);
            bool ok = got == sizeof m && m.seq == i;
            for (std::size_t k = 0; k < m.words.size(); ++k) ok = ok && m.words[k] == word_for(i, k);
            bad += ok ? 0 : 1;
        }
        sh->end_ns = floors::now_ns();
        sh->received = n;
        sh->bad = bad;
        return 0;
    } catch (const bip::interprocess_exception& e) {
        std::fprintf(stderr, "floor_message_queue: receiver: %s\n", e.what());
        return 1;
    }
}

} // namespace

int main(int argc, char** argv) {
    std::vector<floors::IntOption> opts{
        {"messages", 2'000'000, 1, "messages to send"},
        {"depth", 1024, 1, "queue capacity in messages"},
    };
    const auto common = floors::parse_args(
        argc, argv,
        "Boost.Interprocess message_queue between two processes: one sends 64-byte "
        "messages, the other receives them; reports messages/s.",
        opts);
    const std::uint64_t n = opts[0].value;
    const std::uint64_t depth = opts[1].value;

    std::snprintf(g_name, sizeof g_name, "currant-floor-mq.%ld", static_cast<long>(getpid()));
    std::snprintf(g_shm_path, sizeof g_shm_path, "/%s", g_name);
    floors::set_cleanup(unlink_queue);
    floors::arm_watchdog(common);

    auto* sh = floors::map_shared_object<Shared>();
    floors::Placement where;
    std::uint64_t sent = 0;
    bool ok = true;
    try {
        bip::message_queue::remove(g_name);
        bip::message_queue mq(bip::create_only, g_name, depth, kMessageBytes);

        pid_t child = floors::spawn(common, where, [&] { return receive_all(sh, n); });

        sh->start.parent_release();
        Message m{};
        for (std::uint64_t i = 0; i < n; ++i) {
            m.seq = i;
            for (std::size_t k = 0; k < m.words.size(); ++k) m.words[k] = word_for(i, k);
            mq.send(&m, sizeof m, 0);
            ++sent;
        }
        ok = floors::wait_child(child);
    } catch (const bip::interprocess_exception& e) {
        std::fprintf(stderr, "floor_message_queue: sender: %s\n", e.what());
        ok = false;
    }
    bip::message_queue::remove(g_name);
    floors::set_cleanup(nullptr);
    if (!ok) return 1;
    if (sh->received != n || sh->bad != 0) {
        std::fprintf(stderr,
                     "floor_message_queue: sent %" PRIu64 ", received %" PRIu64 ", %" PRIu64
                     " out of order or corrupted\n",
                     sent, sh->received, sh->bad);
        return 1;
    }

    const double seconds = static_cast<double>(sh->end_ns - sh->start.start_ns) / 1e9;
    const double rate = static_cast<double>(n) / seconds;
    if (common.json) {
        floors::JsonLine j("message_queue");
        j.add("messages", n).add("message_bytes", std::uint64_t{kMessageBytes}).add("depth", depth);
        j.add("seconds", seconds, 6).add("messages_per_sec", rate, 0);
        j.add("ns_per_message", seconds * 1e9 / static_cast<double>(n), 1);
        floors::add_placement(j, where);
        j.print();
    } else {
        std::printf("floor message_queue: %" PRIu64 " x %zu-byte messages, depth %" PRIu64
                    ", %s: %.3f s, %.0f messages/s (%.1f ns/message)\n",
                    n, kMessageBytes, depth, floors::placement_text(where), seconds, rate,
                    seconds * 1e9 / static_cast<double>(n));
    }
    return 0;
}
