#include "pg.hpp"

#include <charconv>
#include <cstring>
#include <ctime>

namespace currant::pg {

namespace {
std::string trimmed(const char* message) {
    std::string text = message ? message : "";
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    for (char& c : text)
        if (c == '\n') c = ' ';
    return text;
}

// The statement's first word ("INSERT"), for error messages that carry no data.
std::string statement_name(const std::string& sql) {
    const std::size_t start = sql.find_first_not_of(" \n\t");
    if (start == std::string::npos) return "statement";
    return sql.substr(start, sql.find_first_of(" \n\t(", start) - start);
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
} // namespace

std::int64_t Result::integer(int row, int column) const {
    const std::string_view value = text(row, column);
    std::int64_t number = 0;
    const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), number);
    if (error != std::errc() || end != value.data() + value.size())
        throw DatabaseError("expected an integer from PostgreSQL, got '" + std::string(value) + "'", false);
    return number;
}

std::string Result::bytes(int row, int column) const {
    const std::string_view value = text(row, column);
    if (value.size() < 2 || value[0] != '\\' || value[1] != 'x' || value.size() % 2 != 0)
        throw DatabaseError("expected a bytea in hex format from PostgreSQL", false);
    std::string out;
    out.reserve((value.size() - 2) / 2);
    for (std::size_t i = 2; i + 1 < value.size(); i += 2) {
        const int high = hex_value(value[i]), low = hex_value(value[i + 1]);
        if (high < 0 || low < 0) throw DatabaseError("malformed bytea hex from PostgreSQL", false);
        out.push_back(char(high * 16 + low));
    }
    return out;
}

Connection::Connection(const std::string& conninfo) {
    // TCP keepalives by default, so that a silent idle connection whose
    // peer vanished fails at the kernel's probe instead of needing a
    // heartbeat query (docs/daemon.md, "Idle"). They come before the
    // caller's conninfo (expanded from dbname), whose own settings override
    // them; the PG* environment fills in whatever neither names. An empty
    // conninfo is ignored by libpq (NULL-or-empty values are skipped).
    const char* const keywords[] = {"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
                                    "dbname", nullptr};
    const char* const values[] = {"1", "10", "5", "3", conninfo.c_str(), nullptr};
    connection_.reset(PQconnectdbParams(keywords, values, /*expand_dbname=*/1));
    if (!connection_) throw DatabaseError("cannot connect to PostgreSQL: out of memory", true);
    if (PQstatus(connection_.get()) != CONNECTION_OK)
        throw DatabaseError("cannot connect to PostgreSQL: " + trimmed(PQerrorMessage(connection_.get())), true);
    // Our own sessions: UTC times, and no waiting forever on a lock.
    exec("SET TIME ZONE 'UTC'");
}

void Connection::fail(const std::string& what, PGresult* result) {
    std::string message = trimmed(result ? PQresultErrorMessage(result) : PQerrorMessage(connection_.get()));
    std::string sqlstate;
    if (result) {
        if (const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE)) sqlstate = state;
        PQclear(result);
    }
    // An error the server reported carries an SQLSTATE; one without comes
    // from libpq itself: the socket failed. libpq may still say
    // CONNECTION_OK then (a failed write is reported before the read that
    // would see EOF), so that counts as lost too: found by the chaos run,
    // where an immediate shutdown during start-up made currantd exit.
    const bool lost = PQstatus(connection_.get()) != CONNECTION_OK || sqlstate.empty() ||
                      sqlstate.rfind("08", 0) == 0 || sqlstate == "57P01" || sqlstate == "57P02" ||
                      sqlstate == "57P03";
    throw DatabaseError(what + ": " + (message.empty() ? "connection lost" : message), lost, sqlstate);
}

Result Connection::exec(std::string_view sql) {
    // The simple protocol: may hold several statements (schema steps); no
    // user data ever goes through here, only through parameters.
    const std::string text(sql);
    PGresult* result = PQexec(connection_.get(), text.c_str());
    const ExecStatusType status = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
        fail("PostgreSQL " + statement_name(text) + " failed", result);
    return Result(result);
}

Result Connection::exec(std::string_view sql, const std::vector<Parameter>& parameters) {
    std::vector<const char*> values(parameters.size());
    std::vector<int> lengths(parameters.size());
    for (std::size_t i = 0; i < parameters.size(); ++i) {
        values[i] = parameters[i] ? parameters[i]->c_str() : nullptr;
        lengths[i] = parameters[i] ? int(parameters[i]->size()) : 0;
    }
    const std::string text(sql);
    PGresult* result = PQexecParams(connection_.get(), text.c_str(), int(parameters.size()), nullptr, values.data(),
                                    lengths.data(), nullptr, 0);
    const ExecStatusType status = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        // The first word of the statement names it in the error (no data).
        fail("PostgreSQL " + statement_name(text) + " failed", result);
    }
    return Result(result);
}

void Connection::copy_in(std::string_view copy_sql, std::string_view data) {
    copy_in({}, {Copy{std::string(copy_sql), data}});
}

void Connection::copy_in(std::string_view prefix, const std::vector<Copy>& copies) {
    std::string text(prefix);
    for (const Copy& copy : copies) {
        if (!text.empty()) text += "; ";
        text += copy.sql;
    }
    if (!PQsendQuery(connection_.get(), text.c_str())) fail("PostgreSQL COPY failed to start");
    // Results in order: the prefix's, then per COPY a COPY_IN (send its data)
    // and its COMMAND_OK; NULL once the whole query is over. After an error
    // the server runs nothing more of the query; keep the first error and
    // read on to the end, so the connection is idle for a ROLLBACK.
    std::size_t next = 0;
    PGresult* first_error = nullptr;
    std::string what = "PostgreSQL COPY failed";
    constexpr std::size_t chunk = 1 << 20;
    while (PGresult* result = PQgetResult(connection_.get())) {
        const ExecStatusType status = PQresultStatus(result);
        if (status == PGRES_COPY_IN) {
            PQclear(result);
            if (next >= copies.size()) {
                PQputCopyEnd(connection_.get(), "unexpected COPY");
                continue;
            }
            const std::string_view data = copies[next++].data;
            bool sent = true;
            for (std::size_t at = 0; sent && at < data.size(); at += chunk) {
                const std::size_t size = std::min(chunk, data.size() - at);
                sent = PQputCopyData(connection_.get(), data.data() + at, int(size)) == 1;
            }
            if (!sent || PQputCopyEnd(connection_.get(), nullptr) != 1) {
                if (first_error) PQclear(first_error);
                fail("PostgreSQL COPY failed");
            }
        } else if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
            PQclear(result);
        } else if (!first_error) {
            first_error = result;
        } else {
            PQclear(result);
        }
        if (PQstatus(connection_.get()) == CONNECTION_BAD) break;
    }
    if (first_error) fail(what, first_error);
    if (PQstatus(connection_.get()) == CONNECTION_BAD) fail(what);
    if (next != copies.size()) throw DatabaseError(what + ": the server did not ask for every COPY's data", false);
}

std::vector<Result> Connection::pipeline(const std::vector<Statement>& statements) {
    PGconn* const c = connection_.get();
    if (PQenterPipelineMode(c) != 1) fail("PostgreSQL pipeline failed to start");
    // Leaves pipeline mode on every path below; a connection that cannot
    // leave it is useless, so that counts as lost (the daemon reconnects).
    const auto leave = [&] {
        if (PQpipelineStatus(c) != PQ_PIPELINE_OFF && PQexitPipelineMode(c) != 1)
            throw DatabaseError("PostgreSQL pipeline failed to end: " + trimmed(PQerrorMessage(c)), true);
    };
    for (const Statement& statement : statements) {
        std::vector<const char*> values(statement.parameters.size());
        std::vector<int> lengths(statement.parameters.size());
        for (std::size_t i = 0; i < statement.parameters.size(); ++i) {
            values[i] = statement.parameters[i] ? statement.parameters[i]->c_str() : nullptr;
            lengths[i] = statement.parameters[i] ? int(statement.parameters[i]->size()) : 0;
        }
        if (PQsendQueryParams(c, statement.sql.c_str(), int(statement.parameters.size()), nullptr, values.data(),
                              lengths.data(), nullptr, 0) != 1)
            fail("PostgreSQL " + statement_name(statement.sql) + " failed to send"); // the connection is gone
    }
    if (PQpipelineSync(c) != 1) fail("PostgreSQL pipeline failed to send");

    // Per statement: its result (or PIPELINE_ABORTED after an earlier
    // error), then NULL; at the end PIPELINE_SYNC.
    std::vector<Result> out;
    out.reserve(statements.size());
    PGresult* first_error = nullptr;
    std::string what;
    for (const Statement& statement : statements) {
        PGresult* result = PQgetResult(c);
        if (!result) break; // only when the connection failed: handled below
        const ExecStatusType status = PQresultStatus(result);
        if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
            out.emplace_back(result);
        } else if (status == PGRES_PIPELINE_ABORTED || first_error) {
            PQclear(result);
        } else {
            first_error = result;
            what = "PostgreSQL " + statement_name(statement.sql) + " failed";
        }
        while (PGresult* extra = PQgetResult(c)) PQclear(extra); // the NULL ending this statement
        if (PQstatus(c) == CONNECTION_BAD) break;
    }
    // The sync's own result. Anything else here (or none while the
    // connection lives) means libpq and the server disagree: treated as a
    // lost connection, which makes the daemon reconnect.
    PGresult* sync = PQstatus(c) == CONNECTION_BAD ? nullptr : PQgetResult(c);
    const bool synced = sync && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    if (sync) PQclear(sync);
    if (!synced) {
        if (first_error) fail(what, first_error);
        fail("PostgreSQL pipeline failed");
    }
    leave();
    if (first_error) fail(what, first_error);
    if (out.size() != statements.size()) fail("PostgreSQL pipeline failed"); // a result went missing
    return out;
}

void Connection::consume() {
    if (PQconsumeInput(connection_.get()) != 1) fail("PostgreSQL connection failed");
}

std::optional<Connection::Notification> Connection::next_notification() {
    PGnotify* notify = PQnotifies(connection_.get());
    if (!notify) return std::nullopt;
    Notification out{notify->relname ? notify->relname : "", notify->extra ? notify->extra : ""};
    PQfreemem(notify);
    return out;
}

void append_copy_text(std::string& out, std::string_view value) {
    for (const char c : value) {
        switch (c) {
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default: out.push_back(c);
        }
    }
}

void append_copy_bytea(std::string& out, const void* data, std::size_t size) {
    static constexpr char digits[] = "0123456789abcdef";
    const auto* bytes = static_cast<const unsigned char*>(data);
    out += "\\\\x"; // the bytea's own backslash, escaped for COPY
    for (std::size_t i = 0; i < size; ++i) {
        out.push_back(digits[bytes[i] >> 4]);
        out.push_back(digits[bytes[i] & 15]);
    }
}

std::string hex_bytes(const void* data, std::size_t size) {
    static constexpr char digits[] = "0123456789abcdef";
    const auto* bytes = static_cast<const unsigned char*>(data);
    std::string out = "\\x";
    out.reserve(2 + 2 * size);
    for (std::size_t i = 0; i < size; ++i) {
        out.push_back(digits[bytes[i] >> 4]);
        out.push_back(digits[bytes[i] & 15]);
    }
    return out;
}

std::string timestamp_text(std::int64_t realtime_ns) {
    const std::time_t seconds = std::time_t(realtime_ns / 1'000'000'000);
    const long micros = long((realtime_ns % 1'000'000'000) / 1'000);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char buffer[64];
    const std::size_t n = std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S", &utc);
    std::snprintf(buffer + n, sizeof buffer - n, ".%06ld+00", micros);
    return buffer;
}

} // namespace currant::pg
