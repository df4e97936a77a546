// A minimal HTTP/1.1 client for the daemon tests (one request per
// connection), and a reader of Prometheus text samples.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <optional>
#include <sstream>
#include <sys/socket.h>

#include "daemon_support.hpp"

namespace currant::daemon_test {

struct HttpAnswer {
    int status = 0;
    std::string headers;
    std::string body;
};

// One request over a fresh connection (Connection: close), read to EOF.
inline HttpAnswer http_request(std::uint16_t port, const std::string& method, const std::string& target,
                        const std::vector<std::string>& headers = {}, const std::string& host = "127.0.0.1") {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    std::string request = method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n";
    for (const std::string& header : headers) request += header + "\r\n";
    request += "Content-Length: 0\r\n\r\n";
    REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == ssize_t(request.size()));
    std::string answer;
    char buffer[65536];
    for (ssize_t got; (got = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) answer.append(buffer, std::size_t(got));
    ::close(fd);
    HttpAnswer result;
    const std::size_t end_of_headers = answer.find("\r\n\r\n");
    REQUIRE(end_of_headers != std::string::npos);
    result.headers = answer.substr(0, end_of_headers);
    result.body = answer.substr(end_of_headers + 4);
    REQUIRE(answer.starts_with("HTTP/1.1 "));
    result.status = std::stoi(answer.substr(9, 3));
    return result;
}


inline const std::vector<std::string> action_header = {"X-Currant-Request: 1"};

// The value of one sample line of the metrics text, exactly as written.
inline std::optional<std::string> sample(const std::string& metrics, const std::string& name_and_labels) {
    std::istringstream lines(metrics);
    for (std::string line; std::getline(lines, line);)
        if (line.starts_with(name_and_labels + " ")) return line.substr(name_and_labels.size() + 1);
    return std::nullopt;
}

} // namespace currant::daemon_test
