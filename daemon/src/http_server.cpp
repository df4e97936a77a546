#include "http_server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <chrono>
#include <thread>

#include "currant/shm/error.hpp"
#include "dashboard.hpp"
#include "json_text.hpp"
#include "log.hpp"

namespace currant::daemon {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// Equal-time comparison: how long it takes says nothing about where the
// given token first differs.
bool same_token(std::string_view given, std::string_view expected) {
    unsigned char difference = given.size() == expected.size() ? 0 : 1;
    for (std::size_t i = 0; i < given.size(); ++i)
        difference |= static_cast<unsigned char>(given[i] ^ expected[i % std::max<std::size_t>(1, expected.size())]);
    return difference == 0;
}

std::string_view host_name_of(std::string_view host_header) {
    if (!host_header.empty() && host_header.front() == '[') {
        const std::size_t end = host_header.find(']');
        return end == std::string_view::npos ? host_header : host_header.substr(0, end + 1);
    }
    return host_header.substr(0, host_header.find(':'));
}

// The raw value of key in a query string, percent-decoded ("+" is kept:
// the dashboard encodes with encodeURIComponent). Throws
// Error(invalid_argument) for a broken escape.
std::string query_value(std::string_view query, std::string_view key) {
    std::string_view raw;
    while (!query.empty()) {
        const std::size_t amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        const std::size_t eq = pair.find('=');
        if (pair.substr(0, eq) == key) {
            raw = eq == std::string_view::npos ? "" : pair.substr(eq + 1);
            break;
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    const auto digit = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string value;
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '%') {
            value += raw[i];
            continue;
        }
        if (i + 2 >= raw.size() || digit(raw[i + 1]) < 0 || digit(raw[i + 2]) < 0)
            throw Error(Errc::invalid_argument, "query parameter '" + std::string(key) + "' has a broken %-escape");
        value += static_cast<char>(digit(raw[i + 1]) * 16 + digit(raw[i + 2]));
        i += 2;
    }
    return value;
}

Response reply(const Request& request, http::status status, std::string_view content_type, std::string body) {
    Response response(status, request.version());
    response.set(http::field::server, "currantd");
    response.set(http::field::content_type, std::string(content_type));
    response.set(http::field::cache_control, "no-store");
    response.set("X-Content-Type-Options", "nosniff");
    response.keep_alive(request.keep_alive());
    response.body() = std::move(body);
    response.prepare_payload();
    return response;
}

Response error_reply(const Request& request, http::status status, const std::string& message) {
    return reply(request, status, "application/json", "{\"error\": " + json_string(message) + "}\n");
}

} // namespace

struct HttpServer::Impl {
    HttpOptions options;
    HttpHandlers handlers;
    asio::io_context io{1};
    tcp::acceptor acceptor{io};
    asio::steady_timer timer{io};
    std::thread thread;

    void accept();
    void tick();
    Response respond(const Request& request);
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
public:
    Session(tcp::socket socket, HttpServer::Impl& server) : stream_(std::move(socket)), server_(server) {}

    void read() {
        request_ = {};
        // A client that sends nothing (or too slowly) is dropped; the one
        // server thread is never held by it.
        stream_.expires_after(std::chrono::seconds(15));
        http::async_read(stream_, buffer_, request_,
                         [self = shared_from_this()](beast::error_code error, std::size_t) { self->on_read(error); });
    }

private:
    void on_read(beast::error_code error) {
        if (error) return close();
        response_ = server_.respond(request_);
        stream_.expires_after(std::chrono::seconds(15));
        http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code error, std::size_t) {
            if (error || !self->response_.keep_alive()) return self->close();
            self->read();
        });
    }
    void close() {
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    Request request_;
    Response response_;
    HttpServer::Impl& server_;
};

} // namespace

void HttpServer::Impl::accept() {
    acceptor.async_accept([this](beast::error_code error, tcp::socket socket) {
        if (error == asio::error::operation_aborted) return;
        if (!error) std::make_shared<Session>(std::move(socket), *this)->read();
        accept();
    });
}

void HttpServer::Impl::tick() {
    if (handlers.every_second) {
        try {
            handlers.every_second();
        } catch (const std::exception& error) {
            log_line(std::string("http: sampling: ") + error.what());
        }
    }
    timer.expires_after(std::chrono::seconds(1));
    timer.async_wait([this](beast::error_code error) {
        if (!error) tick();
    });
}

Response HttpServer::Impl::respond(const Request& request) {
    const std::string_view target(request.target().data(), request.target().size());
    const std::size_t question = target.find('?');
    const std::string_view path = target.substr(0, question);
    const std::string_view query = question == std::string_view::npos ? "" : target.substr(question + 1);

    // Without a token the server trusts this host only: a page on another
    // site that resolves its own name to 127.0.0.1 (DNS rebinding) sends
    // its own name as Host, and is refused here.
    if (options.token.empty()) {
        const std::string_view host(request[http::field::host].data(), request[http::field::host].size());
        const std::string name(host_name_of(host));
        const bool local = name == "localhost" || name == options.address || name == "[" + options.address + "]" ||
                           (!name.empty() && is_loopback_address(name));
        if (!local) return error_reply(request, http::status::forbidden, "Host '" + std::string(host) + "' is not this host");
    }
    // The dashboard page itself holds no data; everything else needs the token.
    if (path != "/" && !options.token.empty()) {
        const std::string_view authorization(request[http::field::authorization].data(),
                                             request[http::field::authorization].size());
        constexpr std::string_view bearer = "Bearer ";
        if (!authorization.starts_with(bearer) || !same_token(authorization.substr(bearer.size()), options.token))
            return error_reply(request, http::status::unauthorized, "a valid token is required (Authorization: Bearer ...)");
    }
    try {
        if (path == "/" && request.method() == http::verb::get)
            return reply(request, http::status::ok, "text/html; charset=utf-8", std::string(dashboard_html()));
        if (path == "/metrics" && request.method() == http::verb::get)
            return reply(request, http::status::ok, "text/plain; version=0.0.4; charset=utf-8", handlers.metrics());
        if (path == "/api/stats" && request.method() == http::verb::get)
            return reply(request, http::status::ok, "application/json", handlers.stats_json());
        if (path == "/api/history" && request.method() == http::verb::get)
            return reply(request, http::status::ok, "application/json", handlers.history_json());
        if (path == "/api/dead" && request.method() == http::verb::get)
            return reply(request, http::status::ok, "application/json",
                         handlers.dead_json(query_value(query, "entrypoint"), query_value(query, "limit"),
                                            query_value(query, "offset")));
        if (path == "/api/jobs" && request.method() == http::verb::get)
            return reply(request, http::status::ok, "application/json",
                         handlers.jobs_json(query_value(query, "entrypoint"), query_value(query, "limit"),
                                            query_value(query, "offset")));
        const std::function<std::string(const std::string&)>* action =
            path == "/api/cancel" ? &handlers.cancel_json
            : path == "/api/requeue" ? &handlers.requeue_json
            : path == "/api/purge" ? &handlers.purge_json
            : nullptr;
        if (action && request.method() == http::verb::post) {
            // A custom header cannot be sent cross-site without a CORS
            // preflight, which this server never grants: a form on another
            // site cannot change jobs here.
            if (request["X-Currant-Request"] != "1")
                return error_reply(request, http::status::forbidden, "the X-Currant-Request: 1 header is required");
            // Requeue or purge all of one entrypoint's dead jobs: all=1 and a
            // name, no id.
            if (const std::string all = query_value(query, "all");
                (action == &handlers.requeue_json || action == &handlers.purge_json) && !all.empty()) {
                if (all != "1") throw Error(Errc::invalid_argument, "all='" + all + "': only all=1 is understood");
                if (!query_value(query, "id").empty())
                    throw Error(Errc::invalid_argument, "give either id or all=1 with entrypoint, not both");
                const std::string entrypoint = query_value(query, "entrypoint");
                if (entrypoint.empty()) throw Error(Errc::invalid_argument, "all=1 needs entrypoint=NAME");
                return reply(request, http::status::ok, "application/json",
                             action == &handlers.requeue_json ? handlers.requeue_all_json(entrypoint)
                                                              : handlers.purge_all_json(entrypoint));
            }
            return reply(request, http::status::ok, "application/json", (*action)(query_value(query, "id")));
        }
        if (action || path == "/" || path == "/metrics" || path == "/api/stats" || path == "/api/history" ||
            path == "/api/dead" || path == "/api/jobs")
            return error_reply(request, http::status::method_not_allowed,
                               "method " + std::string(request.method_string()) + " is not allowed on " + std::string(path));
        return error_reply(request, http::status::not_found, "no such page: " + std::string(path));
    } catch (const Error& error) {
        const auto status = error.code() == Errc::invalid_argument ? http::status::bad_request
                            : error.code() == Errc::not_found ? http::status::not_found
                            : error.code() == Errc::wrong_state || error.code() == Errc::already_exists
                                ? http::status::conflict
                                : http::status::internal_server_error;
        return error_reply(request, status, error.what());
    } catch (const std::exception& error) {
        return error_reply(request, http::status::internal_server_error, error.what());
    }
}

HttpOptions parse_http_address(const std::string& text) {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0)
        throw Error(Errc::invalid_argument, "--http '" + text + "' is not ADDRESS:PORT (e.g. 127.0.0.1:9187)");
    std::string address = text.substr(0, colon);
    const std::string port = text.substr(colon + 1);
    if (address.size() > 2 && address.front() == '[' && address.back() == ']') address = address.substr(1, address.size() - 2);
    if (address == "localhost") address = "127.0.0.1";
    boost::system::error_code error;
    asio::ip::make_address(address, error);
    if (error) throw Error(Errc::invalid_argument, "--http: '" + address + "' is not an IP address");
    const bool digits = !port.empty() && port.size() <= 5 &&
                        std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || std::stoul(port) > 65535)
        throw Error(Errc::invalid_argument, "--http: port '" + port + "' is not a number from 0 to 65535");
    HttpOptions options;
    options.address = address;
    options.port = std::uint16_t(std::stoul(port));
    return options;
}

bool is_loopback_address(const std::string& address) {
    std::string bare = address;
    if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') bare = bare.substr(1, bare.size() - 2);
    boost::system::error_code error;
    const asio::ip::address parsed = asio::ip::make_address(bare, error);
    return !error && parsed.is_loopback();
}

HttpServer::HttpServer(const HttpOptions& options, HttpHandlers handlers) : impl_(std::make_unique<Impl>()) {
    impl_->options = options;
    impl_->handlers = std::move(handlers);
    if (options.token.empty() && !is_loopback_address(options.address))
        throw Error(Errc::invalid_argument, "--http on " + options.address +
                                                " (not a loopback address) needs a token: give --http-token-file");
    const tcp::endpoint endpoint(asio::ip::make_address(options.address), options.port);
    boost::system::error_code error;
    impl_->acceptor.open(endpoint.protocol(), error);
    if (!error) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), error);
    if (!error) impl_->acceptor.bind(endpoint, error);
    if (!error) impl_->acceptor.listen(asio::socket_base::max_listen_connections, error);
    if (error)
        throw Error(Errc::invalid_argument, "--http: cannot listen on " + options.address + ":" +
                                                std::to_string(options.port) + ": " + error.message());
    impl_->accept();
    impl_->tick();
    impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

HttpServer::~HttpServer() {
    stop();
    if (impl_->thread.joinable()) impl_->thread.join();
}

std::uint16_t HttpServer::port() const noexcept {
    boost::system::error_code error;
    return impl_->acceptor.local_endpoint(error).port();
}

void HttpServer::stop() noexcept { impl_->io.stop(); }

} // namespace currant::daemon
