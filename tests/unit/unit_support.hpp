// Helpers for the unit suite: small queue sizes, an error-code matcher, and
// short ways to pick jobs without waiting.
#pragma once

#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "currant/queue.hpp"
#include "currant/shm/clock.hpp"
#include "test_support.hpp"

namespace Catch {
template <>
struct StringMaker<currant::Errc> {
    static std::string convert(currant::Errc code) { return std::string(currant::errc_name(code)); }
};
template <>
struct StringMaker<currant::Error> {
    static std::string convert(const currant::Error& error) {
        return "Error(" + std::string(currant::errc_name(error.code())) + ": " + error.what() + ")";
    }
};
} // namespace Catch

namespace currant::unit {

using namespace std::chrono_literals;
using currant::testing::ScratchQueue;
using currant::testing::bytes;
using currant::testing::text;

// Matches a currant::Error carrying the given code.
class HasErrc : public Catch::MatcherBase<currant::Error> {
public:
    explicit HasErrc(Errc code) : code_(code) {}
    bool match(const currant::Error& error) const override { return error.code() == code_; }
    std::string describe() const override { return "has error code " + std::string(errc_name(code_)); }

private:
    Errc code_;
};

// Matches a currant::Error carrying either of two codes.
class HasErrcEither : public Catch::MatcherBase<currant::Error> {
public:
    HasErrcEither(Errc a, Errc b) : a_(a), b_(b) {}
    bool match(const currant::Error& error) const override { return error.code() == a_ || error.code() == b_; }
    std::string describe() const override {
        return "has error code " + std::string(errc_name(a_)) + " or " + std::string(errc_name(b_));
    }

private:
    Errc a_, b_;
};

#define REQUIRE_ERRC(expression, code) \
    REQUIRE_THROWS_MATCHES(expression, ::currant::Error, ::currant::unit::HasErrc(code))
#define CHECK_ERRC(expression, code) \
    CHECK_THROWS_MATCHES(expression, ::currant::Error, ::currant::unit::HasErrc(code))

// Small sizes keep every test fast; tests change fields they care about.
inline QueueOptions small_options() {
    QueueOptions options;
    options.slots = 64;
    options.payload_bytes = 64;
    options.max_entrypoints = 8;
    options.max_participants = 16;
    options.log_capacity = 64;
    return options;
}

inline QueueOptions small_options(std::uint32_t slots) {
    QueueOptions options = small_options();
    options.slots = slots;
    return options;
}

// Picks whatever is ready now (timeout zero), up to max jobs.
inline std::vector<Job> dequeue_now(Queue& queue, EntrypointId entrypoint, std::size_t max = 16) {
    std::vector<Job> jobs(max);
    const EntrypointId eps[] = {entrypoint};
    jobs.resize(queue.dequeue(eps, jobs, 0ns));
    return jobs;
}

// Waits up to timeout for one job.
inline std::optional<Job> dequeue_within(Queue& queue, EntrypointId entrypoint, std::chrono::nanoseconds timeout) {
    Job job;
    const EntrypointId eps[] = {entrypoint};
    if (queue.dequeue(eps, std::span<Job>(&job, 1), timeout) == 0) return std::nullopt;
    return job;
}

inline JobId enqueue_text(Queue& queue, EntrypointId entrypoint, std::string_view payload,
                          const EnqueueOptions& options = {}) {
    return queue.enqueue(entrypoint, as_payload(payload), options);
}

inline JobState state_of(const Queue& queue, JobId id) {
    const JobId ids[] = {id};
    return queue.status(ids).at(0);
}

inline JobStatus status_of(const Queue& queue, JobId id) { return state_of(queue, id).status; }

inline EntrypointStats stats_of(const Queue& queue, EntrypointId entrypoint) {
    return queue.stats().at(entrypoint);
}

// CLOCK_REALTIME ns, the clock of execute_after.
inline std::int64_t realtime_in(std::chrono::milliseconds from_now) {
    return shm::realtime_ns() + std::int64_t(from_now.count()) * 1'000'000;
}

} // namespace currant::unit
