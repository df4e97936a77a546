#include "copy_floor.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <vector>

namespace currant::bench {

namespace {
std::int64_t monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
} // namespace

CopyFloor run_copy_floor(pg::Connection& db, const std::string& table, CopyShape shape, std::size_t rows,
                         std::size_t batch, std::uint32_t payload_bytes) {
    std::vector<std::byte> payload(payload_bytes);
    for (std::uint32_t i = 0; i < payload_bytes; ++i) payload[i] = std::byte(i * 37 + 11);
    const bool jobs_shape = shape == CopyShape::jobs_row;
    const std::string copy_sql =
        jobs_shape ? "COPY " + table +
                         " (id, host, entrypoint, priority, status, payload, attempts, max_attempts, created, "
                         "updated, execute_after, heartbeat, incarnation) FROM STDIN"
                   : "COPY " + table +
                         " (job_id, host, incarnation, entrypoint, status, priority, attempts, sequence, "
                         "transitions, created) FROM STDIN";
    CopyFloor floor;
    const std::int64_t base_id = std::int64_t(1) << 48;
    batch = std::max<std::size_t>(batch, 1);
    for (std::size_t done = 0; done < rows;) {
        const std::size_t n = std::min(batch, rows - done);
        std::string data;
        data.reserve(n * (jobs_shape ? 300 : 110));
        for (std::size_t i = 0; i < n; ++i) {
            const std::int64_t id = base_id + std::int64_t(done + i) + 1;
            const std::string at = pg::timestamp_text(
                std::int64_t(std::chrono::system_clock::now().time_since_epoch().count()));
            if (!jobs_shape) {
                // job_id host incarnation entrypoint status priority attempts sequence transitions created
                data += std::to_string(id) + "\t1\t1\tbench\tsuccessful\t0\t1\t" +
                        std::to_string(3 * (done + i) + 3) + "\t3\t" + at + "\n";
            } else {
                // id host entrypoint priority status payload attempts max_attempts created updated
                // execute_after heartbeat incarnation
                data += std::to_string(id) + "\t1\tbench\t0\tqueued\t";
                pg::append_copy_bytea(data, payload.data(), payload.size());
                data += "\t0\t5\t" + at + "\t" + at + "\t" + at + "\t\\N\t1\n";
            }
        }
        const std::int64_t start = monotonic_ns();
        db.exec("BEGIN");
        db.copy_in(copy_sql, data);
        const std::int64_t copied = monotonic_ns();
        db.exec("COMMIT");
        floor.copy_seconds += double(copied - start) / 1e9;
        floor.commit_seconds += double(monotonic_ns() - copied) / 1e9;
        floor.rows += n;
        done += n;
    }
    return floor;
}

} // namespace currant::bench
