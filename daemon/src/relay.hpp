// The NOTIFY relay: jobs and cancellations that other hosts or plain SQL
// clients put into PostgreSQL for this host are moved into the segment.
//
// A remote producer inserts a row with this host's id and no incarnation,
// then NOTIFYs the host's channel (docs/daemon.md has the SQL). The relay
// LISTENs first and then scans after every (re)connect, so a notification
// lost with a connection loses nothing: the rows are still there.
#pragma once

#include <cstdint>

#include "currant/queue.hpp"
#include "mirror.hpp"
#include "pg.hpp"

namespace currant::daemon {

struct RelayCounters {
    std::uint64_t claimed = 0;
    std::uint64_t rejected = 0;   // unknown entrypoint or oversized payload: ended `exception`
    std::uint64_t canceled = 0;
    std::uint64_t scans = 0;
    std::uint64_t cancel_requests = 0; // cancels applied to picked jobs (repeated at each scan until they end)
};

class Relay {
public:
    Relay(Queue& queue, HostIdentity identity);
    // LISTEN on the host's channel; call right after connecting.
    void listen(pg::Connection& connection);
    // Claims every unclaimed row for this host (in batches) and applies
    // cancellation requests. Returns false if the segment pushed back (arena
    // or log full): the rest stays in PostgreSQL for the next scan.
    bool scan(pg::Connection& connection);
    const RelayCounters& counters() const noexcept { return counters_; }

private:
    bool claim_batch(pg::Connection& connection, bool& pushed_back);
    void apply_cancellations(pg::Connection& connection);

    Queue& queue_;
    HostIdentity identity_;
    RelayCounters counters_;
};

} // namespace currant::daemon
