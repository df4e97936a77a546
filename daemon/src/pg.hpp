// A thin RAII layer over libpq: one connection, statements with parameters
// (user data never enters SQL text), COPY FROM STDIN, and notifications.
//
// Error messages carry libpq's text (which names host, port and user but
// never a password) and never the connection string itself.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace currant::pg {

// A failure talking to PostgreSQL. connection_lost() says whether the
// connection is gone (reconnect) rather than the statement refused.
class DatabaseError : public std::runtime_error {
public:
    DatabaseError(const std::string& message, bool connection_lost, std::string sqlstate = {})
        : std::runtime_error(message), connection_lost_(connection_lost), sqlstate_(std::move(sqlstate)) {}
    bool connection_lost() const noexcept { return connection_lost_; }
    const std::string& sqlstate() const noexcept { return sqlstate_; }

private:
    bool connection_lost_;
    std::string sqlstate_;
};

class Result {
public:
    Result() = default;
    explicit Result(PGresult* result) : result_(result, &PQclear) {}
    int rows() const { return result_ ? PQntuples(result_.get()) : 0; }
    bool is_null(int row, int column) const { return PQgetisnull(result_.get(), row, column) != 0; }
    std::string_view text(int row, int column) const {
        return {PQgetvalue(result_.get(), row, column), std::size_t(PQgetlength(result_.get(), row, column))};
    }
    std::int64_t integer(int row, int column) const;
    // A bytea column in text format (\x hex).
    std::string bytes(int row, int column) const;

private:
    std::shared_ptr<PGresult> result_;
};

using Parameter = std::optional<std::string>; // nullopt is SQL NULL

class Connection {
public:
    // conninfo as libpq takes it ("" uses the PG* environment).
    explicit Connection(const std::string& conninfo);
    Connection(Connection&&) noexcept = default;
    Connection& operator=(Connection&&) noexcept = default;

    // Statements without user data (may be several, separated by ';').
    Result exec(std::string_view sql);
    // One statement; parameters $1.. in text format.
    Result exec(std::string_view sql, const std::vector<Parameter>& parameters);
    // Runs `COPY ... FROM STDIN` with the given data in COPY text format.
    void copy_in(std::string_view copy_sql, std::string_view data);
    // Several COPYs in one simple query, after `prefix` (statements without
    // user data, e.g. "BEGIN", or empty): each COPY's data is sent as soon
    // as the server asks for it, so n COPYs cost n + 1 round trips instead
    // of 2n (and the prefix none). The first error stops the rest (the
    // server skips them) and is thrown once the query is over.
    struct Copy {
        std::string sql;        // COPY ... FROM STDIN
        std::string_view data;  // COPY text format
    };
    void copy_in(std::string_view prefix, const std::vector<Copy>& copies);
    // Statements with parameters sent in one pipeline (libpq pipeline mode)
    // with one sync: one round trip for all of them. They run in order; the
    // first to fail makes the server skip the rest up to the sync (inside a
    // transaction it is then aborted: the caller rolls back), and its error
    // is thrown once every result has been read and pipeline mode left, so
    // the connection can take a ROLLBACK. Returns each statement's result.
    struct Statement {
        std::string sql;
        std::vector<Parameter> parameters;
    };
    std::vector<Result> pipeline(const std::vector<Statement>& statements);

    // Notifications: wait for readability of socket(), then consume().
    int socket() const { return PQsocket(connection_.get()); }
    void consume();
    struct Notification {
        std::string channel, payload;
    };
    std::optional<Notification> next_notification();

    bool ok() const { return connection_ && PQstatus(connection_.get()) == CONNECTION_OK; }
    int server_pid() const { return PQbackendPID(connection_.get()); }

private:
    [[noreturn]] void fail(const std::string& what, PGresult* result = nullptr);
    std::unique_ptr<PGconn, void (*)(PGconn*)> connection_{nullptr, &PQfinish};
};

// COPY text format: escapes for one field, appended to out.
void append_copy_text(std::string& out, std::string_view value);
void append_copy_bytea(std::string& out, const void* data, std::size_t size);
// A CLOCK_REALTIME time in ns as a timestamptz literal (UTC, microseconds).
// Read times back as epoch microseconds: `(extract(epoch from t) * 1e6)::bigint`.
std::string timestamp_text(std::int64_t realtime_ns);
std::string hex_bytes(const void* data, std::size_t size); // "\x...." for a bytea parameter

// One row of COPY text format appended to out: each call adds a field (a
// tab before every field but the first), end() the newline.
class CopyRow {
public:
    explicit CopyRow(std::string& out) : out_(out) {}
    CopyRow& number(std::int64_t value) { return formatted(std::to_string(value)); }
    // A field already in COPY text form (a number, a status name).
    CopyRow& formatted(std::string_view value) {
        separate();
        out_ += value;
        return *this;
    }
    CopyRow& text(std::string_view value) {
        separate();
        append_copy_text(out_, value);
        return *this;
    }
    CopyRow& bytea(const void* data, std::size_t size) {
        separate();
        append_copy_bytea(out_, data, size);
        return *this;
    }
    CopyRow& timestamp(std::int64_t realtime_ns) { return formatted(timestamp_text(realtime_ns)); }
    CopyRow& null() { return formatted("\\N"); }
    CopyRow& text_or_null(const std::optional<std::string_view>& value) { return value ? text(*value) : null(); }
    void end() { out_.push_back('\n'); }

private:
    void separate() {
        if (fields_++) out_.push_back('\t');
    }
    std::string& out_;
    std::size_t fields_ = 0;
};

} // namespace currant::pg
