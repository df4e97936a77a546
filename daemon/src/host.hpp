// Binding a segment to its host record in PostgreSQL at daemon start:
// first registration, resuming the same incarnation, or rebuilding a
// segment that is missing (a reboot) from the jobs PostgreSQL holds.
#pragma once

#include <optional>
#include <string>

#include "currant/queue.hpp"
#include "mirror.hpp"
#include "pg.hpp"

namespace currant::daemon {

struct AttachOptions {
    std::string queue;                  // segment name
    QueueOptions create;                // used when neither segment nor host record exists
};

struct Attached {
    Queue queue;
    HostIdentity identity;
    bool rebuilt = false;
    std::size_t restored = 0;           // jobs put back by the rebuild
    std::size_t ended = 0;              // picked jobs past their attempts, ended `exception`; waiting jobs
                                        // whose dependency ended badly before the reboot, ended `canceled`
    std::size_t schedules = 0;          // schedules put back by the rebuild
    std::size_t dead = 0;               // kept dead jobs put back by the rebuild
    std::size_t results = 0;            // kept finished jobs (results) put back by the rebuild
};

// Opens (or rebuilds) the segment and registers it as its host's current
// incarnation. Throws currant::Error or pg::DatabaseError with a message
// that says what to do.
Attached attach(pg::Connection& connection, const AttachOptions& options);

} // namespace currant::daemon
