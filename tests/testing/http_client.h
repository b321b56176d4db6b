// One HTTP/1.1 request on loopback (Connection: close) for tests: the web pages, /metrics
// and Prometheus' API. A chunked body (Transfer-Encoding: chunked) is decoded.
#ifndef MGREG_TESTS_TESTING_HTTP_CLIENT_H_
#define MGREG_TESTS_TESTING_HTTP_CLIENT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace mgreg::testing {

struct HttpResponse {
  int status = 0;  // 0: could not connect or no valid response
  std::string headers;
  std::string body;
  // The value of header `name` (case-insensitive), "" if absent.
  std::string Header(absl::string_view name) const {
    for (absl::string_view line : absl::StrSplit(headers, "\r\n")) {
      const size_t colon = line.find(':');
      if (colon != absl::string_view::npos &&
          absl::EqualsIgnoreCase(line.substr(0, colon), name)) {
        return std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      }
    }
    return "";
  }
};

// The payload of a chunked body; false if it is malformed or cut short.
inline bool DecodeChunked(absl::string_view chunked, std::string* out) {
  out->clear();
  while (true) {
    const size_t eol = chunked.find("\r\n");
    if (eol == absl::string_view::npos) return false;
    absl::string_view size_line = chunked.substr(0, eol);
    size_line = size_line.substr(0, size_line.find(';'));  // chunk extensions
    uint64_t size = 0;
    if (!absl::SimpleHexAtoi(absl::StripAsciiWhitespace(size_line), &size)) return false;
    chunked.remove_prefix(eol + 2);
    if (size == 0) return true;  // trailers, if any, are ignored
    if (chunked.size() < size + 2) return false;
    out->append(chunked.data(), size);
    chunked.remove_prefix(size + 2);
  }
}

inline HttpResponse HttpRequest(int port, const std::string& method,
                                const std::string& path,
                                const std::vector<std::string>& headers = {},
                                const std::string& body = "") {
  HttpResponse out;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return out;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return out;
  }
  std::string request = absl::StrCat(
      method, " ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
  for (const std::string& h : headers) absl::StrAppend(&request, h, "\r\n");
  if (!body.empty() || method == "POST") {
    absl::StrAppend(&request, "Content-Length: ", body.size(), "\r\n");
  }
  absl::StrAppend(&request, "\r\n", body);
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return out;
  }
  std::string raw;
  char buf[65536];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0)
    raw.append(buf, static_cast<size_t>(n));
  ::close(fd);
  const size_t end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || end == std::string::npos) return out;
  int status = 0;
  if (!absl::SimpleAtoi(raw.substr(9, 3), &status)) return out;
  out.headers = raw.substr(0, end);
  out.body = raw.substr(end + 4);
  if (absl::EqualsIgnoreCase(out.Header("Transfer-Encoding"), "chunked")) {
    std::string decoded;
    if (!DecodeChunked(out.body, &decoded)) return HttpResponse{};
    out.body = std::move(decoded);
  }
  out.status = status;
  return out;
}

inline HttpResponse HttpGet(int port, const std::string& path,
                            const std::vector<std::string>& headers = {}) {
  return HttpRequest(port, "GET", path, headers);
}

// A port that was free a moment ago (for tools that cannot bind port 0 and report it).
inline int PickFreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace mgreg::testing

#endif  // MGREG_TESTS_TESTING_HTTP_CLIENT_H_
