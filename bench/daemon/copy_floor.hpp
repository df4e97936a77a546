// The bare PostgreSQL COPY floor: what this PostgreSQL can take in rows/s
// when nothing but COPY runs, the ceiling for any mirror of jobs into it.
// Used by currant_mirror_bench (its copy phase) and by currant-bench --db
// (beside an async or sync run), so both measure the same thing.
//
// Rows are shaped like a currant_log row (the row every finished job
// leaves) or like a currant_jobs row with a payload (a job still live),
// copied into a table the caller made LIKE the real one (same columns,
// defaults and indexes), one transaction per `batch` rows (currantd's
// default batch is 20,000). Time counts the COPY and the COMMIT.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "pg.hpp"

namespace currant::bench {

enum class CopyShape { log_row, jobs_row };

struct CopyFloor {
    std::size_t rows = 0;
    double copy_seconds = 0, commit_seconds = 0;
    double seconds() const { return copy_seconds + commit_seconds; }
    double rows_per_second() const { return seconds() > 0 ? double(rows) / seconds() : 0; }
};

// Copies `rows` rows into `table` (which must have the columns of
// currant_log or currant_jobs, per `shape`); payload_bytes only for jobs rows.
CopyFloor run_copy_floor(pg::Connection& db, const std::string& table, CopyShape shape, std::size_t rows,
                         std::size_t batch, std::uint32_t payload_bytes);

} // namespace currant::bench
