// currantd's HTTP endpoint: Prometheus metrics, a JSON view of the queue and
// the web dashboard (docs/observability.md).
//
// Off unless --http is given. Bound to a loopback address it serves anyone
// on this host (like the segment's own users could read its stats anyway);
// bound to anything else it refuses to start without a token, and then every
// data request must carry "Authorization: Bearer <token>".
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace currant::daemon {

struct HttpOptions {
    std::string address = "127.0.0.1";
    std::uint16_t port = 0;      // 0: the kernel picks one (see HttpServer::port)
    std::string token;           // empty: no token (loopback only)
};

// Parses "ADDRESS:PORT" or "[IPV6]:PORT"; throws Error(invalid_argument) naming the problem.
HttpOptions parse_http_address(const std::string& text);
bool is_loopback_address(const std::string& address);

// What a request may ask for. Each runs on the server's thread.
struct HttpHandlers {
    std::function<std::string()> metrics;     // Prometheus text format
    std::function<std::string()> stats_json;  // /api/stats
    std::function<std::string()> history_json; // /api/history
    std::function<void()> every_second;        // run on the server's thread (sampling)
    // /api/cancel?id=N: returns a JSON object; throws Error(invalid_argument) for a bad id.
    std::function<std::string(const std::string& id_text)> cancel_json;
    // /api/dead?entrypoint=NAME&limit=N&offset=M: kept dead jobs as a JSON
    // object, the page of at most N after the first M; throws
    // Error(invalid_argument) for a bad limit or offset, Error(not_found) for
    // an unknown entrypoint.
    std::function<std::string(const std::string& entrypoint, const std::string& limit_text,
                              const std::string& offset_text)>
        dead_json;
    // /api/jobs?entrypoint=NAME&limit=N&offset=M: queued and picked jobs as
    // a JSON object, paged the same way; the same errors as dead_json.
    std::function<std::string(const std::string& entrypoint, const std::string& limit_text,
                              const std::string& offset_text)>
        jobs_json;
    // /api/requeue?id=N and /api/purge?id=N: a JSON object when done; throws
    // Error(invalid_argument) for a bad id, Error(not_found) for an id the
    // segment does not know, Error(wrong_state) for a job that is not a kept
    // dead job, Error(already_exists) for a requeue whose dedupe key is held.
    std::function<std::string(const std::string& id_text)> requeue_json;
    std::function<std::string(const std::string& id_text)> purge_json;
    // /api/requeue?all=1&entrypoint=NAME: every kept dead job of the
    // entrypoint back to queued (those whose dedupe key another job holds
    // stay dead); a JSON object with how many. Throws Error(not_found) for an
    // unknown entrypoint.
    std::function<std::string(const std::string& entrypoint)> requeue_all_json;
    // /api/purge?all=1&entrypoint=NAME: every kept dead job of the
    // entrypoint purged; a JSON object with how many. Throws
    // Error(not_found) for an unknown entrypoint.
    std::function<std::string(const std::string& entrypoint)> purge_all_json;
};

class HttpServer {
public:
    // Binds now (throws Error naming the address on failure) and serves on a
    // thread of its own until stop() or destruction.
    HttpServer(const HttpOptions& options, HttpHandlers handlers);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    std::uint16_t port() const noexcept;
    void stop() noexcept;

    struct Impl; // http_server.cpp only

private:
    std::unique_ptr<Impl> impl_;
};

} // namespace currant::daemon
