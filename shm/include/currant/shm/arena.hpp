// The fixed-size slot arena.
//
// Each slot starts with one 64-bit atomic state word, the slot's truth:
//   bits 0..3   state  (SlotState)
//   bits 4..19  owner  (participant index + 1; 0 = nobody)
//   bits 20..63 epoch  (bumped by every transition, so a handle that names an
//                       older epoch is stale: the job was re-picked, finished,
//                       or the slot reused)
// The state word is written with CAS or release stores and read with acquire
// loads, so whoever sees a state also sees the slot contents written before it.
//
// Free slots are listed in a stack guarded by the arena lock. The stack is a
// derived index: after a dead lock owner it is rebuilt from the state words.
// Slots leave and enter the stack only under that lock, and a slot is FREE
// exactly while it is (or, mid-repair, should be) on the stack.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>

#include "currant/shm/segment.hpp"

namespace currant::shm {

enum class SlotState : std::uint8_t {
    free = 0,       // on the free stack
    reserved = 1,   // held by its owner, in no queue structure (being written, or being freed)
    queued = 2,     // in an entrypoint's ready lanes or delayed heap
    picked = 3,     // handed to its owner (a consumer) under a lease
    successful = 4, // finished, kept until mirrored (async/sync durability)
    exception = 5,
    canceled = 6,
    waiting = 7,    // enqueued after dependencies not all successful yet: in no entrypoint index (core)
};
inline constexpr unsigned slot_state_count = 8;

struct StateWord {
    static constexpr std::uint64_t pack(SlotState state, std::uint32_t owner, std::uint64_t epoch) noexcept {
        return (epoch << 20) | (std::uint64_t(owner & 0xffff) << 4) | std::uint64_t(state);
    }
    static constexpr SlotState state(std::uint64_t word) noexcept { return SlotState(word & 0xf); }
    static constexpr std::uint32_t owner(std::uint64_t word) noexcept { return std::uint32_t(word >> 4) & 0xffff; }
    static constexpr std::uint64_t epoch(std::uint64_t word) noexcept { return word >> 20; }
    // The same slot in a new state, epoch + 1.
    static constexpr std::uint64_t next(std::uint64_t word, SlotState state, std::uint32_t owner) noexcept {
        return pack(state, owner, (epoch(word) + 1) & ((std::uint64_t(1) << 44) - 1));
    }
};

inline constexpr std::uint32_t no_slot = 0xffffffffu;

class Arena {
public:
    explicit Arena(const Segment& segment) noexcept;

    std::uint32_t slot_count() const noexcept { return slot_count_; }
    std::uint32_t payload_bytes() const noexcept { return payload_bytes_; }

    std::atomic<std::uint64_t>& state_word(std::uint32_t slot) const noexcept {
        return *reinterpret_cast<std::atomic<std::uint64_t>*>(slot_base(slot));
    }
    // Core's per-slot record, right after the state word.
    template <typename Record>
    Record& record(std::uint32_t slot) const noexcept {
        return *reinterpret_cast<Record*>(slot_base(slot) + sizeof(std::uint64_t));
    }
    std::byte* payload(std::uint32_t slot) const noexcept {
        return slot_base(slot) + sizeof(std::uint64_t) + record_bytes_;
    }

    // Creator only: every slot FREE, all on the stack, lock initialised.
    void initialize();

    // Moves up to wanted FREE slots to RESERVED(owner); returns how many.
    // Thread-safe, process-safe. Crash: a slot whose CAS happened but whose
    // stack pop did not is not FREE, so the rebuild leaves it off the stack;
    // the owner's reaper frees it.
    std::uint32_t reserve(std::uint32_t owner, std::span<std::uint32_t> out);

    // Moves slots from RESERVED(owner) back to FREE and onto the stack.
    // Slots not RESERVED by owner are skipped (counted in the return value as
    // not released). Crash: FREE-but-unstacked slots are restored by rebuild.
    std::uint32_t release(std::uint32_t owner, std::span<const std::uint32_t> slots);

    // Frees every slot RESERVED by owner (a dead participant). Idempotent.
    std::uint32_t release_all_reserved_by(std::uint32_t owner);

    // FREE slots right now (under the lock).
    std::uint32_t free_count();
    // The same without the lock: a hint that may be stale by the time it returns.
    std::uint32_t free_count_hint() const noexcept {
        return control_->free_count.load(std::memory_order_seq_cst);
    }

    // Consistency check for doctor: the stack lists exactly the FREE slots,
    // each once. Returns an empty string when sound, else what is wrong.
    std::string check();

private:
    std::byte* slot_base(std::uint32_t slot) const noexcept {
        return arena_ + std::uint64_t(slot) * slot_bytes_;
    }
    void lock();
    bool rebuild_free_stack() noexcept;
    // Under the lock: pushes a slot just marked FREE (rebuilds a full stack).
    void push_free(std::uint32_t slot) noexcept;

    ArenaControl* control_;
    std::byte* arena_;
    std::uint32_t* free_stack_;
    std::uint32_t slot_count_;
    std::uint32_t slot_bytes_;
    std::uint32_t record_bytes_;
    std::uint32_t payload_bytes_;
};

} // namespace currant::shm
