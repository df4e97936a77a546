#include "currant/shm/segment.hpp"

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/permissions.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <cstring>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "currant/shm/arena.hpp"
#include "currant/shm/clock.hpp"
#include "currant/shm/crash_point.hpp"

namespace bip = boost::interprocess;

namespace currant::shm {

struct Segment::Mapping {
    bip::mapped_region region;
};

namespace {

constexpr std::size_t max_name_length = 100;

std::uint64_t round_up(std::uint64_t value, std::uint64_t to) { return (value + to - 1) / to * to; }

std::uint64_t current_pid_namespace() {
    struct stat info {};
    if (::stat("/proc/self/ns/pid", &info) != 0) return 0;
    return info.st_ino;
}

std::uint64_t fresh_incarnation() {
    std::uint64_t value = 0;
    if (::getrandom(&value, sizeof value, 0) != sizeof value) value = 0;
    value ^= std::uint64_t(realtime_ns()) * 0x9e3779b97f4a7c15ull;
    return value == 0 ? 1 : value;
}

// Holds flock() on a descriptor for a scope; flock retries EINTR.
class FileLock {
public:
    FileLock(int descriptor, int operation) : descriptor_(descriptor) {
        while (::flock(descriptor_, operation) != 0) {
            if (errno != EINTR) throw_system_error("flock", errno);
        }
    }
    ~FileLock() { ::flock(descriptor_, LOCK_UN); }
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;

private:
    int descriptor_;
};

std::string boost_name(std::string_view queue_name) { return "currant." + std::string(queue_name); }

[[noreturn]] void rethrow_boost(const bip::interprocess_exception& error, std::string_view queue_name,
                                std::string_view action) {
    int native = error.get_native_error();
    std::string what = "queue '" + std::string(queue_name) + "': " + std::string(action) + ": ";
    if (error.get_error_code() == bip::not_found_error || native == ENOENT)
        throw Error(Errc::not_found, what + "no such queue (create it with `currant init " +
                                         std::string(queue_name) + "`)");
    if (error.get_error_code() == bip::already_exists_error || native == EEXIST)
        throw Error(Errc::already_exists, what + "a queue of that name already exists");
    if (native == EACCES || native == EPERM || error.get_error_code() == bip::security_error)
        throw Error(Errc::permission_denied,
                    what + "permission denied (the queue belongs to another user or group)");
    throw Error(Errc::system_error, what + error.what());
}

void validate_header(const SegmentHeader& header, std::size_t mapped, std::string_view name,
                     std::uint32_t expected_record_bytes) {
    const std::string queue = "queue '" + std::string(name) + "': ";
    const LayoutFacts ours = this_build_layout_facts(expected_record_bytes);
    if (header.layout_version != layout_version)
        throw Error(Errc::version_mismatch,
                    queue + "segment layout version " + std::to_string(header.layout_version) +
                        ", this build reads version " + std::to_string(layout_version) +
                        " (recreate the queue or use a matching currant)");
    const LayoutFacts theirs = read_layout_word(header.layout_word);
    auto mismatch = [&](const char* fact, std::uint32_t segment_value, std::uint32_t build_value) {
        throw Error(Errc::layout_mismatch, queue + "layout differs: " + fact + " is " +
                                               std::to_string(segment_value) + " in the segment, " +
                                               std::to_string(build_value) + " in this build");
    };
    if (theirs.mutex_bytes != ours.mutex_bytes) mismatch("mutex size", theirs.mutex_bytes, ours.mutex_bytes);
    if (theirs.cache_line_bytes != ours.cache_line_bytes)
        mismatch("cache line", theirs.cache_line_bytes, ours.cache_line_bytes);
    if (theirs.header_bytes != ours.header_bytes) mismatch("header size", theirs.header_bytes, ours.header_bytes);
    if (theirs.record_bytes != ours.record_bytes) mismatch("job record size", theirs.record_bytes, ours.record_bytes);
    if (header.header_bytes != sizeof(SegmentHeader))
        mismatch("header size field", header.header_bytes, std::uint32_t(sizeof(SegmentHeader)));
    if (header.total_bytes != mapped)
        throw Error(Errc::layout_mismatch, queue + "segment is " + std::to_string(mapped) +
                                               " bytes but its header says " +
                                               std::to_string(header.total_bytes));
    if (header.parameters.record_bytes != expected_record_bytes)
        mismatch("record bytes parameter", header.parameters.record_bytes, expected_record_bytes);
    if (header.parameters.slot_count == 0 || header.parameters.max_entrypoints == 0 ||
        header.parameters.max_participants == 0 || header.parameters.log_capacity == 0)
        throw Error(Errc::corrupt_segment, queue + "header has a zero size parameter");
    if (header.parameter_hash != hash_parameters(header.parameters, header.core_bytes))
        throw Error(Errc::corrupt_segment,
                    queue + "header parameters do not match their recorded hash (the header was overwritten)");
    Geometry expected{};
    try {
        expected = compute_geometry(header.parameters, header.core_bytes);
    } catch (const Error&) {
        throw Error(Errc::corrupt_segment, queue + "header parameters are out of range");
    }
    if (expected.total_bytes != header.total_bytes || expected.slot_bytes != header.slot_bytes ||
        expected.arena_offset != header.arena_offset ||
        expected.free_stack_offset != header.free_stack_offset ||
        expected.core_offset != header.core_offset)
        throw Error(Errc::corrupt_segment,
                    queue + "region offsets in the header do not match its parameters");
    if (header.pid_namespace != current_pid_namespace())
        throw Error(Errc::other_pid_namespace,
                    queue + "segment was created in another pid namespace; liveness checks "
                            "cannot work across namespaces");
}

} // namespace

std::uint64_t hash_parameters(const SegmentParameters& parameters, std::uint64_t core_bytes) noexcept {
    const std::uint64_t fields[] = {parameters.slot_count,      parameters.payload_bytes, parameters.record_bytes,
                                    parameters.max_entrypoints, parameters.max_participants,
                                    parameters.log_capacity,    parameters.host_id,       core_bytes};
    std::uint64_t hash = 0xcbf29ce484222325ull;
    for (std::uint64_t field : fields)
        for (int byte = 0; byte < 8; ++byte) {
            hash ^= (field >> (8 * byte)) & 0xff;
            hash *= 0x100000001b3ull;
        }
    return hash;
}

std::uint64_t make_layout_word(const LayoutFacts& facts) noexcept {
    return (std::uint64_t(facts.mutex_bytes & 0xff) << 56) |
           (std::uint64_t(facts.cache_line_bytes & 0xfff) << 44) |
           (std::uint64_t(facts.header_bytes & 0xfffff) << 24) | std::uint64_t(facts.record_bytes & 0xffffff);
}

LayoutFacts read_layout_word(std::uint64_t word) noexcept {
    return LayoutFacts{std::uint32_t(word >> 56) & 0xff, std::uint32_t(word >> 44) & 0xfff,
                       std::uint32_t(word >> 24) & 0xfffff, std::uint32_t(word) & 0xffffff};
}

LayoutFacts this_build_layout_facts(std::uint32_t record_bytes) noexcept {
    return LayoutFacts{std::uint32_t(sizeof(pthread_mutex_t)), std::uint32_t(cache_line),
                       std::uint32_t(sizeof(SegmentHeader)), record_bytes};
}

void validate_queue_name(std::string_view name) {
    if (name.empty()) throw Error(Errc::invalid_argument, "queue name is empty");
    if (name.size() > max_name_length)
        throw Error(Errc::invalid_argument, "queue name '" + std::string(name.substr(0, 40)) +
                                                "...' is longer than " +
                                                std::to_string(max_name_length) + " characters");
    if (name.front() == '.' || name.front() == '-')
        throw Error(Errc::invalid_argument,
                    "queue name '" + std::string(name) + "' must not start with '.' or '-'");
    for (unsigned char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok) {
            char shown[8];
            if (c >= 0x20 && c < 0x7f) std::snprintf(shown, sizeof shown, "'%c'", c);
            else std::snprintf(shown, sizeof shown, "0x%02x", c);
            throw Error(Errc::invalid_argument,
                        "queue name contains " + std::string(shown) +
                            "; only letters, digits, '_', '.' and '-' are allowed");
        }
    }
}

std::string object_name_for(std::string_view queue_name) { return "/" + boost_name(queue_name); }

Geometry compute_geometry(const SegmentParameters& parameters, std::uint64_t core_bytes) {
    if (parameters.slot_count == 0 || parameters.slot_count > (1u << 30))
        throw Error(Errc::invalid_argument, "slot count must be between 1 and 2^30");
    if (parameters.payload_bytes > (64u << 20))
        throw Error(Errc::invalid_argument, "payload bytes per slot must be at most 64 MiB");
    Geometry geometry{};
    geometry.slot_bytes = std::uint32_t(
        round_up(sizeof(std::uint64_t) + parameters.record_bytes + parameters.payload_bytes, 64));
    geometry.arena_offset = round_up(sizeof(SegmentHeader), 4096);
    geometry.free_stack_offset = round_up(
        geometry.arena_offset + std::uint64_t(geometry.slot_bytes) * parameters.slot_count, cache_line);
    geometry.core_offset =
        round_up(geometry.free_stack_offset + sizeof(std::uint32_t) * std::uint64_t(parameters.slot_count),
                 4096);
    geometry.total_bytes = round_up(geometry.core_offset + core_bytes, 4096);
    return geometry;
}

Segment::Segment(std::string name, std::unique_ptr<Mapping> mapping) noexcept
    : name_(std::move(name)), mapping_(std::move(mapping)) {
    base_ = static_cast<std::byte*>(mapping_->region.get_address());
    size_ = mapping_->region.get_size();
}

Segment::Segment(Segment&&) noexcept = default;
Segment& Segment::operator=(Segment&&) noexcept = default;
Segment::~Segment() = default;

void Segment::check_not_retired() const {
    if (retired())
        throw Error(Errc::segment_retired,
                    "queue '" + name_ + "' was removed or recreated: reopen it");
}

Segment Segment::create(const CreateSpec& spec, const std::function<void(Segment&)>& initialize_core) {
    validate_queue_name(spec.name);
    if (spec.parameters.max_entrypoints == 0 || spec.parameters.max_participants == 0)
        throw Error(Errc::invalid_argument, "max entrypoints and max participants must be at least 1");
    if (spec.parameters.max_participants > 65534)
        throw Error(Errc::invalid_argument, "max participants must be at most 65534");
    if (spec.parameters.host_id > 0xffff)
        throw Error(Errc::invalid_argument, "host id must fit in 16 bits (0..65535)");
    if (spec.mode & ~0777u) throw Error(Errc::invalid_argument, "mode must be permission bits (0..0777)");
    const Geometry geometry = compute_geometry(spec.parameters, spec.core_bytes);
    const std::string name = boost_name(spec.name);

    for (int attempt = 0;; ++attempt) {
        std::optional<bip::shared_memory_object> object;
        try {
            object.emplace(bip::create_only, name.c_str(), bip::read_write, bip::permissions(spec.mode));
        } catch (const bip::interprocess_exception& error) {
            if (error.get_error_code() != bip::already_exists_error || !spec.replace_abandoned || attempt > 0)
                rethrow_boost(error, spec.name, "create");
            // Something is there: if it is a finished segment, that is an
            // error; if its creator died before the magic, replace it.
            try {
                bip::shared_memory_object existing(bip::open_only, name.c_str(), bip::read_write);
                FileLock lock(existing.get_mapping_handle().handle, LOCK_EX);
                bip::offset_t existing_size = 0;
                existing.get_size(existing_size);
                bool complete = false;
                if (existing_size >= bip::offset_t(sizeof(std::uint64_t))) {
                    bip::mapped_region peek(existing, bip::read_only, 0, sizeof(std::uint64_t));
                    complete = *static_cast<const std::uint64_t*>(peek.get_address()) != 0;
                }
                if (complete)
                    throw Error(Errc::already_exists,
                                "queue '" + spec.name + "' already exists (remove it with `currant rm " +
                                    spec.name + "` first)");
                bip::shared_memory_object::remove(name.c_str());
            } catch (const bip::interprocess_exception& inner) {
                rethrow_boost(inner, spec.name, "replace abandoned segment");
            }
            continue;
        }

        const int descriptor = object->get_mapping_handle().handle;
        FileLock lock(descriptor, LOCK_EX);
        // A replacer may have unlinked our fresh object in the instant before
        // we took the lock; then our descriptor is orphaned.
        struct stat ours {}, named {};
        if (::fstat(descriptor, &ours) != 0 ||
            ::stat(("/dev/shm/" + name).c_str(), &named) != 0 || ours.st_ino != named.st_ino)
            throw Error(Errc::already_exists, "queue '" + spec.name + "' is being created concurrently");
        if (spec.group && ::fchown(descriptor, uid_t(-1), *spec.group) != 0)
            throw_system_error("fchown of queue '" + spec.name + "' to the requested group", errno);
        try {
            object->truncate(bip::offset_t(geometry.total_bytes));
        } catch (const bip::interprocess_exception& error) {
            bip::shared_memory_object::remove(name.c_str());
            rethrow_boost(error, spec.name, "size the segment");
        }
        auto mapping = std::make_unique<Mapping>(Mapping{bip::mapped_region(*object, bip::read_write)});
        Segment segment(spec.name, std::move(mapping));
        crash_point("create.after_truncate");

        SegmentHeader& header = segment.header();
        header.layout_version = layout_version;
        header.header_bytes = sizeof(SegmentHeader);
        header.layout_word = make_layout_word(this_build_layout_facts(spec.parameters.record_bytes));
        header.total_bytes = geometry.total_bytes;
        header.parameters = spec.parameters;
        header.slot_bytes = geometry.slot_bytes;
        header.creator_uid = ::getuid();
        header.arena_offset = geometry.arena_offset;
        header.free_stack_offset = geometry.free_stack_offset;
        header.core_offset = geometry.core_offset;
        header.core_bytes = spec.core_bytes;
        header.creation_realtime_ns = realtime_ns();
        header.incarnation = fresh_incarnation();
        header.pid_namespace = current_pid_namespace();
        header.parameter_hash = hash_parameters(spec.parameters, spec.core_bytes);
        header.retired.store(0, std::memory_order_relaxed);
        header.next_job_counter.store(1, std::memory_order_relaxed);
        Arena(segment).initialize();
        initialize_core(segment);
        crash_point("create.before_magic");
        // Publishes every store above to openers (they load magic with acquire).
        header.magic.store(segment_magic, std::memory_order_release);
        return segment;
    }
}

Segment Segment::open(std::string_view queue_name, std::uint32_t expected_record_bytes) {
    validate_queue_name(queue_name);
    const std::string name = boost_name(queue_name);
    try {
        bip::shared_memory_object object(bip::open_only, name.c_str(), bip::read_write);
        FileLock lock(object.get_mapping_handle().handle, LOCK_SH);
        bip::offset_t length = 0;
        object.get_size(length);
        const std::string queue = "queue '" + std::string(queue_name) + "': ";
        if (length < bip::offset_t(sizeof(SegmentHeader))) {
            if (length == 0)
                throw Error(Errc::segment_abandoned,
                            queue + "segment was never initialised (its creator died or is still "
                                    "creating it); remove it with `currant rm`");
            throw Error(Errc::foreign_segment, queue + "shared-memory object is too small to be a currant segment");
        }
        auto mapping = std::make_unique<Mapping>(Mapping{bip::mapped_region(object, bip::read_write)});
        Segment segment(std::string(queue_name), std::move(mapping));
        const std::uint64_t magic = segment.header().magic.load(std::memory_order_acquire);
        if (magic == 0)
            throw Error(Errc::segment_abandoned,
                        queue + "segment was never finished (its creator died half-way); remove it "
                                "with `currant rm` or recreate it");
        if (magic != segment_magic)
            throw Error(Errc::foreign_segment, queue + "the shared-memory object is not a currant segment");
        validate_header(segment.header(), segment.size(), queue_name, expected_record_bytes);
        segment.check_not_retired();
        return segment;
    } catch (const bip::interprocess_exception& error) {
        rethrow_boost(error, queue_name, "open");
    }
}

bool Segment::remove(std::string_view queue_name) {
    validate_queue_name(queue_name);
    const std::string name = boost_name(queue_name);
    try {
        bip::shared_memory_object object(bip::open_only, name.c_str(), bip::read_write);
        FileLock lock(object.get_mapping_handle().handle, LOCK_EX);
        bip::offset_t length = 0;
        object.get_size(length);
        if (length >= bip::offset_t(sizeof(SegmentHeader))) {
            bip::mapped_region region(object, bip::read_write, 0, sizeof(SegmentHeader));
            auto& header = *static_cast<SegmentHeader*>(region.get_address());
            if (header.magic.load(std::memory_order_acquire) == segment_magic)
                header.retired.store(1, std::memory_order_seq_cst); // before the name goes away
        }
    } catch (const bip::interprocess_exception& error) {
        if (error.get_error_code() == bip::not_found_error || error.get_native_error() == ENOENT)
            return false;
        rethrow_boost(error, queue_name, "remove");
    }
    return bip::shared_memory_object::remove(name.c_str());
}

} // namespace currant::shm
