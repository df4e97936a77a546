// Results and wait across processes (docs/results.md): waiter processes
// asleep in wait() while consumer processes ack with results; every waiter
// sees every job's final status and result, and no completion is lost.
#include "process_harness.hpp"

using namespace currant;
using namespace currant::harness;

TEST_CASE("waiter processes see every result acked by consumer processes", "[multiprocess][results]") {
    constexpr int jobs = 200;
    constexpr int consumers = 2;
    constexpr int waiters = 2;
    ScratchQueue scratch("mp-results", small_queue(1024));
    EntrypointOptions options;
    options.result_retention = 60s;
    const EntrypointId ep = scratch->declare_entrypoint("work", options);
    std::vector<JobId> ids;
    for (int i = 0; i < jobs; ++i) ids.push_back(scratch->enqueue(ep, as_payload(std::to_string(i))));

    // Each waiter waits for all jobs (one wait call, woken by many acks) and
    // checks every result against the job's payload.
    std::vector<pid_t> pids;
    Signal waiting;
    for (int w = 0; w < waiters; ++w)
        pids.push_back(fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            waiting.notify();
            const auto outcomes = queue.wait(ids, 60s);
            for (int i = 0; i < jobs; ++i) {
                expect(outcomes[i].finished, "job " + std::to_string(i) + " finished");
                expect(outcomes[i].status == JobStatus::successful, "job " + std::to_string(i) + " successful");
                expect(outcomes[i].result.has_value(), "job " + std::to_string(i) + " has its result");
                expect(as_text(*outcomes[i].result) == "result of " + std::to_string(i), "result matches");
            }
        }));
    for (int w = 0; w < waiters; ++w) REQUIRE(waiting.wait(10s));
    for (int c = 0; c < consumers; ++c)
        pids.push_back(fork_child([&] {
            Queue queue = Queue::open(scratch.name());
            const EntrypointId eps[] = {ep};
            for (;;) {
                Job job;
                if (queue.dequeue(eps, std::span(&job, 1), 500ms) == 0) return;
                queue.ack(job.handle, as_payload("result of " + std::string(as_text(job.payload))));
            }
        }));
    for (pid_t pid : pids) CHECK(wait_child(pid) == 0);
    const auto outcomes = scratch->wait(ids, 0ns);
    for (const JobOutcome& outcome : outcomes) CHECK(outcome.status == JobStatus::successful);
    require_doctor_sound(scratch.queue());
}
