#include "currant/shm/arena.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "currant/shm/crash_point.hpp"

namespace currant::shm {

Arena::Arena(const Segment& segment) noexcept {
    const SegmentHeader& header = segment.header();
    control_ = &segment.header().arena;
    arena_ = segment.at<std::byte>(header.arena_offset);
    free_stack_ = segment.at<std::uint32_t>(header.free_stack_offset);
    slot_count_ = header.parameters.slot_count;
    slot_bytes_ = header.slot_bytes;
    record_bytes_ = header.parameters.record_bytes;
    payload_bytes_ = header.parameters.payload_bytes;
}

void Arena::initialize() {
    control_->lock.initialize();
    // Pushed in reverse so slot 0 is handed out first (LIFO keeps hot slots hot).
    for (std::uint32_t i = 0; i < slot_count_; ++i) {
        state_word(i).store(StateWord::pack(SlotState::free, 0, 0), std::memory_order_relaxed);
        free_stack_[i] = slot_count_ - 1 - i;
    }
    control_->free_count.store(slot_count_, std::memory_order_relaxed);
}

bool Arena::rebuild_free_stack() noexcept {
    // Runs under the arena lock after a dead owner: FREE slots change state
    // only under this lock, so the scan is exact.
    std::uint32_t count = 0;
    for (std::uint32_t i = slot_count_; i-- > 0;) {
        if (StateWord::state(state_word(i).load(std::memory_order_acquire)) == SlotState::free)
            free_stack_[count++] = i;
    }
    crash_point("arena.rebuild");
    control_->free_count.store(count, std::memory_order_relaxed);
    return true;
}

void Arena::lock() {
    control_->lock.lock([this]() noexcept { return rebuild_free_stack(); });
    // A count past the stack is corrupt: rebuild rather than index with it.
    if (control_->free_count.load(std::memory_order_relaxed) > slot_count_) [[unlikely]]
        rebuild_free_stack();
}

void Arena::push_free(std::uint32_t slot) noexcept {
    const std::uint32_t count = control_->free_count.load(std::memory_order_relaxed);
    if (count >= slot_count_) [[unlikely]] {
        // The stack claims every slot although this one was not free: it is
        // corrupt. The slot is FREE already, so the rebuild lists it.
        rebuild_free_stack();
        return;
    }
    free_stack_[count] = slot;
    control_->free_count.store(count + 1, std::memory_order_relaxed);
}

std::uint32_t Arena::reserve(std::uint32_t owner, std::span<std::uint32_t> out) {
    lock();
    LockHolder holder(control_->lock);
    // The slots we are about to take were last written by other processes:
    // start all their cache misses at once instead of one per loop turn.
    const std::uint32_t available = std::min<std::uint32_t>(std::uint32_t(out.size()), control_->free_count.load(std::memory_order_relaxed));
    for (std::uint32_t k = 1; k <= available; ++k) {
        const std::uint32_t slot = free_stack_[control_->free_count.load(std::memory_order_relaxed) - k];
        if (slot < slot_count_) __builtin_prefetch(slot_base(slot), 1);
    }
    std::uint32_t taken = 0;
    while (taken < out.size() && control_->free_count.load(std::memory_order_relaxed) > 0) {
        const std::uint32_t top = control_->free_count.load(std::memory_order_relaxed) - 1;
        const std::uint32_t slot = free_stack_[top];
        std::uint64_t word = slot < slot_count_ ? state_word(slot).load(std::memory_order_acquire) : 0;
        if (slot >= slot_count_ || StateWord::state(word) != SlotState::free) {
            control_->lock.request_repair(); // the next locker rebuilds the stack
            throw Error(Errc::corrupt_segment, "free stack lists slot " + std::to_string(slot) +
                                                   " which is not free; run `currant doctor`");
        }
        state_word(slot).store(StateWord::next(word, SlotState::reserved, owner), std::memory_order_release);
        crash_point("arena.reserve.after_mark");
        control_->free_count.store(top, std::memory_order_relaxed);
        out[taken++] = slot;
    }
    return taken;
}

std::uint32_t Arena::release(std::uint32_t owner, std::span<const std::uint32_t> slots) {
    std::uint32_t released = 0;
    {
        lock();
        LockHolder holder(control_->lock);
        for (std::uint32_t slot : slots) {
            if (slot >= slot_count_) continue;
            std::uint64_t word = state_word(slot).load(std::memory_order_acquire);
            if (StateWord::state(word) != SlotState::reserved || StateWord::owner(word) != owner) continue;
            state_word(slot).store(StateWord::next(word, SlotState::free, 0), std::memory_order_release);
            crash_point("arena.release.after_mark");
            push_free(slot);
            ++released;
        }
    }
    return released;
}

std::uint32_t Arena::release_all_reserved_by(std::uint32_t owner) {
    lock();
    LockHolder holder(control_->lock);
    std::uint32_t released = 0;
    for (std::uint32_t slot = 0; slot < slot_count_; ++slot) {
        std::uint64_t word = state_word(slot).load(std::memory_order_acquire);
        if (StateWord::state(word) != SlotState::reserved || StateWord::owner(word) != owner) continue;
        state_word(slot).store(StateWord::next(word, SlotState::free, 0), std::memory_order_release);
        push_free(slot);
        ++released;
    }
    return released;
}

std::uint32_t Arena::free_count() {
    lock();
    LockHolder holder(control_->lock);
    return control_->free_count.load(std::memory_order_relaxed);
}

std::string Arena::check() {
    lock();
    LockHolder holder(control_->lock);
    if (control_->free_count.load(std::memory_order_relaxed) > slot_count_)
        return "free count " + std::to_string(control_->free_count.load()) + " exceeds slot count";
    std::vector<bool> listed(slot_count_, false);
    for (std::uint32_t i = 0; i < control_->free_count.load(std::memory_order_relaxed); ++i) {
        std::uint32_t slot = free_stack_[i];
        if (slot >= slot_count_) return "free stack entry " + std::to_string(i) + " is out of range";
        if (listed[slot]) return "slot " + std::to_string(slot) + " is on the free stack twice";
        listed[slot] = true;
        if (StateWord::state(state_word(slot).load(std::memory_order_acquire)) != SlotState::free)
            return "slot " + std::to_string(slot) + " is on the free stack but not free";
    }
    for (std::uint32_t slot = 0; slot < slot_count_; ++slot) {
        if (!listed[slot] &&
            StateWord::state(state_word(slot).load(std::memory_order_acquire)) == SlotState::free)
            return "slot " + std::to_string(slot) + " is free but missing from the free stack";
    }
    return {};
}

} // namespace currant::shm
