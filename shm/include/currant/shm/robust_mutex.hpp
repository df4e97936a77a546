// A robust, process-shared pthread mutex that lives in the segment, and the
// one place that turns EOWNERDEAD into a repair step.
//
// Recovery protocol (DESIGN.md "Locks, waiting, crashes"):
//   * The mutex carries a repair_needed word, guarded by the mutex itself.
//   * A locker that gets EOWNERDEAD sets repair_needed before anything else.
//   * Whenever repair_needed is set after locking, the caller's repair
//     function runs (noexcept, idempotent). Success clears the flag.
//   * pthread_mutex_consistent is called only after the repair attempt. If the
//     repairer dies mid-repair, the next locker gets EOWNERDEAD again; if the
//     repair fails without a death, the mutex is marked consistent and
//     unlocked with repair_needed still set, so the next locker repeats it
//     instead of the mutex becoming ENOTRECOVERABLE.
// Thread-safe and process-safe. Attributes: PTHREAD_PROCESS_SHARED,
// PTHREAD_MUTEX_ROBUST, PTHREAD_PRIO_NONE (no priority inheritance).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <pthread.h>
#include <type_traits>

#include "currant/shm/error.hpp"

namespace currant::shm {

class RobustMutex {
public:
    // Initialise in place; only the segment creator (under its flock) or a
    // rebuild calls this, before the segment's magic is published.
    void initialize();

    // Locks, spinning on trylock for about a microsecond before blocking in
    // the kernel. If a previous owner died (or a repair is still pending),
    // calls repair() -> bool before returning. Throws Error(repair_failed)
    // (and leaves the mutex unlocked) if repair() returns false.
    template <typename Repair>
    void lock(Repair&& repair) {
        if (acquire()) repair_needed_.store(1, std::memory_order_relaxed);
        if (repair_needed_.load(std::memory_order_relaxed) != 0) run_repair(repair());
        else mark_consistent_if_needed();
    }

    // Non-blocking: returns true with the lock held (after repair as in
    // lock()), false if another live thread holds it.
    template <typename Repair>
    bool try_lock(Repair&& repair) {
        int rc = try_acquire();
        if (rc == busy) return false;
        if (rc == owner_died) repair_needed_.store(1, std::memory_order_relaxed);
        if (repair_needed_.load(std::memory_order_relaxed) != 0) run_repair(repair());
        else mark_consistent_if_needed();
        return true;
    }

    void unlock() noexcept;

    // Called with the lock held when the caller finds the structures it
    // guards inconsistent (a corrupt index): the next locker repairs them.
    void request_repair() noexcept { repair_needed_.store(1, std::memory_order_relaxed); }

    // Death notification for a lock held long-term (a life lock). Sets
    // FUTEX_WAITERS on the held lock word, so that when the owner dies the
    // kernel's robust-list handling FUTEX_WAKEs one waiter on that word.
    // Returns the value to wait for (futex_wait_any), or nothing if the lock
    // has no live owner right now (free or owner dead: check it instead).
    // The owner's eventual unlock then costs one FUTEX_WAKE system call.
    std::optional<std::uint32_t> arm_death_notification() noexcept;
    std::atomic<std::uint32_t>& futex_word() noexcept;

    // True while repair_needed is set (for doctor and tests).
    bool repair_pending() const noexcept {
        return repair_needed_.load(std::memory_order_relaxed) != 0;
    }

    static constexpr int acquired = 0;
    static constexpr int busy = 1;
    static constexpr int owner_died = 2;

private:
    // Returns true if the previous owner died. Throws on ENOTRECOVERABLE.
    bool acquire();
    int try_acquire();
    void run_repair(bool repaired);
    void mark_consistent_if_needed() noexcept;

    pthread_mutex_t mutex_;
    std::atomic<std::uint32_t> repair_needed_; // guarded by mutex_
    std::uint32_t inconsistent_;               // guarded by mutex_: EOWNERDEAD seen, consistent() not yet called
};

static_assert(std::is_standard_layout_v<RobustMutex>);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

// RAII holder for a RobustMutex already locked by the caller.
class LockHolder {
public:
    explicit LockHolder(RobustMutex& mutex) noexcept : mutex_(&mutex) {}
    LockHolder(const LockHolder&) = delete;
    LockHolder& operator=(const LockHolder&) = delete;
    ~LockHolder() { if (mutex_) mutex_->unlock(); }
    void release() noexcept { if (mutex_) { mutex_->unlock(); mutex_ = nullptr; } }

private:
    RobustMutex* mutex_;
};

} // namespace currant::shm
