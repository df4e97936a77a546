// Headless Debian Chromium driven over its DevTools protocol (CDP): a
// WebSocket to the page's target, Boost.Beast's client (Boost is already a
// dependency; docs/dependencies.md). Tests evaluate JavaScript in the page
// and click with real mouse events (Input.dispatchMouseEvent), which go
// through the browser's hit testing and the page's own event handlers.
//
// Every wait has a deadline (60 s by default): on a loaded machine
// Chromium's start alone can take seconds.
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <cerrno>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_support.hpp"
#include "json_text.hpp"

namespace currant::daemon_test {

// The machine's notes: no sandbox (tests may run as root), no GPU, and no
// network traffic of Chromium's own (the machine has no internet).
inline std::vector<std::string> chromium_flags(const std::string& profile) {
    return {"--headless",          "--no-sandbox",          "--disable-gpu",
            "--disable-quic",      "--no-first-run",        "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--user-data-dir=" + profile};
}

// One Chromium process showing url, with a DevTools port the kernel picked.
// Killed (its whole process group) at destruction.
class Chromium {
public:
    explicit Chromium(const std::string& url) {
        directory_ = testing::shared_postgres().directory() + "/" + testing::unique_queue_name("cdp");
        std::filesystem::create_directories(directory_);
        std::vector<std::string> argv = {"/usr/bin/chromium"};
        for (std::string& flag : chromium_flags(directory_ + "/profile")) argv.push_back(std::move(flag));
        for (const char* flag : {"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                                 "--window-size=1280,1000", "--hide-scrollbars"})
            argv.emplace_back(flag);
        argv.push_back(url);
        const std::string log = log_path();
        pid_ = fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            setpgid(0, 0); // its helpers (zygote, renderer) in one group, killed together
            const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
            std::vector<char*> raw;
            for (auto& a : argv) raw.push_back(a.data());
            raw.push_back(nullptr);
            execv(raw[0], raw.data());
            _exit(127);
        }
        setpgid(pid_, pid_); // also here: no window where the group does not exist yet
        // Chromium writes "PORT\n/devtools/browser/ID" once it listens.
        const std::string active = directory_ + "/profile/DevToolsActivePort";
        INFO("chromium log: " << log_text());
        REQUIRE(eventually(
            [&] {
                std::ifstream file(active);
                std::string line;
                if (!std::getline(file, line) || line.empty()) return false;
                port_ = std::stoi(line);
                return std::getline(file, line).good() || !line.empty();
            },
            60'000ms));
    }
    ~Chromium() {
        if (pid_ > 0) {
            ::kill(-pid_, SIGKILL);
            int status = 0;
            while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
            }
        }
        std::error_code ignored;
        std::filesystem::remove_all(directory_, ignored);
    }
    Chromium(const Chromium&) = delete;
    Chromium& operator=(const Chromium&) = delete;

    int devtools_port() const { return port_; }
    std::string log_path() const { return directory_ + "/chromium.log"; }
    std::string log_text() const {
        std::ifstream in(log_path());
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    }

private:
    std::string directory_;
    pid_t pid_ = -1;
    int port_ = 0;
};

// The text of a JSON string literal that starts at text[at] (the opening
// quote): the escapes CDP writes (\" \\ \/ \b \f \n \r \t \uXXXX, surrogate
// pairs included) decoded to UTF-8.
inline std::string json_unquote(const std::string& text, std::size_t at) {
    REQUIRE(at < text.size());
    REQUIRE(text[at] == '"');
    std::string out;
    const auto utf8 = [&out](std::uint32_t code) {
        if (code < 0x80) {
            out += char(code);
        } else if (code < 0x800) {
            out += char(0xC0 | code >> 6);
            out += char(0x80 | (code & 0x3F));
        } else if (code < 0x10000) {
            out += char(0xE0 | code >> 12);
            out += char(0x80 | (code >> 6 & 0x3F));
            out += char(0x80 | (code & 0x3F));
        } else {
            out += char(0xF0 | code >> 18);
            out += char(0x80 | (code >> 12 & 0x3F));
            out += char(0x80 | (code >> 6 & 0x3F));
            out += char(0x80 | (code & 0x3F));
        }
    };
    for (std::size_t i = at + 1; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '"') return out;
        if (c != '\\') {
            out += c;
            continue;
        }
        REQUIRE(i + 1 < text.size());
        const char e = text[++i];
        switch (e) {
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
            REQUIRE(i + 4 < text.size());
            std::uint32_t code = std::stoul(text.substr(i + 1, 4), nullptr, 16);
            i += 4;
            if (code >= 0xD800 && code < 0xDC00 && i + 6 < text.size() && text[i + 1] == '\\' && text[i + 2] == 'u') {
                const std::uint32_t low = std::stoul(text.substr(i + 3, 4), nullptr, 16);
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                i += 6;
            }
            utf8(code);
            break;
        }
        default: out += e; // \" \\ \/
        }
    }
    FAIL("unterminated JSON string in: " << text);
    return out;
}

// A DevTools session with the page Chromium opened first.
class DevTools {
public:
    explicit DevTools(const Chromium& chromium) : chromium_(chromium) {
        namespace http = boost::beast::http;
        const std::string host = "127.0.0.1:" + std::to_string(chromium.devtools_port());
        // /json/list names each target's WebSocket; the page is the one at /devtools/page/.
        std::string page_path;
        REQUIRE(eventually(
            [&] {
                boost::asio::io_context io;
                boost::beast::tcp_stream stream(io);
                boost::beast::error_code error;
                stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                                              std::uint16_t(chromium.devtools_port())),
                               error);
                if (error) return false;
                http::request<http::empty_body> request(http::verb::get, "/json/list", 11);
                request.set(http::field::host, host);
                http::write(stream, request, error);
                boost::beast::flat_buffer buffer;
                http::response<http::string_body> response;
                if (!error) http::read(stream, buffer, response, error);
                if (error) return false;
                std::smatch match;
                static const std::regex page(R"re("webSocketDebuggerUrl":\s*"ws://[^/"]+(/devtools/page/[^"]+)")re");
                if (!std::regex_search(response.body(), match, page)) return false;
                page_path = match[1];
                return true;
            },
            60'000ms));
        socket_.emplace(io_);
        socket_->next_layer().connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                                                     std::uint16_t(chromium.devtools_port())));
        socket_->handshake(host, page_path);
    }

    // Sends method(params) and returns the raw JSON of its answer; fails the
    // test on a protocol error or after the deadline. Events in between are
    // skipped (none is enabled).
    std::string call(const std::string& method, const std::string& params = "{}",
                     std::chrono::milliseconds deadline = 60'000ms) {
        const int id = ++last_id_;
        const std::string message =
            "{\"id\": " + std::to_string(id) + ", \"method\": \"" + method + "\", \"params\": " + params + "}";
        socket_->text(true);
        socket_->write(boost::asio::buffer(message));
        const std::string answer_start = "{\"id\":" + std::to_string(id) + ",";
        for (;;) {
            boost::beast::flat_buffer buffer;
            std::optional<boost::beast::error_code> done;
            socket_->async_read(buffer, [&](boost::beast::error_code error, std::size_t) { done = error; });
            io_.restart();
            io_.run_for(deadline);
            if (!done) {
                INFO("chromium log: " << chromium_.log_text());
                FAIL("no answer from Chromium to " << method << " within " << deadline.count() << " ms");
            }
            REQUIRE_FALSE(*done);
            std::string text = boost::beast::buffers_to_string(buffer.data());
            if (!text.starts_with(answer_start)) continue;
            INFO(method << " " << params << " answered " << text);
            REQUIRE(text.find("\"error\":{") != answer_start.size()); // {"id":N,"error":{...}}
            return text;
        }
    }

    // The value of a JavaScript expression that yields a string (promises
    // are awaited). A thrown exception fails the test with its text.
    std::string evaluate(const std::string& expression) {
        const std::string answer = call("Runtime.evaluate", "{\"expression\": " + daemon::json_string(expression) +
                                                                ", \"returnByValue\": true, \"awaitPromise\": true}");
        INFO(expression << " answered " << answer);
        REQUIRE(answer.find("\"exceptionDetails\"") == std::string::npos);
        const std::string marker = "\"type\":\"string\",\"value\":";
        const std::size_t at = answer.find(marker);
        REQUIRE(at != std::string::npos);
        return json_unquote(answer, at + marker.size());
    }

    // Until the expression yields "true"; false after the deadline.
    bool wait_for(const std::string& expression, std::chrono::milliseconds timeout = 60'000ms) {
        return eventually([&] { return evaluate("String(" + expression + ")") == "true"; }, timeout);
    }

    // A left click at the centre of the element selector names, scrolled
    // into view first: pressed and released like a mouse, so it lands on
    // whatever element is on top there, as a user's would. The element must
    // be the one hit at that point when the position is taken (the caller
    // waits until the page's layout has settled).
    void click(const std::string& selector) {
        const std::string where = evaluate("(() => { const e = document.querySelector(" + daemon::json_string(selector) +
                                           "); if (!e) return 'missing'; e.scrollIntoView({block: 'center'});"
                                           " const r = e.getBoundingClientRect(), x = r.x + r.width / 2, y = r.y + r.height / 2;"
                                           " const hit = document.elementFromPoint(x, y);"
                                           " if (!hit || !(hit === e || e.contains(hit))) return 'covered';"
                                           " return `${x} ${y}`; })()");
        INFO("click on " << selector);
        REQUIRE(where != "missing");
        REQUIRE(where != "covered");
        const std::string x = where.substr(0, where.find(' ')), y = where.substr(where.find(' ') + 1);
        const std::string at = "\"x\": " + x + ", \"y\": " + y;
        call("Input.dispatchMouseEvent", "{\"type\": \"mouseMoved\", " + at + "}");
        call("Input.dispatchMouseEvent", "{\"type\": \"mousePressed\", " + at + ", \"button\": \"left\", \"clickCount\": 1}");
        call("Input.dispatchMouseEvent", "{\"type\": \"mouseReleased\", " + at + ", \"button\": \"left\", \"clickCount\": 1}");
    }

    // Picks the option with this value in a <select>, and sends the change
    // event a user's choice sends: a select's list is the browser's own
    // pop-up, outside the page, so it cannot be clicked like a button.
    void choose(const std::string& selector, const std::string& value) {
        INFO("choose " << value << " in " << selector);
        REQUIRE(evaluate("(() => { const e = document.querySelector(" + daemon::json_string(selector) +
                         "); if (!e || ![...e.options].some(o => o.value === " + daemon::json_string(value) +
                         ")) return 'missing'; e.value = " + daemon::json_string(value) +
                         "; e.dispatchEvent(new Event('change', {bubbles: true})); return 'chosen'; })()") == "chosen");
    }

    // Focuses the element and types text into it as keyboard input.
    void type_into(const std::string& selector, const std::string& text) {
        click(selector);
        call("Input.insertText", "{\"text\": " + daemon::json_string(text) + "}");
    }

private:
    const Chromium& chromium_;
    boost::asio::io_context io_;
    std::optional<boost::beast::websocket::stream<boost::beast::tcp_stream>> socket_;
    int last_id_ = 0;
};

} // namespace currant::daemon_test
