// Who may open a queue: the creator's uid by default, a granted group with a
// group mode, nobody else. Uses real users that the test creates (needs
// root; as another user the cases say so and check nothing else).
#include <catch2/catch.hpp>

#include <grp.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "postgres.hpp" // run_program
#include "test_support.hpp"

using namespace currant;
using currant::testing::ScratchQueue;

namespace {

constexpr const char* outsider = "currant-outsider";
constexpr const char* member = "currant-member";
constexpr const char* granted_group = "currant-granted";

// The users and group exist for the whole test process (created once,
// removed at exit).
struct TestUsers {
    bool ready = false;
    TestUsers() {
        if (geteuid() != 0) return;
        if (!getgrnam(granted_group)) testing::run_program({"/usr/sbin/groupadd", granted_group});
        if (!getpwnam(outsider)) testing::run_program({"/usr/sbin/useradd", "--no-create-home", outsider});
        if (!getpwnam(member))
            testing::run_program({"/usr/sbin/useradd", "--no-create-home", "--groups", granted_group, member});
        ready = getpwnam(outsider) && getpwnam(member) && getgrnam(granted_group);
    }
    ~TestUsers() {
        if (geteuid() != 0) return;
        testing::run_program({"/usr/sbin/userdel", outsider});
        testing::run_program({"/usr/sbin/userdel", member});
        testing::run_program({"/usr/sbin/groupdel", granted_group});
    }
};

TestUsers& users() {
    static TestUsers instance;
    return instance;
}

// Runs body as `user` (with its supplementary groups) in a child; returns
// the child's exit status. body's return value is the exit status.
int as_user(const char* user, const std::function<int()>& body) {
    const passwd* entry = getpwnam(user);
    REQUIRE(entry != nullptr);
    const uid_t uid = entry->pw_uid;
    const gid_t gid = entry->pw_gid;
    const pid_t pid = fork();
    if (pid == 0) {
        if (initgroups(user, gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) _exit(100);
        int status = 99;
        try {
            status = body();
        } catch (...) {
        }
        _exit(status);
    }
    return testing::wait_child(pid);
}

// 0: opened; 1: permission_denied naming the queue; 2: another error.
int try_open(const std::string& name) {
    try {
        Queue queue = Queue::open(name);
        return 0;
    } catch (const Error& error) {
        return error.code() == Errc::permission_denied && std::string(error.what()).find(name) != std::string::npos
                   ? 1
                   : 2;
    }
}

bool can_test() {
    if (!users().ready) {
        WARN("not root: the permission tests need to create users, nothing checked");
        return false;
    }
    return true;
}

} // namespace

TEST_CASE("another user cannot open a queue created with the default mode", "[permissions]") {
    if (!can_test()) return;
    ScratchQueue scratch("perm-default");
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    scratch->enqueue(ep, as_payload("private"));
    CHECK(as_user(outsider, [&] { return try_open(scratch.name()); }) == 1);
    CHECK(as_user(member, [&] { return try_open(scratch.name()); }) == 1);
    CHECK(scratch->stats().at(ep).queued == 1); // the attempts changed nothing
}

TEST_CASE("a group mode lets members of that group use the queue and nobody else", "[permissions]") {
    if (!can_test()) return;
    QueueOptions options;
    options.mode = 0660;
    options.group = getgrnam(granted_group)->gr_gid;
    ScratchQueue scratch("perm-group", options);
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    scratch->enqueue(ep, as_payload("shared"));

    CHECK(as_user(member, [&] {
              Queue queue = Queue::open(scratch.name());
              const EntrypointId eps[] = {queue.entrypoint("jobs")};
              Job job;
              if (queue.dequeue(eps, std::span(&job, 1), std::chrono::seconds(5)) != 1) return 3;
              if (testing::text(job.payload) != "shared") return 4;
              queue.ack(job.handle);
              queue.enqueue(eps[0], as_payload("from the member"));
              return 0;
          }) == 0);
    CHECK(as_user(outsider, [&] { return try_open(scratch.name()); }) == 1);

    const EntrypointId eps[] = {ep};
    Job job;
    REQUIRE(scratch->dequeue(eps, std::span(&job, 1), std::chrono::seconds(5)) == 1);
    CHECK(testing::text(job.payload) == "from the member");
    scratch->ack(job.handle);
    CHECK(scratch->doctor().sound);
}

TEST_CASE("another user cannot remove a queue it may not open", "[permissions]") {
    if (!can_test()) return;
    ScratchQueue scratch("perm-remove");
    CHECK(as_user(outsider, [&] {
              try {
                  Queue::remove(scratch.name());
                  return 0;
              } catch (const Error& error) {
                  return error.code() == Errc::permission_denied ? 1 : 2;
              }
          }) == 1);
    CHECK_NOTHROW(Queue::open(scratch.name()));
}
