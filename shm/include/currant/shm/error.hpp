// The error vocabulary shared by every layer of currant.
//
// Every failure a caller can act on is a currant::Error carrying one Errc and
// a message that names the queue, entrypoint or limit involved. Errors are
// values of this one enum so that the C ABI can map them 1:1 to codes.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace currant {

enum class Errc : int {
    ok = 0,
    invalid_argument,       // a bad name, size, option or handle shape
    not_found,              // no queue / entrypoint / job of that name or id
    already_exists,         // create of a queue that exists
    foreign_segment,        // the shm object is not a currant segment at all
    version_mismatch,       // a currant segment of another layout version
    layout_mismatch,        // same version, different ABI facts or sizes
    segment_abandoned,      // creator died before finishing initialisation
    segment_retired,        // queue was removed or recreated: reopen it
    permission_denied,      // the OS refused access to the segment
    other_pid_namespace,    // segment created in another pid namespace
    arena_full,             // no free slot: back-pressure
    payload_too_large,      // payload exceeds the per-slot payload bytes
    entrypoint_table_full,  // no room to declare another entrypoint
    participant_table_full, // too many processes attached at once
    priority_lanes_full,    // too many distinct priorities queued at once
    stale_handle,           // job was re-picked, finished or the slot reused
    not_owner,              // the job is held by someone else
    wrong_state,            // the transition is not allowed from this state
    log_full,               // transition log full (mirror lagging)
    timed_out,              // a wait ended at its deadline
    forked_process,         // handle used in a child after fork()
    repair_failed,          // a dead lock owner's state could not be repaired
    corrupt_segment,        // an index or field read from the segment is invalid
    system_error,           // an unexpected OS error; message names the call
};

// Stable, short name of an error code ("arena_full").
std::string_view errc_name(Errc code) noexcept;

class Error : public std::runtime_error {
public:
    Error(Errc code, const std::string& message)
        : std::runtime_error(message), code_(code) {}
    Errc code() const noexcept { return code_; }

private:
    Errc code_;
};

// Throws Error(system_error) naming the failed call and errno's text.
[[noreturn]] void throw_system_error(std::string_view call, int error_number);

} // namespace currant
