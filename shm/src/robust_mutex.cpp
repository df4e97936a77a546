#include "currant/shm/robust_mutex.hpp"

#include <cerrno>
#include <immintrin.h>
#include <linux/futex.h>

#include "currant/shm/clock.hpp"
#include "currant/shm/crash_point.hpp"

// ThreadSanitizer (GCC 12's runtime) intercepts pthread_mutex_lock/
// timedlock/trylock but not pthread_mutex_clocklock: a lock taken by the
// blocking path below was invisible to it, so the unlock was reported as
// "unlock of an unlocked mutex" and the lock's happens-before edges were
// lost. The annotations tell it about that one call; they compile to
// nothing outside TSan builds.
#if defined(__SANITIZE_THREAD__) // GCC
#define CURRANT_TSAN 1
#elif defined(__has_feature) // clang
#if __has_feature(thread_sanitizer)
#define CURRANT_TSAN 1
#endif
#endif
#if defined(CURRANT_TSAN)
#include <sanitizer/tsan_interface.h>
#define CURRANT_TSAN_PRE_TIMED_LOCK(m) __tsan_mutex_pre_lock((m), __tsan_mutex_try_lock)
#define CURRANT_TSAN_POST_TIMED_LOCK(m, taken) \
    __tsan_mutex_post_lock((m), __tsan_mutex_try_lock | ((taken) ? 0u : __tsan_mutex_try_lock_failed), 0)
#else
#define CURRANT_TSAN_PRE_TIMED_LOCK(m) ((void)0)
#define CURRANT_TSAN_POST_TIMED_LOCK(m, taken) ((void)0)
#endif

namespace currant::shm {

void RobustMutex::initialize() {
    pthread_mutexattr_t attributes;
    if (int rc = pthread_mutexattr_init(&attributes)) throw_system_error("pthread_mutexattr_init", rc);
    pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
    pthread_mutexattr_setprotocol(&attributes, PTHREAD_PRIO_NONE);
    int rc = pthread_mutex_init(&mutex_, &attributes);
    pthread_mutexattr_destroy(&attributes);
    if (rc) throw_system_error("pthread_mutex_init", rc);
    repair_needed_.store(0, std::memory_order_relaxed);
    inconsistent_ = 0;
}

int RobustMutex::try_acquire() {
    int rc = pthread_mutex_trylock(&mutex_);
    if (rc == 0) return acquired;
    if (rc == EBUSY) return busy;
    if (rc == EOWNERDEAD) {
        inconsistent_ = 1;
        return owner_died;
    }
    if (rc == ENOTRECOVERABLE)
        throw Error(Errc::corrupt_segment, "a segment lock is not recoverable; recreate the queue");
    throw_system_error("pthread_mutex_trylock", rc);
}

bool RobustMutex::acquire() {
    // Uncontended: one trylock, no clock read.
    if (int rc = try_acquire(); rc != busy) return rc == owner_died;
    // On 2 CPUs a longer spin starves the owner we are waiting for: spin on
    // trylock for about 1 us, then block in the kernel.
    // Spin on a plain load and trylock only when the word looks free: a
    // failing CAS would steal the line from the owner on every turn.
    const std::int64_t spin_until = monotonic_ns() + 1000;
    do {
        for (int i = 0; i < 16; ++i) _mm_pause();
        if ((futex_word().load(std::memory_order_relaxed) & FUTEX_TID_MASK) != 0) continue;
        int rc = try_acquire();
        if (rc == acquired) return false;
        if (rc == owner_died) return true;
    } while (monotonic_ns() < spin_until);

    // Block with a bounded wait: if a waiter woken by an unlock is killed
    // before it takes the lock while a trylock-er grabs it, glibc's robust
    // mutex loses the wake-up and the other waiters would sleep on a free
    // lock forever. Re-trying every 20 ms bounds that loss.
    int rc;
    for (;;) {
        timespec deadline{};
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_nsec += 20'000'000;
        if (deadline.tv_nsec >= 1'000'000'000) {
            deadline.tv_nsec -= 1'000'000'000;
            ++deadline.tv_sec;
        }
        CURRANT_TSAN_PRE_TIMED_LOCK(&mutex_);
        rc = pthread_mutex_clocklock(&mutex_, CLOCK_MONOTONIC, &deadline);
        CURRANT_TSAN_POST_TIMED_LOCK(&mutex_, rc == 0 || rc == EOWNERDEAD);
        if (rc != ETIMEDOUT && rc != EINTR) break;
    }
    if (rc == 0) return false;
    if (rc == EOWNERDEAD) {
        inconsistent_ = 1;
        return true;
    }
    if (rc == ENOTRECOVERABLE)
        throw Error(Errc::corrupt_segment, "a segment lock is not recoverable; recreate the queue");
    throw_system_error("pthread_mutex_lock", rc);
}

void RobustMutex::mark_consistent_if_needed() noexcept {
    if (inconsistent_) {
        pthread_mutex_consistent(&mutex_);
        inconsistent_ = 0;
    }
}

void RobustMutex::run_repair(bool repaired) {
    crash_point("lock.after_repair");
    if (repaired) repair_needed_.store(0, std::memory_order_relaxed);
    mark_consistent_if_needed();
    if (!repaired) {
        pthread_mutex_unlock(&mutex_);
        throw Error(Errc::repair_failed,
                    "repairing state left by a dead process failed; the next locker retries");
    }
}

void RobustMutex::unlock() noexcept { pthread_mutex_unlock(&mutex_); }

// glibc (x86_64, and every Linux glibc since robust mutexes exist) keeps the
// kernel's robust-futex word as the mutex's first int: owner TID in the low
// 30 bits, FUTEX_OWNER_DIED and FUTEX_WAITERS above. The kernel's robust
// list handling writes exactly this word when the owner dies.
std::atomic<std::uint32_t>& RobustMutex::futex_word() noexcept {
    static_assert(sizeof(mutex_.__data.__lock) == sizeof(std::uint32_t));
    return *reinterpret_cast<std::atomic<std::uint32_t>*>(&mutex_.__data.__lock);
}

std::optional<std::uint32_t> RobustMutex::arm_death_notification() noexcept {
    std::atomic<std::uint32_t>& word = futex_word();
    std::uint32_t value = word.load(std::memory_order_acquire);
    for (;;) {
        if ((value & FUTEX_TID_MASK) == 0 || (value & FUTEX_OWNER_DIED) != 0) return std::nullopt;
        if (value & FUTEX_WAITERS) return value;
        if (word.compare_exchange_weak(value, value | FUTEX_WAITERS, std::memory_order_acq_rel))
            return value | FUTEX_WAITERS;
    }
}

} // namespace currant::shm
