#include "currant/shm/error.hpp"

#include <cstring>

namespace currant {

std::string_view errc_name(Errc code) noexcept {
    switch (code) {
    case Errc::ok: return "ok";
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::not_found: return "not_found";
    case Errc::already_exists: return "already_exists";
    case Errc::foreign_segment: return "foreign_segment";
    case Errc::version_mismatch: return "version_mismatch";
    case Errc::layout_mismatch: return "layout_mismatch";
    case Errc::segment_abandoned: return "segment_abandoned";
    case Errc::segment_retired: return "segment_retired";
    case Errc::permission_denied: return "permission_denied";
    case Errc::other_pid_namespace: return "other_pid_namespace";
    case Errc::arena_full: return "arena_full";
    case Errc::payload_too_large: return "payload_too_large";
    case Errc::entrypoint_table_full: return "entrypoint_table_full";
    case Errc::participant_table_full: return "participant_table_full";
    case Errc::priority_lanes_full: return "priority_lanes_full";
    case Errc::stale_handle: return "stale_handle";
    case Errc::not_owner: return "not_owner";
    case Errc::wrong_state: return "wrong_state";
    case Errc::log_full: return "log_full";
    case Errc::timed_out: return "timed_out";
    case Errc::forked_process: return "forked_process";
    case Errc::repair_failed: return "repair_failed";
    case Errc::corrupt_segment: return "corrupt_segment";
    case Errc::system_error: return "system_error";
    }
    return "unknown_error";
}

void throw_system_error(std::string_view call, int error_number) {
    std::string message(call);
    message += " failed: ";
    message += std::strerror(error_number);
    throw Error(error_number == EACCES || error_number == EPERM ? Errc::permission_denied
                                                                  : Errc::system_error,
                message);
}

} // namespace currant
