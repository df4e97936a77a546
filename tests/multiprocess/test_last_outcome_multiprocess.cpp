// A slot's last outcome across processes (docs/job-dependencies.md, "The
// last outcome"): consumer processes end jobs in a handful of slots with
// outcomes that alternate with the job id while other processes read how
// those jobs ended (status, wait, a dependent's enqueue). Every job's
// outcome is a function of its id, so any read that pairs one job's id
// with another job's status is caught.
#include <cstdio>

#include "process_harness.hpp"

using namespace currant;
using namespace currant::harness;

namespace {

// The outcome the consumers give job id: successful, exception, canceled in turn.
JobStatus outcome_of(JobId id) {
    switch (id % 3) {
    case 0: return JobStatus::successful;
    case 1: return JobStatus::exception;
    default: return JobStatus::canceled;
    }
}

bool is_final(JobStatus status) {
    return status == JobStatus::successful || status == JobStatus::exception || status == JobStatus::canceled;
}

// Shared (MAP_SHARED before fork).
struct Board {
    std::atomic<std::uint64_t> newest_ended;   // highest id a consumer finished (after its ack returned)
    std::atomic<std::uint32_t> producing;      // 1 while the producer runs
    std::atomic<std::uint64_t> reads;          // final statuses checked
    std::atomic<std::uint64_t> wrong;          // final statuses that are not the job's own
    std::atomic<std::uint64_t> wrong_id;       // the first such job
    std::atomic<std::uint32_t> wrong_status;   // and what it was read as
    std::atomic<std::uint64_t> linked_successful; // dependents enqueued on a successful job
    std::atomic<std::uint64_t> linked_failed;     // dependents enqueued on a failed or canceled one
    std::atomic<std::uint64_t> refused;           // dependents refused but for having ended too long ago
    char refusal[1024];                            // the first refusal's message
    std::atomic<std::uint64_t> ran_successful;    // dependents run whose dependency succeeded
    std::atomic<std::uint64_t> ran_failed;        // dependents run whose dependency did not succeed
};

// Memory durability, nothing kept: every outcome goes through the lock-free
// ack path and the slot is free again at once.
EntrypointOptions forgetful() {
    EntrypointOptions options;
    options.durability = Durability::memory;
    options.max_dead = 0;
    return options;
}

void note_wrong(Board& board, JobId id, JobStatus status) {
    if (board.wrong.fetch_add(1) == 0) {
        board.wrong_id.store(id);
        board.wrong_status.store(std::uint32_t(status));
    }
}

// A consumer process: ends each job of eps with outcome_of(its id) until
// nothing comes for a while, publishing the newest id it finished.
void consume(const std::string& name, EntrypointId ep, Board& board) {
    Queue queue = Queue::open(name);
    const EntrypointId eps[] = {ep};
    for (;;) {
        Job job;
        if (queue.dequeue(eps, std::span(&job, 1), 2s) == 0) {
            if (board.producing.load() == 0) return;
            continue;
        }
        switch (outcome_of(job.handle.id)) {
        case JobStatus::successful: queue.ack(job.handle); break;
        case JobStatus::exception: queue.fail(job.handle, "odd one"); break;
        default: queue.ack_canceled(job.handle); break;
        }
        std::uint64_t newest = board.newest_ended.load();
        while (newest < job.handle.id && !board.newest_ended.compare_exchange_weak(newest, job.handle.id)) {
        }
    }
}

// Which ids are jobs of produce() (the dependents take ids from the same
// counter): set after each enqueue.
constexpr std::size_t max_ids = 1 << 18;
using WorkIds = SharedArray<std::atomic<std::uint8_t>>;

// The producer: jobs enqueued one by one, each waiting for a free slot.
void produce(const std::string& name, EntrypointId ep, Board& board, int jobs, WorkIds* work = nullptr) {
    Queue queue = Queue::open(name);
    EnqueueOptions options;
    options.arena_wait = 10s;
    for (int i = 0; i < jobs; ++i) {
        const JobId id = queue.enqueue(ep, as_payload("x"), options);
        if (work && id < max_ids) (*work)[id].store(1);
    }
    board.producing.store(0);
}

std::string describe_wrong(const Board& board) {
    return "job " + std::to_string(board.wrong_id.load()) + " read as " +
           std::string(job_status_name(JobStatus(board.wrong_status.load()))) + ", it ended " +
           std::string(job_status_name(outcome_of(board.wrong_id.load())));
}

} // namespace

TEST_CASE("status and wait never pair a finished job with another job's outcome while its slot is reused",
          "[multiprocess][dependencies][last_outcome]") {
    constexpr int jobs = 150000;
    constexpr int readers = 2;
    SharedArray<Board> shared(1);
    Board& board = shared[0];
    board.producing.store(1);
    ScratchQueue scratch("mp-last-outcome", small_queue(8)); // every slot ends a job every few microseconds
    const EntrypointId ep = scratch->declare_entrypoint("work", forgetful());

    std::vector<pid_t> pids;
    pids.push_back(fork_child([&] { produce(scratch.name(), ep, board, jobs); }));
    pids.push_back(fork_child([&] { consume(scratch.name(), ep, board); }));
    pids.push_back(fork_child([&] { consume(scratch.name(), ep, board); }));
    for (int r = 0; r < readers; ++r)
        pids.push_back(fork_child([&, r] {
            Queue queue = Queue::open(scratch.name());
            std::vector<JobId> ids(16);
            while (board.producing.load() != 0) {
                // The jobs that ended last: their slots' last outcomes are the
                // ones being overwritten now.
                const std::uint64_t newest = board.newest_ended.load();
                if (newest < ids.size()) continue;
                for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = newest - i;
                if (r == 0) {
                    for (const JobState& state : queue.status(ids)) {
                        if (!is_final(state.status)) continue;
                        board.reads.fetch_add(1, std::memory_order_relaxed);
                        if (state.status != outcome_of(state.id)) note_wrong(board, state.id, state.status);
                    }
                } else {
                    for (const JobOutcome& outcome : queue.wait(ids, 0s)) {
                        if (!outcome.finished) continue;
                        board.reads.fetch_add(1, std::memory_order_relaxed);
                        if (outcome.status != outcome_of(outcome.id))
                            note_wrong(board, outcome.id, outcome.status);
                    }
                }
            }
        }));
    for (pid_t pid : pids) CHECK(wait_child(pid) == 0);
    INFO((board.wrong.load() != 0 ? describe_wrong(board) : std::string("no wrong read")));
    CHECK(board.wrong.load() == 0);
    CHECK(board.reads.load() > 1000); // the readers did read finished jobs
    require_doctor_sound(scratch.queue());
}

TEST_CASE("a dependent enqueued after its dependency ended follows that dependency's own outcome while its slot is "
          "reused",
          "[multiprocess][dependencies][last_outcome]") {
    constexpr int jobs = 60000;
    SharedArray<Board> shared(1);
    Board& board = shared[0];
    board.producing.store(1);
    WorkIds work(max_ids);
    ScratchQueue scratch("mp-last-outcome-dep", small_queue(16));
    const EntrypointId ep = scratch->declare_entrypoint("work", forgetful());
    const EntrypointId after = scratch->declare_entrypoint("after", forgetful());

    std::vector<pid_t> pids;
    pids.push_back(fork_child([&] { produce(scratch.name(), ep, board, jobs, &work); }));
    pids.push_back(fork_child([&] { consume(scratch.name(), ep, board); }));
    pids.push_back(fork_child([&] { consume(scratch.name(), ep, board); }));
    // The linker: dependents of jobs that ended last, each classified from
    // its slot's last outcome (or the recent outcomes). In turn, one on the
    // 8 newest jobs that succeeded (queued, or waiting for one still
    // running: it must run) and one on the newest job that failed or was
    // canceled (canceled at once: it must never run).
    pids.push_back(fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        EnqueueOptions options;
        options.arena_wait = 10s;
        std::uint64_t linked_to = 0;
        bool on_successful = true;
        while (board.producing.load() != 0) {
            const std::uint64_t newest = board.newest_ended.load();
            if (newest < 64 || newest >= max_ids || newest == linked_to) continue;
            linked_to = newest;
            options.depends_on.clear();
            std::string payload;
            for (JobId id = newest; id > newest - 64 && options.depends_on.size() < (on_successful ? 8u : 1u); --id)
                if (work[id].load() != 0 && (outcome_of(id) == JobStatus::successful) == on_successful)
                    options.depends_on.push_back(id);
            if (options.depends_on.empty()) continue;
            payload = on_successful ? "s" : std::to_string(options.depends_on[0]);
            try {
                queue.enqueue(after, as_payload(payload), options);
            } catch (const Error& e) {
                // Fair when this process was held up while more ids than the
                // recent outcomes hold were handed out (a loaded machine).
                if (std::string_view(e.what()).find("ended too long ago") != std::string_view::npos) continue;
                if (board.refused.fetch_add(1) == 0) std::snprintf(board.refusal, sizeof board.refusal, "%s", e.what());
                continue;
            }
            (on_successful ? board.linked_successful : board.linked_failed).fetch_add(1);
            on_successful = !on_successful;
        }
    }));
    // The dependents' consumer: a dependent runs only if its dependencies succeeded.
    pids.push_back(fork_child([&] {
        Queue queue = Queue::open(scratch.name());
        const EntrypointId eps[] = {after};
        for (;;) {
            Job job;
            if (queue.dequeue(eps, std::span(&job, 1), 2s) == 0) {
                if (board.producing.load() == 0) return;
                continue;
            }
            const std::string payload(as_text(job.payload));
            if (payload == "s") {
                board.ran_successful.fetch_add(1);
            } else {
                board.ran_failed.fetch_add(1);
                note_wrong(board, std::stoull(payload), JobStatus::successful);
            }
            queue.ack(job.handle);
        }
    }));
    for (pid_t pid : pids) CHECK(wait_child(pid) == 0);
    INFO((board.wrong.load() != 0 ? describe_wrong(board) : std::string("no wrong read")));
    INFO("first refusal: " << board.refusal);
    CHECK(board.ran_failed.load() == 0);
    // None canceled by a successful dependency misread as failed either.
    CHECK(board.ran_successful.load() == board.linked_successful.load());
    CHECK(board.refused.load() == 0);
    CHECK(board.linked_successful.load() > 10);
    CHECK(board.linked_failed.load() > 10);
    require_doctor_sound(scratch.queue());
}
