// shm::RobustMutex: a process-shared robust mutex that turns a dead owner
// into exactly one repair call before the next locker proceeds.
#include "unit_support.hpp"

#include <atomic>
#include <new>
#include <sys/mman.h>
#include <thread>

#include "currant/shm/robust_mutex.hpp"

using namespace currant;
using namespace currant::unit;
using currant::testing::fork_child;
using currant::testing::Signal;
using currant::testing::wait_child;
using currant::shm::RobustMutex;

namespace {

// A RobustMutex in a MAP_SHARED anonymous mapping, shared with forked children.
class SharedMutex {
public:
    SharedMutex() {
        memory_ = ::mmap(nullptr, sizeof(RobustMutex), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        REQUIRE(memory_ != MAP_FAILED);
        mutex_ = new (memory_) RobustMutex;
        mutex_->initialize();
    }
    ~SharedMutex() { ::munmap(memory_, sizeof(RobustMutex)); }
    RobustMutex& operator*() { return *mutex_; }
    RobustMutex* operator->() { return mutex_; }

private:
    void* memory_ = nullptr;
    RobustMutex* mutex_ = nullptr;
};

// Forks a child that takes the lock and exits without unlocking it.
void die_holding(RobustMutex& mutex) {
    const pid_t child = fork_child([&] { mutex.lock([]() noexcept { return true; }); });
    REQUIRE(wait_child(child) == 0);
}

} // namespace

TEST_CASE("a RobustMutex locks and unlocks without repair when no owner died", "[robust_mutex]") {
    SharedMutex mutex;
    int repairs = 0;
    auto repair = [&]() noexcept { ++repairs; return true; };
    mutex->lock(repair);
    mutex->unlock();
    mutex->lock(repair);
    mutex->unlock();
    CHECK(repairs == 0);
    CHECK_FALSE(mutex->repair_pending());
}

TEST_CASE("the next locker after an owner died runs the repair exactly once", "[robust_mutex]") {
    SharedMutex mutex;
    die_holding(*mutex);
    int repairs = 0;
    auto repair = [&]() noexcept { ++repairs; return true; };
    mutex->lock(repair);
    CHECK(repairs == 1);
    CHECK_FALSE(mutex->repair_pending());
    mutex->unlock();
    mutex->lock(repair);
    mutex->unlock();
    CHECK(repairs == 1);
}

TEST_CASE("try_lock after an owner died also repairs first", "[robust_mutex]") {
    SharedMutex mutex;
    die_holding(*mutex);
    int repairs = 0;
    REQUIRE(mutex->try_lock([&]() noexcept { ++repairs; return true; }));
    CHECK(repairs == 1);
    mutex->unlock();
    REQUIRE(mutex->try_lock([&]() noexcept { ++repairs; return true; }));
    CHECK(repairs == 1);
    mutex->unlock();
}

TEST_CASE("a failed repair throws repair_failed, leaves the mutex unlocked, and the next lock repeats it",
          "[robust_mutex]") {
    SharedMutex mutex;
    die_holding(*mutex);
    int failed_attempts = 0;
    REQUIRE_ERRC(mutex->lock([&]() noexcept { ++failed_attempts; return false; }), Errc::repair_failed);
    CHECK(failed_attempts == 1);
    CHECK(mutex->repair_pending());

    // Unlocked: a locker from another thread gets it (and must repair).
    int repairs = 0;
    std::thread other([&] {
        mutex->lock([&]() noexcept { ++repairs; return true; });
        mutex->unlock();
    });
    other.join();
    CHECK(repairs == 1);
    CHECK_FALSE(mutex->repair_pending());
    mutex->lock([&]() noexcept { ++repairs; return true; });
    mutex->unlock();
    CHECK(repairs == 1);
}

TEST_CASE("a repair that fails repeatedly is retried by every locker until it succeeds", "[robust_mutex]") {
    SharedMutex mutex;
    die_holding(*mutex);
    int calls = 0;
    for (int i = 0; i < 3; ++i)
        CHECK_ERRC(mutex->lock([&]() noexcept { ++calls; return false; }), Errc::repair_failed);
    mutex->lock([&]() noexcept { ++calls; return true; });
    mutex->unlock();
    CHECK(calls == 4);
}

TEST_CASE("a repairer that dies mid-repair leaves the repair to the next locker", "[robust_mutex]") {
    SharedMutex mutex;
    die_holding(*mutex);
    // The second child finds the dead owner and dies inside its repair.
    const pid_t child = fork_child([&] {
        mutex->lock([]() noexcept -> bool { ::_exit(0); });
    });
    REQUIRE(wait_child(child) == 0);
    int repairs = 0;
    mutex->lock([&]() noexcept { ++repairs; return true; });
    mutex->unlock();
    CHECK(repairs == 1);
}

TEST_CASE("request_repair makes the next locker run the repair", "[robust_mutex]") {
    SharedMutex mutex;
    int repairs = 0;
    auto repair = [&]() noexcept { ++repairs; return true; };
    mutex->lock(repair);
    mutex->request_repair();
    CHECK(mutex->repair_pending());
    mutex->unlock();
    mutex->lock(repair);
    mutex->unlock();
    CHECK(repairs == 1);
    CHECK_FALSE(mutex->repair_pending());
}

TEST_CASE("try_lock returns false while another live process holds the mutex", "[robust_mutex]") {
    SharedMutex mutex;
    Signal locked, release;
    const pid_t child = fork_child([&] {
        mutex->lock([]() noexcept { return true; });
        locked.notify();
        if (!release.wait(30'000ms)) throw std::runtime_error("parent never released the child");
        mutex->unlock();
    });
    REQUIRE(locked.wait(30'000ms));
    int repairs = 0;
    CHECK_FALSE(mutex->try_lock([&]() noexcept { ++repairs; return true; }));
    release.notify();
    REQUIRE(wait_child(child) == 0);
    mutex->lock([&]() noexcept { ++repairs; return true; });
    mutex->unlock();
    CHECK(repairs == 0);
}

TEST_CASE("a locker blocked on a live owner proceeds with a repair when that owner dies", "[robust_mutex]") {
    SharedMutex mutex;
    Signal locked, die;
    const pid_t child = fork_child([&] {
        mutex->lock([]() noexcept { return true; });
        locked.notify();
        die.wait(30'000ms);
        // exits holding the lock
    });
    REQUIRE(locked.wait(30'000ms));
    int repairs = 0;
    std::thread waiter([&] {
        mutex->lock([&]() noexcept { ++repairs; return true; });
        mutex->unlock();
    });
    die.notify();
    waiter.join();
    REQUIRE(wait_child(child) == 0);
    CHECK(repairs == 1);
}

TEST_CASE("LockHolder unlocks at scope exit and release unlocks early", "[robust_mutex]") {
    SharedMutex mutex;
    auto repair = []() noexcept { return true; };
    auto free_for_another_thread = [&] {
        bool got = false;
        std::thread other([&] {
            got = mutex->try_lock(repair);
            if (got) mutex->unlock();
        });
        other.join();
        return got;
    };
    {
        mutex->lock(repair);
        shm::LockHolder holder(*mutex);
        CHECK_FALSE(free_for_another_thread());
    }
    CHECK(free_for_another_thread());
    mutex->lock(repair);
    shm::LockHolder holder(*mutex);
    holder.release();
    CHECK(free_for_another_thread());
}
