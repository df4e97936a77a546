// shm::Arena: the fixed-size slot arena, its state words and free stack.
#include "unit_support.hpp"

#include <algorithm>
#include <set>

#include "currant/shm/arena.hpp"
#include "currant/shm/segment.hpp"

using namespace currant;
using namespace currant::unit;
using currant::testing::fork_child;
using currant::testing::unique_queue_name;
using currant::testing::wait_child;
using shm::Arena;
using shm::SlotState;
using shm::StateWord;

namespace {

shm::Segment create_segment(const std::string& name, std::uint32_t slots) {
    shm::CreateSpec spec;
    spec.name = name;
    spec.parameters.slot_count = slots;
    spec.parameters.payload_bytes = 16;
    spec.parameters.record_bytes = 0;
    spec.parameters.max_entrypoints = 1;
    spec.parameters.max_participants = 4;
    spec.parameters.log_capacity = 1;
    return shm::Segment::create(spec, [](shm::Segment&) {});
}

// A bare segment with only an arena, removed at scope exit.
class ScratchArena {
public:
    explicit ScratchArena(std::uint32_t slots)
        : name_(unique_queue_name("arena")), segment_(create_segment(name_, slots)), arena_(segment_) {}
    ~ScratchArena() {
        try {
            shm::Segment::remove(name_);
        } catch (...) {
        }
    }
    Arena& arena() { return arena_; }
    Arena* operator->() { return &arena_; }
    shm::Segment& segment() { return segment_; }
    SlotState state(std::uint32_t slot) { return StateWord::state(arena_.state_word(slot).load()); }
    std::uint32_t owner(std::uint32_t slot) { return StateWord::owner(arena_.state_word(slot).load()); }
    std::uint64_t epoch(std::uint32_t slot) { return StateWord::epoch(arena_.state_word(slot).load()); }

private:
    std::string name_;
    shm::Segment segment_;
    Arena arena_;
};

std::vector<std::uint32_t> reserve(Arena& arena, std::uint32_t owner, std::size_t wanted) {
    std::vector<std::uint32_t> slots(wanted);
    slots.resize(arena.reserve(owner, slots));
    return slots;
}

} // namespace

TEST_CASE("a state word packs state, owner and epoch and unpacks them unchanged", "[arena][state_word]") {
    const std::uint64_t word = StateWord::pack(SlotState::picked, 0x1234, 0xabcdef);
    CHECK(StateWord::state(word) == SlotState::picked);
    CHECK(StateWord::owner(word) == 0x1234);
    CHECK(StateWord::epoch(word) == 0xabcdef);
}

TEST_CASE("every state transition bumps the epoch, wrapping at 44 bits", "[arena][state_word]") {
    const std::uint64_t word = StateWord::pack(SlotState::queued, 0, 41);
    const std::uint64_t next = StateWord::next(word, SlotState::picked, 7);
    CHECK(StateWord::state(next) == SlotState::picked);
    CHECK(StateWord::owner(next) == 7);
    CHECK(StateWord::epoch(next) == 42);
    const std::uint64_t last = StateWord::pack(SlotState::queued, 0, (std::uint64_t(1) << 44) - 1);
    CHECK(StateWord::epoch(StateWord::next(last, SlotState::picked, 1)) == 0);
}

TEST_CASE("a new arena has every slot free and a sound free stack", "[arena]") {
    ScratchArena arena(8);
    CHECK(arena->slot_count() == 8);
    CHECK(arena->payload_bytes() == 16);
    CHECK(arena->free_count() == 8);
    CHECK(arena->check().empty());
    for (std::uint32_t slot = 0; slot < 8; ++slot) {
        CHECK(arena.state(slot) == SlotState::free);
        CHECK(arena.owner(slot) == 0);
    }
}

TEST_CASE("reserve hands out distinct free slots marked reserved by the owner", "[arena]") {
    ScratchArena arena(8);
    const auto slots = reserve(arena.arena(), 3, 5);
    REQUIRE(slots.size() == 5);
    CHECK(std::set<std::uint32_t>(slots.begin(), slots.end()).size() == 5);
    for (std::uint32_t slot : slots) {
        CHECK(slot < 8);
        CHECK(arena.state(slot) == SlotState::reserved);
        CHECK(arena.owner(slot) == 3);
        CHECK(arena.epoch(slot) == 1);
    }
    CHECK(slots.front() == 0); // lowest slots first
    CHECK(arena->free_count() == 3);
    CHECK(arena->check().empty());
}

TEST_CASE("reserve returns fewer slots than asked when the arena runs out, then none", "[arena]") {
    ScratchArena arena(4);
    CHECK(reserve(arena.arena(), 1, 3).size() == 3);
    CHECK(reserve(arena.arena(), 2, 3).size() == 1);
    CHECK(reserve(arena.arena(), 2, 3).empty());
    CHECK(arena->free_count() == 0);
    CHECK(arena->check().empty());
}

TEST_CASE("release returns the owner's reserved slots to the free stack with a new epoch", "[arena]") {
    ScratchArena arena(4);
    const auto slots = reserve(arena.arena(), 1, 4);
    REQUIRE(slots.size() == 4);
    const std::uint32_t some[] = {slots[1], slots[3]};
    CHECK(arena->release(1, some) == 2);
    CHECK(arena.state(slots[1]) == SlotState::free);
    CHECK(arena.owner(slots[1]) == 0);
    CHECK(arena.epoch(slots[1]) == 2);
    CHECK(arena.state(slots[0]) == SlotState::reserved);
    CHECK(arena->free_count() == 2);
    CHECK(arena->check().empty());
    const auto again = reserve(arena.arena(), 2, 4);
    CHECK(std::set<std::uint32_t>(again.begin(), again.end()) == std::set<std::uint32_t>{slots[1], slots[3]});
}

TEST_CASE("release refuses a slot reserved by another owner and leaves it reserved", "[arena]") {
    ScratchArena arena(4);
    const auto slots = reserve(arena.arena(), 1, 1);
    REQUIRE(slots.size() == 1);
    CHECK(arena->release(2, slots) == 0);
    CHECK(arena.state(slots[0]) == SlotState::reserved);
    CHECK(arena.owner(slots[0]) == 1);
    CHECK(arena->free_count() == 3);
    CHECK(arena->check().empty());
}

TEST_CASE("release refuses free and out-of-range slots without corrupting the free stack", "[arena]") {
    ScratchArena arena(4);
    const std::uint32_t free_slot[] = {2};
    CHECK(arena->release(0, free_slot) == 0);
    CHECK(arena->release(1, free_slot) == 0);
    const std::uint32_t beyond[] = {4, 1'000'000, shm::no_slot};
    CHECK(arena->release(1, beyond) == 0);
    CHECK(arena->free_count() == 4);
    CHECK(arena->check().empty());
}

TEST_CASE("releasing the same slot twice frees it once", "[arena]") {
    ScratchArena arena(4);
    const auto slots = reserve(arena.arena(), 1, 1);
    const std::uint32_t twice[] = {slots[0], slots[0]};
    CHECK(arena->release(1, twice) == 1);
    CHECK(arena->release(1, slots) == 0);
    CHECK(arena->free_count() == 4);
    CHECK(arena->check().empty());
}

TEST_CASE("release of an empty list is a no-op", "[arena]") {
    ScratchArena arena(4);
    CHECK(arena->release(1, std::span<const std::uint32_t>()) == 0);
    CHECK(arena->free_count() == 4);
}

TEST_CASE("release_all_reserved_by frees exactly that owner's slots and is idempotent", "[arena]") {
    ScratchArena arena(8);
    const auto mine = reserve(arena.arena(), 1, 3);
    const auto theirs = reserve(arena.arena(), 2, 2);
    CHECK(arena->release_all_reserved_by(1) == 3);
    for (std::uint32_t slot : mine) CHECK(arena.state(slot) == SlotState::free);
    for (std::uint32_t slot : theirs) {
        CHECK(arena.state(slot) == SlotState::reserved);
        CHECK(arena.owner(slot) == 2);
    }
    CHECK(arena->free_count() == 6);
    CHECK(arena->release_all_reserved_by(1) == 0);
    CHECK(arena->free_count() == 6);
    CHECK(arena->check().empty());
}

TEST_CASE("release_all_reserved_by leaves slots of that owner in other states alone", "[arena]") {
    ScratchArena arena(4);
    const auto slots = reserve(arena.arena(), 1, 2);
    // Core moves a reserved slot on to queued/picked; it keeps its owner bits in picked.
    arena->state_word(slots[0]).store(StateWord::next(arena->state_word(slots[0]).load(), SlotState::picked, 1));
    CHECK(arena->release_all_reserved_by(1) == 1);
    CHECK(arena.state(slots[0]) == SlotState::picked);
    CHECK(arena.state(slots[1]) == SlotState::free);
    CHECK(arena->check().empty());
}

TEST_CASE("check reports a free slot that is missing from the free stack", "[arena]") {
    ScratchArena arena(4);
    const auto slots = reserve(arena.arena(), 1, 1);
    // As if a releaser died between marking the slot free and pushing it.
    arena->state_word(slots[0]).store(StateWord::next(arena->state_word(slots[0]).load(), SlotState::free, 0));
    const std::string problem = arena->check();
    CHECK_THAT(problem, Catch::Contains("missing from the free stack"));
}

TEST_CASE("check reports a slot on the free stack that is not free, and reserve refuses it", "[arena]") {
    ScratchArena arena(4);
    // Slot 0 is on top of the stack; mark it used behind the stack's back.
    const std::uint64_t word = arena->state_word(0).load();
    arena->state_word(0).store(StateWord::next(word, SlotState::queued, 0));
    CHECK_THAT(arena->check(), Catch::Contains("not free"));
    std::uint32_t out[1];
    CHECK_ERRC(arena->reserve(1, out), Errc::corrupt_segment);
    CHECK(arena.state(0) == SlotState::queued); // not handed out
}

TEST_CASE("after the arena lock's owner died the free stack is rebuilt from the state words", "[arena]") {
    ScratchArena arena(8);
    shm::RobustMutex& lock = arena.segment().header().arena.lock;
    const pid_t child = fork_child([&] {
        std::uint32_t out[2];
        if (arena->reserve(3, out) != 2) throw std::runtime_error("child could not reserve");
        lock.lock([]() noexcept { return true; });
        // Dies holding the lock, with the stack count half-updated.
        arena.segment().header().arena.free_count = 0;
    });
    REQUIRE(wait_child(child) == 0);
    CHECK(arena->free_count() == 6);
    CHECK(arena->check().empty());
    CHECK(arena->release_all_reserved_by(3) == 2);
    CHECK(arena->free_count() == 8);
    CHECK(reserve(arena.arena(), 1, 8).size() == 8);
}

TEST_CASE("a free count past the slot count is rebuilt from the state words, never indexed with", "[arena]") {
    ScratchArena arena(8);
    REQUIRE(reserve(arena.arena(), 3, 2).size() == 2);
    arena.segment().header().arena.free_count = 0x7fffffff; // a corrupt header
    CHECK(arena->free_count() == 6);
    CHECK(arena->release_all_reserved_by(3) == 2);
    CHECK(arena->free_count() == 8);
    CHECK(arena->check().empty());
}

TEST_CASE("releasing onto a free stack that claims every slot rebuilds it instead of writing past it", "[arena]") {
    ScratchArena arena(4);
    const auto slots = reserve(arena.arena(), 3, 1);
    // Corrupt: the stack says all 4 slots are free although one is reserved.
    arena.segment().header().arena.free_count = 4;
    CHECK(arena->release(3, slots) == 1);
    CHECK(arena->free_count() == 4);
    CHECK(arena->check().empty());
}
