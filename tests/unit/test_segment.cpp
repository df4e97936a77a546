// The queue segment: create, open, remove, header validation, retirement,
// permissions.
#include "unit_support.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "currant/shm/layout.hpp"
#include "currant/shm/segment.hpp"

using namespace currant;
using namespace currant::unit;
using currant::testing::unique_queue_name;

namespace {

std::string shm_path(const std::string& queue_name) { return "/dev/shm/currant." + queue_name; }

// Maps the header of a queue's shm object directly, bypassing currant, so a
// test can damage it the way a foreign program or another build would.
class RawHeader {
public:
    explicit RawHeader(const std::string& queue_name) {
        descriptor_ = ::open(shm_path(queue_name).c_str(), O_RDWR);
        REQUIRE(descriptor_ >= 0);
        void* address = ::mmap(nullptr, sizeof(shm::SegmentHeader), PROT_READ | PROT_WRITE, MAP_SHARED,
                               descriptor_, 0);
        REQUIRE(address != MAP_FAILED);
        header_ = static_cast<shm::SegmentHeader*>(address);
    }
    ~RawHeader() {
        ::munmap(header_, sizeof(shm::SegmentHeader));
        ::close(descriptor_);
    }
    shm::SegmentHeader* operator->() { return header_; }

private:
    int descriptor_ = -1;
    shm::SegmentHeader* header_ = nullptr;
};

// A raw POSIX shm object under a currant name, removed at scope exit.
class RawObject {
public:
    RawObject(const std::string& queue_name, std::size_t size, unsigned char fill)
        : object_name_(shm::object_name_for(queue_name)) {
        const int descriptor = ::shm_open(object_name_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
        REQUIRE(descriptor >= 0);
        if (size > 0) {
            REQUIRE(::ftruncate(descriptor, off_t(size)) == 0);
            std::vector<unsigned char> junk(size, fill);
            REQUIRE(::write(descriptor, junk.data(), junk.size()) == ssize_t(junk.size()));
        }
        ::close(descriptor);
    }
    ~RawObject() { ::shm_unlink(object_name_.c_str()); }

private:
    std::string object_name_;
};

unsigned mode_of(const std::string& queue_name) {
    struct stat info {};
    REQUIRE(::stat(shm_path(queue_name).c_str(), &info) == 0);
    return info.st_mode & 07777;
}

} // namespace

TEST_CASE("create makes a queue that another Queue object can open by name", "[segment]") {
    ScratchQueue scratch("open", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "hello");

    Queue other = Queue::open(scratch.name());
    CHECK(other.name() == scratch.name());
    CHECK(other.entrypoint("jobs") == ep);
    CHECK(status_of(other, id) == JobStatus::queued);
    auto jobs = dequeue_now(other, ep);
    REQUIRE(jobs.size() == 1);
    CHECK(text(jobs[0].payload) == "hello");
    other.ack(jobs[0].handle);
}

TEST_CASE("info reports the sizes the queue was created with", "[segment]") {
    QueueOptions options = small_options(48);
    options.payload_bytes = 100;
    options.max_entrypoints = 3;
    options.max_participants = 5;
    options.log_capacity = 32;
    options.host_id = 42;
    ScratchQueue scratch("info", options);
    const QueueInfo info = scratch->info();
    CHECK(info.name == scratch.name());
    CHECK(info.slots == 48);
    CHECK(info.payload_bytes == 100);
    CHECK(info.max_entrypoints == 3);
    CHECK(info.max_participants == 5);
    CHECK(info.log_capacity == 32);
    CHECK(info.host_id == 42);
    CHECK(info.slot_bytes >= 100);
    CHECK(info.free_slots == 48);
    CHECK(info.incarnation != 0);
    CHECK(info.created_at_ns > 0);
    CHECK(info.segment_bytes > std::uint64_t(info.slots) * info.slot_bytes);
}

TEST_CASE("every creation gets a new incarnation id", "[segment]") {
    const std::string name = unique_queue_name("incarnation");
    QueueOptions options = small_options();
    options.name = name;
    std::uint64_t first = 0, second = 0;
    {
        Queue queue = Queue::create(options);
        first = queue.info().incarnation;
        queue.close();
    }
    REQUIRE(Queue::remove(name));
    {
        Queue queue = Queue::create(options);
        second = queue.info().incarnation;
        queue.close();
    }
    REQUIRE(Queue::remove(name));
    CHECK(first != second);
}

TEST_CASE("remove unlinks the queue and reports whether it existed", "[segment]") {
    const std::string name = unique_queue_name("remove");
    QueueOptions options = small_options();
    options.name = name;
    Queue::create(options).close();
    CHECK(::access(shm_path(name).c_str(), F_OK) == 0);
    CHECK(Queue::remove(name));
    CHECK(::access(shm_path(name).c_str(), F_OK) != 0);
    CHECK_FALSE(Queue::remove(name));
    REQUIRE_ERRC(Queue::open(name), Errc::not_found);
}

TEST_CASE("open of a missing queue fails with not_found", "[segment]") {
    REQUIRE_ERRC(Queue::open(unique_queue_name("missing")), Errc::not_found);
}

TEST_CASE("create of an existing queue fails with already_exists and leaves it intact", "[segment]") {
    ScratchQueue scratch("exists", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "keep me");
    QueueOptions options = small_options();
    options.name = scratch.name();
    REQUIRE_ERRC(Queue::create(options), Errc::already_exists);
    CHECK(status_of(scratch.queue(), id) == JobStatus::queued);
    CHECK(Queue::open(scratch.name()).entrypoint("jobs") == ep);
}

TEST_CASE("open refuses a segment of another layout version with version_mismatch", "[segment]") {
    ScratchQueue scratch("version", small_options());
    RawHeader header(scratch.name());
    const std::uint32_t original = header->layout_version;
    header->layout_version = original + 1;
    REQUIRE_THROWS_MATCHES(Queue::open(scratch.name()), Error, HasErrc(Errc::version_mismatch));
    try {
        Queue::open(scratch.name());
    } catch (const Error& error) {
        CHECK_THAT(error.what(), Catch::Contains(scratch.name()));
        CHECK_THAT(error.what(), Catch::Contains(std::to_string(original + 1)));
    }
    header->layout_version = original;
    CHECK_NOTHROW(Queue::open(scratch.name()));
}

TEST_CASE("open refuses a segment whose layout word differs with layout_mismatch naming the fact", "[segment]") {
    ScratchQueue scratch("layout", small_options());
    RawHeader header(scratch.name());
    const std::uint64_t original = header->layout_word;
    shm::LayoutFacts facts = shm::read_layout_word(original);
    facts.mutex_bytes += 8;
    header->layout_word = shm::make_layout_word(facts);
    try {
        Queue::open(scratch.name());
        FAIL("open accepted a different layout word");
    } catch (const Error& error) {
        CHECK(error.code() == Errc::layout_mismatch);
        CHECK_THAT(error.what(), Catch::Contains("mutex size"));
    }
    header->layout_word = original;
    CHECK_NOTHROW(Queue::open(scratch.name()));
}

TEST_CASE("open refuses a segment whose recorded size differs from the object with layout_mismatch", "[segment]") {
    ScratchQueue scratch("size", small_options());
    RawHeader header(scratch.name());
    const std::uint64_t original = header->total_bytes;
    header->total_bytes = original + 4096;
    REQUIRE_ERRC(Queue::open(scratch.name()), Errc::layout_mismatch);
    header->total_bytes = original;
    CHECK_NOTHROW(Queue::open(scratch.name()));
}

TEST_CASE("open refuses a header whose parameters were overwritten with corrupt_segment", "[segment]") {
    ScratchQueue scratch("parameters", small_options());
    RawHeader header(scratch.name());
    const std::uint32_t original = header->parameters.slot_count;
    header->parameters.slot_count = original / 2; // geometry would shrink: the hash catches it first
    REQUIRE_ERRC(Queue::open(scratch.name()), Errc::corrupt_segment);
    header->parameters.slot_count = original;
    CHECK_NOTHROW(Queue::open(scratch.name()));
}

TEST_CASE("the shm layer refuses a segment created for another job record size", "[segment]") {
    ScratchQueue scratch("record", small_options());
    RawHeader header(scratch.name());
    const std::uint32_t built_for = header->parameters.record_bytes;
    REQUIRE_ERRC(shm::Segment::open(scratch.name(), built_for + 8), Errc::layout_mismatch);
    CHECK_NOTHROW(shm::Segment::open(scratch.name(), built_for));
}

TEST_CASE("open refuses an object whose magic is not currant's with foreign_segment", "[segment]") {
    ScratchQueue scratch("magic", small_options());
    RawHeader header(scratch.name());
    const std::uint64_t original = header->magic.load();
    header->magic.store(0x0123456789abcdefull);
    REQUIRE_ERRC(Queue::open(scratch.name()), Errc::foreign_segment);
    header->magic.store(original);
    CHECK_NOTHROW(Queue::open(scratch.name()));
}

TEST_CASE("open refuses an object whose magic was never written with segment_abandoned", "[segment]") {
    ScratchQueue scratch("abandoned", small_options());
    RawHeader header(scratch.name());
    const std::uint64_t original = header->magic.load();
    header->magic.store(0);
    REQUIRE_ERRC(Queue::open(scratch.name()), Errc::segment_abandoned);
    header->magic.store(original);
    CHECK_NOTHROW(Queue::open(scratch.name()));
}

TEST_CASE("open refuses a shm object of junk bytes under a queue's name with foreign_segment", "[segment]") {
    const std::string name = unique_queue_name("junk");
    RawObject junk(name, 8192, 0x5a);
    REQUIRE_ERRC(Queue::open(name), Errc::foreign_segment);
}

TEST_CASE("open refuses a non-empty object smaller than a header with foreign_segment", "[segment]") {
    const std::string name = unique_queue_name("tiny");
    RawObject tiny(name, 16, 0x5a);
    REQUIRE_ERRC(Queue::open(name), Errc::foreign_segment);
}

TEST_CASE("open of an empty object left by a dead creator fails with segment_abandoned", "[segment]") {
    const std::string name = unique_queue_name("empty");
    RawObject empty(name, 0, 0);
    REQUIRE_ERRC(Queue::open(name), Errc::segment_abandoned);
}

TEST_CASE("create replaces an object whose creator died before publishing the magic", "[segment]") {
    const std::string name = unique_queue_name("replace");
    {
        RawObject empty(name, 0, 0);
        QueueOptions options = small_options();
        options.name = name;
        Queue queue = Queue::create(options);
        const EntrypointId ep = queue.declare_entrypoint("jobs");
        const JobId id = enqueue_text(queue, ep, "fresh");
        CHECK(status_of(Queue::open(name), id) == JobStatus::queued);
        queue.close();
        CHECK(Queue::remove(name));
    }
}

TEST_CASE("a Queue object whose queue was removed fails every call with segment_retired", "[segment]") {
    ScratchQueue scratch("retired", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    const JobId id = enqueue_text(scratch.queue(), ep, "x");
    Queue other = Queue::open(scratch.name());
    REQUIRE(Queue::remove(scratch.name()));

    CHECK_ERRC(enqueue_text(other, ep, "y"), Errc::segment_retired);
    CHECK_ERRC(dequeue_now(other, ep), Errc::segment_retired);
    CHECK_ERRC(other.declare_entrypoint("more"), Errc::segment_retired);
    CHECK_ERRC(other.cancel(id), Errc::segment_retired);
    CHECK_ERRC(other.stats(), Errc::segment_retired);
    CHECK_ERRC(state_of(other, id), Errc::segment_retired);
    CHECK_ERRC(other.info(), Errc::segment_retired);
    CHECK_ERRC(enqueue_text(scratch.queue(), ep, "z"), Errc::segment_retired);
    try {
        enqueue_text(other, ep, "y");
    } catch (const Error& error) {
        CHECK_THAT(error.what(), Catch::Contains("reopen"));
    }
}

TEST_CASE("a consumer holding a job of a removed queue cannot ack it and gets segment_retired", "[segment]") {
    ScratchQueue scratch("retired-ack", small_options());
    const EntrypointId ep = scratch->declare_entrypoint("jobs");
    enqueue_text(scratch.queue(), ep, "x");
    Queue consumer = Queue::open(scratch.name());
    auto jobs = dequeue_now(consumer, ep);
    REQUIRE(jobs.size() == 1);
    REQUIRE(Queue::remove(scratch.name()));
    CHECK_ERRC(consumer.ack(jobs[0].handle), Errc::segment_retired);
}

TEST_CASE("a queue recreated under the same name is new to openers but still retired for old objects",
          "[segment]") {
    const std::string name = unique_queue_name("recreate");
    QueueOptions options = small_options();
    options.name = name;
    Queue old_queue = Queue::create(options);
    const EntrypointId ep = old_queue.declare_entrypoint("jobs");
    REQUIRE(Queue::remove(name));
    Queue new_queue = Queue::create(options);
    const EntrypointId new_ep = new_queue.declare_entrypoint("jobs");
    CHECK_ERRC(enqueue_text(old_queue, ep, "old"), Errc::segment_retired);
    const JobId id = enqueue_text(new_queue, new_ep, "new");
    CHECK(status_of(Queue::open(name), id) == JobStatus::queued);
    old_queue.close();
    new_queue.close();
    Queue::remove(name);
}

TEST_CASE("a queue is created with mode 0600 by default", "[segment]") {
    ScratchQueue scratch("mode-default", small_options());
    CHECK(mode_of(scratch.name()) == 0600);
    CHECK(scratch->info().mode == 0600);
    CHECK(scratch->info().owner_uid == ::getuid());
}

TEST_CASE("a queue is created with exactly the requested mode, regardless of the umask", "[segment]") {
    QueueOptions options = small_options();
    options.mode = 0660; // the usual umask 022 would turn this into 0640
    ScratchQueue scratch("mode-given", options);
    CHECK(mode_of(scratch.name()) == 0660);
    CHECK(scratch->info().mode == 0660);
}

TEST_CASE("a queue is created owned by the requested group", "[segment]") {
    QueueOptions options = small_options();
    options.mode = 0660;
    options.group = ::getgid();
    ScratchQueue scratch("group", options);
    struct stat info {};
    REQUIRE(::stat(shm_path(scratch.name()).c_str(), &info) == 0);
    CHECK(info.st_gid == ::getgid());
    CHECK(scratch->info().owner_gid == ::getgid());
}

TEST_CASE("create refuses a mode with bits beyond the permission bits", "[segment]") {
    QueueOptions options = small_options();
    options.name = unique_queue_name("badmode");
    options.mode = 04600;
    REQUIRE_ERRC(Queue::create(options), Errc::invalid_argument);
    CHECK(::access(shm_path(options.name).c_str(), F_OK) != 0);
}

TEST_CASE("the shm object name of a queue is /currant.<name>", "[segment]") {
    CHECK(shm::object_name_for("orders") == "/currant.orders");
}
