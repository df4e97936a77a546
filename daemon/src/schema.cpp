#include "schema.hpp"

#include <array>
#include <string_view>

namespace currant::schema {

namespace {

// Step n takes the schema from version n - 1 to n. Never edit a step that
// has shipped; add a new one.
//
// Tables (PgQueuer's names for statuses and columns where it has them):
//   currant_jobs      jobs that are queued or picked, one row each (plus
//                     rows inserted by SQL for a host, not yet claimed)
//   currant_log       append-only: one row per job per mirrored batch with
//                     the status it reached, folding the transitions the
//                     batch saw (`transitions`, the last `sequence`)
//   currant_hosts     per host: segment incarnation and parameters
//   currant_entrypoints  per host: declarations, for a rebuild
//   currant_cursors   per host, incarnation and entrypoint: the feed
//                     sequence mirrored so far (committed with the rows)
//   (step 3) currant_entrypoints gains pause and limits; currant_schedules
//                     per host: the schedules and their next tick
//   (step 4) currant_results per job: the final status, result and last
//                     error of finished jobs, kept until `expires` (the
//                     entrypoint's result retention; docs/results.md);
//                     currant_entrypoints gains result_retention_ms
//   (step 5) currant_dead per job: a kept dead job (payload, attempts, time
//                     of death, last error, dedupe key) for a rebuild
//                     (docs/dead-jobs.md); currant_entrypoints gains
//                     max_dead, currant_hosts result_bytes
//   (step 6) the status `waiting` (a job waiting for its dependencies,
//                     docs/job-dependencies.md); currant_jobs.depends_on
//                     (its dependencies, for a rebuild)
//   (step 7) currant_results.payload: a kept result's job payload, so a
//                     rebuild restores it with its result (docs/results.md)
constexpr std::array<std::string_view, 7> steps = {
    R"SQL(
CREATE TABLE currant_schema (version integer NOT NULL);
INSERT INTO currant_schema VALUES (0);

CREATE TYPE currant_status AS ENUM ('queued', 'picked', 'successful', 'exception', 'canceled', 'deleted');

CREATE SEQUENCE currant_remote_job_id AS bigint
    MINVALUE 9223090561878065152 START 9223090561878065152 MAXVALUE 9223372036854775807;

CREATE TABLE currant_jobs (
    id bigint PRIMARY KEY DEFAULT nextval('currant_remote_job_id'),
    host integer NOT NULL CHECK (host BETWEEN 0 AND 32766),
    entrypoint text NOT NULL,
    priority integer NOT NULL DEFAULT 0,
    status currant_status NOT NULL DEFAULT 'queued',
    payload bytea NOT NULL DEFAULT ''::bytea,
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 0,
    created timestamptz NOT NULL DEFAULT now(),
    updated timestamptz NOT NULL DEFAULT now(),
    execute_after timestamptz NOT NULL DEFAULT now(),
    heartbeat timestamptz,
    dedupe_key text,
    incarnation bigint,
    cancel_requested boolean NOT NULL DEFAULT false
);
CREATE INDEX currant_jobs_unclaimed ON currant_jobs (host, id) WHERE incarnation IS NULL;
CREATE INDEX currant_jobs_cancel_requested ON currant_jobs (host) WHERE cancel_requested;
CREATE INDEX currant_jobs_host_status ON currant_jobs (host, status, entrypoint);

CREATE TABLE currant_log (
    id bigserial PRIMARY KEY,
    job_id bigint NOT NULL,
    host integer NOT NULL,
    incarnation bigint NOT NULL,
    entrypoint text NOT NULL,
    status currant_status NOT NULL,
    priority integer NOT NULL,
    attempts integer NOT NULL,
    sequence bigint NOT NULL,
    transitions integer NOT NULL,
    created timestamptz NOT NULL,
    traceback text
);
CREATE INDEX currant_log_job_id ON currant_log (job_id);
CREATE INDEX currant_log_created ON currant_log (created);

CREATE TABLE currant_hosts (
    host integer PRIMARY KEY,
    incarnation bigint,
    segment text NOT NULL,
    slots integer NOT NULL,
    payload_bytes integer NOT NULL,
    max_entrypoints integer NOT NULL,
    max_participants integer NOT NULL,
    log_capacity integer NOT NULL,
    mode integer NOT NULL,
    max_job_id bigint NOT NULL DEFAULT 0,
    updated timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE currant_entrypoints (
    host integer NOT NULL,
    name text NOT NULL,
    durability text NOT NULL,
    lease_ms bigint NOT NULL,
    max_attempts integer NOT NULL,
    retry_delay_ms bigint NOT NULL,
    max_retry_delay_ms bigint NOT NULL,
    PRIMARY KEY (host, name)
);

CREATE TABLE currant_cursors (
    host integer NOT NULL,
    incarnation bigint NOT NULL,
    entrypoint integer NOT NULL,
    name text NOT NULL,
    sequence bigint NOT NULL,
    PRIMARY KEY (host, incarnation, entrypoint)
);
)SQL",
    // 2: dedupe keys (docs/dedupe.md). currant_jobs.dedupe_key (step 1) is
    // now mirrored and restored; a row inserted by SQL says what its claim
    // does when the key is held on the host: skip (the row ends `canceled`)
    // or refuse (it ends `exception`), the reason in currant_log.traceback.
    R"SQL(
ALTER TABLE currant_jobs ADD COLUMN on_duplicate text NOT NULL DEFAULT 'skip'
    CHECK (on_duplicate IN ('skip', 'refuse'));
)SQL",
    // 3: entrypoint pause and limits, and schedules, for a rebuild (issue 8).
    R"SQL(
ALTER TABLE currant_entrypoints
    ADD COLUMN paused boolean NOT NULL DEFAULT false,
    ADD COLUMN concurrency_limit integer CHECK (concurrency_limit > 0),
    ADD COLUMN rate_limit double precision CHECK (rate_limit > 0),
    ADD COLUMN rate_burst integer CHECK (rate_burst > 0),
    ADD COLUMN updated timestamptz NOT NULL DEFAULT now();

CREATE TABLE currant_schedules (
    host integer NOT NULL,
    name text NOT NULL,
    expression text NOT NULL,
    entrypoint text NOT NULL,
    payload bytea NOT NULL,
    priority integer NOT NULL,
    missed text NOT NULL CHECK (missed IN ('skip', 'catch_up')),
    catch_up_max integer NOT NULL,
    next_tick timestamptz,
    fired bigint NOT NULL,
    last_tick timestamptz,
    last_job_id bigint,
    created timestamptz NOT NULL,
    updated timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host, name)
);
)SQL",
    // 4: job results (docs/results.md). One row per finished job whose
    // entrypoint keeps results or that has one; currantd deletes rows past
    // `expires`. Remote waiters LISTEN currant_finished and read these.
    R"SQL(
CREATE TABLE currant_results (
    job_id bigint PRIMARY KEY,
    host integer NOT NULL,
    incarnation bigint NOT NULL,
    entrypoint text NOT NULL,
    status currant_status NOT NULL CHECK (status IN ('successful', 'exception', 'canceled')),
    attempts integer NOT NULL,
    result bytea,
    traceback text,
    finished timestamptz NOT NULL,
    expires timestamptz NOT NULL
);
CREATE INDEX currant_results_expires ON currant_results (host, expires);

ALTER TABLE currant_entrypoints ADD COLUMN result_retention_ms bigint NOT NULL DEFAULT 0
    CHECK (result_retention_ms >= 0);
)SQL",
    // 5: kept dead jobs for a rebuild (docs/dead-jobs.md). A row per job
    // whose death the segment kept (upserted at each kept death); a rebuild
    // deletes the rows of jobs requeued since and restores the newest
    // max_dead of each entrypoint. max_dead and result_bytes are recorded so
    // that the rebuilt segment keeps as many and as large as before.
    R"SQL(
CREATE TABLE currant_dead (
    job_id bigint PRIMARY KEY,
    host integer NOT NULL,
    incarnation bigint NOT NULL,
    entrypoint text NOT NULL,
    priority integer NOT NULL,
    payload bytea NOT NULL,
    attempts integer NOT NULL,
    max_attempts integer NOT NULL,
    created timestamptz NOT NULL,
    died timestamptz NOT NULL,
    traceback text,
    dedupe_key text
);
CREATE INDEX currant_dead_host ON currant_dead (host, entrypoint, died);

ALTER TABLE currant_entrypoints ADD COLUMN max_dead integer CHECK (max_dead >= 0);
ALTER TABLE currant_hosts ADD COLUMN result_bytes integer CHECK (result_bytes > 0);
)SQL",
    // 6: job dependencies (docs/job-dependencies.md). A waiting job's row
    // has status 'waiting' and its dependencies, so a rebuild restores it
    // waiting for those still alive. (ADD VALUE inside a transaction: the
    // value is usable once the step commits, PostgreSQL 12 and later.)
    R"SQL(
ALTER TYPE currant_status ADD VALUE IF NOT EXISTS 'waiting';
ALTER TABLE currant_jobs ADD COLUMN depends_on bigint[];
)SQL",
    // 7: a kept result's payload (docs/results.md). Rows written before
    // have none (NULL): a rebuild restores those without a payload.
    R"SQL(
ALTER TABLE currant_results ADD COLUMN payload bytea;
)SQL",
};

bool schema_table_exists(pg::Connection& connection) {
    return connection.exec("SELECT to_regclass('currant_schema') IS NOT NULL").text(0, 0) == "t";
}

void apply_step(pg::Connection& connection, int version) {
    connection.exec("BEGIN");
    try {
        connection.exec(steps[std::size_t(version - 1)]);
        connection.exec("UPDATE currant_schema SET version = $1", {std::to_string(version)});
        connection.exec("COMMIT");
    } catch (...) {
        try {
            connection.exec("ROLLBACK");
        } catch (...) {
        }
        throw;
    }
}

} // namespace

int current_version() noexcept { return int(steps.size()); }

int installed_version(pg::Connection& connection) {
    if (!schema_table_exists(connection)) return 0;
    return int(connection.exec("SELECT version FROM currant_schema").integer(0, 0));
}

void install(pg::Connection& connection, int up_to_version) {
    if (up_to_version < 1 || up_to_version > current_version())
        throw pg::DatabaseError("cannot install currant schema version " + std::to_string(up_to_version) +
                                    ": this build knows versions 1 to " + std::to_string(current_version()),
                                false);
    // Serialises concurrent installs; released at session end or below.
    connection.exec("SELECT pg_advisory_lock(hashtext('currant schema'))");
    try {
        const int installed = installed_version(connection);
        if (installed != 0)
            throw pg::DatabaseError("currant schema version " + std::to_string(installed) +
                                        " is installed already; use `currant db upgrade`",
                                    false);
        for (int version = 1; version <= up_to_version; ++version) apply_step(connection, version);
    } catch (...) {
        connection.exec("SELECT pg_advisory_unlock(hashtext('currant schema'))");
        throw;
    }
    connection.exec("SELECT pg_advisory_unlock(hashtext('currant schema'))");
}

int upgrade(pg::Connection& connection) {
    connection.exec("SELECT pg_advisory_lock(hashtext('currant schema'))");
    int applied = 0;
    try {
        const int installed = installed_version(connection);
        if (installed > current_version())
            throw pg::DatabaseError("currant schema version " + std::to_string(installed) +
                                        " is newer than this build's " + std::to_string(current_version()) +
                                        "; upgrade currant",
                                    false);
        for (int version = installed + 1; version <= current_version(); ++version, ++applied)
            apply_step(connection, version);
    } catch (...) {
        connection.exec("SELECT pg_advisory_unlock(hashtext('currant schema'))");
        throw;
    }
    connection.exec("SELECT pg_advisory_unlock(hashtext('currant schema'))");
    return applied;
}

void require_current(pg::Connection& connection) {
    const int installed = installed_version(connection);
    if (installed == 0)
        throw pg::DatabaseError("the currant schema is not installed in this database; run `currant db install`",
                                false);
    if (installed != current_version())
        throw pg::DatabaseError("the currant schema is at version " + std::to_string(installed) +
                                    ", this build needs " + std::to_string(current_version()) +
                                    (installed < current_version() ? "; run `currant db upgrade`"
                                                                   : "; upgrade currant"),
                                false);
}

std::string host_channel(std::uint32_t host) { return "currant_host_" + std::to_string(host); }

} // namespace currant::schema
