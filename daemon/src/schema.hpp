// The PostgreSQL schema currant mirrors into, versioned: install creates
// the newest version, upgrade applies the missing steps in order, each in
// its own transaction together with the version bump.
#pragma once

#include <cstdint>
#include <string>

#include "pg.hpp"

namespace currant::schema {

// The version this build writes and reads.
int current_version() noexcept;
// The installed version, 0 if currant's tables are not there.
int installed_version(pg::Connection& connection);
// Installs the schema, by default at the current version; an older one
// (1 .. current_version()) is for tests of upgrade. Throws if any version
// is installed already.
void install(pg::Connection& connection, int version = current_version());
// Applies every step above the installed version; returns the versions applied.
int upgrade(pg::Connection& connection);
// Throws unless the installed version is the current one (the daemon's check).
void require_current(pg::Connection& connection);

// Jobs inserted by plain SQL take ids from this host number's range; hosts
// running a segment use 0 ..  max_segment_host.
inline constexpr std::uint32_t remote_host = 0x7FFF;
inline constexpr std::uint32_t max_segment_host = remote_host - 1;
// NOTIFY channel a host's daemon LISTENs on (remote inserts, cancellations).
std::string host_channel(std::uint32_t host);
// Channel on which daemons announce finished jobs (payload: host id).
inline constexpr const char* finished_channel = "currant_finished";

} // namespace currant::schema
