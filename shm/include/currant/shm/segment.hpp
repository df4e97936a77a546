// A named POSIX shared-memory segment: create, open (with full validation),
// retire and remove. The object is "/currant.<name>" and never grows.
//
// Creation is safe against the creator dying half-way: the creator holds an
// exclusive flock on the descriptor while it initialises and publishes the
// magic last; an opener takes a shared flock, so it either sees a finished
// header or none, and "none" means abandoned.
//
// A Segment object is movable, not copyable; it is thread-safe to read from
// several threads. The mapping stays valid until the object is destroyed,
// even after the name is unlinked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>

#include "currant/shm/layout.hpp"

namespace currant::shm {

// Throws Error(invalid_argument) naming what is wrong with a queue name:
// 1..100 characters from [A-Za-z0-9_.-], not starting with '.' or '-'.
void validate_queue_name(std::string_view name);

// "/currant.<name>" (the name shm_open sees).
std::string object_name_for(std::string_view queue_name);

struct CreateSpec {
    std::string name;
    SegmentParameters parameters;
    std::uint64_t core_bytes = 0;       // size of core's region
    unsigned mode = 0600;               // permission bits of the shm object
    std::optional<gid_t> group;         // chown to this group (mode should grant it)
    bool replace_abandoned = true;      // unlink a half-created object left by a dead creator
};

class Segment {
public:
    // Creates and initialises a new segment. initialize_core runs under the
    // creation flock before the magic is published. Throws already_exists if
    // a complete segment of that name exists.
    static Segment create(const CreateSpec& spec,
                          const std::function<void(Segment&)>& initialize_core);

    // Opens and validates an existing segment; throws not_found,
    // foreign_segment, version_mismatch, layout_mismatch, segment_abandoned,
    // permission_denied, other_pid_namespace or segment_retired.
    static Segment open(std::string_view name, std::uint32_t expected_record_bytes);

    // Marks the segment retired (if it is a valid one) and unlinks the name.
    // Returns false if there was nothing to remove.
    static bool remove(std::string_view name);

    Segment(Segment&&) noexcept;
    Segment& operator=(Segment&&) noexcept;
    ~Segment();

    const std::string& name() const noexcept { return name_; }
    SegmentHeader& header() const noexcept { return *reinterpret_cast<SegmentHeader*>(base_); }
    std::byte* base() const noexcept { return base_; }
    std::size_t size() const noexcept { return size_; }

    // Address of a region given its offset; the offsets were bounds-checked
    // at open, so this is only for offsets read from the immutable header.
    template <typename T>
    T* at(std::uint64_t offset) const noexcept { return reinterpret_cast<T*>(base_ + offset); }

    bool retired() const noexcept {
        return header().retired.load(std::memory_order_relaxed) != 0;
    }
    // The same with a seq_cst load, for a sleeper that must see a retire
    // which happened before the remover read its wake word (Dekker pairing).
    bool retired_seq_cst() const noexcept {
        return header().retired.load(std::memory_order_seq_cst) != 0;
    }
    // Throws Error(segment_retired) if the queue was removed or recreated.
    void check_not_retired() const;

private:
    struct Mapping; // the Boost.Interprocess mapped_region, kept out of this header
    Segment(std::string name, std::unique_ptr<Mapping> mapping) noexcept;

    std::string name_;
    std::unique_ptr<Mapping> mapping_;
    std::byte* base_ = nullptr;
    std::size_t size_ = 0;
};

// Offsets of the regions for given parameters; used identically by create
// and open so that a mismatch is detected.
struct Geometry {
    std::uint32_t slot_bytes;
    std::uint64_t arena_offset;
    std::uint64_t free_stack_offset;
    std::uint64_t core_offset;
    std::uint64_t total_bytes;
};
Geometry compute_geometry(const SegmentParameters& parameters, std::uint64_t core_bytes);

} // namespace currant::shm
